# shellcheck shell=bash
# Shared functions for examples/bench-clients.sh and examples/bench-swarm.sh:
# opentracker, network namespaces + veth + tbf, the seeders, every leecher
# (start / poll / collect), CSV rows, medians and meta.json. Plots:
# examples/plots.sh.
#
# Everything a run starts is recorded (pids, namespaces, veth links, qdiscs,
# temporary folders) and removed by bench_cleanup on exit, also on failure or
# Ctrl-C. Only processes started here are ever signalled, by pid.

BENCH_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_LIB/../.." && pwd)
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in examples/bench
CLK_TCK=$(getconf CLK_TCK)

# ------------------------------------------------------------------ settings
TIMEOUT=${BENCH_TIMEOUT:-300}          # seconds per run (per swarm)
NET=${BENCH_NET:-10.231}               # namespaces get $NET.K.0/24
MTU=${BENCH_MTU:-1500}
SAMPLE=${BENCH_SAMPLE:-0.15}           # progress sampling interval, seconds
POLL=0.05                              # completion polling interval, seconds
DATA_DIR=${BT_BENCH_DIR:-/tmp/bt-bench-clients}
BT_BIN=${CARGO_TARGET_DIR:-$ROOT/target}/release
BT_FETCH=${BT_FETCH:-$BT_BIN/bt-fetch}
BT_META=${BT_META:-$BT_BIN/bt-meta}
REFERENCES=(libtorrent qbittorrent aria2 transmission)
ALL_CLIENTS=(bt-fetch "${REFERENCES[@]}")

# median over a space-separated list, for mawk (no asort)
AWK_MEDIAN='function median(s,   a, n, i, j, t) { n = split(s, a, " "); for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }'

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}
now_ns() { date +%s%N; }

# ------------------------------------------------------------------ cleanup
BENCH_PIDS=()
BENCH_NS=()
BENCH_LINKS=()
BENCH_TMP=

alive() { # PID: running and not a zombie
    local st
    st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n $st && ${st:0:1} != Z ]]
}

bench_kill() { # PID...: SIGTERM, up to 5 s grace, then SIGKILL; reaps our children
    local p deadline
    for p; do kill -TERM "$p" 2>/dev/null; done
    deadline=$(($(date +%s) + 5))
    for p; do
        while alive "$p" && (($(date +%s) < deadline)); do sleep 0.05; done
        alive "$p" && kill -KILL "$p" 2>/dev/null
    done
    for p; do wait "$p" 2>/dev/null; done
    return 0
}

bench_cleanup() {
    local rc=$? p live=() l n
    trap - EXIT INT TERM
    for p in "${BENCH_PIDS[@]}"; do alive "$p" && live+=("$p"); done
    ((${#live[@]})) && bench_kill "${live[@]}"
    for l in "${BENCH_LINKS[@]}"; do ip link del "$l" 2>/dev/null; done
    for n in "${BENCH_NS[@]}"; do ip netns del "$n" 2>/dev/null; done
    if [[ -n $BENCH_TMP && -d $BENCH_TMP && -z ${BENCH_KEEP:-} ]]; then rm -rf "$BENCH_TMP"; fi
    exit "$rc"
}

bench_init() { # OUT_DIR: checks prerequisites, makes the temp dir, sets the trap
    OUT=$1
    trap bench_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    [[ $EUID -eq 0 ]] || die "needs root (network namespaces, tc, opentracker -u nobody)"
    local t
    for t in opentracker ip tc curl cmp fincore gnuplot; do
        command -v "$t" >/dev/null || die "'$t' not found (apt-get install opentracker iproute2 curl diffutils util-linux gnuplot-nox)"
    done
    [[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
    [[ -x $BT_META ]] || die "$BT_META not built (cargo build --release)"
    mkdir -p "$OUT"/{progress,logs} "$DATA_DIR"
    OUT=$(cd "$OUT" && pwd)
    BENCH_TMP=$(mktemp -d /tmp/bt-bench-run.XXXXXX)
    chmod 755 "$BENCH_TMP"
    RID=$(($$ % 10000))
    RUN_SEQ=0
    # listening ports come from below the kernel's ephemeral range (32768
    # and up by default): a port picked there could be taken by an outgoing
    # connection of another leecher before ours binds it (it happened once:
    # one S4 leecher died with "Address already in use")
    EPHEMERAL_LOW=$(cut -f1 /proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || echo 32768)
    NEXT_PORT=$((10000 + ($$ % 1000) * 20))
    CSV=$OUT/runs.csv
    [[ -f $CSV ]] || echo "scenario,variant,piece,link_mbit,seeder,client,instance,rep,status,wall_s,cpu_s,peak_rss_mib,client_down_bytes,wire_bytes,goodput_pct,cmp,trace,first_byte_s,peak_anon_mib,exit_s,cpu_user_s,cpu_sys_s,peak_rss_kib,anon_kib" >"$CSV"
    bench_meta before "$@"
}

# bench_meta before|after: $OUT/meta.json with what a reader needs to judge
# the numbers: commit (and whether the tree was dirty), the command line, the
# machine and its load, before the first run and after the last one
BENCH_CMDLINE=
bench_meta() {
    local when=$1
    [[ -z $BENCH_CMDLINE ]] && BENCH_CMDLINE="$0 ${BENCH_ARGS[*]}"
    WHEN=$when CMDLINE=$BENCH_CMDLINE MTU_SET=$MTU ROOT=$ROOT BTF=$BT_FETCH "$PY" - "$OUT/meta.json" <<'PYEOF'
import json, os, subprocess, sys, time
path = sys.argv[1]
meta = json.load(open(path)) if os.path.exists(path) else {}
def sh(*a):
    try:
        return subprocess.run(a, capture_output=True, text=True, cwd=os.environ["ROOT"]).stdout.strip()
    except OSError:
        return ""
load = open("/proc/loadavg").read().split()[:3]
now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
if os.environ["WHEN"] == "before":
    dirty = sh("git", "status", "--porcelain", "--untracked-files=no", "--", "src", "bin", "Cargo.toml", "Cargo.lock")
    head = sh("git", "rev-parse", "HEAD")
    # a folder filled by several invocations keeps the first one's commit
    # and dates at the top and each invocation's own in "invocations"
    meta.setdefault("invocations", []).append({
        "command": os.environ["CMDLINE"].strip(), "commit": head, "source_tree_dirty": bool(dirty),
        "date_start": now, "loadavg_before": load,
    })
    meta.update({
        "commit": meta.get("commit", head),
        "source_tree_dirty": meta.get("source_tree_dirty", False) or bool(dirty),
        "command": meta.get("command", os.environ["CMDLINE"].strip()),
        # a folder filled by several invocations lists them all
        "commands": meta.get("commands", []) + [os.environ["CMDLINE"].strip()],
        "bt_fetch": os.environ["BTF"],
        "machine": {
            "nproc": os.cpu_count(),
            "kernel": os.uname().release,
            "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), ""),
            "mem_total_kib": int(next(l.split()[1] for l in open("/proc/meminfo") if l.startswith("MemTotal"))),
            "lo_mtu": int(open("/sys/class/net/lo/mtu").read()),
            "veth_mtu": int(os.environ["MTU_SET"]),
        },
        "date_start": meta.get("date_start", now),
        "loadavg_before": meta.get("loadavg_before", load),
    })
else:
    meta.update({"date_end": now, "loadavg_after": load})
    if meta.get("invocations"):
        meta["invocations"][-1].update({"date_end": now, "loadavg_after": load})
json.dump(meta, open(path, "w"), indent=2)
open(path, "a").write("\n")
PYEOF
}

# bench_finish: load after, compressed traces (the results folder is committed)
bench_finish() {
    bench_meta after
    find "$OUT/progress" -name '*.tsv' -exec gzip -9f {} + 2>/dev/null
    # per-run logs: one archive, so that the folder stays small and flat
    # (a folder filled by several invocations keeps the earlier logs too)
    if [[ -d $OUT/logs ]]; then
        [[ -f $OUT/logs.tar.gz ]] && tar -C "$OUT" -xzf "$OUT/logs.tar.gz"
        tar -C "$OUT" -czf "$OUT/logs.tar.gz" logs && rm -rf "$OUT/logs"
    fi
    return 0
}

free_port() { # VAR: sets VAR to a TCP port nobody listens on (no subshell:
    # the counter must advance in this shell)
    local p
    while :; do
        p=$NEXT_PORT
        NEXT_PORT=$((NEXT_PORT + 1))
        ((NEXT_PORT >= EPHEMERAL_LOW)) && NEXT_PORT=10000
        if [[ -z $(ss -Htln "sport = :$p" 2>/dev/null) ]]; then
            printf -v "$1" '%s' "$p"
            return
        fi
    done
}

# ------------------------------------------------------------------ data
# make_data MIB: a random file of MIB MiB, reused while the size is right.
make_data() {
    local mib=$1 bytes
    bytes=$((mib * 1024 * 1024))
    DATA_NAME=bench-${mib}MiB.bin
    DATA_FILE=$DATA_DIR/$DATA_NAME
    DATA_BYTES=$bytes
    if [[ ! -f $DATA_FILE || $(stat -c %s "$DATA_FILE") -ne $bytes ]]; then
        log "creating $DATA_FILE ($mib MiB of random bytes)"
        head -c "$bytes" /dev/urandom >"$DATA_FILE.tmp"
        mv "$DATA_FILE.tmp" "$DATA_FILE"
    fi
    chmod 644 "$DATA_FILE"
    cat "$DATA_FILE" >/dev/null # warm page cache: the seeder reads from memory
}

# make_data_multi N KIB: a folder of N random files of KIB KiB each (a
# multi-file torrent), reused while it is complete
make_data_multi() {
    local n=$1 kib=$2 i
    DATA_NAME=bench-multi-${n}x${kib}KiB
    DATA_FILE=$DATA_DIR/$DATA_NAME
    DATA_BYTES=$((n * kib * 1024))
    if [[ ! -d $DATA_FILE || $(find "$DATA_FILE" -type f | wc -l) -ne $n ]]; then
        log "creating $DATA_FILE ($n files of $kib KiB)"
        rm -rf "$DATA_FILE"
        mkdir -p "$DATA_FILE"
        for ((i = 0; i < n; i++)); do head -c $((kib * 1024)) /dev/urandom >"$DATA_FILE/f$(printf %04d "$i").bin"; done
    fi
    chmod -R a+rX "$DATA_FILE"
    cat "$DATA_FILE"/* >/dev/null
}

# make_torrent PIECE ANNOUNCE_IP: sets TORRENT and HASH (v1 torrent by bt-meta)
make_torrent() {
    local piece=$1 ip=$2
    TORRENT=$BENCH_TMP/${DATA_NAME%.bin}-$piece-$ip.torrent
    if [[ ! -f $TORRENT ]]; then
        "$BT_META" create "$DATA_FILE" -l "$piece" --no-date -q -f -o "$TORRENT" \
            -a "http://$ip:$TRACKER_PORT/announce" >/dev/null || die "bt-meta create failed"
    fi
    HASH=$("$BT_META" info "$TORRENT" | sed -n 's/.*"info_hash": *"\([0-9a-f]\{40\}\)".*/\1/p')
    [[ -n $HASH ]] || die "no info-hash for $TORRENT"
    grep -qx "$HASH" "$BENCH_TMP/tracker/whitelist.txt" 2>/dev/null || {
        echo "$HASH" >>"$BENCH_TMP/tracker/whitelist.txt"
        TRACKER_DIRTY=1
    }
}

# ------------------------------------------------------------------ tracker
TRACKER_PID=
TRACKER_PORT=
tracker_setup() { # chooses the port and the whitelist folder
    mkdir -p "$BENCH_TMP/tracker"
    chmod 755 "$BENCH_TMP/tracker"
    touch "$BENCH_TMP/tracker/whitelist.txt"
    chmod 644 "$BENCH_TMP/tracker/whitelist.txt"
    free_port TRACKER_PORT
}

# tracker_restart IP...: a fresh opentracker (no peers remembered) on the
# same port, bound to 127.0.0.1 and the given addresses, closed mode.
tracker_restart() {
    local args=() ip i
    tracker_stop
    for ip in 127.0.0.1 "$@"; do args+=(-i "$ip" -p "$TRACKER_PORT" -P "$TRACKER_PORT"); done
    opentracker "${args[@]}" -d "$BENCH_TMP/tracker" -w whitelist.txt -u nobody \
        >"$OUT/logs/opentracker.log" 2>&1 &
    TRACKER_PID=$!
    BENCH_PIDS+=("$TRACKER_PID")
    for ((i = 0; i < 100; i++)); do
        curl -sf -o /dev/null "http://127.0.0.1:$TRACKER_PORT/scrape?info_hash=$(urlhash "${HASH:-0000000000000000000000000000000000000000}")" 2>/dev/null && return 0
        curl -s -o /dev/null "http://127.0.0.1:$TRACKER_PORT/" 2>/dev/null && return 0
        sleep 0.05
    done
    die "opentracker did not start (see $OUT/logs/opentracker.log)"
}
tracker_stop() {
    [[ -n $TRACKER_PID ]] && bench_kill "$TRACKER_PID"
    TRACKER_PID=
}
urlhash() { sed 's/../%&/g' <<<"$1"; }
tracker_seeds() { # HASH: "complete" count from a scrape
    local n
    n=$(curl -s --max-time 2 "http://127.0.0.1:$TRACKER_PORT/scrape?info_hash=$(urlhash "$1")" |
        grep -ao '8:completei[0-9]*e' | grep -o '[0-9]*' | head -1)
    echo "${n:-0}"
}

# ------------------------------------------------------------------ namespaces
# ns_create K: namespace $NSPFX$K with veth pair; host side $NET.K.1, inside
# $NET.K.2; the inside routes $NET.0.0/16 back through the host side only.
ns_name() { echo "btb${RID}n$1"; }
ns_host_dev() { echo "btb${RID}h$1"; }
ns_peer_dev() { echo "btb${RID}p$1"; }
ns_create() {
    local k=$1 ns h p
    ns=$(ns_name "$k")
    h=$(ns_host_dev "$k")
    p=$(ns_peer_dev "$k")
    ip netns list | grep -qw "$ns" && return 0
    if ((k == 1)) && ip -4 addr | grep -q "inet $NET\."; then
        die "addresses $NET.x.x are already in use here; set BENCH_NET to another 10.x prefix"
    fi
    ip netns add "$ns" || die "ip netns add failed"
    BENCH_NS+=("$ns")
    ip link add "$h" type veth peer name "$p" || die "ip link add veth failed"
    BENCH_LINKS+=("$h")
    ip link set "$p" netns "$ns"
    ip addr add "$NET.$k.1/24" dev "$h"
    ip link set "$h" mtu "$MTU" up
    ip -n "$ns" link set lo up
    ip -n "$ns" addr add "$NET.$k.2/24" dev "$p"
    ip -n "$ns" link set "$p" mtu "$MTU" up
    ip -n "$ns" route add "$NET.0.0/16" via "$NET.$k.1"
}
# ns_limit K MBIT: tbf on both ends of the veth (0 = remove the limit)
ns_limit() {
    local k=$1 rate=$2 ns h p
    ns=$(ns_name "$k")
    h=$(ns_host_dev "$k")
    p=$(ns_peer_dev "$k")
    if ((rate > 0)); then
        tc qdisc replace dev "$h" root tbf rate "${rate}mbit" burst 256kb latency 50ms
        ip netns exec "$ns" tc qdisc replace dev "$p" root tbf rate "${rate}mbit" burst 256kb latency 50ms
    else
        tc qdisc del dev "$h" root 2>/dev/null
        ip netns exec "$ns" tc qdisc del dev "$p" root 2>/dev/null
    fi
    return 0
}
ns_rx_bytes() { # K: bytes received by the host from namespace K so far
    cat "/sys/class/net/$(ns_host_dev "$1")/statistics/rx_bytes"
}

# ------------------------------------------------------------------ seeders
# seeder_start KIND NS_OR_EMPTY IP: starts one seeder for $TORRENT from
# $DATA_DIR; appends its pid to SEEDER_PIDS.
SEEDER_PIDS=() SEEDER_LOGS=()
seeder_start() {
    local kind=$1 ns=$2 ip=$3 port dir pre=() log
    free_port port
    dir=$BENCH_TMP/seed-$kind-$RANDOM
    mkdir -p "$dir"
    [[ -n $ns ]] && pre=(ip netns exec "$ns")
    log=$OUT/logs/seeder-$kind-${ns:-lo}-$port.log
    case $kind in
    libtorrent)
        "${pre[@]}" "$PY" "$BENCH_LIB/seed_libtorrent.py" --torrent "$TORRENT" --dir "$DATA_DIR" \
            --listen "$ip:$port" >"$log" 2>&1 &
        ;;
    transmission)
        transmission_settings "$dir/cfg" "$port" "$ip"
        "${pre[@]}" transmission-cli -g "$dir/cfg" -w "$DATA_DIR" -p "$port" -M -D -U -et \
            "$TORRENT" >"$log" 2>&1 &
        ;;
    bt-fetch)
        [[ -x $BT_FETCH ]] || die "--seeder bt-fetch: $BT_FETCH not built"
        local bind=()
        bt_fetch_has --bind && bind=(--bind "$ip")
        "${pre[@]}" "$BT_FETCH" "$TORRENT" -o "$DATA_DIR" --seed --announce --listen "$port" "${bind[@]}" -q \
            </dev/null >"$log" 2>&1 &
        ;;
    qbittorrent)
        local wport
        free_port wport
        qbittorrent_config "$dir/qbt" "$port" "$wport" "$ip" /bin/true
        "${pre[@]}" qbittorrent-nox --profile="$dir/qbt" --webui-port="$wport" --torrenting-port="$port" \
            --save-path="$DATA_DIR" --skip-hash-check --skip-dialog=true --add-paused=false \
            "$TORRENT" </dev/null >"$log" 2>&1 &
        ;;
    aria2)
        # the data is known good: seed it without a hash check, forever
        "${pre[@]}" aria2c --dir="$DATA_DIR" --enable-dht=false --enable-dht6=false --bt-enable-lpd=false \
            --enable-peer-exchange=false --follow-torrent=mem --listen-port="$port" --no-conf=true \
            --summary-interval=0 --disable-ipv6=true --interface="$ip" --bt-seed-unverified=true \
            --seed-ratio=0.0 --bt-max-peers=0 --max-overall-upload-limit=0 --console-log-level=warn \
            "$TORRENT" </dev/null >"$log" 2>&1 &
        ;;
    *) die "unknown seeder '$kind'" ;;
    esac
    SEEDER_PIDS+=($!)
    SEEDER_LOGS+=("$kind:$log")
    BENCH_PIDS+=($!)
}
# seeders_wait N: until the tracker lists N complete peers (bounded)
seeders_wait() {
    local n=$1 deadline
    deadline=$(($(date +%s) + 120))
    while (($(tracker_seeds "$HASH") < n)); do
        (($(date +%s) > deadline)) && die "seeders did not announce within 120 s (logs in $OUT/logs)"
        local p
        for p in "${SEEDER_PIDS[@]}"; do alive "$p" || die "a seeder exited (logs in $OUT/logs)"; done
        sleep 0.2
    done
    # Transmission announces itself complete while it still verifies the
    # data, and a leecher that connects then gets a bitfield of the pieces
    # checked so far and never a "have" for the rest: it stops being
    # interested part-way and the download stalls. Wait for "Seeding".
    local e
    for e in "${SEEDER_LOGS[@]}"; do
        [[ $e == transmission:* ]] || continue
        while ! tr '\r' '\n' <"${e#*:}" | grep -q '^Seeding'; do
            (($(date +%s) > deadline)) && die "Transmission did not finish verifying within 120 s (${e#*:})"
            sleep 0.2
        done
    done
}
seeders_stop() {
    ((${#SEEDER_PIDS[@]})) && bench_kill "${SEEDER_PIDS[@]}"
    SEEDER_PIDS=() SEEDER_LOGS=()
}

# ------------------------------------------------------------------ clients
transmission_settings() { # DIR PORT BIND_IP
    mkdir -p "$1"
    cat >"$1/settings.json" <<EOF
{"dht-enabled": false, "lpd-enabled": false, "pex-enabled": false, "utp-enabled": false,
 "port-forwarding-enabled": false, "peer-port": $2, "peer-port-random-on-start": false,
 "bind-address-ipv4": "$3", "speed-limit-down-enabled": false, "speed-limit-up-enabled": false,
 "alt-speed-enabled": false, "ratio-limit-enabled": false, "idle-seeding-limit-enabled": false,
 "rename-partial-files": false, "incomplete-dir-enabled": false, "start-added-torrents": true,
 "encryption": 0, "message-level": 1}
EOF
}

qbittorrent_config() { # PROFILE PORT WEBUI_PORT BIND_IP HOOK
    mkdir -p "$1/qBittorrent/config"
    cat >"$1/qBittorrent/config/qBittorrent.conf" <<EOF
[LegalNotice]
Accepted=true

[AutoRun]
enabled=true
program=$5

[BitTorrent]
Session\DHTEnabled=false
Session\LSDEnabled=false
Session\PeXEnabled=false
Session\BTProtocol=TCP
Session\Port=$2
Session\InterfaceAddress=$4
Session\QueueingSystemEnabled=false
Session\MultiConnectionsPerIp=true
Session\GlobalMaxRatio=-1
Session\AnonymousModeEnabled=false

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\UPnP=false
WebUI\Address=127.0.0.1
WebUI\Port=$3
WebUI\LocalHostAuth=false
WebUI\CSRFProtection=false
WebUI\HostHeaderValidation=false
EOF
}

# bt_fetch_has OPTION: whether this bt-fetch build knows OPTION (its --help)
bt_fetch_has() {
    [[ -n ${BT_FETCH_HELP:-} ]] || BT_FETCH_HELP=$("$BT_FETCH" --help 2>&1)
    grep -q -- "$1\b" <<<"$BT_FETCH_HELP"
}

# bt_fetch_announces: whether --announce works in this bt-fetch build (a
# probe torrent whose tracker is unreachable; older builds say "not available")
bt_fetch_announces() {
    if [[ -z ${BT_FETCH_ANNOUNCE:-} ]]; then
        local p=$BENCH_TMP/probe
        mkdir -p "$p/dl"
        head -c 1000 /dev/urandom >"$p/probe.bin"
        "$BT_META" create "$p/probe.bin" -l 16K --no-date -q -f -o "$p/probe.torrent" -a http://127.0.0.1:9/announce >/dev/null
        timeout 5 "$BT_FETCH" "$p/probe.torrent" -o "$p/dl" --announce --timeout 1 -q </dev/null >/dev/null 2>"$p/err"
        if grep -q 'announce is not available' "$p/err"; then BT_FETCH_ANNOUNCE=no; else BT_FETCH_ANNOUNCE=yes; fi
        log "bt-fetch --announce: $BT_FETCH_ANNOUNCE$([[ $BT_FETCH_ANNOUNCE == no ]] && echo ' (the harness announces for it and passes --peer)')"
        echo "bt-fetch --announce works: $BT_FETCH_ANNOUNCE" >>"$OUT/params.txt"
    fi
    [[ $BT_FETCH_ANNOUNCE == yes ]]
}

# proxy_announce IP PORT: announces IP:PORT for $HASH to the tracker of
# $TORRENT (HTTP, compact, from IP) and prints the other peers as IP:PORT
proxy_announce() {
    local ip=$1 port=$2 url
    url=$("$BT_META" info "$TORRENT" | grep -o '"trackers":\[\["[^"]*' | sed 's/.*"//')
    curl -s --max-time 5 --interface "$ip" \
        "$url?info_hash=$(urlhash "$HASH")&peer_id=-BH0001-$(printf '%012d' $((RANDOM * RANDOM)))&port=$port&uploaded=0&downloaded=0&left=$DATA_BYTES&compact=1&numwant=200&event=started" |
        od -An -v -tx1 | tr -d ' \n' |
        awk -v self="$ip:$port" '{
            i = index($0, "353a7065657273"); if (!i) exit   # "5:peers"
            s = substr($0, i + 14); n = 0
            while (substr(s, 1, 2) != "3a") { n = n * 10 + (substr(s, 2, 1) + 0); s = substr(s, 3) }
            s = substr(s, 3)
            for (j = 0; j < n / 6; j++) {
                h = substr(s, j * 12 + 1, 12); a = ""
                for (b = 0; b < 4; b++) a = a (b ? "." : "") hex(substr(h, b * 2 + 1, 2))
                p = hex(substr(h, 9, 2)) * 256 + hex(substr(h, 11, 2))
                if (a ":" p != self) print a ":" p
            }
        }
        function hex(x,   k, v, c) { v = 0; for (k = 1; k <= length(x); k++) { c = index("0123456789abcdef", substr(x, k, 1)) - 1; v = v * 16 + c }; return v }'
}

# client_available NAME VARIANT: 0, or prints why it is skipped
client_available() {
    case $1 in
    bt-fetch) [[ -x $BT_FETCH ]] || {
        echo "skipped (not built: $BT_FETCH)"
        return 1
    } ;;
    libtorrent) "$PY" -c 'import libtorrent' 2>/dev/null || {
        echo "skipped (python3-libtorrent missing)"
        return 1
    } ;;
    qbittorrent) command -v qbittorrent-nox >/dev/null || {
        echo "skipped (qbittorrent-nox missing)"
        return 1
    } ;;
    aria2) command -v aria2c >/dev/null || {
        echo "skipped (aria2c missing)"
        return 1
    } ;;
    transmission)
        command -v transmission-cli >/dev/null || {
            echo "skipped (transmission-cli missing)"
            return 1
        }
        [[ $2 == lo* ]] && {
            echo "skipped (Transmission does not connect to 127.x peers)"
            return 1
        }
        ;;
    *)
        echo "skipped (unknown client)"
        return 1
        ;;
    esac
    return 0
}

# client_launch DIR CLIENT IP MODE: starts one leecher of $TORRENT into DIR/dl.
#  MODE exit: a one-shot client runs to its exit, measured by GNU time;
#             daemons (qbittorrent, transmission) finish through a hook.
#  MODE stay: every client keeps running (seeding) after completion, which a
#             hook or its output reports; CPU and RSS come from /proc then.
# State goes to files in DIR; nothing is printed.
client_launch() {
    local d=$1 c=$2 ip=$3 mode=$4 port wport hook kind
    mkdir -p "$d/dl"
    free_port port
    hook=$d/hook.sh
    # written aside and renamed: the poller must never read a half-written
    # (empty) timestamp, which once gave a wall time of -1.8e9 s
    printf '#!/bin/sh\n[ -f %q ] || { date +%%s%%N > %q.tmp && mv %q.tmp %q; }\n' "$d/hook_ns" "$d/hook_ns" "$d/hook_ns" "$d/hook_ns" >"$hook"
    chmod +x "$hook"
    echo "$c" >"$d/client"
    echo "$port" >"$d/port"
    kind=hook
    local cmd=()
    case $c in
    bt-fetch)
        cmd=("$BT_FETCH" "$TORRENT" -o "$d/dl" --listen "$port" --json -q)
        bt_fetch_has --bind && cmd+=(--bind "$ip")
        if bt_fetch_announces; then
            cmd+=(--announce)
        else
            # this bt-fetch cannot announce yet: the harness announces for it
            # (same tracker, its address and port) and hands it the peers
            local pe
            for pe in $(proxy_announce "$ip" "$port"); do cmd+=(--peer "$pe"); done
        fi
        if [[ $mode == exit ]]; then kind=exit; else cmd+=(--seed); kind=json; fi
        ;;
    libtorrent)
        cmd=("$PY" "$BENCH_LIB/leech_libtorrent.py" --torrent "$TORRENT" --dir "$d/dl"
            --listen "$ip:$port" --timeout "$TIMEOUT")
        if [[ $mode == exit ]]; then kind=exit; else cmd+=(--stay --done-file "$d/hook_ns"); fi
        ;;
    aria2)
        cmd=(aria2c --dir="$d/dl" --enable-dht=false --enable-dht6=false --bt-enable-lpd=false
            --enable-peer-exchange=false --follow-torrent=mem --listen-port="$port"
            --file-allocation=falloc --no-conf=true --summary-interval=0 --disable-ipv6=true
            --interface="$ip" --max-overall-download-limit=0 --max-overall-upload-limit=0
            --console-log-level=warn --on-bt-download-complete="$hook")
        if [[ $mode == exit ]]; then
            cmd+=(--seed-time=0)
            kind=exit
        else cmd+=(--seed-time=1000 --seed-ratio=0.0); fi
        cmd+=("$TORRENT")
        ;;
    transmission)
        transmission_settings "$d/cfg" "$port" "$ip"
        cmd=(transmission-cli -g "$d/cfg" -w "$d/dl" -p "$port" -M -D -U -et -f "$hook" "$TORRENT")
        ;;
    qbittorrent)
        free_port wport
        echo "$wport" >"$d/webui_port"
        qbittorrent_config "$d/qbt" "$port" "$wport" "$ip" "$hook"
        cmd=(qbittorrent-nox --profile="$d/qbt" --webui-port="$wport" --torrenting-port="$port"
            --save-path="$d/dl" --skip-dialog=true --add-paused=false "$TORRENT")
        ;;
    esac
    # per-client extra options from the scenario script, e.g. a CA file for
    # an HTTPS tracker: BENCH_EXTRA_bt_fetch, BENCH_EXTRA_libtorrent, ...
    local extra_var=BENCH_EXTRA_${c//-/_}
    # shellcheck disable=SC2206 # word splitting wanted: a list of options
    [[ -n ${!extra_var:-} ]] && cmd+=(${!extra_var})
    echo "$kind" >"$d/kind"
    printf '%q ' "${cmd[@]}" >"$d/cmdline"
    now_ns >"$d/start_ns"
    if [[ $kind == exit ]]; then
        /usr/bin/time -o "$d/time" -f '%e %U %S %M' "${cmd[@]}" </dev/null >"$d/out" 2>"$d/err" &
    else
        "${cmd[@]}" </dev/null >"$d/out" 2>"$d/err" &
    fi
    echo $! >"$d/pid"
    BENCH_PIDS+=($!)
    sampler "$d/dl/$DATA_NAME" "$(cat "$d/start_ns")" "$d/progress.tsv" "$(<"$d/pid")" "$kind" "$c" &
    echo $! >"$d/sampler_pid"
    BENCH_PIDS+=($!)
}

# sampler FILE START_NS OUT PID KIND CLIENT: "milliseconds bytes anon_kib"
# lines; bytes = FILE's pages in the page cache (written data, whatever the
# client's I/O method: write or mmap) or, for bt-fetch, which writes with
# O_DIRECT past the page cache, FILE's allocated blocks (it never
# preallocates, so they are the data written), anon_kib = the client's RssAnon (PID itself, or the
# child of /usr/bin/time for KIND exit): clients that map the file into
# memory (libtorrent 2, qBittorrent) have a peak RSS of about the file size,
# so the sampled anonymous memory is the fairer figure for them
sampler() {
    local f=$1 t0=$2 out=$3 pid=$4 kind=$5 client=${6:-} b a cp=$4
    while :; do
        b=0
        if [[ -d $f ]]; then # multi-file: blocks allocated under the folder
            b=$(du -s -B1 "$f" 2>/dev/null | cut -f1)
        elif [[ -f $f && $client == bt-fetch ]]; then
            b=$(stat -c '%b %B' "$f" 2>/dev/null | awk '{print $1 * $2}')
        elif [[ -f $f ]]; then
            b=$(fincore -b -n -o RES "$f" 2>/dev/null || echo 0)
        fi
        [[ $kind == exit ]] && { read -r cp _ <"/proc/$pid/task/$pid/children"; } 2>/dev/null
        a=$(awk '/^RssAnon:/ {print $2}' "/proc/$cp/status" 2>/dev/null)
        echo "$((($(date +%s%N) - t0) / 1000000)) ${b:-0} ${a:-0}" >>"$out"
        sleep "$SAMPLE"
    done
}

proc_cpu_ticks() { # PID: utime+stime utime stime
    sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $12 + $13, $12, $13}'
}
proc_hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null; }

# client_poll DIR: 0 when the run is over (DIR/status written), 1 otherwise
client_poll() {
    local d=$1 pid kind rc
    [[ -f $d/status ]] && return 0
    pid=$(<"$d/pid")
    kind=$(<"$d/kind")
    if [[ $kind == json && ! -f $d/hook_ns ]] && grep -q '"event": *"\(complete\|done\)"' "$d/out" 2>/dev/null; then
        now_ns >"$d/hook_ns"
    fi
    if [[ $kind == exit ]]; then
        alive "$pid" && return 1
        wait "$pid"
        rc=$?
        # completion: the client's own hook if it has one (aria2), else its exit
        if [[ -f $d/hook_ns ]]; then cp "$d/hook_ns" "$d/end_ns"; else now_ns >"$d/end_ns"; fi
        if ((rc == 0)); then echo ok >"$d/status"; else echo "fail(exit $rc)" >"$d/status"; fi
        return 0
    fi
    if [[ -f $d/hook_ns ]]; then
        cp "$d/hook_ns" "$d/end_ns"
        # at completion: CPU and peak RSS of the running client from /proc
        echo "$(proc_cpu_ticks "$pid") $(proc_hwm_kib "$pid")" >"$d/proc"
        echo ok >"$d/status"
        return 0
    fi
    if ! alive "$pid"; then
        wait "$pid"
        echo "fail(exit $?)" >"$d/status"
        return 0
    fi
    return 1
}

# client_timeout DIR: marks a run that is still going as timed out
client_timeout() {
    [[ -f $1/status ]] || echo timeout >"$1/status"
}

# client_collect DIR: stops the client, fills R_* (status wall cpu rss down)
client_collect() {
    local d=$1 pid c kind t0 t1 wport extra
    pid=$(<"$d/pid")
    c=$(<"$d/client")
    kind=$(<"$d/kind")
    R_status=$(<"$d/status")
    R_wall= R_cpu= R_rss= R_down= R_exit= R_user= R_sys= R_rss_kib=
    t0=$(<"$d/start_ns")
    [[ -f $d/end_ns ]] && t1=$(<"$d/end_ns")
    # bytes the client says it downloaded, before it is stopped
    case $c in
    qbittorrent)
        # its counters are refreshed about once a second: ask again (up to
        # 3 s, after the measurement) until they cover the whole file
        wport=$(<"$d/webui_port")
        local i
        for ((i = 0; i < 15; i++)); do
            R_down=$(curl -s --max-time 2 "http://127.0.0.1:$wport/api/v2/torrents/info" |
                grep -o '"downloaded":[0-9]*' | head -1 | grep -o '[0-9]*$')
            [[ -n $R_down && $R_down -ge $DATA_BYTES ]] && break
            sleep 0.2
        done
        ;;
    esac
    if [[ $kind == exit ]]; then
        # kill a timed-out run: the child of /usr/bin/time, then time itself
        if alive "$pid"; then
            local child
            child=$(cat "/proc/$pid/task/$pid/children" 2>/dev/null)
            # shellcheck disable=SC2086
            [[ -n $child ]] && bench_kill $child
            bench_kill "$pid"
        fi
        if [[ $R_status == ok && -s $d/time ]]; then
            read -r R_exit u s rss < <(tail -1 "$d/time")
            R_wall=$R_exit
            # a completion hook (aria2) came before the exit: it is the wall time
            [[ -f $d/hook_ns ]] && R_wall=$(awk -v a="$t0" -v b="$(<"$d/hook_ns")" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
            R_cpu=$(awk -v u="$u" -v s="$s" 'BEGIN {printf "%.2f", u + s}')
            R_user=$u R_sys=$s R_rss_kib=$rss
            R_rss=$(awk -v k="$rss" 'BEGIN {printf "%.1f", k / 1024}')
        fi
    else
        if [[ $R_status == ok && -s $d/proc ]]; then
            read -r ticks uticks sticks hwm <"$d/proc"
            R_wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e9}')
            R_cpu=$(awk -v t="$ticks" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", t / h}')
            R_user=$(awk -v t="$uticks" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", t / h}')
            R_sys=$(awk -v t="$sticks" -v h="$CLK_TCK" 'BEGIN {printf "%.2f", t / h}')
            R_rss_kib=$hwm
            R_rss=$(awk -v k="$hwm" 'BEGIN {printf "%.1f", k / 1024}')
        fi
        alive "$pid" && bench_kill "$pid"
    fi
    wait "$pid" 2>/dev/null
    bench_kill "$(<"$d/sampler_pid")"
    case $c in
    bt-fetch) # last "downloaded"-like counter in the JSON events, if any
        extra=$(grep -o '"\(payload_\)\?downloaded\(_bytes\)\?": *[0-9]*' "$d/out" 2>/dev/null | tail -1 | grep -o '[0-9]*$')
        R_down=${extra:-}
        ;;
    libtorrent)
        R_down=$(grep -o '"payload_downloaded": *[0-9]*' "$d/out" | grep -o '[0-9]*$')
        ;;
    transmission) # the resume file written at exit keeps the session's counter
        R_down=$(grep -aho '10:downloadedi[0-9]*e' "$d"/cfg/resume/*.resume 2>/dev/null | grep -o '[0-9]*' | tail -1)
        ;;
    esac
    R_cmp=
    R_ttfb=$(first_byte "$d")
    R_anon=$(awk '$3 > m { m = $3 } END { if (m) printf "%.1f", m / 1024 }' "$d/progress.tsv" 2>/dev/null)
    R_anon_kib=$(awk '$3 > m { m = $3 } END { if (m) print m }' "$d/progress.tsv" 2>/dev/null)
    if [[ $R_status == ok ]]; then
        if [[ -d $DATA_FILE ]] && diff -rq "$DATA_FILE" "$d/dl/$DATA_NAME" >/dev/null 2>&1; then
            R_cmp=same
        elif [[ -f $DATA_FILE ]] && cmp -s "$DATA_FILE" "$d/dl/$DATA_NAME"; then R_cmp=same; else
            R_cmp=DIFFERENT
            R_status=corrupt
        fi
    fi
    # keep the logs, drop the downloaded data
    rm -rf "$d/dl" "$d/qbt/qBittorrent/data" 2>/dev/null
}

# first_byte DIR: seconds from start to the first sample with data on disk
first_byte() {
    awk '$2 > 0 { printf "%.2f", $1 / 1000; exit }' "$1/progress.tsv" 2>/dev/null
}

# csv_row SCEN VARIANT PIECE LINK SEEDER CLIENT INST REP WIRE GOODPUT TRACE
csv_row() {
    echo "$1,$2,$3,$4,$5,$6,$7,$8,$R_status,${R_wall},${R_cpu},${R_rss},${R_down},$9,${10},${R_cmp},${11},${R_ttfb:-},${R_anon:-},${R_exit:-},${R_user:-},${R_sys:-},${R_rss_kib:-},${R_anon_kib:-}" >>"$CSV"
}

# keep_trace DIR LABEL: copies the progress samples to the results
keep_trace() {
    [[ -f $1/progress.tsv ]] && gzip -9c "$1/progress.tsv" >"$OUT/progress/$2.tsv.gz"
    mkdir -p "$OUT/logs/$2"
    cp "$1"/{cmdline,out,err,status} "$OUT/logs/$2/" 2>/dev/null
    tail -c 20000 "$1/out" >"$OUT/logs/$2/out" 2>/dev/null
    return 0
}

# client_run DIR CLIENT IP: starts one leecher and waits until it is done or
# its --timeout deadline passes (then it is killed and marked timeout)
client_run() {
    local d=$1 deadline
    client_launch "$d" "$2" "$3" exit
    deadline=$(($(date +%s) + TIMEOUT))
    while ! client_poll "$d"; do
        if (($(date +%s) >= deadline)); then
            client_timeout "$d"
            break
        fi
        sleep "$POLL"
    done
}

# run_one SCEN VARIANT PIECE LINK SEEDER CLIENT REP IP [RXDEVS...]: one
# sequential run with the global deadline; appends a CSV row, prints a line
run_one() {
    local scen=$1 variant=$2 piece=$3 link=$4 seeder=$5 c=$6 rep=$7 ip=$8
    shift 8
    local d label rx0=0 rx1=0 k wire= good= why
    label=$scen-$variant-$piece-$c-r$rep
    if ! why=$(client_available "$c" "$variant"); then
        R_status=$why R_wall= R_cpu= R_rss= R_down= R_cmp= R_ttfb= R_anon= R_exit= R_user= R_sys= R_rss_kib= R_anon_kib=
        csv_row "$scen" "$variant" "$piece" "$link" "$seeder" "$c" 1 "$rep" "" "" ""
        log "$label: $why"
        return 0
    fi
    RUN_SEQ=$((RUN_SEQ + 1))
    d=$BENCH_TMP/run-$RUN_SEQ
    for k; do rx0=$((rx0 + $(ns_rx_bytes "$k"))); done
    client_run "$d" "$c" "$ip"
    for k; do rx1=$((rx1 + $(ns_rx_bytes "$k"))); done
    client_collect "$d"
    (($#)) && wire=$((rx1 - rx0))
    if [[ $R_status == ok && $link -gt 0 ]]; then
        good=$(awk -v b="$DATA_BYTES" -v t="$R_wall" -v r="$link" 'BEGIN {printf "%.1f", b * 8 / t / (r * 1e6) * 100}')
    fi
    keep_trace "$d" "$label"
    csv_row "$scen" "$variant" "$piece" "$link" "$seeder" "$c" 1 "$rep" "$wire" "$good" "progress/$label.tsv.gz"
    log "$label: $R_status wall=${R_wall:-?}s${R_exit:+ exit=${R_exit}s} cpu=${R_cpu:-?}s rss=${R_rss:-?}MiB anon=${R_anon:-?}MiB first-byte=${R_ttfb:-?}s down=${R_down:-?} wire=${wire:--} ${good:+goodput=$good%}"
    rm -rf "$d"
}

# ------------------------------------------------------------------ summaries
# summarize SCEN: per (variant, piece, client) medians and min/max from the
# CSV, as a markdown table on stdout and $OUT/summary-SCEN.tsv for plots.
summarize() {
    local scen=$1
    awk -F, -v scen="$scen" -v tsv="$OUT/summary-$scen.tsv" '
    '"$AWK_MEDIAN"'
    function mn(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 < m + 0) m = a[i]; return m }
    function mx(s,   a, n, i, m) { n = split(s, a, " "); m = a[1]; for (i = 2; i <= n; i++) if (a[i] + 0 > m + 0) m = a[i]; return m }
    NR > 1 && $1 == scen {
        k = $2 SUBSEP $3 SUBSEP $6
        if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
        runs[k]++; link[k] = $4
        if ($9 == "ok") { ok[k]++; w[k] = w[k] " " $10; c[k] = c[k] " " $11; if ($12 != "") r[k] = r[k] " " $12
                          if ($13 != "") d[k] = d[k] " " $13; if ($15 != "") g[k] = g[k] " " $15; if ($18 != "") f[k] = f[k] " " $18; if ($19 != "") an[k] = an[k] " " $19 }
        else if ($9 ~ /^skipped/) skip[k] = $9
        else bad[k] = bad[k] " " $9
    }
    END {
        for (i = 1; i <= nk; i++) { k = order[i]; if (ok[k]) { split(k, p, SUBSEP); mw[k] = median(w[k]); mc[k] = median(c[k])
            if (p[3] == "bt-fetch") { bw[p[1] SUBSEP p[2]] = mw[k]; bc[p[1] SUBSEP p[2]] = mc[k] } } }
        print "| variant | piece | client | ok/runs | wall s median (min-max) | first byte s | CPU s median (min-max) | peak RSS MiB median | peak anon MiB (sampled) | downloaded MB | goodput % of link | bt-fetch/client wall | bt-fetch/client CPU |"
        print "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
        for (i = 1; i <= nk; i++) {
            k = order[i]; split(k, p, SUBSEP); vp = p[1] SUBSEP p[2]
            if (!ok[k]) { printf "| %s | %s | %s | 0/%d | %s | | | | | | | | |\n", p[1], p[2], p[3], runs[k], (k in skip) ? skip[k] : "failed:" bad[k]; continue }
            rw = (vp in bw && mw[k] > 0 && p[3] != "swarm-last") ? sprintf("%.2f", bw[vp] / mw[k]) : ""
            rc = (vp in bc && mc[k] > 0 && p[3] != "swarm-last") ? sprintf("%.2f", bc[vp] / mc[k]) : ""
            printf "| %s | %s | %s | %d/%d | %.2f (%.2f-%.2f) | %s | %.2f (%.2f-%.2f) | %s | %s | %s | %s | %s | %s |\n", p[1], p[2], p[3], ok[k], runs[k],
                mw[k], mn(w[k]), mx(w[k]), (f[k] != "") ? sprintf("%.2f", median(f[k])) : "", mc[k], mn(c[k]), mx(c[k]), (r[k] != "") ? sprintf("%.1f", median(r[k])) : "",
                (an[k] != "") ? sprintf("%.1f", median(an[k])) : "",
                (d[k] != "") ? sprintf("%.1f", median(d[k]) / 1e6) : "", (g[k] != "") ? sprintf("%.1f", median(g[k])) : "", rw, rc
            printf "%s-%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p[1], p[2], p[3], mw[k], mn(w[k]), mx(w[k]), mc[k], (r[k] != "") ? median(r[k]) : "", (g[k] != "") ? median(g[k]) : "" > tsv
        }
    }' "$CSV"
}

# ------------------------------------------------------------------ options
# What every bench script (not only the swarm ones) starts with: its options,
# its prerequisites and its test data. Scripts that need none of the above
# may still source this file: it only defines settings and functions.

# bench_usage: the script's header comment (from line 2 to the first line
# that is not a comment), without the "# ", as its --help
bench_usage() {
    awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"
}

# bench_options SPEC... -- ARG...: parses the script's arguments.
#   --name=var       an option that takes a value, stored in $var
#                    (given as "--name VALUE" or "--name=VALUE")
#   --name=var:VAL   a switch: sets $var to VAL
#   --positional     other arguments are collected in BENCH_POSITIONAL
#                    (otherwise they are an error)
# Every script also gets -h/--help (bench_usage) and --dry-run: print each
# option's variable as "var=value", one a line (then "positional=..."), and
# exit 0 before anything runs, so that the parsing can be tested without
# root, clients or minutes of runs. An unknown option, a missing value or an
# unexpected argument dies (exit 2). Sets BENCH_ARGS for bench_meta.
bench_options() {
    local -A _bo_var=() _bo_switch=()
    local _bo_spec _bo_name _bo_value _bo_positional=0 _bo_dry=0
    BENCH_OPTION_VARS=()
    BENCH_POSITIONAL=()
    while (($#)) && [[ $1 != -- ]]; do
        _bo_spec=$1
        shift
        if [[ $_bo_spec == --positional ]]; then
            _bo_positional=1
            continue
        fi
        _bo_name=${_bo_spec%%=*}
        _bo_value=${_bo_spec#*=}
        [[ $_bo_name == --?* && $_bo_spec == *=?* ]] || die "bench_options: bad spec '$_bo_spec'"
        if [[ $_bo_value == *:* ]]; then
            _bo_switch[$_bo_name]=${_bo_value#*:}
            _bo_value=${_bo_value%%:*}
        fi
        _bo_var[$_bo_name]=$_bo_value
        BENCH_OPTION_VARS+=("$_bo_value")
    done
    (($#)) && shift # the --
    BENCH_ARGS=("$@")
    while (($#)); do
        case $1 in
        -h | --help)
            bench_usage
            exit 0
            ;;
        --dry-run) _bo_dry=1 ;;
        --*)
            _bo_name=${1%%=*}
            [[ -n ${_bo_var[$_bo_name]:-} ]] || die "unknown option '$_bo_name' (see --help)"
            if [[ -n ${_bo_switch[$_bo_name]+set} ]]; then
                [[ $1 == *=* ]] && die "option $_bo_name takes no value (see --help)"
                printf -v "${_bo_var[$_bo_name]}" '%s' "${_bo_switch[$_bo_name]}"
            elif [[ $1 == *=* ]]; then
                printf -v "${_bo_var[$_bo_name]}" '%s' "${1#*=}"
            else
                (($# >= 2)) || die "option $_bo_name needs a value (see --help)"
                printf -v "${_bo_var[$_bo_name]}" '%s' "$2"
                shift
            fi
            ;;
        *)
            ((_bo_positional)) || die "unexpected argument '$1' (see --help)"
            BENCH_POSITIONAL+=("$1")
            ;;
        esac
        shift
    done
    if ((_bo_dry)); then
        for _bo_value in "${BENCH_OPTION_VARS[@]}"; do printf '%s=%s\n' "$_bo_value" "${!_bo_value:-}"; done
        ((_bo_positional)) && printf 'positional=%s\n' "${BENCH_POSITIONAL[*]}"
        exit 0
    fi
    return 0
}

# clients_wait INTERVAL DIR...: polls the runs started in DIRs (client_launch)
# every INTERVAL seconds until all are over, or TIMEOUT seconds have passed
# (the rest are marked timed out)
clients_wait() {
    local interval=$1 deadline running d
    shift
    deadline=$(($(date +%s) + TIMEOUT))
    while :; do
        running=0
        for d; do client_poll "$d" || running=$((running + 1)); done
        ((running == 0)) && return 0
        if (($(date +%s) >= deadline)); then
            for d; do client_timeout "$d"; done
            return 0
        fi
        sleep "$interval"
    done
}

# bench_need HINT TOOL...: dies naming the first TOOL that is not on the PATH,
# and HINT (how to install it)
bench_need() {
    local hint=$1 t
    shift
    for t; do command -v "$t" >/dev/null || die "'$t' not found ($hint)"; done
}

# bench_need_built PROGRAM...: dies naming the first one that is not built
bench_need_built() {
    local p
    for p; do [[ -x $p ]] || die "$p not built (cargo build --release)"; done
}

# bench_need_gnu_time: /usr/bin/time, for wall and CPU time and peak RSS
bench_need_gnu_time() {
    [[ -x /usr/bin/time ]] || die "/usr/bin/time not found (apt-get install time)"
}

# bench_need_libtorrent: the seeders and leechers driven through Python
bench_need_libtorrent() {
    "$PY" -c 'import libtorrent' 2>/dev/null || die "python3-libtorrent is missing (apt-get install python3-libtorrent)"
}

# bench_release_dir: the absolute folder of release builds (CARGO_TARGET_DIR
# may be relative to the repository)
bench_release_dir() {
    local t=${CARGO_TARGET_DIR:-target}
    [[ $t == /* ]] || t=$ROOT/$t
    echo "$t/release"
}

# bench_random_file FILE BYTES: FILE of BYTES random bytes, reused while its
# size is right, then read once: every tool is timed on cached pages
bench_random_file() {
    local f=$1 bytes=$2
    mkdir -p "$(dirname "$f")"
    if [[ ! -f $f || $(stat -c %s "$f") -ne $bytes ]]; then
        log "creating $f ($((bytes >> 20)) MiB of random bytes)"
        head -c "$bytes" /dev/urandom >"$f.tmp" && mv "$f.tmp" "$f" || die "cannot write $f"
    fi
    cat "$f" >/dev/null
}

# bench_median: the median of the numbers on stdin, one a line (the mean of
# the middle two for an even count); nothing for no numbers
bench_median() {
    sort -g | awk '{ a[NR] = $1 } END { if (NR) print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

# bench_params LINE...: $OUT/params.txt, the script, the host, its load and
# the given lines (the run's parameters)
bench_params() {
    {
        echo "# $(basename "$0") $(date -Is)"
        echo "host: $(nproc) cores, $(uname -r); load: $(cut -d' ' -f1-3 /proc/loadavg)"
        printf '%s\n' "$@"
    } >"$OUT/params.txt"
}

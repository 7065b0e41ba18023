#!/usr/bin/env bash
# A good leecher against a seeder under attack: download time with and
# without each hostile peer (tests/common/hostile.rs, run by the example
# hostile_peer), for the bt-fetch seeder before the fix (BASE), after it
# (this tree) and a libtorrent seeder, plus each seeder's peak RSS.
#
#   examples/hostile.sh [RUNS]        (default 5 runs per cell)
#   examples/hostile.sh --summarize   (summary.csv again from OUT/runs.csv)
#
# Environment: BASE_FETCH (bt-fetch of the base build; default: built from
# commit $BASE_COMMIT in a scratch worktree under /tmp), ATTACKS (default:
# all), SEEDERS (default: "base fixed libtorrent"), CONNECTIONS (1000),
# FILE_MIB (16), LEECH_TIMEOUT (60 s), OUT (docs/results/hostile).
#
# The good leecher is always this tree's bt-fetch. Each run: start the
# seeder, start the attack (if any), wait 3 s, time the leecher (or its time-out),
# read the seeder's VmHWM, stop everything (by PID). Everything is on
# 127.0.0.1. Writes OUT/runs.csv, OUT/summary.csv and OUT/meta.json; exit
# 2 on a setup error. summary.csv: per seeder and attack, the median
# download time and seeder peak RSS with 95 % bootstrap intervals (10 000
# resamples, examples/bench/stats.py), and against the same seeder without
# an attack: "slower"/"faster" only where the time intervals do not
# overlap, else "tie". A run that timed out counts as LEECH_TIMEOUT s.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUMMARIZE_ONLY=0
if [[ ${1:-} == --summarize ]]; then
    SUMMARIZE_ONLY=1
    shift
fi
RUNS=${1:-5}
BASE_COMMIT=${BASE_COMMIT:-c4c8a47}
ATTACKS=${ATTACKS:-"none slowloris flood huge-length keep-alives request-flood out-of-range choked-requests have-past-end bad-bitfield"}
SEEDERS=${SEEDERS:-"base fixed libtorrent"}
CONNECTIONS=${CONNECTIONS:-1000}
FILE_MIB=${FILE_MIB:-16}
LEECH_TIMEOUT=${LEECH_TIMEOUT:-60}
OUT=${OUT:-$ROOT/docs/results/hostile}
PY=/usr/bin/python3
HEAD_START=3

log() { printf '[%s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
    log "error: $*"
    exit 2
}

# OUT/summary.csv from OUT/runs.csv.
summarize() {
    $PY - "$OUT/runs.csv" "$ROOT/examples/bench" >"$OUT/summary.csv" <<'PYEOF'
import csv, random, statistics, sys
sys.path.insert(0, sys.argv[2])
from stats import bootstrap_ci
rows = list(csv.DictReader(open(sys.argv[1])))
cells = {}
for r in rows:
    cells.setdefault((r["seeder"], r["attack"]), []).append(r)
rng = random.Random(1)
def med_ci(values):
    lo, hi = bootstrap_ci(values, rng)
    return statistics.median(values), lo, hi
out = csv.writer(sys.stdout, lineterminator="\n")
out.writerow(["seeder", "attack", "runs", "completed", "median_seconds", "seconds_ci_lo", "seconds_ci_hi",
              "median_seeder_peak_rss_kib", "rss_ci_lo", "rss_ci_hi", "vs_no_attack"])
secs = {k: med_ci([float(r["seconds"]) for r in v]) for k, v in cells.items()}
for (seeder, attack), v in cells.items():
    m, lo, hi = secs[(seeder, attack)]
    rss = [float(r["seeder_peak_rss_kib"]) for r in v if r["seeder_peak_rss_kib"] not in ("", "NA")]
    rm, rlo, rhi = med_ci(rss) if rss else ("NA", "NA", "NA")
    base = secs.get((seeder, "none"))
    if attack == "none" or base is None:
        verdict = ""
    elif lo > base[2]:
        verdict = "slower"
    elif hi < base[1]:
        verdict = "faster"
    else:
        verdict = "tie"
    out.writerow([seeder, attack, len(v), sum(int(r["completed"]) for r in v),
                  f"{m:.3f}", f"{lo:.3f}", f"{hi:.3f}",
                  *([f"{x:.0f}" for x in (rm, rlo, rhi)] if rss else [rm, rlo, rhi]), verdict])
PYEOF
}
if ((SUMMARIZE_ONLY)); then
    summarize
    column -s, -t "$OUT/summary.csv" >&2
    exit 0
fi

TMP=$(mktemp -d /tmp/bt-hostile.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

stop_pid() { # PID: SIGTERM, 5 s grace, SIGKILL
    local p=$1 i
    kill -TERM "$p" 2>/dev/null || return 0
    for i in $(seq 50); do
        kill -0 "$p" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
}

# ---------------------------------------------------------------- binaries
$PY -c 'import libtorrent' 2>/dev/null || die "needs python3-libtorrent (apt-get install -y python3-libtorrent)"
log "building this tree (release)"
(cd "$ROOT" && cargo build --release -q --bin bt-fetch --bin bt-meta --example hostile_peer) ||
    die "cargo build failed"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}/release
FIXED=$TARGET/bt-fetch
META=$TARGET/bt-meta
ATTACKER=$TARGET/examples/hostile_peer
if [[ -z ${BASE_FETCH:-} ]]; then
    BASE_TREE=/tmp/bt-hostile-base-$BASE_COMMIT
    if [[ ! -d $BASE_TREE ]]; then
        git -C "$ROOT" worktree add --detach "$BASE_TREE" "$BASE_COMMIT" >&2 || die "git worktree add failed"
    fi
    log "building the base $BASE_COMMIT in $BASE_TREE (release)"
    (cd "$BASE_TREE" && cargo build --release -q --bin bt-fetch) || die "base build failed"
    BASE_FETCH=$BASE_TREE/target/release/bt-fetch
fi
[[ -x $BASE_FETCH ]] || die "no base bt-fetch at $BASE_FETCH"

# ---------------------------------------------------------------- data
mkdir -p "$TMP/seed" "$OUT"
head -c $((FILE_MIB << 20)) /dev/urandom >"$TMP/seed/h.bin"
"$META" create "$TMP/seed/h.bin" --piece-length 256K -o "$TMP/h.torrent" >/dev/null ||
    die "bt-meta create failed"

# Starts a seeder; sets SEEDER_PID and SEEDER_PORT.
seeder_start() { # KIND
    local kind=$1 log=$TMP/seeder.log i
    : >"$log"
    case $kind in
    base | fixed)
        local bin=$FIXED
        [[ $kind == base ]] && bin=$BASE_FETCH
        "$bin" --json -q "$TMP/h.torrent" -o "$TMP/seed" --bind 127.0.0.1 --seed \
            </dev/null >"$log" 2>"$TMP/seeder.err" &
        ;;
    libtorrent)
        $PY "$ROOT/examples/bench/seed_libtorrent.py" --torrent "$TMP/h.torrent" \
            --dir "$TMP/seed" --listen 127.0.0.1:0 >"$log" 2>"$TMP/seeder.err" &
        ;;
    esac
    SEEDER_PID=$!
    PIDS+=("$SEEDER_PID")
    SEEDER_PORT=
    for i in $(seq 600); do
        SEEDER_PORT=$(sed -n 's/.*"event": *"listening".*"port": *\([0-9]*\).*/\1/p' "$log" | head -1)
        [[ -n $SEEDER_PORT ]] && break
        sleep 0.1
    done
    [[ -n $SEEDER_PORT ]] || die "$kind seeder did not start: $(tail -3 "$TMP/seeder.err")"
}

hwm_kib() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status" 2>/dev/null || echo NA; }

echo "seeder,attack,run,seconds,completed,rate_mib_s,seeder_peak_rss_kib,attacker_connects" >"$OUT/runs.csv"
for seeder in $SEEDERS; do
    for attack in $ATTACKS; do
        for run in $(seq "$RUNS"); do
            seeder_start "$seeder"
            ATTACK_PID=
            if [[ $attack != none ]]; then
                "$ATTACKER" "$attack" "127.0.0.1:$SEEDER_PORT" "$TMP/h.torrent" "$CONNECTIONS" 600 \
                    >"$TMP/attack.json" 2>/dev/null &
                ATTACK_PID=$!
                PIDS+=("$ATTACK_PID")
            fi
            # The same wait without an attack: the leecher always meets a
            # seeder that has been up for HEAD_START seconds.
            sleep "$HEAD_START"
            rm -rf "$TMP/leech"
            start=$(date +%s%N)
            completed=1
            "$FIXED" --json -q "$TMP/h.torrent" -o "$TMP/leech" --bind 127.0.0.1 \
                --peer "127.0.0.1:$SEEDER_PORT" --timeout "$LEECH_TIMEOUT" \
                </dev/null >/dev/null 2>"$TMP/leech.err" || completed=0
            end=$(date +%s%N)
            if ((completed)) && ! cmp -s "$TMP/seed/h.bin" "$TMP/leech/h.bin"; then
                die "the good leecher's data differs from the seeder's"
            fi
            hwm=$(hwm_kib "$SEEDER_PID")
            connects=0
            if [[ -n $ATTACK_PID ]]; then
                stop_pid "$ATTACK_PID"
                connects=$(sed -n 's/.*"connects":\([0-9]*\).*/\1/p' "$TMP/attack.json")
            fi
            stop_pid "$SEEDER_PID"
            secs=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", (b - a) / 1e9 }')
            rate=$(awk -v s="$secs" -v c="$completed" -v m="$FILE_MIB" 'BEGIN { printf "%.2f", c ? m / s : 0 }')
            echo "$seeder,$attack,$run,$secs,$completed,$rate,$hwm,${connects:-0}" >>"$OUT/runs.csv"
            log "$seeder $attack run $run: ${secs} s completed=$completed peak RSS ${hwm} KiB attacker connections ${connects:-0}"
        done
    done
done

# Medians with 95 % intervals per cell, and each attack against none.
summarize

mtu=$(cat /sys/class/net/lo/mtu)
cat >"$OUT/meta.json" <<EOF
{
  "experiment": "hostile",
  "commit": "$(git -C "$ROOT" rev-parse HEAD)$(git -C "$ROOT" diff --quiet HEAD -- src bin || echo '+dirty')",
  "base_commit": "$BASE_COMMIT",
  "command": "examples/hostile.sh $RUNS",
  "attacks": "$ATTACKS",
  "seeders": "$SEEDERS",
  "connections": $CONNECTIONS,
  "file_mib": $FILE_MIB,
  "leech_timeout_s": $LEECH_TIMEOUT,
  "head_start_s": $HEAD_START,
  "machine": {
    "nproc": $(nproc),
    "kernel": "$(uname -r)",
    "mtu_lo": $mtu,
    "date": "$(date -u +%FT%TZ)",
    "load": "$(cut -d' ' -f1-3 /proc/loadavg)"
  }
}
EOF
column -s, -t "$OUT/summary.csv" >&2

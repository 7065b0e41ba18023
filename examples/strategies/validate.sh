#!/bin/bash
# The check against the real thing: the same swarm run by bt-sim and by
# real bt-fetch processes, each in its own network namespace with `tc tbf`
# limits on its link (upload on its side, download on the hub's side; no
# netem here, so latency exists only in the simulator), then their
# completion times compared.
#
#   sudo examples/strategies/validate.sh [LEECHERS] [SIZE] [SEED] [STRATEGY]
#   (defaults: 10 leechers, 8M, seed 1, classic)
#
# Capacities come from bt-sim's own draw (uniform 100K-400K here, so that
# tbf's burst granularity stays small against the rate), the seeder has
# 1 MB/s. The simulator runs with bt's peer id prefix (--bt-peer-ids) so
# that its peers use bt-fetch's seed split as the real ones do.
# Writes docs/results/strategies/validate/STRATEGY-nN-seedSEED/{peers.csv,meta.json}
# (or $OUT); the raw bt-sim output and each leecher's events are kept
# there too. BIN overrides the folder of the binaries (target/release).
# SIM_EXTRA overrides the extra bt-sim flags (default --bt-peer-ids).
# Namespaces are named btv-*; all of them, and every process started here,
# are removed on exit.
set -euo pipefail
N=${1:-10}
SIZE=${2:-8M}
SEED=${3:-1}
STRATEGY=${4:-classic}
SEEDER_RATE=1048576
cd "$(dirname "$0")/../.."
ROOT=$PWD
BIN=${BIN:-$ROOT/target/release}
OUT=${OUT:-$ROOT/docs/results/strategies/validate/$STRATEGY-n$N-seed$SEED}
for t in ip tc python3; do command -v $t >/dev/null || { echo "validate.sh: $t missing (iproute2 / python3)" >&2; exit 1; }; done
for b in bt-sim bt-fetch bt-meta; do [ -x $BIN/$b ] || { echo "validate.sh: $BIN/$b missing: cargo build --release" >&2; exit 1; }; done
[ "$(id -u)" = 0 ] || { echo "validate.sh: needs root (network namespaces)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/btv.XXXXXX)
PIDS=()
NS=()
cleanup() {
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  for n in "${NS[@]:-}"; do [ -n "$n" ] && ip netns del "$n" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT INT TERM

# 1. The simulated swarm (its draw of capacities is the real one's too).
SIM_ARGS=(--peers "$N" --seeders 1 --size "$SIZE" --piece-length 256K
  --strategy-mix "$STRATEGY=1" --capacity-dist uniform:100K-400K --arrival flash
  --seeder-capacity $SEEDER_RATE --seed "$SEED" ${SIM_EXTRA---bt-peer-ids} --json)
$BIN/bt-sim "${SIM_ARGS[@]}" > "$WORK/sim.json"

# 2. Content and torrent.
mkdir -p "$WORK/seed"
python3 -c "import random,sys; r=random.Random($SEED); sys.stdout.buffer.write(r.randbytes(int('$SIZE'.rstrip('M'))<<20))" > "$WORK/seed/v.bin"
$BIN/bt-meta create -q --no-date -l 256K -o "$WORK/v.torrent" "$WORK/seed/v.bin"

# 3. The network: a hub namespace with a bridge, one namespace per peer.
ip netns add btv-hub; NS+=(btv-hub)
ip -n btv-hub link add br0 type bridge
ip -n btv-hub link set br0 up
ip -n btv-hub link set lo up
addr() { echo "10.77.0.$(( $1 + 1 ))"; }
mk() { # mk K UP_BYTES_PER_S DOWN_BYTES_PER_S
  local k=$1 up=$2 down=$3 ns=btv-$1
  ip netns add $ns; NS+=($ns)
  ip link add v$k netns $ns type veth peer name h$k netns btv-hub
  ip -n $ns addr add "$(addr $k)/24" dev v$k
  ip -n $ns link set v$k up; ip -n $ns link set lo up
  ip -n btv-hub link set h$k master br0; ip -n btv-hub link set h$k up
  # Bytes/s to bits/s, plus 5 % for TCP/IP headers.
  ip netns exec $ns tc qdisc add dev v$k root tbf rate $(( up * 8 * 105 / 100 ))bit burst 32kb latency 400ms
  ip netns exec btv-hub tc qdisc add dev h$k root tbf rate $(( down * 8 * 105 / 100 ))bit burst 32kb latency 400ms
}
mk 0 $SEEDER_RATE $SEEDER_RATE
python3 - "$WORK/sim.json" "$N" > "$WORK/caps" <<'EOF'
import json, sys
caps = {}
for l in open(sys.argv[1]):
    d = json.loads(l)
    if "peer" in d:
        caps[d["peer"]] = d["upload_capacity"]
for i in range(int(sys.argv[2])):
    up = caps[i]
    print(i, up, max(4 * up, 256 * 1024))
EOF
while read -r i up down; do mk $(( i + 1 )) "$up" "$down"; done < "$WORK/caps"

# 4. The real swarm: a seeder, then every leecher at once, each told of
#    the seeder and of every other leecher.
ip netns exec btv-0 $BIN/bt-fetch "$WORK/v.torrent" -o "$WORK/seed" --seed --bind "$(addr 0)" \
  --listen 6881 --max-upload-rate $SEEDER_RATE --json -q > "$WORK/seeder.out" 2>&1 &
PIDS+=($!)
sleep 2
while read -r i up down; do
  k=$(( i + 1 )); mkdir -p "$WORK/l$i"
  peers=(--peer "$(addr 0):6881")
  for j in $(seq 1 "$N"); do [ $j != $k ] && peers+=(--peer "$(addr $j):6881"); done
  ip netns exec btv-$k $BIN/bt-fetch "$WORK/v.torrent" -o "$WORK/l$i" --bind "$(addr $k)" \
    --listen 6881 --max-upload-rate "$up" --strategy "$STRATEGY" --timeout 1800 --json -q \
    "${peers[@]}" < /dev/null > "$WORK/l$i.out" 2>&1 &
  PIDS+=($!)
done < "$WORK/caps"
for p in "${PIDS[@]:1}"; do wait "$p" || true; done

# 5. Compare.
mkdir -p "$OUT"
cp "$WORK/sim.json" "$OUT/sim.json"
for i in $(seq 0 $(( N - 1 ))); do cp "$WORK/l$i.out" "$OUT/real-l$i.jsonl"; done
VALIDATE_ARGS="$N $SIZE $SEED $STRATEGY" python3 - "$WORK" "$N" "$OUT" "${SIM_ARGS[*]}" "$STRATEGY" <<'EOF'
import json, os, statistics, subprocess, sys, time, platform
work, n, out, sim_args, strategy = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5]
sim = {}
for l in open(os.path.join(work, "sim.json")):
    d = json.loads(l)
    if "peer" in d:
        sim[d["peer"]] = d
rows = []
for i in range(n):
    real = None
    for l in open(os.path.join(work, f"l{i}.out")):
        try:
            d = json.loads(l)
        except ValueError:
            continue
        if d.get("event") == "done" and d.get("status") == "ok":
            real = d["seconds"]
    rows.append((i, sim[i]["upload_capacity"], sim[i]["download_seconds"], real))
with open(os.path.join(out, "peers.csv"), "w") as f:
    f.write("peer,upload_capacity,sim_seconds,real_seconds\n")
    for r in rows:
        f.write(",".join("" if x is None else str(x) for x in r) + "\n")
s = [r[2] for r in rows if r[2] is not None]
rl = [r[3] for r in rows if r[3] is not None]
ms, mr = statistics.median(s), statistics.median(rl) if rl else None
diff = None if mr is None else (ms - mr) / mr
res = {"sim_median_s": ms, "real_median_s": mr, "relative_difference": diff,
       "real_completed": len(rl), "leechers": n, "tolerance": 0.25,
       "agree": diff is not None and abs(diff) <= 0.25}
print(json.dumps(res))
commit = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
meta = {"commit": commit, "command": "examples/strategies/validate.sh " + os.environ.get("VALIDATE_ARGS", ""),
        "bt_sim_args": sim_args, "strategy": strategy,
        "binaries": os.environ.get("BIN_COMMIT", "the worktree's target/release"),
        "machine": {"nproc": os.cpu_count(), "kernel": platform.release(),
                    "mtu_veth": 1500, "load_average_at_end": os.getloadavg()},
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "result": res}
json.dump(meta, open(os.path.join(out, "meta.json"), "w"), indent=2)
EOF

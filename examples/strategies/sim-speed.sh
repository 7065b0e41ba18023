#!/bin/bash
# bt-sim's own speed, side by side: PAIRS interleaved runs of a base and a
# new bt-sim binary on one swarm, each under /usr/bin/time -v. Writes
# runs.csv (build, pair, status, wall_s, cpu_s, peak_rss_mib,
# simulated_seconds), each run's JSON output, meta.json and summary.md
# (examples/bench/summarize_pairs.py: medians, 95 % bootstrap intervals).
#
#   examples/strategies/sim-speed.sh BASE_BIN NEW_BIN OUT_DIR PAIRS PEERS SIZE
# BASE_COMMIT and NEW_COMMIT (environment) name the binaries' commits in
# meta.json.
#   e.g. ... /tmp/bt-sim.old target/release/bt-sim docs/results/strategies/sim-speed/100x16M 7 100 16M
set -eu
base=$1 new=$2 out=$3 pairs=$4 peers=$5 size=$6
root=$(cd "$(dirname "$0")/../.." && pwd)
cdf=$root/examples/strategies/bittyrant-capacity.txt
mkdir -p "$out"
args=(--peers "$peers" --size "$size" --capacity-dist "$cdf" --seed 1 --json)
echo "build,pair,status,wall_s,cpu_s,peak_rss_mib,simulated_seconds" > "$out/runs.csv"
started=$(date -u +%s)
for i in $(seq 1 "$pairs"); do
    for build in base new; do
        bin=$base; [ "$build" = new ] && bin=$new
        t=$(mktemp)
        status=ok
        /usr/bin/time -v "$bin" "${args[@]}" > "$out/$build-$i.json" 2> "$t" || status=failed
        wall=$(awk -F': ' '/Elapsed/ {n=split($2,a,":"); s=0; for(k=1;k<=n;k++) s=s*60+a[k]; print s}' "$t")
        user=$(awk -F': ' '/User time/ {print $2}' "$t")
        sys=$(awk -F': ' '/System time/ {print $2}' "$t")
        rss=$(awk -F': ' '/Maximum resident/ {printf "%.1f", $2/1024}' "$t")
        sim=$(tail -1 "$out/$build-$i.json" | python3 -c 'import json,sys; print(json.load(sys.stdin)["simulated_seconds"])' 2>/dev/null || echo "")
        echo "$build,$i,$status,$wall,$(echo "$user + $sys" | bc),$rss,$sim" >> "$out/runs.csv"
        rm -f "$t"
    done
done
same=no
cmp -s "$out/base-1.json" "$out/new-1.json" && same=yes
python3 - "$out" "$base" "$new" "$pairs" "$started" "$same" "${args[*]}" <<'PY'
import json, os, platform, subprocess, sys, time
out, base, new, pairs, started, same, args = sys.argv[1:]
root = os.path.abspath(os.path.join(os.path.dirname(out), "..", "..", "..", ".."))
mtu = open("/sys/class/net/lo/mtu").read().strip()
m = {"commit": subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip(),
     "command": f"examples/strategies/sim-speed.sh {base} {new} {out} {pairs} ...",
     "base_commit": os.environ.get("BASE_COMMIT"), "new_commit": os.environ.get("NEW_COMMIT"),
     "bt_sim_args": args, "pairs": int(pairs), "outputs_identical": same == "yes",
     "machine": {"nproc": os.cpu_count(), "kernel": platform.release(), "mtu_lo": mtu,
                 "load_average_at_end": os.getloadavg()},
     "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
     "wall_seconds": round(time.time() - int(started), 1)}
json.dump(m, open(os.path.join(out, "meta.json"), "w"), indent=2)
PY
python3 "$root/examples/bench/summarize_pairs.py" "$out/runs.csv" > "$out/summary.md"
cat "$out/summary.md"

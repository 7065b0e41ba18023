#!/usr/bin/env bash
# Two bt-fetch builds side by side: one leecher from one seeder (scenario 1
# of bench-clients.sh), the builds alternating run by run so that drift on
# a shared machine hits both alike. For "did this change cost speed?".
#
# Usage: sudo examples/bench-builds.sh --old PATH --new PATH [options]
#   --old PATH      the bt-fetch binary before (copy it aside first)
#   --new PATH      the bt-fetch binary after (default target/release/bt-fetch)
#   --reps N        runs per build (default 10)
#   --seeder KIND   libtorrent (default) or any bench-clients.sh --seeder
#   --variant V     lo (default) or ns
#   --size MIB      file size (default 1024)
#   --out DIR       results (default target/bench/builds-<timestamp>)
# DIR/runs.csv is bench-clients.sh's per-run CSV with a `build` column first.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
old= new=$ROOT/target/release/bt-fetch reps=10 seeder=libtorrent variant=lo size=1024 out=
bench_options --old=old --new=new --reps=reps --seeder=seeder --variant=variant --size=size \
    --out=out -- "$@"
[[ -x $old && -x $new ]] || die "--old and --new must be bt-fetch binaries"
out=${out:-$ROOT/target/bench/builds-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/runs"
date_start=$(date -u +%FT%TZ) load_before=$(cut -d' ' -f1-3 /proc/loadavg)
header_done=
for ((rep = 1; rep <= reps; rep++)); do
    for build in old new; do
        one="$out/runs/$build-r$rep"
        BT_FETCH=${!build} bash "$here/bench-clients.sh" --scenarios 1 --seeder "$seeder" \
            --clients bt-fetch --variants "$variant" --pieces 1M --reps 1 --size "$size" \
            --out "$one" >"$one.log" 2>&1 || echo "run $build $rep failed (see $one.log)" >&2
        [[ -f $one/runs.csv ]] || continue
        [[ -n $header_done ]] || { echo "build,$(head -1 "$one/runs.csv")" >"$out/runs.csv"; header_done=1; }
        tail -n +2 "$one/runs.csv" | sed "s/^/$build,/; s/,1,1,/,1,$rep,/" >>"$out/runs.csv"
        tail -n 1 "$out/runs.csv" >&2
    done
done
cat >"$out/meta.json" <<JSON
{
  "commit": "$(git -C "$ROOT" rev-parse HEAD)",
  "command": "examples/bench-builds.sh --old $old --new $new --reps $reps --seeder $seeder --variant $variant --size $size",
  "old_sha256": "$(sha256sum "$old" | cut -c1-16)",
  "new_sha256": "$(sha256sum "$new" | cut -c1-16)",
  "machine": {"nproc": $(nproc), "kernel": "$(uname -r)", "lo_mtu": $(cat /sys/class/net/lo/mtu)},
  "date_start": "$date_start", "date_end": "$(date -u +%FT%TZ)",
  "loadavg_before": "$load_before", "loadavg_after": "$(cut -d' ' -f1-3 /proc/loadavg)"
}
JSON
echo "results in $out" >&2

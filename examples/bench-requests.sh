#!/usr/bin/env bash
# What bt-fetch's cap on requests outstanding to one peer costs: the same
# build with the cap at 256 and at 512 (hidden --x-max-requests), one
# leecher from one seeder, the two caps alternating run by run so that
# drift on a shared machine hits both alike. Seeders: Transmission (serves
# in rounds of about half a second, advertises reqq 512) over a veth pair,
# and libtorrent on loopback (where a larger queue could cost, not help).
#
# Usage: sudo examples/bench-requests.sh [options]
#   --reps N        runs per cap and seeder (default 5)
#   --caps LIST     caps to compare (default 256,512)
#   --seeders LIST  transmission,libtorrent (default both)
#   --size MIB      file size (default 1024)
#   --out DIR       results (default target/bench/requests-<timestamp>)
# Each run is one examples/bench-clients.sh scenario-1 run; their runs.csv
# rows are gathered into DIR/runs.csv with a `cap` column.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=bench/lib.sh
source "$here/bench/lib.sh"
reps=5 caps=256,512 seeders=transmission,libtorrent size=1024 out=
bench_options --reps=reps --caps=caps --seeders=seeders --size=size --out=out -- "$@"
out=${out:-$ROOT/target/bench/requests-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out/runs"
IFS=, read -ra CAPS <<<"$caps"
IFS=, read -ra SEEDERS <<<"$seeders"
"${BT_FETCH:-$ROOT/target/release/bt-fetch}" --x-max-requests 8 --help >/dev/null 2>&1 ||
    die "bt-fetch has no --x-max-requests (build this commit: cargo build --release)"
echo "cap,$(head -1 "$ROOT/docs/results/seeders/runs.csv")" >"$out/runs.csv"
for seeder in "${SEEDERS[@]}"; do
    variant=lo
    [[ $seeder == transmission ]] && variant=ns # Transmission ignores 127.x peers
    for ((rep = 1; rep <= reps; rep++)); do
        for cap in "${CAPS[@]}"; do
            one="$out/runs/$seeder-$cap-r$rep"
            BENCH_EXTRA_bt_fetch="--x-max-requests $cap" \
                bash "$here/bench-clients.sh" --scenarios 1 --seeder "$seeder" --clients bt-fetch \
                --variants "$variant" --pieces 1M --reps 1 --size "$size" --out "$one" \
                >"$one.log" 2>&1 || echo "run $seeder cap $cap rep $rep failed (see $one.log)" >&2
            if [[ -f $one/runs.csv ]]; then
                tail -n +2 "$one/runs.csv" | sed "s/^/$cap,/; s/,1,1,/,1,$rep,/" >>"$out/runs.csv"
                tail -n 1 "$out/runs.csv" >&2
            fi
        done
    done
done
cat >"$out/meta.json" <<JSON
{
  "commit": "$(git -C "$ROOT" rev-parse HEAD)",
  "source_tree_dirty": $([[ -n $(git -C "$ROOT" status --porcelain -- src bin) ]] && echo true || echo false),
  "command": "examples/bench-requests.sh --reps $reps --caps $caps --seeders $seeders --size $size",
  "machine": {"nproc": $(nproc), "kernel": "$(uname -r)", "lo_mtu": $(cat /sys/class/net/lo/mtu)},
  "date_end": "$(date -u +%FT%TZ)",
  "loadavg_after": "$(cut -d' ' -f1-3 /proc/loadavg)"
}
JSON
echo "results in $out" >&2

#!/usr/bin/env bash
# Two bt-fetch builds side by side (before and after an engine change):
# each downloads the same file from one libtorrent seeder on loopback,
# runs interleaved (base, new, base, new, ...) so that drift on a shared
# machine hits both alike. Per run: wall time, CPU time (user + system)
# and peak RSS, from /usr/bin/time. Writes runs.csv, meta.json and
# summary.md (medians with 95 % bootstrap intervals, new/base ratios).
#
# Usage: examples/bench-engine.sh --base BIN --new BIN [options]
#   --size MIB     file size (default 1024)
#   --piece LEN    piece length for bt-meta create (default 1M)
#   --runs N       timed runs per build (default 10), after one warm-up each
#   --out DIR      results (default target/bench/engine-<timestamp>)
#   --extra ARGS   more bt-fetch options for both builds (one word each, space-separated)
#   --dry-run      print the options as parsed and stop
# Needs: python3-libtorrent (/usr/bin/python3), GNU time (package `time`).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"
base= new= size=1024 piece=1M runs=10 out= extra=
bench_options --base=base --new=new --size=size --piece=piece --runs=runs --out=out --extra=extra -- "$@"
[[ -x $base && -x $new ]] || die "--base and --new must be bt-fetch binaries"
bench_need_gnu_time
bench_need_libtorrent
bench_need_built "$BT_META"
out=${out:-$ROOT/target/bench/engine-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
work=${BT_BENCH_DIR:-/tmp/bt-bench-engine}
data=$work/data/file-$size.bin
bench_random_file "$data" "$((size << 20))"
torrent=$work/file-$size-$piece.torrent
"$BT_META" create "$data" -l "$piece" --no-date --force -o "$torrent" >/dev/null

port=$((20000 + RANDOM % 20000))
/usr/bin/python3 "$ROOT/examples/bench/seed_libtorrent.py" --torrent "$torrent" --dir "$work/data" \
    --listen "127.0.0.1:$port" >"$work/seeder.log" 2>&1 &
seeder=$!
trap 'kill "$seeder" 2>/dev/null; wait "$seeder" 2>/dev/null; rm -rf "$work/dl"' EXIT
for _ in $(seq 100); do
    grep -q '"listening"' "$work/seeder.log" && break
    sleep 0.1
done
grep -q '"listening"' "$work/seeder.log" || { echo "the seeder did not start:" >&2; cat "$work/seeder.log" >&2; exit 1; }

# one_run BUILD BIN: appends a CSV row
one_run() {
    local build=$1 bin=$2 rep=$3 status=ok
    rm -rf "$work/dl"
    if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time" \
        timeout 300 "$bin" "$torrent" -o "$work/dl" --peer "127.0.0.1:$port" -q $extra </dev/null; then
        status=failed
    fi
    read -r wall user sys rss <"$work/time" || true
    if [[ $rep == warmup ]]; then
        cmp -s "$data" "$work/dl/$(basename "$data")" || { echo "$build: data differs" >&2; exit 1; }
        return
    fi
    echo "$build,$rep,$status,$wall,$user,$sys,$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}'),$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" >>"$out/runs.csv"
}

echo "build,rep,status,wall_s,user_s,sys_s,cpu_s,peak_rss_mib" >"$out/runs.csv"
one_run base "$base" warmup
one_run new "$new" warmup
for r in $(seq "$runs"); do
    one_run base "$base" "$r"
    one_run new "$new" "$r"
    echo "run $r/$runs done" >&2
done

cat >"$out/meta.json" <<EOF
{
  "experiment": "engine side by side: two bt-fetch builds from one libtorrent seeder on loopback",
  "commit": "$(git -C "$ROOT" rev-parse HEAD)",
  "base_binary": "$base",
  "new_binary": "$new",
  "base_version": "$("$base" --version 2>/dev/null | head -1)",
  "command": "examples/bench-engine.sh --base $base --new $new --size $size --piece $piece --runs $runs${extra:+ --extra '$extra'}",
  "size_mib": $size,
  "piece_length": "$piece",
  "runs_per_build": $runs,
  "nproc": $(nproc),
  "kernel": "$(uname -r)",
  "mtu_lo": $(cat /sys/class/net/lo/mtu),
  "load_at_end": "$(cut -d' ' -f1-3 /proc/loadavg)",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)"
}
EOF
/usr/bin/python3 "$ROOT/examples/bench/summarize_pairs.py" "$out/runs.csv" | tee "$out/summary.md"

#!/usr/bin/env bash
# A web seed download against plain HTTP downloaders: nginx on loopback
# serves one file; bt-fetch fetches it as a torrent with only that web
# seed (every piece hashed and written), curl fetches the same file, and
# aria2c fetches the torrent with the same web seed. Runs are interleaved
# (bt, curl, aria2, bt, ...) so that drift on a shared machine hits all
# alike. Per run: wall time, CPU time (user + system), peak RSS from
# /usr/bin/time. Writes runs.csv and meta.json (and prints medians).
#
# Usage: examples/bench-webseed.sh [options]
#   --size MIB     file size (default 1024)
#   --piece LEN    piece length for bt-meta create (default 1M)
#   --runs N       timed runs per tool (default 5), after one warm-up each
#   --out DIR      results (default target/bench/webseed-<timestamp>)
#   --dry-run      print the options as parsed and stop
# Needs: nginx-light, curl, aria2, GNU time; a release build (cargo build --release).
set -euo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"
size=1024 piece=1M runs=5 out=
bench_options --size=size --piece=piece --runs=runs --out=out -- "$@"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[[ -x $NGINX ]] || die "nginx not found (apt-get install nginx-light)"
bench_need "apt-get install curl aria2" curl aria2c
bench_need_gnu_time
bench_need_built "$BT_META" "$BT_FETCH"
out=${out:-$ROOT/target/bench/webseed-$(date +%Y%m%d-%H%M%S)}
mkdir -p "$out"
work=${BT_BENCH_DIR:-/tmp/bt-bench-webseed}
mkdir -p "$work/www" "$work/nginx/tmp"
data=$work/www/file-$size.bin
bench_random_file "$data" "$((size << 20))"
port=$((20000 + RANDOM % 20000))
cat >"$work/nginx/nginx.conf" <<EOF
daemon off; master_process off; worker_processes 1;
pid $work/nginx/nginx.pid; error_log $work/nginx/error.log warn;
events { worker_connections 256; }
http {
  access_log off; sendfile on; keepalive_requests 100000;
  client_body_temp_path $work/nginx/tmp; proxy_temp_path $work/nginx/tmp;
  fastcgi_temp_path $work/nginx/tmp; uwsgi_temp_path $work/nginx/tmp; scgi_temp_path $work/nginx/tmp;
  default_type application/octet-stream;
  server { listen 127.0.0.1:$port; root $work/www; }
}
EOF
"$NGINX" -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
ngx=$!
trap 'kill "$ngx" 2>/dev/null; wait "$ngx" 2>/dev/null; rm -rf "$work/dl"' EXIT
for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$port/" && break
    sleep 0.1
done
url=http://127.0.0.1:$port/$(basename "$data")
torrent=$work/file-$size-$piece.torrent
"$BT_META" create "$data" -l "$piece" --no-date --force -w "$url" -o "$torrent" >/dev/null

# one_run TOOL REP: appends a CSV row
one_run() {
    local tool=$1 rep=$2 status=ok
    rm -rf "$work/dl" && mkdir -p "$work/dl"
    local cmd
    case $tool in
    bt-fetch) cmd=("$BT_FETCH" "$torrent" -o "$work/dl" -q --bind 127.0.0.1) ;;
    curl) cmd=(curl -s -f -o "$work/dl/$(basename "$data")" "$url") ;;
    aria2c) cmd=(aria2c -q -d "$work/dl" --seed-time=0 --enable-dht=false --bt-enable-lpd=false
        --enable-peer-exchange=false --file-allocation=none --check-integrity=false "$torrent") ;;
    esac
    if ! /usr/bin/time -f '%e %U %S %M' -o "$work/time" timeout 600 "${cmd[@]}" </dev/null; then
        status=failed
    fi
    read -r wall user sys rss <"$work/time" || true
    cmp -s "$data" "$work/dl/$(basename "$data")" || status=differs
    [[ $rep == warmup ]] && return
    echo "$tool,$rep,$status,$wall,$user,$sys,$(awk -v u="$user" -v s="$sys" 'BEGIN{print u+s}'),$(awk -v k="$rss" 'BEGIN{printf "%.1f", k/1024}')" >>"$out/runs.csv"
}

echo "tool,rep,status,wall_s,user_s,sys_s,cpu_s,peak_rss_mib" >"$out/runs.csv"
for t in bt-fetch curl aria2c; do one_run "$t" warmup; done
for r in $(seq "$runs"); do
    for t in bt-fetch curl aria2c; do one_run "$t" "$r"; done
done
cat >"$out/meta.json" <<EOF
{
  "bench": "bench-webseed.sh",
  "date": "$(date -u +%Y-%m-%dT%H:%M:%SZ)",
  "commit": "$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)",
  "size_mib": $size,
  "piece": "$piece",
  "runs": $runs,
  "cpus": $(nproc),
  "kernel": "$(uname -r)",
  "nginx": "$("$NGINX" -v 2>&1 | sed 's/.*\///')",
  "curl": "$(curl --version | head -1 | cut -d' ' -f2)",
  "aria2c": "$(aria2c --version | head -1 | awk '{print $3}')",
  "filesystem": "$(df -T "$work" | awk 'NR==2{print $2}')"
}
EOF
echo "medians of wall seconds:" >&2
for t in bt-fetch curl aria2c; do
    printf '  %-8s %s s\n' "$t" "$(grep "^$t," "$out/runs.csv" | cut -d, -f4 | bench_median)" >&2
done
echo "results in $out" >&2

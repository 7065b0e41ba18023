#!/usr/bin/env bash
# Peak anonymous and file-backed memory of bt-fetch downloads, sampled
# every 20 ms from /proc/PID/status (RssAnon, RssFile): tells heap growth
# from code pages when two builds' peak RSS differ. Two builds alternate,
# downloading from one libtorrent seeder on loopback.
#
# Usage: examples/bench/rss-split.sh BASE_BIN NEW_BIN TORRENT DATA_DIR [RUNS]
# (DATA_DIR holds the torrent's data; see examples/bench-engine.sh)
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
base=$1 new=$2 torrent=$3 data=$4 runs=${5:-4}
port=$((20000 + RANDOM % 20000))
dl=$(mktemp -d)
/usr/bin/python3 "$ROOT/examples/bench/seed_libtorrent.py" --torrent "$torrent" --dir "$data" \
    --listen "127.0.0.1:$port" >"$dl.seed.log" 2>&1 &
seeder=$!
trap 'kill "$seeder" 2>/dev/null; rm -rf "$dl" "$dl.seed.log"' EXIT
sleep 2
echo "build,run,peak_rss_anon_kib,peak_rss_file_kib"
for r in $(seq "$runs"); do
    for b in base new; do
        bin=$base
        [[ $b == new ]] && bin=$new
        rm -rf "${dl:?}"/*
        "$bin" "$torrent" -o "$dl" --peer "127.0.0.1:$port" -q </dev/null &
        pid=$!
        ma=0 mf=0
        for _ in $(seq 15000); do # at most 300 s
            kill -0 "$pid" 2>/dev/null || break
            read -r a f < <(awk '/RssAnon/ {a = $2} /RssFile/ {f = $2} END {print a + 0, f + 0}' "/proc/$pid/status" 2>/dev/null || echo "0 0")
            ((a > ma)) && ma=$a
            ((f > mf)) && mf=$f
            sleep 0.02
        done
        wait "$pid" || true
        echo "$b,$r,$ma,$mf"
    done
done

#!/usr/bin/env bash
# A self-contained tour of bt on made-up data: create a torrent of a small
# folder, read it back as JSON, recheck the data, damage one byte and watch
# the recheck name the piece, then (when bt-fetch is built) run a local swarm.
# Everything happens under a temporary folder that is removed at the end.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
(cd "$root" && cargo build --release --quiet)
bin=${CARGO_TARGET_DIR:-$root/target}/release
work=$(mktemp -d /tmp/bt-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
json() { if command -v jq >/dev/null; then jq "$@"; else cat; fi; }

say "Making a folder of data in $work/data"
mkdir -p "$work/data/album/disc 1" "$work/data/album/disc 2"
head -c 3000000 /dev/urandom >"$work/data/album/disc 1/track01.flac"
head -c 2500000 /dev/urandom >"$work/data/album/disc 2/track01.flac"
echo "liner notes" >"$work/data/album/notes.txt"

say "bt-meta create: a torrent of it (pieces of 256 KiB, two tracker tiers)"
"$bin/bt-meta" create "$work/data/album" -l 256K --no-date \
    -t http://tracker.example/announce,udp://tracker.example:6969 \
    -t https://backup.example/announce -o "$work/album.torrent" |
    json -c '{info_hash, name, piece_count, total_length}'

say "bt-meta info: what the torrent says, as JSON"
"$bin/bt-meta" info "$work/album.torrent" | json '{name, trackers, files: [.files[] | {path_string, length}], magnet}'

say "bt-verify: the data is complete (exit status 0)"
"$bin/bt-verify" -q "$work/album.torrent" -o "$work/data" | json -c '{status, pieces_good, pieces_total}'

say "Flipping one byte at offset 1000000 of disc 1/track01.flac (piece 3)"
printf '\xff' | dd of="$work/data/album/disc 1/track01.flac" bs=1 seek=1000000 conv=notrunc status=none
set +e
"$bin/bt-verify" -q "$work/album.torrent" -o "$work/data" --pieces | json -c '{status, bad_pieces, files: [.files[] | {path, status}]}'
echo "exit status: ${PIPESTATUS[0]} (5 means corrupt)"
set -e

if [[ -x $bin/bt-fetch ]]; then
    say "A local swarm: one bt-fetch seeder (uploading at most 16 MiB/s), three bt-fetch leechers"
    rm -rf "$work/data"
    mkdir -p "$work/seed"
    head -c $((64 << 20)) /dev/urandom >"$work/seed/movie.bin"
    "$bin/bt-meta" create "$work/seed/movie.bin" -l 256K -q --no-date -o "$work/movie.torrent" >/dev/null
    pids=()
    trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
    # Starts bt-fetch in the background with its events in $work/$1.jsonl
    # and sets $port to the port it listens on.
    start() {
        local name=$1
        shift
        "$bin/bt-fetch" "$work/movie.torrent" --json -q "$@" </dev/null >"$work/$name.jsonl" &
        pids+=($!)
        port=""
        for _ in $(seq 100); do
            port=$(sed -n 's/.*"event":"listening".*"port":\([0-9]*\).*/\1/p' "$work/$name.jsonl" | head -1)
            [[ -n $port ]] && break
            sleep 0.1
        done
        [[ -n $port ]] || { echo "$name did not start" >&2; exit 1; }
    }
    start seeder -o "$work/seed" --seed --max-upload-rate 16M
    echo "seeder listening on 127.0.0.1:$port"
    # Each leecher knows the seeder and the leechers started before it, so
    # they can trade pieces among themselves.
    peers=(--peer "127.0.0.1:$port")
    for i in 1 2 3; do
        start "leech$i" -o "$work/leech$i" "${peers[@]}"
        peers+=(--peer "127.0.0.1:$port")
    done
    for p in "${pids[@]:1}"; do wait "$p"; done
    for i in 1 2 3; do
        grep '"event":"done"' "$work/leech$i.jsonl" | json -c "{leecher: $i, seconds, downloaded, uploaded}"
        cmp "$work/seed/movie.bin" "$work/leech$i/movie.bin" && echo "leecher $i: identical to the seeder's file"
    done
    echo "(the leechers' uploads are pieces they traded among themselves)"
fi

say "Done; $work is removed."

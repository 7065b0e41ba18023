#!/usr/bin/env bash
# Trackers (issue 14): the same download announced over HTTP, UDP (BEP 15)
# and HTTPS, one leecher at a time from a libtorrent seeder on loopback, the
# three tracker kinds interleaved within every repetition. opentracker serves
# HTTP and UDP on one port; HTTPS is stunnel (TLS, a throw-away CA made
# with openssl, as tests/tracker_https.rs does) in front of it. A small
# file, so that the time to the first peer is a visible part of the whole:
# first_byte_s is the first trace sample with data on disk (sampled every
# BENCH_SAMPLE s, 0.05 here), wall_s the time to the verified file.
#
# Usage: sudo examples/bench-trackers.sh [options]
#   --clients LIST   leechers (default bt-fetch,libtorrent,aria2)
#   --kinds LIST     tracker kinds (default http,udp,https)
#   --size MIB       file size (default 16)
#   --piece LEN      piece length (default 256K)
#   --reps N         repetitions (default 10)
#   --out DIR        results (default target/bench/<timestamp>)
#   --dry-run        print the options as parsed and stop
set -uo pipefail
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/bench/lib.sh"
SAMPLE=${BENCH_SAMPLE:-0.05}

clients=bt-fetch,libtorrent,aria2 kinds=http,udp,https size=16 piece=256K reps=10 out=
bench_options --clients=clients --kinds=kinds --size=size --piece=piece --reps=reps \
    --timeout=TIMEOUT --out=out -- "$@"
out=${out:-$ROOT/target/bench/$(date +%Y%m%d-%H%M%S)}
IFS=, read -ra CL <<<"$clients"
IFS=, read -ra KINDS <<<"$kinds"
bench_need "apt-get install openssl stunnel4" openssl stunnel4

bench_init "$out"
bench_params "clients=$clients kinds=$kinds size=${size}MiB piece=$piece reps=$reps sample=${SAMPLE}s timeout=${TIMEOUT}s"
tracker_setup
make_data "$size"
make_torrent "$piece" 127.0.0.1 # the seeder's (HTTP); sets HASH and the whitelist
tracker_restart

# TLS: a CA and a certificate for 127.0.0.1, stunnel on its own port
tls=$BENCH_TMP/tls
mkdir -p "$tls"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bt bench CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$tls/ca.key" -out "$tls/ca.pem" 2>/dev/null || die "openssl: CA"
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout "$tls/srv.key" -out "$tls/srv.csr" 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >"$tls/ext"
openssl x509 -req -in "$tls/srv.csr" -CA "$tls/ca.pem" -CAkey "$tls/ca.key" -CAcreateserial -days 2 \
    -extfile "$tls/ext" -out "$tls/srv.pem" 2>/dev/null || die "openssl: server certificate"
free_port TLS_PORT
cat >"$tls/stunnel.conf" <<EOF
foreground = yes
pid =
[tracker]
accept = 127.0.0.1:$TLS_PORT
connect = 127.0.0.1:$TRACKER_PORT
cert = $tls/srv.pem
key = $tls/srv.key
EOF
stunnel4 "$tls/stunnel.conf" >"$OUT/logs/stunnel.log" 2>&1 &
BENCH_PIDS+=($!)
for ((i = 0; i < 100; i++)); do
    curl -s --cacert "$tls/ca.pem" -o /dev/null "https://127.0.0.1:$TLS_PORT/scrape" && break
    sleep 0.05
done
((i < 100)) || die "stunnel did not start (see $OUT/logs/stunnel.log)"

# one torrent per tracker kind; the info dictionary (and the info-hash) is
# the same, only the announce URL differs
declare -A URL=([http]="http://127.0.0.1:$TRACKER_PORT/announce"
    [udp]="udp://127.0.0.1:$TRACKER_PORT/announce"
    [https]="https://127.0.0.1:$TLS_PORT/announce")
declare -A TOR
for k in "${KINDS[@]}"; do
    [[ -n ${URL[$k]:-} ]] || die "unknown tracker kind '$k' (http, udp, https)"
    TOR[$k]=$BENCH_TMP/bench-$k.torrent
    "$BT_META" create "$DATA_FILE" -l "$piece" --no-date -q -f -o "${TOR[$k]}" -a "${URL[$k]}" >/dev/null ||
        die "bt-meta create failed"
done

SEED_TORRENT=$TORRENT
seeder_start libtorrent "" 127.0.0.1
seeders_wait 1
log "seeder ready; trackers: ${URL[*]}"

# the CA for HTTPS, for every leecher (harmless for the others). bt-fetch's
# --ca-file reaches only its web seeds, not --announce (src/announcer.rs
# uses the default tracker options), so it gets the CA as its trust store
# through SSL_CERT_FILE, which it honours like OpenSSL
export SSL_CERT_FILE=$tls/ca.pem
BENCH_EXTRA_libtorrent="--ca-file $tls/ca.pem"
BENCH_EXTRA_aria2="--ca-certificate=$tls/ca.pem"

for ((rep = 1; rep <= reps; rep++)); do
    for k in "${KINDS[@]}"; do
        TORRENT=${TOR[$k]}
        # aria2 speaks UDP tracker only with its DHT on (its DHT socket
        # carries it); with no bootstrap node that DHT stays empty
        BENCH_EXTRA_aria2="--ca-certificate=$tls/ca.pem"
        if [[ $k == udp ]]; then
            free_port dht_port
            BENCH_EXTRA_aria2+=" --enable-dht=true --dht-listen-port=$dht_port"
        fi
        for c in "${CL[@]}"; do
            run_one trackers "$k" "$piece" 0 libtorrent "$c" "$rep" 127.0.0.1
        done
    done
done
TORRENT=$SEED_TORRENT

{
    echo
    echo "## trackers: ${size} MiB, $piece pieces, $reps repetitions"
    echo
    "$PY" "$BENCH_LIB/stats.py" table "$CSV" --scenario trackers --by client,variant
    echo
    echo "first byte (s, median of ok runs):"
    awk -F, 'NR > 1 && $1 == "trackers" && $9 == "ok" { k = $6 " " $2; f[k] = f[k] " " $18 }
        END { for (k in f) print k ":" f[k] }' "$CSV" | sort
} | tee -a "$OUT/summary.md"
bench_finish

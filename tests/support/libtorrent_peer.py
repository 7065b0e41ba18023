#!/usr/bin/python3
"""A libtorrent (python3-libtorrent) peer for tests and benchmarks.

Seeds or leeches one torrent on 127.0.0.1 with DHT, LSD, UPnP, NAT-PMP and
uTP off, connects to the peers it is given, and prints JSON lines on
stdout: {"event":"listening","port":N} first, then {"event":"status",...}
about every 200 ms while leeching, and {"event":"done",...} when a leech
completes. Exits 0 when a leech completes, 1 on timeout, and runs until
killed when seeding.
"""
import argparse
import json
import sys
import time

try:
    import libtorrent as lt
except ImportError:
    sys.exit("libtorrent_peer.py needs python3-libtorrent: apt-get install -y python3-libtorrent")


def emit(**event):
    print(json.dumps(event), flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--listen", type=int, default=0)
    ap.add_argument("--seed", action="store_true")
    ap.add_argument("--peer", action="append", default=[], help="IP:PORT to connect to")
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args()

    settings = lt.high_performance_seed() if args.seed else lt.default_settings()
    settings.update({
        "listen_interfaces": "127.0.0.1:%d" % args.listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    })
    session = lt.session(settings)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.dir
    if args.seed:
        params.flags |= lt.torrent_flags.seed_mode
    handle = session.add_torrent(params)
    deadline = time.monotonic() + args.timeout
    while session.listen_port() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    emit(event="listening", port=session.listen_port())

    peers = []
    for p in args.peer:
        host, port = p.rsplit(":", 1)
        peers.append((host, int(port)))
    started = time.monotonic()
    last_connect = 0.0
    while True:
        now = time.monotonic()
        status = handle.status()
        # Connect (again) while we have no peer: the other side may still be starting.
        if peers and status.num_peers == 0 and now - last_connect > 1.0:
            for p in peers:
                handle.connect_peer(p)
            last_connect = now
        if not args.seed:
            if status.is_seeding:
                emit(event="done", seconds=round(now - started, 3),
                     downloaded=status.total_payload_download,
                     uploaded=status.total_payload_upload)
                return 0
            emit(event="status", progress=status.progress, peers=status.num_peers,
                 downloaded=status.total_payload_download)
            if now > deadline:
                emit(event="timeout", progress=status.progress)
                return 1
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())

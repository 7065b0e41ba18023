#!/usr/bin/python3
"""Benchmark seeder: python3-libtorrent with lt.high_performance_seed().

Seeds one torrent from data already on disk (seed mode: no recheck), TCP
only, DHT/LSD/UPnP/NAT-PMP/uTP/PEX off, no rate limits, announcing to the
torrent's tracker. Prints {"event":"listening","port":N} and then a status
line every few seconds on stdout; runs until SIGTERM/SIGINT.

  seed_libtorrent.py --torrent T --dir DATA_PARENT --listen IP:PORT
"""
import argparse
import json
import signal
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import libtorrent as lt  # noqa: E402
from lt_bench import add_running, tcp_only_session  # noqa: E402

stop = False


def on_signal(_sig, _frame):
    global stop
    stop = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--torrent", required=True)
    ap.add_argument("--dir", required=True, help="folder holding the torrent's data")
    ap.add_argument("--listen", required=True, help="IP:PORT")
    ap.add_argument("--status-every", type=float, default=5.0)
    args = ap.parse_args()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    settings = lt.high_performance_seed()
    settings["announce_to_all_trackers"] = True
    session = tcp_only_session(settings, args.listen)
    handle = add_running(session, args.torrent, args.dir, seed_mode=True)
    deadline = time.monotonic() + 30
    while session.listen_port() == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    print(json.dumps({"event": "listening", "port": session.listen_port()}), flush=True)
    last = 0.0
    while not stop:
        now = time.monotonic()
        if now - last >= args.status_every:
            s = handle.status()
            print(json.dumps({"event": "status", "peers": s.num_peers,
                              "uploaded": s.total_payload_upload,
                              "seeding": s.is_seeding}), flush=True)
            last = now
        time.sleep(0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())

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

import libtorrent as lt

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
    settings.update({
        "listen_interfaces": args.listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "announce_to_all_trackers": True,
        "alert_mask": 0,
    })
    # flags=0: no default plugins, so no ut_pex (PEX off); keep the others.
    session = lt.session(settings, 0)
    session.add_extension("ut_metadata")
    session.add_extension("smart_ban")
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(args.torrent)
    params.save_path = args.dir
    params.flags |= lt.torrent_flags.seed_mode
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
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

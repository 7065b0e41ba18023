#!/usr/bin/python3
"""Benchmark leecher: python3-libtorrent 2.0 with default settings.

Downloads one torrent into a fresh folder (no resume data), TCP only,
DHT/LSD/UPnP/NAT-PMP/uTP/PEX off, no rate limits, peers from the torrent's
tracker (and --peer IP:PORT if given). Exits 0 as soon as every piece has
passed its hash check (torrent_status.is_seeding), after printing one JSON
line with the counters libtorrent keeps; 1 on timeout.

  leech_libtorrent.py --torrent T --dir DL --listen IP:PORT [--timeout S]
"""
import argparse
import json
import os
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
    ap.add_argument("--dir", required=True)
    ap.add_argument("--listen", required=True, help="IP:PORT")
    ap.add_argument("--peer", action="append", default=[])
    ap.add_argument("--timeout", type=float, default=300.0)
    ap.add_argument("--ca-file", help="trust this CA for HTTPS trackers (instead of the system's)")
    ap.add_argument("--stay", action="store_true",
                    help="keep seeding after completion until SIGTERM (swarms)")
    ap.add_argument("--done-file", help="write the completion time (ns since epoch) here")
    args = ap.parse_args()

    if args.ca_file:
        # libtorrent verifies HTTPS trackers with OpenSSL's default paths,
        # which SSL_CERT_FILE overrides (read when the session starts)
        os.environ["SSL_CERT_FILE"] = args.ca_file
    session = tcp_only_session(lt.default_settings(), args.listen)
    handle = add_running(session, args.torrent, args.dir)
    for p in args.peer:
        host, port = p.rsplit(":", 1)
        handle.connect_peer((host, int(port)))
    signal.signal(signal.SIGTERM, on_signal)
    deadline = time.monotonic() + args.timeout
    while True:
        s = handle.status()
        if s.is_seeding:
            if args.done_file:
                with open(args.done_file + ".tmp", "w") as f:
                    f.write("%d\n" % time.time_ns())
                os.rename(args.done_file + ".tmp", args.done_file)
            print(json.dumps({"event": "done",
                              "payload_downloaded": s.total_payload_download,
                              "downloaded": s.total_download,
                              "redundant": s.total_redundant_bytes,
                              "failed": s.total_failed_bytes}), flush=True)
            while args.stay and not stop:
                time.sleep(0.1)
            # The session's destructor sends "stopped" to the tracker; the
            # process exits when that is done (counted in the wall time).
            return 0
        if time.monotonic() > deadline:
            print(json.dumps({"event": "timeout", "progress": s.progress}), flush=True)
            return 1
        time.sleep(0.05)


if __name__ == "__main__":
    sys.exit(main())

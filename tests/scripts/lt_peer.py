#!/usr/bin/python3
"""A libtorrent peer for the interop tests.

usage: lt_peer.py seed|leech TORRENT DIR PORT [IP:PORT ...]
Prints "listening PORT" once listening, "done" when the download is
complete (leech), and keeps running (seed) until killed; stdin EOF also
ends it. LT_ENCRYPTION=rc4|both forces encryption (MSE) in and out, with
RC4 only or either method allowed. A seed runs libtorrent's
high_performance_seed settings unless LT_DEFAULTS=1 (libtorrent's own
defaults, as its users run it).
"""
import sys, time, os

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import libtorrent as lt  # noqa: E402
from lt_common import loopback_settings, wait_listening, connect_peers, exit_on_stdin_eof  # noqa: E402

mode, torrent, folder, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peers = sys.argv[5:]
fast_seed = mode == "seed" and os.environ.get("LT_DEFAULTS") != "1"
settings = lt.high_performance_seed() if fast_seed else {}
settings.update(loopback_settings(port))
level = os.environ.get("LT_ENCRYPTION")
if level:
    settings.update({
        "out_enc_policy": int(lt.enc_policy.pe_forced),
        "in_enc_policy": int(lt.enc_policy.pe_forced),
        "allowed_enc_level": int(lt.enc_level.pe_rc4 if level == "rc4" else lt.enc_level.pe_both),
        "prefer_rc4": level == "rc4",
    })
ses = lt.session(settings)
info = lt.torrent_info(torrent)
params = {"ti": info, "save_path": folder}
h = ses.add_torrent(params)
wait_listening(ses)
if mode == "seed":
    for _ in range(1200):
        if h.status().is_seeding:
            break
        time.sleep(0.05)
print("listening %d" % ses.listen_port(), flush=True)
connect_peers(h, peers)
exit_on_stdin_eof()

reported = False
start = time.time()
while True:
    s = h.status()
    if mode == "leech" and not reported and s.is_seeding:
        print("done %.3f" % (time.time() - start), flush=True)
        reported = True
    time.sleep(0.05)

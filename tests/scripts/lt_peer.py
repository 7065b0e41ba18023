#!/usr/bin/python3
"""A libtorrent peer for the interop tests.

usage: lt_peer.py seed|leech TORRENT DIR PORT [IP:PORT ...]
Prints "listening PORT" once listening, "done" when the download is
complete (leech), and keeps running (seed) until killed; stdin EOF also
ends it. LT_ENCRYPTION=rc4|both forces encryption (MSE) in and out, with
RC4 only or either method allowed.
"""
import sys, time, threading, os
import libtorrent as lt

mode, torrent, folder, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
peers = sys.argv[5:]
settings = lt.high_performance_seed() if mode == "seed" else {}
settings.update({
    "listen_interfaces": "127.0.0.1:%d" % port,
    "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": 0,
})
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
for _ in range(100):
    if ses.is_listening():
        break
    time.sleep(0.05)
if mode == "seed":
    for _ in range(1200):
        if h.status().is_seeding:
            break
        time.sleep(0.05)
print("listening %d" % ses.listen_port(), flush=True)
for p in peers:
    ip, pt = p.rsplit(":", 1)
    h.connect_peer((ip, int(pt)))

def watch_stdin():
    sys.stdin.read()
    os._exit(0)
threading.Thread(target=watch_stdin, daemon=True).start()

reported = False
start = time.time()
while True:
    s = h.status()
    if mode == "leech" and not reported and s.is_seeding:
        print("done %.3f" % (time.time() - start), flush=True)
        reported = True
    time.sleep(0.05)

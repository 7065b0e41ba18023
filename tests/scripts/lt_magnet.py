#!/usr/bin/python3
"""A libtorrent peer for the magnet and PEX tests, in libtorrent's default
settings (ut_metadata and ut_pex on) except what loopback tests need.

usage: lt_magnet.py seed|leech TORRENT DIR PORT UPLOAD_LIMIT [IP:PORT ...]
       lt_magnet.py magnet LINK DIR PORT 0 [IP:PORT ...]
UPLOAD_LIMIT is bytes/s (0: none). Prints "listening PORT" once listening,
"metadata" when a magnet's metadata arrived, "done" when the download is
complete, and "peers IP:PORT ..." (its connected peers) every second. Ends
on stdin EOF.
"""
import sys, time

sys.dont_write_bytecode = True  # no __pycache__ beside the scripts
import libtorrent as lt  # noqa: E402
from lt_common import loopback_settings, wait_listening, connect_peers, exit_on_stdin_eof  # noqa: E402

mode, what, folder, port, limit = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
peers = sys.argv[6:]
settings = loopback_settings(port)
if limit > 0:
    settings["upload_rate_limit"] = limit
ses = lt.session(settings)
if limit > 0:
    # Loopback peers are exempt from rate limits unless they are put in
    # the global peer class.
    f = lt.ip_filter()
    f.add_rule("0.0.0.0", "255.255.255.255", 1 << lt.session.global_peer_class_id)
    ses.set_peer_class_filter(f)
if mode in ("seed", "leech"):
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(what)
else:
    params = lt.parse_magnet_uri(what)
params.save_path = folder
h = ses.add_torrent(params)
wait_listening(ses)
# Wait until checked (and, for a seed, seeding): peers added while
# checking are ignored.
for _ in range(1200):
    st = h.status()
    if st.is_seeding or (mode != "seed" and st.state not in (
            lt.torrent_status.checking_files, lt.torrent_status.checking_resume_data)):
        break
    time.sleep(0.05)
print("listening %d" % ses.listen_port(), flush=True)
connect_peers(h, peers)
exit_on_stdin_eof()

meta = mode != "magnet"
done = False
start = time.time()
last = 0
while True:
    s = h.status()
    if not meta and s.has_metadata:
        print("metadata %.3f" % (time.time() - start), flush=True)
        meta = True
    if mode != "seed" and not done and s.is_seeding:
        print("done %.3f" % (time.time() - start), flush=True)
        done = True
    if time.time() - last >= 1:
        last = time.time()
        ps = ["%s:%d" % (p.ip[0], p.ip[1]) for p in h.get_peer_info()]
        print("peers " + " ".join(ps), flush=True)
    time.sleep(0.05)

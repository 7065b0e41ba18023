#!/usr/bin/python3
"""Captures real traffic from libtorrent (the reference client) on loopback,
for the fuzz seed corpora: what a libtorrent seeder sends after our
handshake, a libtorrent peer's first bytes (plain and MSE), and its DHT
queries. Writes raw captures to the folder given (default: capture/)."""
import os, socket, sys, time, struct
import libtorrent as lt

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "fixtures", "webtorrent")
OUT = sys.argv[1] if len(sys.argv) > 1 else "capture"
os.makedirs(OUT, exist_ok=True)

def save(name, data):
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(name, len(data))

def recv_for(sock, seconds):
    sock.settimeout(0.2)
    end, got = time.time() + seconds, b""
    while time.time() < end:
        try:
            b = sock.recv(65536)
            if not b:
                break
            got += b
        except socket.timeout:
            pass
    return got

def session(extra):
    s = {"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
         "enable_upnp": False, "enable_natpmp": False, "alert_mask": 0}
    s.update(extra)
    return lt.session(s)

ti = lt.torrent_info(os.path.join(FIX, "alice.torrent"))
ih = ti.info_hash().to_bytes()

# 1. A libtorrent seeder: what it sends after our handshake and ext handshake.
ses = session({})
h = ses.add_torrent({"ti": ti, "save_path": FIX, "flags": lt.torrent_flags.seed_mode})
time.sleep(1.5)
port = ses.listen_port()
c = socket.create_connection(("127.0.0.1", port))
reserved = bytearray(8); reserved[5] |= 0x10; reserved[7] |= 0x04
c.sendall(b"\x13BitTorrent protocol" + bytes(reserved) + ih + b"-BT0100-fuzzcapture1")
ext = b"d1:md11:ut_metadatai1e6:ut_pexi2ee1:pi6881e4:reqqi2000e1:v6:bt 0.1e"
c.sendall(struct.pack(">IB", 2 + len(ext), 20) + b"\x00" + ext)
c.sendall(struct.pack(">IB", 1, 2))  # interested
c.sendall(struct.pack(">IBIII", 13, 6, 0, 0, 16384))  # request a block
save("seeder_stream", recv_for(c, 3))
c.close()

# 2. A libtorrent peer connecting to us: its first bytes, plain and MSE.
for name, policy in (("peer_plain", lt.enc_policy.disabled), ("peer_mse", lt.enc_policy.forced)):
    l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(1)
    lport = l.getsockname()[1]
    ses2 = session({"out_enc_policy": int(policy), "in_enc_policy": int(policy)})
    h2 = ses2.add_torrent({"ti": ti, "save_path": "/tmp/bt-capture-dl"})
    time.sleep(0.5)
    h2.connect_peer(("127.0.0.1", lport))
    l.settimeout(5)
    conn, _ = l.accept()
    save(name, recv_for(conn, 1.5))
    conn.close(); l.close()
    del h2, ses2

# 3. DHT queries libtorrent sends to a bootstrap node (us).
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
uport = u.getsockname()[1]
ses3 = session({"enable_dht": True, "dht_bootstrap_nodes": "127.0.0.1:%d" % uport})
ses3.add_dht_node(("127.0.0.1", uport))
u.settimeout(0.5)
end, n = time.time() + 4, 0
while time.time() < end and n < 4:
    try:
        data, addr = u.recvfrom(2048)
        save("dht_query_%d" % n, data); n += 1
    except socket.timeout:
        pass

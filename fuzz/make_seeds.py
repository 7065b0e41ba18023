#!/usr/bin/python3
"""Writes the seed corpora (seeds/<target>/) from the fixture torrents,
the unit-test vectors, and the libtorrent captures made by capture.py
(first argument: their folder). Each target's input layout is described
at the top of its source in fuzz_targets/."""
import hashlib, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "..", "shared", "fixtures", "webtorrent")
CAP = sys.argv[1] if len(sys.argv) > 1 else "capture"
SEEDS = os.path.join(HERE, "seeds")


def cap(name):
    with open(os.path.join(CAP, name), "rb") as f:
        return f.read()


def put(target, data):
    d = os.path.join(SEEDS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()[:16]), "wb") as f:
        f.write(data)


def be(v):
    """Bencode a Python value (bytes, str, int, list, dict)."""
    if isinstance(v, int):
        return b"i%de" % v
    if isinstance(v, str):
        v = v.encode()
    if isinstance(v, bytes):
        return b"%d:" % len(v) + v
    if isinstance(v, list):
        return b"l" + b"".join(be(x) for x in v) + b"e"
    return b"d" + b"".join(be(k) + be(v[k]) for k in sorted(v, key=lambda k: k.encode() if isinstance(k, str) else k)) + b"e"


def msg(mid=None, payload=b""):
    if mid is None:
        return b"\0\0\0\0"
    return struct.pack(">IB", 1 + len(payload), mid) + payload


def messages(stream):
    """Splits a peer-wire stream (after the handshake) into frames."""
    out, pos = [], 0
    while pos + 4 <= len(stream):
        n = struct.unpack(">I", stream[pos:pos + 4])[0]
        if pos + 4 + n > len(stream):
            break
        out.append(stream[pos:pos + 4 + n])
        pos += 4 + n
    return out


torrents = {n: open(os.path.join(FIX, n), "rb").read() for n in sorted(os.listdir(FIX)) if n.endswith(".torrent")}
seeder = cap("seeder_stream")
lt_frames = messages(seeder[68:])
lt_ext = [f[6:] for f in lt_frames if f[4] == 20 and f[5] == 0]
our_ext = be({"m": {"ut_metadata": 1, "ut_pex": 2}, "p": 6881, "reqq": 2000, "v": "bt 0.1.0"})

# --- bencode and metainfo
vectors = [b"i0e", b"i-42e", b"i9223372036854775807e", b"i-9223372036854775808e", b"4:spam", b"0:",
           b"le", b"de", b"d4:infod6:lengthi5ee3:zzzi1ee", b"d1:bi1e1:ai2e1:bi3ee", b"l" * 64 + b"e" * 64,
           b"d5:alpha1:x4:listli-3e0:e4:zetai1ee"]
for v in vectors + [torrents["alice.torrent"], torrents["folder.torrent"], torrents["numbers.torrent"]] + lt_ext:
    put("bencode", v)
for t in torrents.values():
    put("metainfo", t)
# Multi-file with pad files, a hybrid marker, announce-list, url-list.
info = {"name": "d", "piece length": 16384, "pieces": b"\x01" * 40,
        "files": [{"length": 10000, "path": ["a"]}, {"length": 6384, "path": [".pad", "6384"], "attr": "p"},
                  {"length": 100, "path": ["b", "c"], "attr": "x"}]}
put("metainfo", be({"announce": "http://t/a", "announce-list": [["http://t/a", "udp://u:1"], ["https://s/"]],
                    "url-list": ["http://w/"], "creation date": 1, "comment": "c", "info": info}))
put("metainfo", be({"info": dict(info, **{"meta version": 2})}))
put("metainfo", torrents["alice.torrent"] + b"\n")

# --- tracker answers (bencoded bodies)
peers4 = bytes([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0, 0])
peers6 = bytes(15) + b"\x01" + b"\x1a\xe1"
announces = [
    be({"interval": 1800, "min interval": 60, "complete": 3, "incomplete": 1, "peers": peers4, "peers6": peers6}),
    be({"interval": 900, "peers": [{"ip": "127.0.0.1", "port": 6881, "peer id": b"-LT2080-" + b"x" * 12},
                                   {"ip": "::1", "port": 1}, {"ip": b"\x7f\0\0\1", "port": 2}, {"ip": "host", "port": 3}],
        "tracker id": "abc", "warning message": "careful\x07"}),
    be({"failure reason": "unregistered torrent"}),
    be({"interval": -1}), be({"peers": 5}), be({"interval": 60, "peers": b""}) + b"\n",
]
scrapes = [be({"files": {b"\x11" * 20: {"complete": 5, "downloaded": 50, "incomplete": 10}}}),
           be({"files": {}}), be({"failure reason": "no"})]
for a in announces + scrapes:
    put("tracker_response", a)
for u in [b"http://tracker.example:6969/announce", b"udp://[::1]:80/announce?x=1", b"https://t/a?passkey=1"]:
    put("tracker_response", u)

# --- HTTP answers (byte 0: body limit in bits 0-2, read size in bits 3-6;
# bit 7: the chunked decoder alone)
def http(status, headers, body):
    head = "HTTP/1.1 %s\r\n" % status + "".join("%s: %s\r\n" % h for h in headers) + "\r\n"
    return head.encode() + body

def chunked(body, size=7):
    out = b""
    for i in range(0, len(body), size):
        part = body[i:i + size]
        out += b"%x;ext=1\r\n" % len(part) + part + b"\r\n"
    return out + b"0\r\nX-Trailer: y\r\n\r\n"

body = announces[0]
responses = [
    http("200 OK", [("Content-Length", len(body)), ("Content-Type", "text/plain")], body),
    http("200 OK", [("Transfer-Encoding", "chunked")], chunked(body)),
    b"HTTP/1.1 100 Continue\r\n\r\n" + http("200 OK", [("Connection", "close")], scrapes[0]),
    http("302 Found", [("Location", "/other/announce?x=2"), ("Content-Length", 0)], b""),
    http("301 Moved", [("Location", "https://elsewhere:443/a")], b""),
    http("400 Bad Request", [("Content-Length", len(announces[2]))], announces[2]),
    http("204 No Content", [], b""),
    b"HTTP/1.0 200 OK\n\n" + body,
]
for r in responses:
    for ctl in (6, 6 | (3 << 3), 2 | (15 << 3)):
        put("http_response", bytes([ctl]) + r)
put("http_response", bytes([0x80 | 6]) + chunked(body, 3))
put("http_response", bytes([0x80 | 6 | (5 << 3)]) + chunked(b"x" * 100, 40))

# --- UDP tracker (byte 0: bit 0 scrape, bit 1 IPv6, bit 2 fix the
# transaction id; then datagrams: length byte, bytes)
def dgrams(*ds):
    return b"".join(bytes([len(d)]) + d for d in ds)

connect = struct.pack(">IIQ", 0, 0, 0x1234)
announce = struct.pack(">IIIII", 1, 0, 1800, 2, 5) + peers4
announce6 = struct.pack(">IIIII", 1, 0, 1800, 2, 5) + peers6
scrape = struct.pack(">II", 2, 0) + struct.pack(">III", 5, 50, 10) * 2
error = struct.pack(">II", 3, 0) + b"torrent not registered"
empty = struct.pack(">II", 1, 0)
put("udp_tracker", bytes([4]) + dgrams(connect, announce))
put("udp_tracker", bytes([6]) + dgrams(connect, announce6))
put("udp_tracker", bytes([5]) + dgrams(connect, scrape))
put("udp_tracker", bytes([4]) + dgrams(connect, error))
put("udp_tracker", bytes([4]) + dgrams(connect, empty))
put("udp_tracker", bytes([4]) + dgrams(b"\xff" + connect[1:], connect, announce))
put("udp_tracker", bytes([0]) + dgrams(connect, b"short"))

# --- peer wire (byte 0: length limit; then handshake and messages)
all_msgs = [msg(), msg(0), msg(1), msg(2), msg(3), msg(4, struct.pack(">I", 3)), msg(5, b"\xf0"),
            msg(6, struct.pack(">III", 0, 0, 16384)), msg(7, struct.pack(">II", 0, 0) + b"abc"),
            msg(8, struct.pack(">III", 0, 0, 16384)), msg(9, b"\x1a\xe1"), msg(13, struct.pack(">I", 1)),
            msg(14), msg(15), msg(16, struct.pack(">III", 1, 0, 16384)), msg(17, struct.pack(">I", 2)),
            msg(20, b"\x00" + our_ext), msg(20, b"\x01" + be({"msg_type": 0, "piece": 0})), msg(99, b"xyz")]
put("wire", bytes([6]) + seeder)
put("wire", bytes([6]) + cap("peer_plain") + b"".join(all_msgs))
for m in all_msgs:
    put("wire", bytes([4]) + m)

# --- BEP 10 handshakes
for e in lt_ext + [our_ext, be({"m": {}, "p": 0}), be({"m": {"ut_metadata": 300, "x" * 70: 1}, "v": "a\x01b"}),
                   be({"e": 1, "ipv4": b"\x7f\0\0\1", "yourip": b"\x7f\0\0\1", "metadata_size": 1000})]:
    put("ext_handshake", e)

# --- session (byte 0: geometry bits 0-1, seeding bit 2, handshake bit 3,
# fast bit 4, extended bit 5, outgoing bit 6; then operations)
def raw(data):
    out = b""
    for i in range(0, len(data), 255):
        part = data[i:i + 255]
        out += bytes([0, len(part)]) + part
    return out

HANDSHAKE = 0x08 | 0x10 | 0x20
peer_msgs = b"".join(f for f in lt_frames if f[4] != 7)  # libtorrent's messages but its block
put("session", bytes([HANDSHAKE]) + raw(peer_msgs) + bytes([4, 20, 5, 0, 5, 0, 6, 1, 5, 0, 5, 0, 6, 0, 4, 200]))
put("session", bytes([HANDSHAKE | 0x40]) + raw(msg(14) + msg(1)) + bytes([5, 0]) * 8 + bytes([6, 1]) * 4 + bytes([4, 50, 7]))
put("session", bytes([HANDSHAKE | 0x04]) + raw(msg(2) + b"".join(msg(6, struct.pack(">III", p, b, 16384)) for p in range(4) for b in (0, 16384)))
    + bytes([4, 10, 6, 1, 6, 1, 7, 6, 0, 4, 10]))
put("session", bytes([0x04 | 0x40 | 0x01]) + raw(cap("peer_plain")[:28] + bytes(20) + b"-LT2080-" + b"y" * 12
    + msg(5, b"\xff\x80") + msg(1)) + bytes([5, 0, 4, 255, 4, 255, 0x87]))
put("session", bytes([0x00]) + raw(b"\x13BitTorrent protocol" + bytes(8) + b"\x07" * 20 + b"-XX0001-cccccccccccc" + msg(15) + msg(17, struct.pack(">I", 1))))

# --- MSE (byte 0: mode bits 0-1 (0 receiver, 1 initiator, 2-3 exchange),
# policy bits 2-3, read size bits 4-7)
put("mse", bytes([0x00]) + cap("peer_mse"))
put("mse", bytes([0x30]) + cap("peer_mse"))
put("mse", bytes([0x01]) + cap("peer_mse"))
put("mse", bytes([0x02, 4, 0x23, 0]))
put("mse", bytes([0x06, 0, 0x10, 1]))
put("mse", bytes([0x42, 10, 0x01, 0, 5, 1]))
put("mse", bytes([0x02, 1, 0x0f, 1, 0, 0xff]))

# --- KRPC (byte 0: sender bits 0-2, get_peers bit 3, seed bits 4-7;
# then datagrams: 2-byte length, bytes)
nid = b"\x42" * 20
queries = [cap(n) for n in sorted(os.listdir(CAP)) if n.startswith("dht_query")]
krpc = queries + [
    be({"t": "aa", "y": "q", "q": "ping", "a": {"id": nid}}),
    be({"t": "aa", "y": "q", "q": "find_node", "a": {"id": nid, "target": b"\x01" * 20}}),
    be({"t": "aa", "y": "q", "q": "announce_peer", "a": {"id": nid, "info_hash": b"\x55" * 20, "port": 6881, "token": "tok", "implied_port": 1}}),
    be({"t": "aa", "y": "r", "r": {"id": nid, "nodes": (b"\x43" * 20 + bytes([10, 0, 0, 9, 0x1a, 0xe1])) * 2}}),
    be({"t": "aa", "y": "r", "r": {"id": nid, "token": "tk", "values": [bytes([10, 0, 0, 7, 0x1a, 0xe1]), bytes(18)]}}),
    be({"t": "aa", "y": "e", "e": [201, "A Generic Error Ocurred"]}),
    be({"t": "aa", "y": "q", "q": "vote", "a": {"id": nid}, "v": "UT", "ro": 1}),
]
for k in krpc:
    put("krpc", bytes([0]) + struct.pack(">H", len(k)) + k)
put("krpc", bytes([8]) + b"".join(struct.pack(">H", len(k)) + k for k in krpc[-5:]))


# --- magnet, ut_metadata, ut_pex, webseed_http, resume (no captures needed)
H = "c9e15763f722f23e98a29decdfae341b98d53056"
for link in [
    "magnet:?xt=urn:btih:" + H,
    "magnet:?xt=urn:btih:" + H + "&dn=Big+Buck%20Bunny&tr=udp%3A%2F%2Ftracker.example%3A1337&tr=wss://t.example/a",
    "magnet:?xt=urn:btih:ZHQVOY7XELZD5GFCTXO57LRUDOMNKMCW&x.pe=127.0.0.1:6881&x.pe=[::1]:51413&x.pe=host.example:80",
    "MAGNET:?xt.1=urn:btih:" + H + "&xt.2=urn:btmh:1220aa&ws=http://w/&xl=10&so=0-3",
]:
    put("magnet", link.encode())
for m in [be({"msg_type": 0, "piece": 0}), be({"msg_type": 2, "piece": 3}),
          be({"msg_type": 1, "piece": 1, "total_size": 20000}) + b"x" * 3616,
          be({"msg_type": 7, "piece": 0})]:
    put("ut_metadata", m)
v4 = bytes([127, 0, 0, 1, 0x1a, 0xe1, 10, 0, 0, 2, 0xc8, 0xd5])
v6 = bytes(15) + b"\x01" + b"\x1a\xe1"
put("ut_pex", b"\x03" + be({"added": v4, "added.f": b"\x10\x02", "dropped": v4[:6]}))
put("ut_pex", b"\x04" + be({"added6": v6, "added6.f": b"\x00", "dropped6": v6, "added": v4[:7]}))
for r in [
    b"\x0aHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/1000\r\nContent-Length: 10\r\n\r\n0123456789",
    b"\x0aHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-9/1000\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n0123\r\n6\r\n456789\r\n0\r\n\r\n",
    b"\x0aHTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + b"z" * 1000,
    b"\x0aHTTP/1.1 302 Found\r\nLocation: /other\r\nContent-Length: 0\r\n\r\n",
    b"\x0aHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
    b"\x0bHTTP/1.1 206 Partial Content\r\nContent-Range: bytes 33-42/1000\r\nConnection: close\r\n\r\n0123456789",
]:
    put("webseed_http", r)
put("resume", be({"version": 1, "info-hash": b"a" * 20, "pieces": 11, "have": b"\x80\x20",
                  "files": [{"length": 5, "mtime": 1700000000123456789}, {"length": -1, "mtime": 0}]}))
put("resume", be({"version": 1, "info-hash": b"b" * 20, "pieces": 0, "have": b"", "files": []}))

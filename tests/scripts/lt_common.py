"""What the libtorrent peers of the tests (lt_peer.py, lt_magnet.py)
share: loopback settings, waiting until listening, dialling the peers
given, and ending when stdin closes.
"""
import os, sys, threading, time


def loopback_settings(port):
    """Listening on 127.0.0.1:PORT over TCP only (no DHT, LSD, UPnP,
    NAT-PMP or uTP), several connections per IP (every test peer is on
    127.0.0.1), no alerts."""
    return {
        "listen_interfaces": "127.0.0.1:%d" % port,
        "enable_dht": False, "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
        "enable_outgoing_utp": False, "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    }


def wait_listening(ses):
    """Up to 5 s."""
    for _ in range(100):
        if ses.is_listening():
            break
        time.sleep(0.05)


def connect_peers(h, peers):
    """Dials each IP:PORT of PEERS for the torrent H."""
    for p in peers:
        ip, pt = p.rsplit(":", 1)
        h.connect_peer((ip, int(pt)))


def exit_on_stdin_eof():
    """Ends the process when stdin closes (the test dropped its end)."""
    def watch_stdin():
        sys.stdin.read()
        os._exit(0)
    threading.Thread(target=watch_stdin, daemon=True).start()

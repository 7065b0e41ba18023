"""What the benchmark's libtorrent peers (seed_libtorrent.py,
leech_libtorrent.py) share, so that seeder and leecher cannot drift apart:
a session that speaks plain TCP BitTorrent only (DHT, LSD, UPnP, NAT-PMP,
uTP and PEX off: every client in a comparison finds its peers the same
way, through the tracker or --peer), and torrents added running."""
import libtorrent as lt


def tcp_only_session(settings, listen):
    """A session on LISTEN (IP:PORT) from SETTINGS (a settings pack as a
    dict: lt.default_settings() or lt.high_performance_seed(), with any
    additions), with everything but TCP BitTorrent turned off."""
    settings.update({
        "listen_interfaces": listen,
        "enable_dht": False,
        "enable_lsd": False,
        "enable_upnp": False,
        "enable_natpmp": False,
        "enable_outgoing_utp": False,
        "enable_incoming_utp": False,
        "allow_multiple_connections_per_ip": True,
        "alert_mask": 0,
    })
    # flags=0: no default plugins, so no ut_pex (PEX off); keep the others.
    session = lt.session(settings, 0)
    session.add_extension("ut_metadata")
    session.add_extension("smart_ban")
    return session


def add_running(session, torrent, save_path, seed_mode=False):
    """Adds the .torrent file TORRENT with its data under SAVE_PATH, neither
    auto-managed nor paused; SEED_MODE trusts the data without a recheck."""
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    if seed_mode:
        params.flags |= lt.torrent_flags.seed_mode
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return session.add_torrent(params)

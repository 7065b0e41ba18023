//! A small DHT of libtorrent sessions (python3-libtorrent) on 127.0.0.1
//! for the DHT interop tests: one Python process hosts N sessions joined to
//! each other, the last one optionally seeding a torrent, and answers
//! commands on stdin (get_peers, routing table contents, a download by
//! info-hash alone).
//!
//! What libtorrent 2.0.8 needs to run a DHT on one loopback address, and why:
//! - `dht_bootstrap_nodes = ""`: never contact the public routers; the
//!   sessions are joined with `add_dht_node` instead.
//! - `dht_restrict_routing_ips = False`, `dht_restrict_search_ips = False`:
//!   by default only one node per IP (/24 for IPv4) enters a routing table
//!   or a lookup, and here every node is 127.0.0.1.
//! - `dht_block_ratelimit = 100000`, `dht_block_timeout = 1`: by default an
//!   IP sending more than ~50 packets in 5 s is blocked for 5 minutes,
//!   which bans 127.0.0.1 (all of us) within seconds.
//! - `dht_prefer_verified_node_ids = False`: BEP 42 would prefer ids derived
//!   from the node's external IP, which nobody here has.
//! - `dht_ignore_dark_internet = False`: 127.0.0.0/8 counts as "dark".
//! - `allow_multiple_connections_per_ip = True`: several peers on 127.0.0.1.
//! - The seeder: `dht_announce_interval` of a few seconds (default 15 min)
//!   so that it announces soon after the DHT formed; LSD, UPnP, NAT-PMP and
//!   uTP off, no trackers.

#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::time::Duration;

// Included by the DHT tests with `#[path = "common/dht_lt.rs"] mod dht_lt;` next
// to `mod common;` (common/mod.rs is shared and left as it is).
use crate::common::peers::{require_libtorrent, Lines, Proc};

const SCRIPT: &str = r#"
import sys, time, warnings
warnings.filterwarnings("ignore")
import libtorrent as lt

n, torrent, folder = int(sys.argv[1]), sys.argv[2], sys.argv[3]
base = {
    "listen_interfaces": "127.0.0.1:0",
    "enable_dht": True, "dht_bootstrap_nodes": "",
    "enable_lsd": False, "enable_upnp": False, "enable_natpmp": False,
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "dht_restrict_routing_ips": False, "dht_restrict_search_ips": False,
    "dht_block_ratelimit": 100000, "dht_block_timeout": 1,
    "dht_prefer_verified_node_ids": False, "dht_ignore_dark_internet": False,
    "allow_multiple_connections_per_ip": True,
    "alert_mask": 0,
}
sessions = []
for i in range(n):
    s = dict(base)
    if i == 0:
        s["alert_mask"] = lt.alert.category_t.dht_operation_notification
    if i == n - 1 and torrent != "-":
        s["dht_announce_interval"] = 3
    sessions.append(lt.session(s))
for _ in range(200):
    if all(x.is_listening() for x in sessions):
        break
    time.sleep(0.05)
ports = [x.listen_port() for x in sessions]
for x in sessions:
    for p in ports:
        if p != x.listen_port():
            x.add_dht_node(("127.0.0.1", p))
if torrent != "-":
    h = sessions[-1].add_torrent({"ti": lt.torrent_info(torrent), "save_path": folder})
    for _ in range(1200):
        if h.status().is_seeding:
            break
        time.sleep(0.05)
    print("seeding %d" % ports[-1], flush=True)
print("ports " + " ".join(str(p) for p in ports), flush=True)

def table(i):
    st = sessions[i].dht_state()
    out = []
    for e in st.get(b"nodes", []):
        if len(e) == 6:
            out.append("%d.%d.%d.%d:%d" % (e[0], e[1], e[2], e[3], e[4] * 256 + e[5]))
    return out

for line in sys.stdin:
    w = line.split()
    if not w:
        continue
    if w[0] == "quit":
        break
    if w[0] == "add":
        for x in sessions:
            x.add_dht_node(("127.0.0.1", int(w[1])))
        print("added", flush=True)
    elif w[0] == "table":
        nodes = []
        for i in range(n):
            nodes += table(i)
        print("table " + " ".join(nodes), flush=True)
    elif w[0] == "get_peers":
        ih = lt.sha1_hash(bytes.fromhex(w[1]))
        end = time.time() + float(w[2])
        sessions[0].pop_alerts()
        found = set()
        last = 0
        while time.time() < end:
            if time.time() - last > 3:
                sessions[0].dht_get_peers(ih)
                last = time.time()
            for a in sessions[0].pop_alerts():
                if isinstance(a, lt.dht_get_peers_reply_alert) and str(a.info_hash) == w[1]:
                    for ip, port in a.peers():
                        found.add("%s:%d" % (ip, port))
            if w[3] in found:
                break
            time.sleep(0.05)
        print("peers " + " ".join(sorted(found)), flush=True)
    elif w[0] == "leech":
        # Session 0 downloads a torrent it knows only by its info-hash:
        # peers and metadata can only come through the DHT.
        p = lt.parse_magnet_uri("magnet:?xt=urn:btih:" + w[1])
        p.save_path = w[2]
        sessions[0].apply_settings({"dht_announce_interval": 3})
        h = sessions[0].add_torrent(p)
        end = time.time() + float(w[3])
        seen = set()
        while time.time() < end:
            for pi in h.get_peer_info():
                seen.add("%s:%d" % (pi.ip[0], pi.ip[1]))
            if h.status().is_seeding:
                break
            time.sleep(0.1)
        ok = "ok" if h.status().is_seeding else "no"
        print("leeched %s %s" % (ok, " ".join(sorted(seen))), flush=True)
"#;

/// The sessions' process; killed by PID when dropped.
pub struct LtDht {
    pub proc: Proc,
    stdin: ChildStdin,
    lines: Lines,
    /// The DHT (and listen) port of every session.
    pub ports: Vec<u16>,
    /// The seeding session's port, when seeding.
    pub seeder: Option<u16>,
}

impl LtDht {
    /// `n` sessions; the last one seeds `seed` = (torrent, folder) if given.
    pub fn start(n: usize, seed: Option<(&Path, &Path)>) -> LtDht {
        let py = require_libtorrent();
        let mut cmd = Command::new(py);
        cmd.arg("-c").arg(SCRIPT).arg(n.to_string());
        match seed {
            Some((t, d)) => cmd.arg(t).arg(d),
            None => cmd.arg("-").arg("-"),
        };
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut proc = Proc::spawn("libtorrent DHT", &mut cmd);
        let stdin = proc.child.stdin.take().unwrap();
        let out = proc.child.stdout.take().unwrap();
        let mut dht = LtDht {
            proc,
            stdin,
            lines: Lines::read(out),
            ports: Vec::new(),
            seeder: None,
        };
        if seed.is_some() {
            let l = dht.wait_line("seeding", Duration::from_secs(90));
            dht.seeder = Some(l[8..].trim().parse().unwrap());
        }
        let l = dht.wait_line("ports", Duration::from_secs(60));
        dht.ports = l[6..]
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(dht.ports.len(), n);
        dht
    }

    fn wait_line(&mut self, prefix: &str, limit: Duration) -> String {
        let what = format!("'{prefix}'");
        self.lines
            .wait("libtorrent DHT", &what, |l| l.starts_with(prefix), limit)
    }

    fn command(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("write to the libtorrent DHT");
        self.stdin.flush().unwrap();
    }

    /// Asks the DHT (from session 0) for peers of `info_hash` (hex), for at
    /// most `limit` or until `want` (IP:PORT) is among them.
    pub fn get_peers(&mut self, info_hash: &str, want: &str, limit: Duration) -> Vec<String> {
        self.command(&format!(
            "get_peers {info_hash} {} {want}",
            limit.as_secs_f64()
        ));
        let l = self.wait_line("peers", limit + Duration::from_secs(30));
        l[5..].split_whitespace().map(String::from).collect()
    }

    /// The nodes of every session's routing table, as IP:PORT.
    pub fn tables(&mut self) -> Vec<String> {
        self.command("table");
        let l = self.wait_line("table", Duration::from_secs(30));
        l[5..].split_whitespace().map(String::from).collect()
    }

    /// Session 0 downloads `info_hash` (hex) into `dir` knowing nothing
    /// else, for at most `limit`: whether it completed, and the peers it
    /// was connected to (IP:PORT).
    pub fn leech(&mut self, info_hash: &str, dir: &Path, limit: Duration) -> (bool, Vec<String>) {
        self.command(&format!(
            "leech {info_hash} {} {}",
            dir.display(),
            limit.as_secs_f64()
        ));
        let l = self.wait_line("leeched", limit + Duration::from_secs(30));
        let mut w = l.split_whitespace().skip(1);
        let ok = w.next() == Some("ok");
        (ok, w.map(String::from).collect())
    }

    /// Tells every session about a DHT node on 127.0.0.1.
    pub fn add_node(&mut self, port: u16) {
        self.command(&format!("add {port}"));
        self.wait_line("added", Duration::from_secs(30));
    }
}

impl Drop for LtDht {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "quit");
        let _ = self.stdin.flush();
        // Proc's own drop kills it by PID if it did not exit.
        let _ = self.proc.wait_exit(Duration::from_secs(5));
    }
}

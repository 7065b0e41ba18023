//! A network namespace joined to the host by a veth pair, for peers that
//! refuse loopback addresses (Transmission does not dial 127.x peers it
//! learns from a tracker). Created by the test, deleted when dropped (also
//! on failure). Needs root and `ip` (iproute2).

#![allow(dead_code)]

use std::net::Ipv4Addr;
use std::process::Command;

use super::require_tool;

pub struct Netns {
    pub name: String,
    host_link: String,
    /// The host's end of the veth pair.
    pub host_ip: Ipv4Addr,
    /// The namespace's end.
    pub inner_ip: Ipv4Addr,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Netns {
    /// A namespace with a /30 in 10.201.0.0/16 picked at random among those
    /// not in use on the host (other tests may run at the same time).
    pub fn create(tag: &str) -> Netns {
        require_tool("ip", "iproute2");
        let used = String::from_utf8_lossy(
            &Command::new("ip")
                .args(["-4", "addr"])
                .output()
                .expect("ip -4 addr")
                .stdout,
        )
        .into_owned();
        for _ in 0..50 {
            let r: u16 = rand::random::<u16>() & 0x3fff;
            let (c, d) = ((r >> 6) as u8, ((r & 0x3f) as u8) << 2);
            let host_ip = Ipv4Addr::new(10, 201, c, d + 1);
            let inner_ip = Ipv4Addr::new(10, 201, c, d + 2);
            if used.contains(&format!("inet 10.201.{c}.{}/", d + 1)) {
                continue;
            }
            let id = format!("{:x}", rand::random::<u32>() & 0xff_ffff);
            let ns = Netns {
                name: format!("bt-{tag}-{id}"),
                host_link: format!("bth{id}"),
                host_ip,
                inner_ip,
            };
            match ns.set_up() {
                Ok(()) => return ns,
                Err(e) => {
                    // Drop removes what was made; try another name/subnet.
                    eprintln!("netns set-up failed ({e}), retrying");
                }
            }
        }
        panic!("cannot create a network namespace with a veth pair (root and iproute2 needed)");
    }

    fn set_up(&self) -> Result<(), String> {
        let inner_link = format!("{}n", self.host_link);
        ip(&["netns", "add", &self.name])?;
        ip(&[
            "link",
            "add",
            &self.host_link,
            "type",
            "veth",
            "peer",
            "name",
            &inner_link,
        ])?;
        ip(&["link", "set", &inner_link, "netns", &self.name])?;
        ip(&[
            "addr",
            "add",
            &format!("{}/30", self.host_ip),
            "dev",
            &self.host_link,
        ])?;
        ip(&["link", "set", &self.host_link, "up"])?;
        ip(&["-n", &self.name, "link", "set", "lo", "up"])?;
        ip(&[
            "-n",
            &self.name,
            "addr",
            "add",
            &format!("{}/30", self.inner_ip),
            "dev",
            &inner_link,
        ])?;
        ip(&["-n", &self.name, "link", "set", &inner_link, "up"])?;
        Ok(())
    }

    /// A command run inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the host end removes the pair; then the namespace.
        let _ = ip(&["link", "del", &self.host_link]);
        let _ = ip(&["netns", "del", &self.name]);
    }
}

//! The saved routing table: our id and good nodes (compact node info) in a
//! small bencoded file, `$XDG_CACHE_HOME/bt/dht.dat` or `~/.cache/bt/dht.dat`,
//! written atomically (a temporary file renamed over the old one) and read
//! back with bounds.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use super::krpc::{decode_nodes, encode_nodes, Id, NodeInfo, COMPACT_NODE_LEN};
use crate::bencode::{self, OwnedValue};

/// Nodes saved, at most.
pub const MAX_SAVED: usize = 500;
/// Largest file read.
const MAX_FILE: u64 = 64 * 1024;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SavedTable {
    pub id: Id,
    pub nodes: Vec<NodeInfo>,
}

/// `$XDG_CACHE_HOME/bt/dht.dat`, else `$HOME/.cache/bt/dht.dat`; `None`
/// without either. A relative or empty `XDG_CACHE_HOME` is ignored, as the
/// XDG base directory specification says.
pub fn default_path() -> Option<PathBuf> {
    path_from(std::env::var_os("XDG_CACHE_HOME"), std::env::var_os("HOME"))
}

pub fn path_from(xdg_cache_home: Option<OsString>, home: Option<OsString>) -> Option<PathBuf> {
    let base = match xdg_cache_home.map(PathBuf::from) {
        Some(p) if p.is_absolute() => p,
        _ => {
            let home = PathBuf::from(home.filter(|h| !h.is_empty())?);
            home.join(".cache")
        }
    };
    Some(base.join("bt").join("dht.dat"))
}

impl SavedTable {
    pub fn encode(&self) -> Vec<u8> {
        let mut d = OwnedValue::dict();
        d.insert("id", self.id.0.to_vec());
        let nodes: Vec<NodeInfo> = self.nodes.iter().take(MAX_SAVED).copied().collect();
        d.insert("nodes", encode_nodes(&nodes));
        d.encode()
    }

    pub fn decode(bytes: &[u8]) -> Result<SavedTable, String> {
        let v = bencode::decode(bytes).map_err(|e| e.to_string())?;
        let id = v
            .get("id")
            .and_then(|v| v.as_bytes())
            .and_then(|b| <[u8; 20]>::try_from(b).ok())
            .ok_or("no 20-byte 'id'")?;
        let raw = v
            .get("nodes")
            .and_then(|v| v.as_bytes())
            .ok_or("no 'nodes'")?;
        if raw.len() % COMPACT_NODE_LEN != 0 {
            return Err("'nodes' is not a list of 26-byte entries".into());
        }
        // decode_nodes keeps at most MAX_NODES; read in chunks of that size.
        let mut nodes = Vec::new();
        for chunk in raw
            .chunks(COMPACT_NODE_LEN * super::krpc::MAX_NODES)
            .take(MAX_SAVED)
        {
            nodes.extend(decode_nodes(chunk).map_err(|e| e.to_string())?);
        }
        nodes.truncate(MAX_SAVED);
        Ok(SavedTable { id: Id(id), nodes })
    }

    /// Writes the table to `path` atomically, creating its folder.
    pub fn save(&self, path: &Path) -> io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(format!(".tmp{}", std::process::id()));
        let tmp = PathBuf::from(tmp);
        let result = std::fs::write(&tmp, self.encode()).and_then(|()| std::fs::rename(&tmp, path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    pub fn load(path: &Path) -> io::Result<SavedTable> {
        use std::io::Read;
        let mut bytes = Vec::new();
        std::fs::File::open(path)?
            .take(MAX_FILE + 1)
            .read_to_end(&mut bytes)?;
        if bytes.len() as u64 > MAX_FILE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "file too large"));
        }
        SavedTable::decode(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, SocketAddrV4};

    #[test]
    fn paths() {
        assert_eq!(
            path_from(Some("/x/cache".into()), Some("/home/u".into())),
            Some(PathBuf::from("/x/cache/bt/dht.dat"))
        );
        assert_eq!(
            path_from(Some("".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/bt/dht.dat"))
        );
        assert_eq!(
            path_from(Some("rel".into()), Some("/home/u".into())),
            Some(PathBuf::from("/home/u/.cache/bt/dht.dat"))
        );
        assert_eq!(path_from(None, None), None);
    }

    #[test]
    fn save_and_load() {
        let dir = std::env::temp_dir().join(format!("bt-dht-persist-{}", std::process::id()));
        let path = dir.join("sub/dht.dat");
        let t = SavedTable {
            id: Id([7; 20]),
            nodes: (0..40u8)
                .map(|i| NodeInfo {
                    id: Id([i; 20]),
                    addr: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, i), 6881),
                })
                .collect(),
        };
        t.save(&path).unwrap();
        assert_eq!(SavedTable::load(&path).unwrap(), t);
        // Garbage is an error, not a panic.
        std::fs::write(&path, b"d2:idi3ee").unwrap();
        assert!(SavedTable::load(&path).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! bt-fetch: download a torrent from its swarm (and upload while doing it).
//! The flags are `bt::cli::fetch`, the download `bt::fetch`.

fn main() {
    bt::cli::env::main("bt-fetch", bt::cli::fetch::run)
}

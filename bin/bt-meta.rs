//! bt-meta: read torrents as JSON, and create them. The program is
//! `bt::cli::meta`.

fn main() {
    bt::cli::env::main("bt-meta", bt::cli::meta::run)
}

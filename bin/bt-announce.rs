//! bt-announce: ask a torrent's trackers for peers and print them as JSON
//! lines (or scrape them). The program is `bt::cli::announce`.

fn main() {
    bt::cli::env::main("bt-announce", bt::cli::announce::run)
}

//! bt-sim: simulate a BitTorrent swarm with the real session code. The
//! program is `bt::cli::sim`, the engine `bt::sim`.

fn main() {
    bt::cli::env::main("bt-sim", bt::cli::sim::run)
}

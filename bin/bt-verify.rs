//! bt-verify: recheck the data of a torrent on disk. The program is
//! `bt::cli::verify`.

fn main() {
    bt::cli::env::main("bt-verify", bt::cli::verify::run)
}

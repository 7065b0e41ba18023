//! bt-fetch: download a torrent from its swarm (and upload while doing it).
//! The flags are `bt::cli::fetch`, the download `bt::fetch`.

// Counted, so that `progress` can report the live heap (`heap_bytes`):
// the soak's exact check for memory growth, which RSS cannot give.
#[global_allocator]
static HEAP: bt::alloc_stats::Counting = bt::alloc_stats::Counting;

fn main() {
    bt::alloc_stats::single_malloc_arena();
    bt::cli::env::main("bt-fetch", bt::cli::fetch::run)
}

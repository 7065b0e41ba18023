//! A counting global allocator: the system allocator plus two atomics, the
//! bytes live on the heap and their peak. A program opts in with
//!
//! ```ignore
//! #[global_allocator]
//! static HEAP: bt::alloc_stats::Counting = bt::alloc_stats::Counting;
//! ```
//!
//! (bt-fetch does, for the `heap_bytes` of its `progress` event). RSS alone
//! cannot tell a leak from malloc keeping freed pages, arena fragmentation
//! or how many peers happen to be connected; the live byte count is exact,
//! so a soak can check it for growth. The cost is two relaxed atomic
//! operations per allocation and one per free.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting what it hands out.
pub struct Counting;

fn grew(bytes: usize) {
    let live = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(live, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; the counters only
// observe sizes and never touch the memory.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = System.alloc_zeroed(layout);
        if !p.is_null() {
            grew(layout.size());
        }
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout);
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = System.realloc(ptr, layout, new_size);
        if !p.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        p
    }
}

/// Heap figures, when the program installed `Counting` (else `None`: the
/// peak of a counting allocator is never 0 once `main` runs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeapStats {
    /// Bytes allocated and not yet freed.
    pub live: usize,
    /// The most `live` has been since the start.
    pub peak: usize,
}

pub fn heap_stats() -> Option<HeapStats> {
    let peak = PEAK.load(Ordering::Relaxed);
    (peak > 0).then(|| HeapStats {
        live: LIVE.load(Ordering::Relaxed),
        peak,
    })
}

/// Makes glibc's malloc serve every thread from one arena. Call it first
/// thing in `main`, before any thread starts.
///
/// Why: by default each thread that allocates gets an arena of its own.
/// bt-fetch's disk threads allocate upload read buffers (up to 256 KiB)
/// and channel blocks that the event loop frees; memory freed into a
/// disk thread's arena is kept there, fragmented, and RSS crept up by
/// ~40 % over two minutes of churn while the live heap stayed flat at
/// 1.3 MiB (docs/results/soak, REPORT "Hostile peers and churn"). With
/// one arena RSS stayed flat. The threads that share it allocate rarely
/// (a buffer per disk read at most), so the lock costs nothing visible.
pub fn single_malloc_arena() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable; called before other threads
    // exist, so no allocation races with it.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Gives the free pages malloc keeps back to the system (glibc
/// `malloc_trim`): after a busy spell, RSS then falls to what is in use.
pub fn release_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases memory malloc holds free.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_allocations_frees_and_reallocs() {
        // Driven through the trait directly: the test binary's own
        // allocator is the system one, so only these calls move the
        // counters (and the tests in this module are the only callers).
        let a = Counting;
        let layout = Layout::from_size_align(1000, 8).unwrap();
        let before = LIVE.load(Ordering::Relaxed);
        unsafe {
            let p = a.alloc(layout);
            assert!(!p.is_null());
            assert_eq!(LIVE.load(Ordering::Relaxed), before + 1000);
            let p = a.realloc(p, layout, 3000);
            assert_eq!(LIVE.load(Ordering::Relaxed), before + 3000);
            let bigger = Layout::from_size_align(3000, 8).unwrap();
            let p = a.realloc(p, bigger, 500);
            assert_eq!(LIVE.load(Ordering::Relaxed), before + 500);
            a.dealloc(p, Layout::from_size_align(500, 8).unwrap());
        }
        assert_eq!(LIVE.load(Ordering::Relaxed), before);
        let stats = heap_stats().expect("counted once");
        assert!(stats.peak >= 3000, "{stats:?}");
    }
}

//! Stopping long-running programs cleanly: SIGINT and SIGTERM set a flag
//! that the program polls, so that it can announce `stopped`, flush what it
//! has and exit 0. A second signal acts as usual (ends the process), so a
//! program stuck somewhere can still be interrupted.

use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
/// The signal that asked to stop (for messages).
static SIGNAL: AtomicI32 = AtomicI32::new(0);

extern "C" fn on_signal(sig: libc::c_int) {
    SIGNAL.store(sig, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

/// Installs the handlers for SIGINT and SIGTERM.
pub fn install_stop_handlers() {
    // SAFETY: the handler only stores to an atomic, which is
    // async-signal-safe; the sigaction structure is fully initialised.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as usize;
        sa.sa_flags = libc::SA_RESTART | libc::SA_RESETHAND;
        libc::sigemptyset(&mut sa.sa_mask);
        for sig in [libc::SIGINT, libc::SIGTERM] {
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                log::warn!("cannot install a handler for signal {sig}");
            }
        }
    }
}

/// Whether SIGINT or SIGTERM has arrived since the handlers were installed.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// What asked to stop ("SIGINT", "SIGTERM", "lost output"), if anything.
pub fn stop_cause() -> Option<&'static str> {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGINT => Some("SIGINT"),
        libc::SIGTERM => Some("SIGTERM"),
        LOST_OUTPUT => Some("lost output"),
        _ => Some("a signal"),
    }
}

/// Not a signal number: marks a stop asked for by [`request_stop`].
const LOST_OUTPUT: i32 = -1;

/// Asks the program to stop as SIGINT would, because its output is lost
/// (stdout closed): nobody would see the rest.
pub fn request_stop() {
    SIGNAL.store(LOST_OUTPUT, Ordering::SeqCst);
    STOP.store(true, Ordering::SeqCst);
}

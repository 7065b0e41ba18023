//! Stopping long-running programs cleanly: SIGINT and SIGTERM set a flag
//! that the program polls, so that it can announce `stopped`, flush what it
//! has and exit 0. A second signal acts as usual (ends the process), so a
//! program stuck somewhere can still be interrupted.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
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

/// Asks the program to stop as SIGINT would (e.g. when its output is lost).
pub fn request_stop() {
    STOP.store(true, Ordering::SeqCst);
}

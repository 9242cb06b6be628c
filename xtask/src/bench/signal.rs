//! Ctrl-C and SIGTERM: recorded, not fatal, so the bench unwinds and its Drop guards remove
//! the namespaces and stop the processes it started.
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::bail;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

pub fn install() {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe {
            libc::signal(sig, on_signal as *const () as libc::sighandler_t);
        }
    }
}

/// An error once a stop was asked for; called between steps and in every wait loop.
pub fn check() -> anyhow::Result<()> {
    if STOP.load(Ordering::SeqCst) {
        bail!("interrupted: cleaning up");
    }
    Ok(())
}

//! hive fix: fault points for regression tests, never set in production.
//!
//! Two races of the published crate depend on which of two tasks runs first, which a loaded
//! 2-core machine decides now and then. A pause at the right place makes the order certain, so
//! a test reproduces them every time:
//! - the final SESSION_SETUP response reaches the connection's worker before the set-up has
//!   installed the keys that verify it (they hash the final request, so they exist only once
//!   it went out): [`pause_before_installing_setup_keys`];
//! - an async request's interim and final responses both arrive before the caller waits for
//!   them: [`pause_before_awaiting_replies`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

static FINAL_SETUP_PAUSE_US: AtomicU64 = AtomicU64::new(0);

/// Every session set-up of this process waits `pause` after sending its final request and
/// before installing its signing keys. `Duration::ZERO` (the default) turns it off.
pub fn pause_before_installing_setup_keys(pause: Duration) {
    FINAL_SETUP_PAUSE_US.store(pause.as_micros() as u64, Ordering::Relaxed);
}

#[maybe_async::maybe_async]
pub(crate) async fn final_setup_pause() {
    pause_for(FINAL_SETUP_PAUSE_US.load(Ordering::Relaxed)).await;
}

#[maybe_async::maybe_async]
async fn pause_for(us: u64) {
    if us == 0 {
        return;
    }
    #[cfg(feature = "async")]
    tokio::time::sleep(Duration::from_micros(us)).await;
    #[cfg(not(feature = "async"))]
    std::thread::sleep(Duration::from_micros(us));
}

static REPLY_PAUSE_US: AtomicU64 = AtomicU64::new(0);

/// Every wait for a reply in this process starts `pause` late, so replies pile up in the
/// worker first. `Duration::ZERO` (the default) turns it off.
pub fn pause_before_awaiting_replies(pause: Duration) {
    REPLY_PAUSE_US.store(pause.as_micros() as u64, Ordering::Relaxed);
}

#[maybe_async::maybe_async]
pub(crate) async fn reply_pause() {
    pause_for(REPLY_PAUSE_US.load(Ordering::Relaxed)).await;
}

//! hive fix: a fault point for regression tests, never set in production.
//!
//! The final SESSION_SETUP response can reach the connection's worker before the set-up has
//! installed the keys that verify it (they hash the final request, so they exist only once it
//! went out). That happens ~1 in 900 connections on a loaded 2-core machine. Pausing the
//! set-up between sending that request and installing its keys makes the order certain, so a
//! test can prove the response is still verified.

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
    let us = FINAL_SETUP_PAUSE_US.load(Ordering::Relaxed);
    if us == 0 {
        return;
    }
    #[cfg(feature = "async")]
    tokio::time::sleep(Duration::from_micros(us)).await;
    #[cfg(not(feature = "async"))]
    std::thread::sleep(Duration::from_micros(us));
}

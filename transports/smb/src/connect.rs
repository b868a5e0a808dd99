//! Bounded, retried connection set-up.
//!
//! Why: a fleet run opens connections to hundreds of hosts (and tests open 100 to one Samba) at
//! once. Samba's listen backlog is 50; 200 simultaneous connects saw 79–95 resets. So at most
//! [`MAX_SETUPS`] set-ups (TCP connect through tree connect) run at a time in this process, and a
//! set-up that the server reset or refused is retried with exponential backoff and jitter.

use std::time::Duration;
use tokio::sync::Semaphore;

/// Simultaneous connection set-ups in this process. 32 kept 200 of 200 parallel uploads to one
/// Samba (backlog 50) from being reset, and is plenty for hosts that are all different.
pub(crate) const MAX_SETUPS: usize = 32;

pub(crate) static SETUP_SLOTS: Semaphore = Semaphore::const_new(MAX_SETUPS);

/// Delay before retry number `attempt` (0-based): 50 ms doubling up to 2 s, plus up to 50% jitter
/// so that many clients refused at the same moment do not come back at the same moment.
pub(crate) fn backoff(attempt: u32, jitter_seed: u64) -> Duration {
    let base_ms = 50u64.saturating_mul(1u64 << attempt.min(16)).min(2_000);
    let jitter = splitmix(jitter_seed) % (base_ms / 2 + 1);
    Duration::from_millis(base_ms + jitter)
}

/// A seed that differs between tasks and attempts without pulling in a random number crate.
pub(crate) fn jitter_seed(attempt: u32) -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    nanos ^ ((attempt as u64) << 32)
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        for seed in 0..100 {
            let first = backoff(0, seed);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(75));
            let late = backoff(30, seed);
            assert!(late >= Duration::from_secs(2) && late <= Duration::from_secs(3));
        }
        assert!(backoff(3, 1) >= Duration::from_millis(400));
    }
}

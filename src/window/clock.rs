//! The clock windows are judged by: the system's, or a simulated one tests advance at will, so a
//! test can cross a weekly window's end without waiting for Saturday.

use std::sync::Mutex;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::remote::BoxFuture;

/// Now, and waiting until a given instant of this clock.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Resolves once `now() >= at` (a simulated clock may get there by being advanced).
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()>;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let left = at.duration_since(Timestamp::now());
        let left = Duration::try_from(left).unwrap_or(Duration::ZERO);
        Box::pin(tokio::time::sleep(left))
    }
}

/// A clock that runs with the system's but from a chosen start, and can be moved forward: a
/// test starts it at Saturday 05:59:50 to see a 02:00-06:00 window close ten seconds later.
#[derive(Debug)]
pub struct SimClock {
    offset: Mutex<SignedDuration>,
}

impl SimClock {
    /// A clock that reads `start` now and runs on from there.
    pub fn starting_at(start: Timestamp) -> SimClock {
        SimClock {
            offset: Mutex::new(start.duration_since(Timestamp::now())),
        }
    }
    /// Move the clock forward by `by`.
    pub fn advance(&self, by: SignedDuration) {
        let mut o = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *o = o.saturating_add(by);
    }
    /// Set the clock to `to` (forward or back).
    pub fn set(&self, to: Timestamp) {
        let mut o = self.offset.lock().unwrap_or_else(|p| p.into_inner());
        *o = to.duration_since(Timestamp::now());
    }
    fn offset(&self) -> SignedDuration {
        *self.offset.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Clock for std::sync::Arc<SimClock> {
    fn now(&self) -> Timestamp {
        Timestamp::now()
            .checked_add(self.offset())
            .unwrap_or(Timestamp::MAX)
    }
    fn sleep_until(&self, at: Timestamp) -> BoxFuture<'static, ()> {
        let me = self.clone();
        Box::pin(async move {
            // Polled, since an advance may bring `at` closer at any moment.
            while me.now() < at {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn sim_clock_starts_where_told_and_advances() {
        let start: Timestamp = "2026-12-05T05:59:50Z".parse().unwrap();
        let c = Arc::new(SimClock::starting_at(start));
        let d = c.now().duration_since(start);
        assert!(
            d >= SignedDuration::ZERO && d < SignedDuration::from_secs(5),
            "{d}"
        );
        c.advance(SignedDuration::from_hours(1));
        assert!(c.now() >= start + SignedDuration::from_hours(1));
        c.set(start);
        assert!(c.now().duration_since(start) < SignedDuration::from_secs(5));
    }
}

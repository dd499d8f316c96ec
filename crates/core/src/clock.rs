//! Where the services read the time. Every operation asks its [`Clock`] rather than the
//! wall clock, so a test can move time forward instead of sleeping past a deadline.

use std::sync::{Arc, Mutex};

use time::OffsetDateTime;

/// The current time, in UTC, to whole microseconds (the precision both databases keep).
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> OffsetDateTime;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        sesame_domain::now()
    }
}

/// A clock that only moves when told to, for tests. Clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<OffsetDateTime>>);

impl ManualClock {
    /// A clock standing at the current wall-clock time.
    pub fn new() -> Self {
        Self::at(sesame_domain::now())
    }

    pub fn at(time: OffsetDateTime) -> Self {
        Self(Arc::new(Mutex::new(time)))
    }

    /// Moves the clock forward (or, with a negative duration, back).
    pub fn advance(&self, by: impl TryInto<time::Duration>) {
        let by = by.try_into().unwrap_or(time::Duration::ZERO);
        let mut now = self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *now += by;
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The clock the services share.
pub type SharedClock = Arc<dyn Clock>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told_and_clones_share_it() {
        let clock = ManualClock::new();
        let copy = clock.clone();
        let start = clock.now();
        assert_eq!(clock.now(), start);
        copy.advance(std::time::Duration::from_secs(90));
        assert_eq!(clock.now() - start, time::Duration::seconds(90));
    }
}

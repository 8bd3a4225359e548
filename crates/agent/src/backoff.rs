//! Capped, jittered exponential back-off for retries.

use std::hash::BuildHasher;
use std::time::Duration;

/// First delay of a retry sequence.
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(100);
/// Longest delay between retries.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5);

/// Delays that double from `min` up to `max`, each jittered to between half and all of it
/// so that many agents retrying against a recovering server do not arrive together.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    pub(crate) fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max,
            next: min,
        }
    }

    /// The delay before the next try.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let base = self.next;
        self.next = (base * 2).min(self.max);
        jitter(base)
    }

    /// Starts over after a success.
    pub(crate) fn reset(&mut self) {
        self.next = self.min;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(RETRY_MIN, RETRY_MAX)
    }
}

fn jitter(base: Duration) -> Duration {
    let half = base / 2;
    let span = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    // A fresh `RandomState` is randomly keyed, which is plenty of randomness for jitter and
    // saves a dependency on a random number generator.
    let noise = std::collections::hash_map::RandomState::new().hash_one(span);
    half + Duration::from_nanos(noise % span.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_jitter() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(800));
        let bases = [100, 200, 400, 800, 800];
        for base in bases {
            let d = b.next_delay();
            let base = Duration::from_millis(base);
            assert!(
                d >= base / 2 && d <= base,
                "{d:?} not within [{:?}, {base:?}]",
                base / 2
            );
        }
        b.reset();
        assert!(b.next_delay() <= Duration::from_millis(100));
    }
}

//! The attempts an agent holds: what heartbeats renew, what fills the slots.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use baton_api::AttemptRef;
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::stop::{Stop, StopReason};

/// Every attempt from its claim until its report is settled.
pub(crate) struct Held {
    slots: u32,
    attempts: Mutex<HashMap<i64, Entry>>,
    freed: Notify,
}

struct Entry {
    fence: i64,
    stop: Stop,
    /// When the lease was last known renewed (the claim, or a heartbeat's send time).
    renewed: Instant,
    /// The work is over: nothing left to kill when the lease runs out.
    finished: bool,
}

impl Held {
    pub(crate) fn new(slots: u32) -> Held {
        Held {
            slots,
            attempts: Mutex::new(HashMap::new()),
            freed: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<i64, Entry>> {
        // Nothing panics while holding the lock; should it, the map is still consistent.
        self.attempts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a claimed attempt; false when it is already held.
    pub(crate) fn insert(&self, attempt: AttemptRef, stop: Stop, now: Instant) -> bool {
        let mut map = self.lock();
        if map.contains_key(&attempt.attempt_id) {
            return false;
        }
        map.insert(
            attempt.attempt_id,
            Entry {
                fence: attempt.fence,
                stop,
                renewed: now,
                finished: false,
            },
        );
        true
    }

    /// Lets go of an attempt and wakes a claim waiting for a free slot.
    pub(crate) fn remove(&self, attempt_id: i64) {
        if self.lock().remove(&attempt_id).is_some() {
            self.freed.notify_one();
        }
    }

    /// Resolves after an attempt was let go (possibly before this call: one wake-up is kept).
    pub(crate) async fn freed(&self) {
        self.freed.notified().await;
    }

    pub(crate) fn free_slots(&self) -> u32 {
        let used = u32::try_from(self.lock().len()).unwrap_or(u32::MAX);
        self.slots.saturating_sub(used)
    }

    /// The attempts to renew.
    pub(crate) fn refs(&self) -> Vec<AttemptRef> {
        self.lock()
            .iter()
            .map(|(&attempt_id, e)| AttemptRef {
                attempt_id,
                fence: e.fence,
            })
            .collect()
    }

    /// Records a successful renewal of `refs` sent at `at`.
    pub(crate) fn renewed(&self, refs: &[AttemptRef], at: Instant) {
        let mut map = self.lock();
        for r in refs {
            if let Some(e) = map.get_mut(&r.attempt_id)
                && e.fence == r.fence
                && e.renewed < at
            {
                e.renewed = at;
            }
        }
    }

    pub(crate) fn mark_finished(&self, attempt_id: i64) {
        if let Some(e) = self.lock().get_mut(&attempt_id) {
            e.finished = true;
        }
    }

    /// Stops one attempt; false when it is not held.
    pub(crate) fn stop(&self, attempt_id: i64, reason: StopReason) -> bool {
        match self.lock().get(&attempt_id) {
            Some(e) => {
                e.stop.stop(reason);
                true
            }
            None => false,
        }
    }

    /// Whether an attempt is held and already asked to stop.
    pub(crate) fn is_stopping(&self, attempt_id: i64) -> bool {
        self.lock()
            .get(&attempt_id)
            .is_some_and(|e| e.stop.reason().is_some())
    }

    /// Stops every attempt still running.
    pub(crate) fn stop_all(&self, reason: StopReason) -> usize {
        let map = self.lock();
        let mut n = 0;
        for e in map.values().filter(|e| !e.finished) {
            e.stop.stop(reason);
            n += 1;
        }
        n
    }

    /// Stops running attempts whose lease ran out at `now`; answers when the next one would.
    pub(crate) fn expire(&self, now: Instant, lease: Duration) -> Option<Instant> {
        let map = self.lock();
        let mut next: Option<Instant> = None;
        for (id, e) in map.iter() {
            if e.finished || e.stop.reason().is_some() {
                continue;
            }
            let deadline = e.renewed + lease;
            if deadline <= now {
                tracing::warn!(
                    attempt = id,
                    "lease not renewed in time; killing the attempt"
                );
                e.stop.stop(StopReason::LeaseLost);
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
            }
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(attempt_id: i64, fence: i64) -> AttemptRef {
        AttemptRef { attempt_id, fence }
    }

    #[tokio::test]
    async fn unrenewed_running_attempts_are_stopped_as_lease_lost() {
        let held = Held::new(3);
        let t0 = Instant::now();
        let (a, b, c) = (Stop::new(), Stop::new(), Stop::new());
        assert!(held.insert(r(1, 1), a.clone(), t0));
        assert!(held.insert(r(2, 1), b.clone(), t0));
        assert!(held.insert(r(3, 1), c.clone(), t0));
        assert!(!held.insert(r(3, 1), Stop::new(), t0));
        assert_eq!(held.free_slots(), 0);
        let lease = Duration::from_secs(10);
        held.renewed(&[r(2, 1)], t0 + Duration::from_secs(5));
        held.mark_finished(3);
        let next = held.expire(t0 + lease, lease);
        assert_eq!(a.reason(), Some(StopReason::LeaseLost));
        assert_eq!(b.reason(), None);
        assert_eq!(c.reason(), None, "a finished attempt has nothing to kill");
        assert_eq!(next, Some(t0 + Duration::from_secs(15)));
        held.remove(1);
        assert_eq!(held.free_slots(), 1);
    }

    #[tokio::test]
    async fn a_renewal_with_an_old_fence_does_not_count() {
        let held = Held::new(1);
        let t0 = Instant::now();
        let s = Stop::new();
        held.insert(r(1, 2), s.clone(), t0);
        held.renewed(&[r(1, 1)], t0 + Duration::from_secs(5));
        held.expire(t0 + Duration::from_secs(10), Duration::from_secs(10));
        assert_eq!(s.reason(), Some(StopReason::LeaseLost));
    }
}

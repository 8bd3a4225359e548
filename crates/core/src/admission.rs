//! Workflow concurrency limits (`concurrency: {limit, on_conflict}`): whether a new run of a
//! limited workflow starts, waits for a place or is canceled, which queued run a freed
//! place goes to, and which runs `cancel_running` stops to make room.
//!
//! A run *holds a place* while it is active (`pending` or `running`), including while it is
//! being canceled: its processes may still run, and the limit promises they never overlap
//! more than `limit` runs. A run *waits* for a place while it is queued (`created`). The
//! stores count both per workflow name (across versions) and ask these functions.

use crate::workflow::{Concurrency, OnConflict};

/// The bounds of a run's priority, the same for the file's `priority` and for
/// `baton run --priority`.
pub const PRIORITY_RANGE: std::ops::RangeInclusive<i32> = -1_000_000..=1_000_000;

/// A workflow's runs as its limit sees them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Places {
    /// Runs holding a place (`pending` or `running`), those being canceled included.
    pub active: u32,
    /// Of those, runs asked to cancel.
    pub canceling: u32,
    /// Runs waiting for a place (`created`).
    pub queued: u32,
}

impl Places {
    /// Runs that hold or wait for a place and are not on their way out: the ones
    /// `cancel_running` may stop.
    pub fn claimants(&self) -> u32 {
        self.active.saturating_sub(self.canceling) + self.queued
    }
}

/// What a new run of a limited workflow does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// It takes a place and starts at once.
    Start,
    /// It waits for a place (`created`), after asking the `preempt` oldest claimants (see
    /// [`Places::claimants`]) to cancel (`cancel_running`; 0 otherwise).
    Queue {
        /// How many of the oldest claimants to cancel.
        preempt: u32,
    },
    /// It is canceled at once (`cancel_new`).
    Cancel,
}

/// Decides a new run's entry from the workflow's runs before it.
///
/// It starts only while fewer than `limit` runs hold or wait for a place, so a queue is
/// never jumped. `cancel_running` makes the newest run win: the oldest claimants, queued
/// ones included, are stopped until it fits, and it starts once they have stopped (never
/// beside them).
pub fn admit_new(c: Concurrency, places: Places) -> Admission {
    if places.active + places.queued < c.limit {
        return Admission::Start;
    }
    match c.on_conflict {
        OnConflict::Queue => Admission::Queue { preempt: 0 },
        OnConflict::CancelNew => Admission::Cancel,
        OnConflict::CancelRunning => Admission::Queue {
            preempt: to_preempt(c.limit, places, 1),
        },
    }
}

/// How many of the oldest claimants `cancel_running` stops so that the rest, plus
/// `incoming` new runs, fit in `limit`.
pub fn to_preempt(limit: u32, places: Places, incoming: u32) -> u32 {
    (places.claimants() + incoming).saturating_sub(limit)
}

/// Whether a queued run whose version allows `limit` active runs (`None`: no limit) may
/// start while `active` runs hold a place.
pub fn admits_queued(limit: Option<u32>, active: u32) -> bool {
    limit.is_none_or(|l| active < l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(limit: u32, on_conflict: OnConflict) -> Concurrency {
        Concurrency { limit, on_conflict }
    }

    fn p(active: u32, canceling: u32, queued: u32) -> Places {
        Places {
            active,
            canceling,
            queued,
        }
    }

    #[test]
    fn a_run_starts_while_places_are_free_and_nobody_waits() {
        for policy in [
            OnConflict::Queue,
            OnConflict::CancelNew,
            OnConflict::CancelRunning,
        ] {
            assert_eq!(admit_new(c(1, policy), p(0, 0, 0)), Admission::Start);
            assert_eq!(admit_new(c(2, policy), p(1, 0, 0)), Admission::Start);
        }
        // A free place with runs already waiting goes to them first.
        assert_eq!(
            admit_new(c(2, OnConflict::Queue), p(1, 0, 1)),
            Admission::Queue { preempt: 0 }
        );
    }

    #[test]
    fn a_full_workflow_queues_cancels_or_preempts_by_policy() {
        assert_eq!(
            admit_new(c(1, OnConflict::Queue), p(1, 0, 0)),
            Admission::Queue { preempt: 0 }
        );
        assert_eq!(
            admit_new(c(1, OnConflict::CancelNew), p(1, 0, 0)),
            Admission::Cancel
        );
        assert_eq!(
            admit_new(c(1, OnConflict::CancelRunning), p(1, 0, 0)),
            Admission::Queue { preempt: 1 }
        );
        assert_eq!(
            admit_new(c(2, OnConflict::CancelRunning), p(2, 0, 0)),
            Admission::Queue { preempt: 1 }
        );
    }

    #[test]
    fn runs_already_canceling_are_not_stopped_again_but_still_hold_their_place() {
        // The one active run is on its way out: nothing more to stop, yet the new run
        // waits until it has stopped.
        assert_eq!(
            admit_new(c(1, OnConflict::CancelRunning), p(1, 1, 0)),
            Admission::Queue { preempt: 0 }
        );
        // An older run waiting for the place is stopped too: the newest run wins.
        assert_eq!(
            admit_new(c(1, OnConflict::CancelRunning), p(1, 1, 1)),
            Admission::Queue { preempt: 1 }
        );
    }

    #[test]
    fn preemption_leaves_exactly_the_limit() {
        for limit in 1..5 {
            for active in 0..6 {
                for canceling in 0..=active {
                    for queued in 0..4 {
                        let places = p(active, canceling, queued);
                        let k = to_preempt(limit, places, 1);
                        assert!(places.claimants() + 1 - k <= limit);
                        assert!(k == 0 || places.claimants() + 1 - k == limit);
                    }
                }
            }
        }
    }

    #[test]
    fn queued_runs_start_below_their_own_limit() {
        assert!(admits_queued(Some(2), 1));
        assert!(!admits_queued(Some(2), 2));
        assert!(admits_queued(None, 100));
    }
}

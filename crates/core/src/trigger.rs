//! Trigger rules (`when`): whether a waiting node becomes ready, keeps waiting or is
//! skipped, from what its upstream nodes have done so far.
//!
//! Both the stores and [`crate::RunMachine`] keep, per waiting node, counters of its needs
//! (not yet ended, ended without success, ended `failure`/`error`) and ask [`gate`] after
//! every change, so a node's fate costs O(1) per edge whatever the rule.

use crate::state::NodeState;
use crate::workflow::When;

/// What a node's needs have done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Upstream {
    /// How many needs the node has.
    pub needs: u32,
    /// Needs that have not ended yet.
    pub remaining: u32,
    /// Needs that ended without success (failure, error, canceled, skipped).
    pub bad: u32,
    /// Of those, needs that ended `failure` or `error`.
    pub failed: u32,
}

impl Upstream {
    /// Needs that succeeded.
    pub fn succeeded(&self) -> u32 {
        self.needs
            .saturating_sub(self.remaining)
            .saturating_sub(self.bad)
    }

    /// Counts one need ending in `state` (which must be terminal).
    pub fn end(&mut self, state: NodeState) {
        self.remaining = self.remaining.saturating_sub(1);
        let (bad, failed) = counts_as(state);
        self.bad += u32::from(bad);
        self.failed += u32::from(failed);
    }
}

/// How a need ending in `state` counts: `(bad, failed)`.
pub fn counts_as(state: NodeState) -> (bool, bool) {
    match state {
        NodeState::Success => (false, false),
        NodeState::Failure | NodeState::Error => (true, true),
        _ => (true, false),
    }
}

/// What a waiting node does now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Its rule may still be met: keep waiting.
    Wait,
    /// Its rule is met: ready to be claimed.
    Ready,
    /// Its rule can no longer be met: `skipped`.
    Skip,
}

/// Decides a waiting node's fate under `when` from its needs' counters.
///
/// A node without needs is ready under every rule (the parser only lets `all_success` stand
/// on a node without needs; a re-run may leave any rule with nothing left to wait for, and
/// then the counters decide).
pub fn gate(when: When, up: Upstream) -> Gate {
    let ok = up.succeeded();
    match when {
        When::AllSuccess if up.bad > 0 => Gate::Skip,
        When::AllSuccess | When::AllDone if up.remaining == 0 => Gate::Ready,
        When::AllSuccess | When::AllDone => Gate::Wait,
        When::AnySuccess if ok > 0 || up.needs == 0 => Gate::Ready,
        When::AnyFailure if up.failed > 0 || up.needs == 0 => Gate::Ready,
        When::AnySuccess | When::AnyFailure if up.remaining == 0 => Gate::Skip,
        When::AnySuccess | When::AnyFailure => Gate::Wait,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn up(needs: u32, remaining: u32, bad: u32, failed: u32) -> Upstream {
        Upstream {
            needs,
            remaining,
            bad,
            failed,
        }
    }

    #[test]
    fn all_success_skips_on_the_first_bad_need() {
        assert_eq!(gate(When::AllSuccess, up(2, 1, 0, 0)), Gate::Wait);
        assert_eq!(gate(When::AllSuccess, up(2, 0, 0, 0)), Gate::Ready);
        assert_eq!(gate(When::AllSuccess, up(2, 1, 1, 0)), Gate::Skip);
        assert_eq!(gate(When::AllSuccess, up(0, 0, 0, 0)), Gate::Ready);
    }

    #[test]
    fn all_done_waits_for_every_need_whatever_it_did() {
        assert_eq!(gate(When::AllDone, up(3, 1, 2, 1)), Gate::Wait);
        assert_eq!(gate(When::AllDone, up(3, 0, 3, 1)), Gate::Ready);
    }

    #[test]
    fn any_success_needs_one_success() {
        assert_eq!(gate(When::AnySuccess, up(3, 2, 0, 0)), Gate::Ready);
        assert_eq!(gate(When::AnySuccess, up(3, 1, 2, 2)), Gate::Wait);
        assert_eq!(gate(When::AnySuccess, up(3, 0, 3, 1)), Gate::Skip);
    }

    #[test]
    fn any_failure_needs_a_failure_or_error_not_a_skip() {
        assert_eq!(gate(When::AnyFailure, up(2, 1, 1, 1)), Gate::Ready);
        assert_eq!(gate(When::AnyFailure, up(2, 1, 1, 0)), Gate::Wait);
        assert_eq!(gate(When::AnyFailure, up(2, 0, 2, 0)), Gate::Skip);
        assert_eq!(gate(When::AnyFailure, up(2, 0, 0, 0)), Gate::Skip);
    }

    #[test]
    fn counters_follow_ends() {
        let mut u = up(3, 3, 0, 0);
        u.end(NodeState::Success);
        u.end(NodeState::Skipped);
        u.end(NodeState::Error);
        assert_eq!(u, up(3, 0, 2, 1));
        assert_eq!(u.succeeded(), 1);
    }
}

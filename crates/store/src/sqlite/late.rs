//! Output (log chunks, artifacts) that arrives after its attempt ended.
//!
//! An agent flushes the last output of an attempt just after its report, so output of an
//! attempt its agent ended itself is still taken, until a newer attempt of the node opens.
//! An attempt the server ended for the agent (reaped as lost) is no longer the agent's:
//! whatever it still sends is refused, so the new attempt's output never mixes with it.

use baton_core::{AttemptState, Reason};

/// Whether output for an attempt in this state is still accepted from its owner.
///
/// `current` is true while the attempt is its node's newest.
pub(crate) fn takes_output(status: AttemptState, reason: Option<Reason>, current: bool) -> bool {
    !status.is_terminal() || (current && reason != Some(Reason::Lost))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reaped_or_superseded_attempts_take_no_output() {
        assert!(takes_output(AttemptState::Running, None, true));
        assert!(takes_output(AttemptState::Pending, None, false));
        assert!(takes_output(
            AttemptState::Failure,
            Some(Reason::Exit),
            true
        ));
        assert!(!takes_output(
            AttemptState::Failure,
            Some(Reason::Exit),
            false
        ));
        assert!(!takes_output(AttemptState::Error, Some(Reason::Lost), true));
    }
}

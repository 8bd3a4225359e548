//! Table tests for the pure scheduling decisions: `decide_attempt_end`, `backoff_delay_ms`
//! and `run_result`.

use baton_core::{
    AttemptDecision, AttemptState, NodeState, Outcome, Reason, RetryOn, RetryPolicy, RunState,
    backoff_delay_ms, decide_attempt_end, run_result,
};

fn policy(attempts: u32, on: &[RetryOn]) -> RetryPolicy {
    RetryPolicy {
        attempts,
        on: on.to_vec(),
        ..RetryPolicy::default()
    }
}

fn retry(delay_ms: u64) -> AttemptDecision {
    AttemptDecision::Retry { delay_ms }
}

fn finish(state: NodeState) -> AttemptDecision {
    AttemptDecision::Finish(state)
}

/// Every way an attempt can end, with a name for failure messages.
fn outcomes() -> Vec<(&'static str, Outcome)> {
    vec![
        ("exit 0", Outcome::exited(0)),
        ("exit 1", Outcome::exited(1)),
        ("exit 137", Outcome::exited(137)),
        ("setup", Outcome::error(Reason::Setup)),
        ("timeout", Outcome::error(Reason::Timeout)),
        ("lost", Outcome::error(Reason::Lost)),
        ("no agent", Outcome::error(Reason::NoAgent)),
        ("user cancel", Outcome::canceled(Reason::Canceled)),
        ("shutdown", Outcome::canceled(Reason::Shutdown)),
    ]
}

fn all_policies() -> Vec<RetryPolicy> {
    use RetryOn::*;
    let mut out = vec![RetryPolicy::default()];
    for attempts in [0, 1, 2, 3, 5] {
        for on in [
            &[][..],
            &[Failure],
            &[Error],
            &[Timeout],
            &[Lost],
            &[Failure, Error],
            &[Failure, Error, Timeout, Lost],
        ] {
            for lost_attempts in [0, 2] {
                out.push(RetryPolicy {
                    lost_attempts,
                    ..policy(attempts, on)
                });
            }
        }
    }
    out
}

#[test]
fn attempt_end_table() {
    use NodeState as N;
    use RetryOn::*;
    let default = RetryPolicy::default();
    let fail_err = policy(3, &[Failure, Error]);
    let timeout = policy(2, &[Timeout]);
    let lost_listed = policy(3, &[Lost]);
    let no_lost = RetryPolicy {
        lost_attempts: 0,
        ..RetryPolicy::default()
    };
    let ok = Outcome::exited(0);
    let fail = Outcome::exited(1);
    let setup = Outcome::error(Reason::Setup);
    let tmo = Outcome::error(Reason::Timeout);
    let lost = Outcome::error(Reason::Lost);
    let no_agent = Outcome::error(Reason::NoAgent);
    let user = Outcome::canceled(Reason::Canceled);
    let shutdown = Outcome::canceled(Reason::Shutdown);

    // (policy, attempt, previous_lost, outcome, cancel_requested, expected); jitter is 1.0,
    // so a retry's delay is the full back-off.
    let rows: Vec<(&RetryPolicy, u32, u32, Outcome, bool, AttemptDecision)> = vec![
        // Default policy: no retry on failure, error or timeout; two more tries when lost.
        (&default, 1, 0, ok, false, finish(N::Success)),
        (&default, 1, 0, fail, false, finish(N::Failure)),
        (&default, 1, 0, setup, false, finish(N::Error)),
        (&default, 1, 0, tmo, false, finish(N::Error)),
        (&default, 1, 0, no_agent, false, finish(N::Error)),
        (&default, 1, 0, user, false, finish(N::Canceled)),
        (&default, 1, 0, lost, false, retry(0)),
        (&default, 2, 1, lost, false, retry(0)),
        (&default, 3, 2, lost, false, finish(N::Error)),
        (&default, 1, 0, shutdown, false, retry(0)),
        (&default, 2, 1, shutdown, false, retry(0)),
        (&default, 3, 2, shutdown, false, finish(N::Error)),
        // Lost budget is its own: a lost attempt after a failure-free history still retries.
        (&default, 5, 1, lost, false, retry(0)),
        (&no_lost, 1, 0, lost, false, finish(N::Error)),
        (&no_lost, 1, 0, shutdown, false, finish(N::Error)),
        // Cancel forbids any retry; a canceled attempt ends canceled, a lost one errored.
        (&default, 1, 0, ok, true, finish(N::Success)),
        (&default, 1, 0, fail, true, finish(N::Failure)),
        (&default, 1, 0, lost, true, finish(N::Error)),
        (&default, 1, 0, shutdown, true, finish(N::Canceled)),
        (&default, 1, 0, user, true, finish(N::Canceled)),
        (&fail_err, 1, 0, fail, true, finish(N::Failure)),
        (&fail_err, 1, 0, setup, true, finish(N::Error)),
        // `on: [failure, error]` with three attempts: backoff doubles per attempt.
        (&fail_err, 1, 0, fail, false, retry(1_000)),
        (&fail_err, 2, 0, fail, false, retry(2_000)),
        (&fail_err, 3, 0, fail, false, finish(N::Failure)),
        (&fail_err, 4, 0, fail, false, finish(N::Failure)),
        (&fail_err, 1, 0, setup, false, retry(1_000)),
        (&fail_err, 2, 0, setup, false, retry(2_000)),
        (&fail_err, 3, 0, setup, false, finish(N::Error)),
        (&fail_err, 1, 0, tmo, false, finish(N::Error)),
        (&fail_err, 1, 0, no_agent, false, finish(N::Error)),
        (&fail_err, 1, 0, ok, false, finish(N::Success)),
        (&fail_err, 1, 0, user, false, finish(N::Canceled)),
        // Lost attempts do not use up `attempts` unless `on` names `lost`.
        (&fail_err, 2, 0, lost, false, retry(0)),
        (&fail_err, 3, 1, fail, false, retry(2_000)),
        (&fail_err, 4, 1, fail, false, finish(N::Failure)),
        (&fail_err, 5, 2, fail, false, finish(N::Failure)),
        // Timeout retried only when listed.
        (&timeout, 1, 0, tmo, false, retry(1_000)),
        (&timeout, 2, 0, tmo, false, finish(N::Error)),
        (&timeout, 1, 0, fail, false, finish(N::Failure)),
        (&timeout, 1, 0, setup, false, finish(N::Error)),
        // `on: [lost]`: `attempts` governs lost agents, with back-off; lost_attempts is unused.
        (&lost_listed, 1, 0, lost, false, retry(1_000)),
        (&lost_listed, 2, 1, lost, false, retry(2_000)),
        (&lost_listed, 3, 2, lost, false, finish(N::Error)),
        (&lost_listed, 3, 2, shutdown, false, finish(N::Error)),
        (&lost_listed, 1, 0, shutdown, false, retry(1_000)),
        (&lost_listed, 1, 0, fail, false, finish(N::Failure)),
    ];
    for (i, (p, attempt, prev_lost, outcome, cancel, want)) in rows.into_iter().enumerate() {
        let got = decide_attempt_end(p, attempt, prev_lost, &outcome, cancel, 1.0);
        assert_eq!(
            got, want,
            "row {i}: attempt {attempt}, previous_lost {prev_lost}, {outcome:?}, cancel {cancel}, {p:?}"
        );
    }
}

/// The cross product of every outcome, policy, attempt number, lost count and cancel flag,
/// checked against the rules each decision must obey.
#[test]
fn attempt_end_rules_hold_for_every_combination() {
    for p in all_policies() {
        for (name, outcome) in outcomes() {
            for attempt in 1..=6 {
                for prev_lost in 0..attempt {
                    for cancel in [false, true] {
                        for jitter in [0.0, 0.5, 0.999] {
                            let got = decide_attempt_end(
                                &p, attempt, prev_lost, &outcome, cancel, jitter,
                            );
                            let ctx = format!(
                                "{name}, attempt {attempt}, lost {prev_lost}, cancel {cancel}, {p:?}"
                            );
                            check_rules(&p, attempt, prev_lost, &outcome, cancel, got, &ctx);
                        }
                    }
                }
            }
        }
    }
}

fn check_rules(
    p: &RetryPolicy,
    attempt: u32,
    prev_lost: u32,
    outcome: &Outcome,
    cancel: bool,
    got: AttemptDecision,
    ctx: &str,
) {
    let cond = RetryOn::of(outcome);
    match got {
        AttemptDecision::Retry { delay_ms } => {
            assert!(!cancel, "retry while canceling: {ctx}");
            let cond = cond.unwrap_or_else(|| panic!("retry of a non-retryable outcome: {ctx}"));
            if p.on.contains(&cond) {
                let used = if p.on.contains(&RetryOn::Lost) {
                    attempt
                } else {
                    attempt - prev_lost
                };
                assert!(used < p.attempts, "retry beyond attempts: {ctx}");
                let cap = p.max_backoff_ms.max(p.backoff_ms);
                assert!(delay_ms <= cap, "delay {delay_ms} over cap: {ctx}");
            } else {
                assert_eq!(cond, RetryOn::Lost, "retry of an unlisted condition: {ctx}");
                assert!(prev_lost < p.lost_attempts, "lost budget spent: {ctx}");
                assert_eq!(delay_ms, 0, "a lost agent is retried at once: {ctx}");
            }
        }
        AttemptDecision::Finish(state) => {
            assert!(state.is_terminal(), "{state} is not terminal: {ctx}");
            let want = match outcome.state {
                AttemptState::Success => NodeState::Success,
                AttemptState::Failure => NodeState::Failure,
                AttemptState::Canceled if cancel || outcome.reason != Reason::Shutdown => {
                    NodeState::Canceled
                }
                _ => NodeState::Error,
            };
            assert_eq!(state, want, "{ctx}");
            if !cancel {
                let spent = match cond {
                    None => true,
                    Some(c) if p.on.contains(&c) => {
                        let used = if p.on.contains(&RetryOn::Lost) {
                            attempt
                        } else {
                            attempt - prev_lost
                        };
                        used >= p.attempts
                    }
                    Some(RetryOn::Lost) => prev_lost >= p.lost_attempts,
                    Some(_) => true,
                };
                assert!(spent, "finished while a retry was allowed: {ctx}");
            }
        }
    }
}

#[test]
fn backoff_doubles_per_attempt() {
    let p = RetryPolicy {
        backoff_ms: 100,
        max_backoff_ms: 1_000_000,
        ..RetryPolicy::default()
    };
    let full: Vec<u64> = (1..=6).map(|a| backoff_delay_ms(&p, a, 1.0)).collect();
    assert_eq!(full, vec![100, 200, 400, 800, 1_600, 3_200]);
    let half: Vec<u64> = (1..=6).map(|a| backoff_delay_ms(&p, a, 0.0)).collect();
    assert_eq!(half, vec![50, 100, 200, 400, 800, 1_600]);
}

#[test]
fn backoff_is_capped() {
    let p = RetryPolicy {
        backoff_ms: 1_000,
        max_backoff_ms: 5_000,
        ..RetryPolicy::default()
    };
    for (attempt, want) in [
        (1, 1_000),
        (3, 4_000),
        (4, 5_000),
        (10, 5_000),
        (64, 5_000),
        (u32::MAX, 5_000),
    ] {
        assert_eq!(
            backoff_delay_ms(&p, attempt, 1.0),
            want,
            "attempt {attempt}"
        );
    }
    // A cap below the first back-off does not shrink it.
    let low_cap = RetryPolicy {
        backoff_ms: 1_000,
        max_backoff_ms: 10,
        ..RetryPolicy::default()
    };
    assert_eq!(backoff_delay_ms(&low_cap, 5, 1.0), 1_000);
    let huge = RetryPolicy {
        backoff_ms: u64::MAX,
        max_backoff_ms: u64::MAX,
        ..RetryPolicy::default()
    };
    assert_eq!(backoff_delay_ms(&huge, u32::MAX, 1.0), u64::MAX);
    assert_eq!(backoff_delay_ms(&huge, 40, 0.0), u64::MAX / 2);
}

#[test]
fn backoff_jitter_stays_between_half_and_full() {
    for backoff_ms in [0, 1, 3, 7, 1_000, 999_999, u64::MAX / 3] {
        let p = RetryPolicy {
            backoff_ms,
            max_backoff_ms: u64::MAX,
            ..RetryPolicy::default()
        };
        for attempt in 1..=5 {
            let full = backoff_ms.saturating_mul(1 << (attempt - 1));
            let mut last = 0;
            for jitter in [0.0, 0.1, 0.25, 0.5, 0.75, 0.999_999, 1.0] {
                let d = backoff_delay_ms(&p, attempt, jitter);
                assert!(
                    full / 2 <= d && d <= full,
                    "backoff {backoff_ms}, attempt {attempt}, jitter {jitter}: {d} outside [{}, {full}]",
                    full / 2
                );
                assert!(d >= last, "jitter must not shrink the delay");
                last = d;
            }
            assert_eq!(backoff_delay_ms(&p, attempt, 0.0), full / 2);
            if full < 1 << 53 {
                // Exact in f64: full jitter reaches the full back-off, odd ones included.
                assert_eq!(backoff_delay_ms(&p, attempt, 1.0), full);
            }
            // Out-of-range jitter is clamped, never panics.
            assert_eq!(backoff_delay_ms(&p, attempt, -3.0), full / 2);
            assert_eq!(
                backoff_delay_ms(&p, attempt, 7.0),
                backoff_delay_ms(&p, attempt, 1.0)
            );
            assert_eq!(backoff_delay_ms(&p, attempt, f64::NAN), full / 2);
        }
    }
}

fn result_of(states: &[NodeState], cancel: bool) -> Option<RunState> {
    run_result(
        states.len(),
        |s| states.iter().filter(|&&x| x == s).count(),
        cancel,
    )
}

#[test]
fn run_result_table() {
    use NodeState::*;
    let rows: Vec<(&[NodeState], bool, Option<RunState>)> = vec![
        (&[], false, Some(RunState::Success)),
        (&[], true, Some(RunState::Canceled)),
        (&[Success], false, Some(RunState::Success)),
        (&[Success, Success, Success], false, Some(RunState::Success)),
        (&[Success], true, Some(RunState::Canceled)),
        (&[Success, Failure, Skipped], false, Some(RunState::Failure)),
        (&[Success, Error, Skipped], false, Some(RunState::Error)),
        (&[Error, Failure], false, Some(RunState::Failure)),
        (&[Error, Failure, Canceled], false, Some(RunState::Canceled)),
        (&[Canceled, Success], false, Some(RunState::Canceled)),
        (&[Failure, Error], true, Some(RunState::Canceled)),
        (&[Success, Running], false, None),
        (&[Failure, Waiting], false, None),
        (&[Canceled, Pending], true, None),
        (&[Ready], false, None),
    ];
    for (states, cancel, want) in rows {
        assert_eq!(
            result_of(states, cancel),
            want,
            "{states:?}, cancel {cancel}"
        );
    }
}

#[test]
fn run_result_priority_over_every_mix() {
    use NodeState::*;
    let terminal = [Success, Failure, Error, Canceled, Skipped];
    for mask in 1u32..(1 << terminal.len()) {
        let mut states: Vec<NodeState> = terminal
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, &s)| s)
            .collect();
        for cancel in [false, true] {
            let want = if cancel || states.contains(&Canceled) {
                RunState::Canceled
            } else if states.contains(&Failure) {
                RunState::Failure
            } else if states.contains(&Error) {
                RunState::Error
            } else {
                RunState::Success
            };
            assert_eq!(result_of(&states, cancel), Some(want), "{states:?}");
            for open in [Waiting, Ready, Pending, Running] {
                states.push(open);
                assert_eq!(result_of(&states, cancel), None, "{states:?}");
                states.pop();
            }
        }
    }
}

//! Running one process: its own process group, output pumping, timeout and kill.
//!
//! The process leads a new process group, so a signal reaches everything the script
//! started in the background too. Ending it (timeout, cancel) is SIGTERM to the group, then
//! SIGKILL after [`KILL_GRACE`]. Whatever way the leader ends, the group is SIGKILLed once it
//! is reaped, so no leftover of the step outlives it.

use std::collections::BTreeSet;
use std::io;
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use baton_api::Stream;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, ChildStdin, Command};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::logs::LogBuffer;
use crate::stop::{Stop, StopReason};

/// Time between SIGTERM and SIGKILL.
pub(crate) const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long output is still read after the group was killed, for a process that escaped
/// the group and keeps the pipes open.
pub(crate) const DRAIN: Duration = Duration::from_secs(2);
const READ_BUF: usize = 32 * 1024;

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ProcessEnd {
    /// It exited (or was killed by a signal nobody here sent).
    Exited(ExitStatus),
    /// The time limit ran out and it was killed.
    TimedOut,
    /// It was stopped and killed.
    Stopped(StopReason),
}

/// Process groups of the steps running in this process: an exit that skips every destructor
/// (a second SIGTERM) must still leave none of them behind.
static LIVE_GROUPS: Mutex<BTreeSet<i32>> = Mutex::new(BTreeSet::new());

fn live_groups() -> std::sync::MutexGuard<'static, BTreeSet<i32>> {
    // Nothing panics while holding the lock; should it, the set is still consistent.
    LIVE_GROUPS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Kills (SIGKILL) the process group of every step still running in this process.
///
/// For a process about to exit at once, without the drain that would end them one by one;
/// their attempts go unreported and are retried when their leases run out.
pub fn kill_running_steps() {
    for &pgid in live_groups().iter() {
        // ESRCH (the group just ended) is fine.
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// A process group, killed on drop unless it was already cleaned up.
struct Group {
    pgid: Pid,
    armed: bool,
}

impl Group {
    fn new(pgid: i32) -> Group {
        live_groups().insert(pgid);
        Group {
            pgid: Pid::from_raw(pgid),
            armed: true,
        }
    }

    fn signal(&self, signal: Signal) {
        // ESRCH (nobody left in the group) is the expected end state.
        let _ = killpg(self.pgid, signal);
    }

    /// Kills whatever is left of the group; the leader must be reaped already.
    fn finish(mut self) {
        self.signal(Signal::SIGKILL);
        self.armed = false;
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        // The attempt was dropped mid-run (agent torn down): leave nothing behind.
        if self.armed {
            self.signal(Signal::SIGKILL);
        }
        live_groups().remove(&self.pgid.as_raw());
    }
}

/// Spawns `cmd` in a new process group with stdin null and both outputs piped into `logs`,
/// and waits for it to end, or for `timeout`, or for `stop`.
pub(crate) async fn run(
    cmd: Command,
    timeout: Option<Duration>,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> io::Result<ProcessEnd> {
    run_fed(cmd, None, timeout, stop, logs).await
}

/// [`run`], with `input` (when given) written to the process's stdin, which is then closed.
pub(crate) async fn run_fed(
    mut cmd: Command,
    input: Option<Vec<u8>>,
    timeout: Option<Duration>,
    stop: &Stop,
    logs: &mut LogBuffer,
) -> io::Result<ProcessEnd> {
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    let group = child
        .id()
        .and_then(|pid| i32::try_from(pid).ok())
        .map(Group::new);
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let stdin = child.stdin.take();
    let ended = CancellationToken::new();
    let deadline = timeout.map(|t| Instant::now() + t);
    let (end, (), ()) = tokio::join!(
        supervise(&mut child, group, deadline, stop, &ended),
        pump(stdout, stderr, logs, &ended),
        feed(stdin, input, &ended),
    );
    end
}

/// Writes `input` to the process's stdin and closes it, or gives up once the process ended.
async fn feed(stdin: Option<ChildStdin>, input: Option<Vec<u8>>, ended: &CancellationToken) {
    let (Some(mut stdin), Some(input)) = (stdin, input) else {
        return;
    };
    tokio::select! {
        // A process that exits without reading all of it gets EPIPE here: its business.
        _ = stdin.write_all(&input) => {}
        () = ended.cancelled() => {}
    }
}

async fn supervise(
    child: &mut Child,
    group: Option<Group>,
    deadline: Option<Instant>,
    stop: &Stop,
    ended: &CancellationToken,
) -> io::Result<ProcessEnd> {
    let end = tokio::select! {
        biased;
        status = child.wait() => status.map(ProcessEnd::Exited),
        () = sleep_until(deadline) => {
            terminate(child, group.as_ref()).await.map(|_| ProcessEnd::TimedOut)
        }
        reason = stop.stopped() => {
            terminate(child, group.as_ref()).await.map(|_| ProcessEnd::Stopped(reason))
        }
    };
    if let Some(group) = group {
        group.finish();
    }
    ended.cancel();
    end
}

/// SIGTERM to the group, SIGKILL after the grace; reaps the leader.
async fn terminate(child: &mut Child, group: Option<&Group>) -> io::Result<ExitStatus> {
    let Some(group) = group else {
        return child.wait().await;
    };
    group.signal(Signal::SIGTERM);
    match tokio::time::timeout(KILL_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            group.signal(Signal::SIGKILL);
            child.wait().await
        }
    }
}

/// Reads both outputs into `logs` until both close, flushing on the buffer's deadline.
async fn pump(
    mut stdout: Option<impl AsyncRead + Unpin>,
    mut stderr: Option<impl AsyncRead + Unpin>,
    logs: &mut LogBuffer,
    ended: &CancellationToken,
) {
    let mut out_buf = vec![0u8; READ_BUF];
    let mut err_buf = vec![0u8; READ_BUF];
    let mut drain_until: Option<Instant> = None;
    while stdout.is_some() || stderr.is_some() {
        let flush_at = logs.deadline();
        tokio::select! {
            r = read(&mut stdout, &mut out_buf) => match r {
                Some(n) => logs.push(Stream::Stdout, &out_buf[..n]).await,
                None => stdout = None,
            },
            r = read(&mut stderr, &mut err_buf) => match r {
                Some(n) => logs.push(Stream::Stderr, &err_buf[..n]).await,
                None => stderr = None,
            },
            () = sleep_until(flush_at) => logs.flush().await,
            () = ended.cancelled(), if drain_until.is_none() => {
                drain_until = Some(Instant::now() + DRAIN);
            }
            () = sleep_until(drain_until) => {
                logs.note(Stream::Stderr, "output still open after the process ended; stopped reading it").await;
                break;
            }
        }
    }
}

/// Reads a chunk; `None` at the end (or on a read error); never resolves without a pipe.
async fn read(pipe: &mut Option<impl AsyncRead + Unpin>, buf: &mut [u8]) -> Option<usize> {
    match pipe {
        Some(p) => match p.read(buf).await {
            Ok(0) | Err(_) => None,
            Ok(n) => Some(n),
        },
        None => std::future::pending().await,
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The name of a signal number, such as `SIGKILL`.
pub(crate) fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map_or_else(|_| format!("signal {signal}"), |s| s.as_str().to_owned())
}

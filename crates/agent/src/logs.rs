//! An attempt's output, cut into chunks and sent to the server.
//!
//! [`LogBuffer`] collects the bytes of stdout and stderr and cuts them into chunks: at most
//! [`MAX_CHUNK`] bytes, sent once [`FLUSH_BYTES`] are buffered or [`FLUSH_DELAY`] after the
//! first unsent byte, and at the end. A chunk never ends inside a UTF-8 sequence (the tail is
//! kept for the next chunk); invalid bytes are replaced. [`upload`] sends the chunks in order.

use std::time::Duration;

use baton_api::{AppendLogs, Stream};
use baton_core::mask::{Masker, StreamMasker};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::backoff::Backoff;
use crate::client::Client;
use crate::stop::{Stop, StopReason};

/// Largest chunk, in bytes of output.
pub(crate) const MAX_CHUNK: usize = 256 * 1024;
/// Buffered bytes of one stream that trigger a send.
pub(crate) const FLUSH_BYTES: usize = 64 * 1024;
/// Longest time output waits before it is sent.
pub(crate) const FLUSH_DELAY: Duration = Duration::from_millis(100);
/// Chunks waiting for the uploader before the output side waits too.
pub(crate) const QUEUE: usize = 4;

/// One chunk, numbered per attempt from 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    pub(crate) seq: u32,
    pub(crate) stream: Stream,
    pub(crate) data: String,
}

/// Buffers output and hands out chunks to a channel.
pub(crate) struct LogBuffer {
    tx: Option<mpsc::Sender<Chunk>>,
    seq: u32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    /// When the oldest unsent byte arrived (none when only an incomplete UTF-8 tail waits).
    first_unsent: Option<Instant>,
    /// Masks of the attempt's secret values, one per stream (stdout, stderr); none when
    /// it was given no secrets. Each holds back the few bytes that could begin a value
    /// split across writes, so a value is hidden wherever the output is cut.
    masks: Option<Box<[StreamMasker; 2]>>,
}

impl LogBuffer {
    pub(crate) fn new(tx: mpsc::Sender<Chunk>) -> LogBuffer {
        LogBuffer {
            tx: Some(tx),
            seq: 0,
            stdout: Vec::new(),
            stderr: Vec::new(),
            first_unsent: None,
            masks: None,
        }
    }

    /// Replaces every value `masker` knows with `***` in all output from now on.
    pub(crate) fn mask_with(&mut self, masker: &Masker) {
        if !masker.is_empty() {
            self.masks = Some(Box::new([masker.stream(), masker.stream()]));
        }
    }

    /// A buffer with its receiving end.
    pub(crate) fn channel() -> (LogBuffer, mpsc::Receiver<Chunk>) {
        let (tx, rx) = mpsc::channel(QUEUE);
        (LogBuffer::new(tx), rx)
    }

    /// When the buffered output is due to be sent.
    pub(crate) fn deadline(&self) -> Option<Instant> {
        self.first_unsent.map(|t| t + FLUSH_DELAY)
    }

    /// Adds output.
    pub(crate) async fn push(&mut self, stream: Stream, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        match &mut self.masks {
            Some(masks) => {
                let shown = masks[stream_index(stream)].push(bytes).into_owned();
                if shown.is_empty() {
                    return;
                }
                self.buffer(stream).extend_from_slice(&shown);
            }
            None => self.buffer(stream).extend_from_slice(bytes),
        }
        self.first_unsent.get_or_insert_with(Instant::now);
        if self.buffer(stream).len() >= FLUSH_BYTES {
            self.flush_stream(stream, false).await;
        }
    }

    /// Adds a line from the agent itself (`baton: …`) to a stream.
    pub(crate) async fn note(&mut self, stream: Stream, message: &str) {
        let line = format!("baton: {message}\n");
        self.push(stream, line.as_bytes()).await;
    }

    /// Sends everything buffered (except an incomplete UTF-8 tail).
    pub(crate) async fn flush(&mut self) {
        self.flush_stream(Stream::Stdout, false).await;
        self.flush_stream(Stream::Stderr, false).await;
    }

    /// Sends everything, then closes the channel.
    pub(crate) async fn finish(mut self) {
        if let Some(mut masks) = self.masks.take() {
            for stream in [Stream::Stdout, Stream::Stderr] {
                let tail = masks[stream_index(stream)].finish();
                self.buffer(stream).extend_from_slice(&tail);
            }
        }
        self.flush_stream(Stream::Stdout, true).await;
        self.flush_stream(Stream::Stderr, true).await;
    }

    fn buffer(&mut self, stream: Stream) -> &mut Vec<u8> {
        match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        }
    }

    async fn flush_stream(&mut self, stream: Stream, all: bool) {
        let mut buf = std::mem::take(self.buffer(stream));
        let end = if all { buf.len() } else { complete_len(&buf) };
        let mut start = 0;
        while start < end {
            let mut len = (end - start).min(MAX_CHUNK);
            if start + len < end {
                // Cut inside the flushed part: keep the split sequence for the next piece.
                len = complete_len(&buf[start..start + len]).max(1);
            }
            let data = String::from_utf8_lossy(&buf[start..start + len]).into_owned();
            start += len;
            self.send(stream, data).await;
        }
        buf.drain(..end);
        *self.buffer(stream) = buf;
        if self.stdout.len() + self.stderr.len() == 0 || all {
            self.first_unsent = None;
        } else if complete_len(&self.stdout) == 0 && complete_len(&self.stderr) == 0 {
            // Only incomplete tails wait; the byte that completes one arms the timer again.
            self.first_unsent = None;
        }
    }

    async fn send(&mut self, stream: Stream, data: String) {
        let chunk = Chunk {
            seq: self.seq,
            stream,
            data,
        };
        self.seq = self.seq.wrapping_add(1);
        if let Some(tx) = &self.tx
            && tx.send(chunk).await.is_err()
        {
            // The uploader gave up (the attempt is stale): later output goes nowhere.
            self.tx = None;
        }
    }
}

fn stream_index(stream: Stream) -> usize {
    match stream {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// The length of the longest prefix of `buf` that does not end inside a UTF-8 sequence
/// which the next bytes could still complete.
fn complete_len(buf: &[u8]) -> usize {
    let n = buf.len();
    // A sequence is at most 4 bytes: only the last 3 can be an incomplete start.
    for i in (n.saturating_sub(3)..n).rev() {
        let b = buf[i];
        if b & 0xC0 == 0x80 {
            continue;
        }
        let need = match b {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => 1,
        };
        return if i + need > n && valid_prefix(&buf[i..]) {
            i
        } else {
            n
        };
    }
    n
}

/// Whether `tail` (a lead byte and some continuation bytes) can still become valid UTF-8.
fn valid_prefix(tail: &[u8]) -> bool {
    match std::str::from_utf8(tail) {
        Ok(_) => true,
        Err(e) => e.error_len().is_none(),
    }
}

/// Sends chunks in order until the buffer closes.
///
/// Transient failures are retried with back-off. A `409` means the attempt is no longer
/// ours: the attempt is stopped and the rest of its output dropped. Once `give_up` is
/// cancelled (the agent is shutting down past its grace), each chunk gets one try.
pub(crate) async fn upload(
    client: &Client,
    attempt_id: i64,
    fence: i64,
    mut rx: mpsc::Receiver<Chunk>,
    stop: &Stop,
    give_up: &CancellationToken,
) {
    while let Some(chunk) = rx.recv().await {
        if stop.is_dropped() {
            return;
        }
        let body = AppendLogs {
            fence,
            seq: chunk.seq,
            stream: chunk.stream,
            data: chunk.data,
        };
        let mut backoff = Backoff::default();
        loop {
            match client.append_logs(attempt_id, &body).await {
                Ok(()) => break,
                Err(e) if e.is_stale() => {
                    tracing::info!(
                        attempt = attempt_id,
                        "log refused as stale; stopping the attempt"
                    );
                    stop.stop(StopReason::Stale);
                    return;
                }
                Err(e) if e.is_retryable() && !give_up.is_cancelled() && !stop.is_dropped() => {
                    tracing::warn!(attempt = attempt_id, error = %e, "sending logs failed; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(backoff.next_delay()) => {}
                        () = give_up.cancelled() => {}
                    }
                }
                Err(e) => {
                    tracing::warn!(attempt = attempt_id, error = %e, "dropping a log chunk");
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(rx: &mut mpsc::Receiver<Chunk>) -> Vec<Chunk> {
        let mut out = Vec::new();
        while let Some(c) = rx.recv().await {
            out.push(c);
        }
        out
    }

    #[test]
    fn complete_len_keeps_an_incomplete_sequence() {
        let euro = "€".as_bytes(); // E2 82 AC
        assert_eq!(complete_len(b"abc"), 3);
        assert_eq!(complete_len(&[b'a', euro[0]]), 1);
        assert_eq!(complete_len(&[b'a', euro[0], euro[1]]), 1);
        assert_eq!(complete_len(&[b'a', euro[0], euro[1], euro[2]]), 4);
        // Bytes that can never become valid are not held back.
        assert_eq!(complete_len(&[b'a', 0xFF]), 2);
        assert_eq!(complete_len(&[b'a', 0xE2, b'b']), 3);
    }

    #[tokio::test]
    async fn a_sequence_split_across_pushes_arrives_whole() {
        let (mut logs, mut rx) = LogBuffer::channel();
        let text = "h€llo";
        let bytes = text.as_bytes();
        let task = tokio::spawn(async move { collect(&mut rx).await });
        logs.push(Stream::Stdout, &bytes[..2]).await;
        logs.flush().await;
        logs.push(Stream::Stdout, &bytes[2..]).await;
        logs.flush().await;
        logs.finish().await;
        let chunks = task.await.unwrap();
        let joined: String = chunks.iter().map(|c| c.data.as_str()).collect();
        assert_eq!(joined, text);
        assert!(chunks.iter().all(|c| !c.data.contains('\u{FFFD}')));
        let seqs: Vec<u32> = chunks.iter().map(|c| c.seq).collect();
        assert_eq!(seqs, (0..chunks.len() as u32).collect::<Vec<_>>());
    }

    #[tokio::test]
    async fn big_output_is_cut_into_bounded_chunks_on_char_boundaries() {
        let (mut logs, mut rx) = LogBuffer::channel();
        let task = tokio::spawn(async move { collect(&mut rx).await });
        // 3-byte characters, so a cut at a round size would split one.
        let text = "€".repeat(300_000);
        logs.push(Stream::Stderr, text.as_bytes()).await;
        logs.finish().await;
        let chunks = task.await.unwrap();
        assert!(chunks.len() > 3);
        assert!(chunks.iter().all(|c| c.data.len() <= MAX_CHUNK));
        assert!(chunks.iter().all(|c| c.stream == Stream::Stderr));
        let joined: String = chunks.iter().map(|c| c.data.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[tokio::test]
    async fn invalid_bytes_are_replaced_at_the_end() {
        let (mut logs, mut rx) = LogBuffer::channel();
        let task = tokio::spawn(async move { collect(&mut rx).await });
        logs.push(Stream::Stdout, b"ok \xff\xfe and \xe2\x82").await;
        logs.finish().await;
        let chunks = task.await.unwrap();
        let joined: String = chunks.iter().map(|c| c.data.as_str()).collect();
        assert_eq!(joined, "ok \u{FFFD}\u{FFFD} and \u{FFFD}");
    }
}

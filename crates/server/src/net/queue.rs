//! A connection's send queue and its writer task. The queue is unbounded
//! but watched: its backlog is counted in lines and in bytes (shared
//! snapshot text counts each time it is queued), and a connection over
//! its budget that makes no progress is dropped, as is a peer that stops
//! reading at all.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::clock::now_ms;
use crate::Shared;

/// How long a connection over its budget may go without writing anything
/// before it is dropped.
const STALL_MS: u64 = 1000;
/// A backlog this many times the line budget is dropped even if moving.
const HARD_FACTOR: usize = 64;
/// A backlog this many times the byte budget is dropped even if moving:
/// bytes are what memory is made of.
const HARD_FACTOR_BYTES: usize = 8;
/// Shared text is written in pieces this large, each counted as progress,
/// so a big snapshot to a slow but moving reader is not taken for a stall.
const CHUNK: usize = 64 * 1024;
/// How long a closing connection may take to write what is queued.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A send queue's budget.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Budget {
    /// Lines queued.
    pub(crate) lines: usize,
    /// Bytes queued.
    pub(crate) bytes: usize,
    /// Longest time with something queued and nothing written (peers: a
    /// peer that does not read is dead), whatever the backlog.
    pub(crate) idle: Option<Duration>,
}

/// What is queued and when the writer last made progress.
#[derive(Debug, Default)]
struct Backlog {
    lines: AtomicUsize,
    bytes: AtomicUsize,
    progress_ms: AtomicU64,
}

impl Drop for Backlog {
    fn drop(&mut self) {
        // What a closed connection never wrote leaves the gauge.
        let left = *self.bytes.get_mut();
        crate::metrics::metrics().send_queue_bytes.dec_by(left as i64);
    }
}

/// The driver's handle on a connection: its queue and the backlog the
/// driver watches, so a reader that is slow but moving (a big snapshot) is
/// served and one that is stuck is dropped.
#[derive(Debug, Clone)]
pub(crate) struct Handle {
    tx: mpsc::UnboundedSender<Out>,
    pub(crate) close: CancellationToken,
    backlog: Arc<Backlog>,
    budget: Budget,
    /// Who is at the other end (a client's address, a peer's URI), for logs.
    pub(crate) who: Arc<str>,
}

/// What a connection's writer is given.
#[derive(Debug)]
enum Out {
    /// One line, without its newline.
    Line(String),
    /// Several lines, each with its newline, shared between connections:
    /// a subscription snapshot encoded once.
    Block(Arc<str>, usize),
}

impl Out {
    fn lines(&self) -> usize {
        match self {
            Out::Line(_) => 1,
            Out::Block(_, n) => *n,
        }
    }

    fn bytes(&self) -> usize {
        match self {
            Out::Line(l) => l.len() + 1,
            Out::Block(t, _) => t.len(),
        }
    }
}

/// Why a line could not be queued: the caller closes the connection.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SendError {
    /// The reader is stuck or far behind.
    #[error("{lines} lines ({bytes} bytes) queued, nothing written for {idle_ms} ms")]
    Stalled {
        lines: usize,
        bytes: usize,
        idle_ms: u64,
    },
    /// The connection's writer is gone.
    #[error("connection closed")]
    Closed,
}

impl Handle {
    /// Queues a line.
    pub(crate) fn send(&self, line: String) -> Result<(), SendError> {
        self.queue(Out::Line(line))
    }

    /// Queues `lines` lines already encoded, each ending in a newline.
    pub(crate) fn send_block(&self, text: Arc<str>, lines: usize) -> Result<(), SendError> {
        self.queue(Out::Block(text, lines))
    }

    fn queue(&self, out: Out) -> Result<(), SendError> {
        let before = self.backlog.lines.fetch_add(out.lines(), Ordering::Relaxed);
        self.backlog.bytes.fetch_add(out.bytes(), Ordering::Relaxed);
        crate::metrics::metrics()
            .send_queue_bytes
            .inc_by(out.bytes() as i64);
        if before == 0 {
            // The stall clock runs only while something waits to be written.
            self.backlog.progress_ms.store(now_ms(), Ordering::Relaxed);
        }
        self.stalled().map_or(Ok(()), Err)?;
        self.tx.send(out).map_err(|_| SendError::Closed)
    }

    /// Why this connection should be dropped, if it should: over its
    /// budget with no progress for a while, far over it, or (with an idle
    /// limit) anything queued and nothing written for that long.
    pub(crate) fn stalled(&self) -> Option<SendError> {
        let lines = self.backlog.lines.load(Ordering::Relaxed);
        let bytes = self.backlog.bytes.load(Ordering::Relaxed);
        if lines == 0 {
            return None;
        }
        let idle_ms = now_ms().saturating_sub(self.backlog.progress_ms.load(Ordering::Relaxed));
        let b = &self.budget;
        let over = lines > b.lines || bytes > b.bytes;
        let far_over =
            lines > b.lines.saturating_mul(HARD_FACTOR) || bytes > b.bytes.saturating_mul(HARD_FACTOR_BYTES);
        let dead = b.idle.is_some_and(|d| u128::from(idle_ms) >= d.as_millis());
        (far_over || dead || (over && idle_ms >= STALL_MS)).then_some(SendError::Stalled {
            lines,
            bytes,
            idle_ms,
        })
    }
}

/// Starts the writer of `w` and returns its handle.
pub(super) fn spawn_writer<W: AsyncWrite + Unpin + Send + 'static>(
    w: W,
    budget: Budget,
    heartbeat: Option<Duration>,
    who: &str,
    shared: &Shared,
) -> Handle {
    let (tx, rx) = mpsc::unbounded_channel();
    let close = CancellationToken::new();
    let backlog = Arc::new(Backlog::default());
    tokio::spawn(writer(
        w,
        rx,
        heartbeat,
        close.clone(),
        backlog.clone(),
        shared.writers_done.clone(),
    ));
    Handle {
        tx,
        close,
        backlog,
        budget,
        who: who.into(),
    }
}

/// The writer half: drains the queue, sends heartbeats on idle links, and
/// on close writes what is still queued (briefly) before shutting down. A
/// write that blocks gives way to `close`, so a connection dropped for not
/// reading lets go of its socket and its queue at once.
async fn writer<W: AsyncWrite + Unpin>(
    w: W,
    mut rx: mpsc::UnboundedReceiver<Out>,
    heartbeat: Option<Duration>,
    close: CancellationToken,
    backlog: Arc<Backlog>,
    _done: mpsc::Sender<()>,
) {
    let mut w = BufWriter::new(w);
    let mut beat = tokio::time::interval(heartbeat.unwrap_or(Duration::from_secs(3600)));
    beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    beat.tick().await;
    // Biased: what is queued goes out before a close is noticed (a last
    // ERROR line queued just before closing must not lose a coin toss);
    // a write that cannot progress still gives way to the close.
    let drain = loop {
        tokio::select! {
            biased;
            m = rx.recv() => match m {
                Some(out) => {
                    let wrote = tokio::select! {
                        biased;
                        r = write_batch(&mut w, out, &mut rx, &backlog) => r,
                        _ = close.cancelled() => break false,
                    };
                    if wrote.is_err() {
                        break false;
                    }
                }
                None => break false,
            },
            _ = beat.tick(), if heartbeat.is_some() => {
                let beat = async { w.write_all(b"1\n").await?; w.flush().await };
                let wrote = tokio::select! {
                    r = beat => r,
                    _ = close.cancelled() => break false,
                };
                if wrote.is_err() {
                    break false;
                }
            }
            _ = close.cancelled() => break true,
        }
    };
    let finish = async {
        if drain {
            while let Ok(out) = rx.try_recv() {
                if write_out(&mut w, &out, &backlog).await.is_err() {
                    break;
                }
            }
        }
        let _ = w.flush().await;
        let _ = w.shutdown().await;
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, finish).await;
    close.cancel();
}

/// Writes an item and whatever else is queued (up to a batch), then
/// flushes; the backlog shrinks as items go out.
async fn write_batch<W: AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    first: Out,
    rx: &mut mpsc::UnboundedReceiver<Out>,
    backlog: &Backlog,
) -> std::io::Result<()> {
    let mut n = write_out(w, &first, backlog).await?;
    while n < 1024 {
        let Ok(out) = rx.try_recv() else { break };
        n += write_out(w, &out, backlog).await?;
    }
    w.flush().await?;
    backlog.progress_ms.store(now_ms(), Ordering::Relaxed);
    Ok(())
}

/// Writes one queued item and takes it off the backlog; returns how many
/// lines it held.
async fn write_out<W: AsyncWrite + Unpin>(
    w: &mut BufWriter<W>,
    out: &Out,
    backlog: &Backlog,
) -> std::io::Result<usize> {
    match out {
        Out::Line(line) => {
            w.write_all(line.as_bytes()).await?;
            w.write_all(b"\n").await?;
            backlog.bytes.fetch_sub(out.bytes(), Ordering::Relaxed);
            crate::metrics::metrics().sent_line(line, out.bytes());
        }
        Out::Block(text, _) => {
            for chunk in text.as_bytes().chunks(CHUNK) {
                w.write_all(chunk).await?;
                backlog.bytes.fetch_sub(chunk.len(), Ordering::Relaxed);
                crate::metrics::metrics()
                    .send_queue_bytes
                    .dec_by(chunk.len() as i64);
                backlog.progress_ms.store(now_ms(), Ordering::Relaxed);
            }
        }
    }
    backlog.lines.fetch_sub(out.lines(), Ordering::Relaxed);
    Ok(out.lines())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(budget: Budget) -> (Handle, mpsc::UnboundedReceiver<Out>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let h = Handle {
            tx,
            close: CancellationToken::new(),
            backlog: Arc::default(),
            budget,
            who: "test".into(),
        };
        (h, rx)
    }

    const BUDGET: Budget = Budget {
        lines: 1000,
        bytes: 1000,
        idle: None,
    };

    #[test]
    fn shared_text_counts_against_the_byte_budget_each_time() {
        let (h, _rx) = handle(BUDGET);
        let text: Arc<str> = "x".repeat(999).into();
        // Over the budget but just queued: it may still be moving.
        h.send_block(text.clone(), 1).unwrap();
        h.send_block(text.clone(), 1).unwrap();
        // Far over it (8 times): dropped whether moving or not.
        let sent = (0..8).map(|_| h.send_block(text.clone(), 1)).collect::<Vec<_>>();
        assert!(
            matches!(sent.last(), Some(Err(SendError::Stalled { .. }))),
            "{sent:?}"
        );
    }

    #[test]
    fn over_budget_without_progress_is_a_stall() {
        let (h, _rx) = handle(BUDGET);
        h.send("x".repeat(2000)).unwrap();
        assert!(h.stalled().is_none(), "just queued");
        h.backlog
            .progress_ms
            .store(now_ms() - STALL_MS, Ordering::Relaxed);
        assert!(h.stalled().is_some());
    }

    #[test]
    fn a_peer_that_does_not_read_is_dead_even_under_budget() {
        let (h, _rx) = handle(Budget {
            idle: Some(Duration::from_millis(500)),
            ..BUDGET
        });
        assert!(h.stalled().is_none(), "nothing queued");
        h.send("1".into()).unwrap();
        assert!(h.stalled().is_none());
        h.backlog.progress_ms.store(now_ms() - 600, Ordering::Relaxed);
        assert!(h.stalled().is_some());
    }

    #[tokio::test]
    async fn writing_takes_items_off_the_backlog() {
        let (h, mut rx) = handle(BUDGET);
        h.send_block("a\nb\n".into(), 2).unwrap();
        h.send("c".into()).unwrap();
        let mut w = BufWriter::new(Vec::new());
        let first = rx.recv().await.unwrap();
        write_batch(&mut w, first, &mut rx, &h.backlog).await.unwrap();
        assert_eq!(w.get_ref().as_slice(), b"a\nb\nc\n");
        assert_eq!(h.backlog.lines.load(Ordering::Relaxed), 0);
        assert_eq!(h.backlog.bytes.load(Ordering::Relaxed), 0);
    }
}

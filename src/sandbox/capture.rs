//! The attempt's logs: stdout, stderr and `log` lines, under one byte cap.
//!
//! A guest may print without end; the host keeps the first `max_log`
//! bytes, drops the rest, and marks the logs truncated. Writes never fail,
//! so a guest cannot tell (or crash because) its output was dropped.

use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};

/// Severity of a log line written through the `log` import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the task handled.
    Warn,
    /// A failure.
    Error,
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}

/// One line written through the `log` import.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    /// Its severity.
    pub level: Level,
    /// Its text.
    pub message: String,
}

/// Everything an attempt wrote, as kept under the cap.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AttemptLogs {
    /// Lines from the `log` import, in order.
    pub lines: Vec<LogLine>,
    /// What the guest wrote to stdout (invalid UTF-8 replaced).
    pub stdout: String,
    /// What the guest wrote to stderr (invalid UTF-8 replaced).
    pub stderr: String,
    /// Whether anything was dropped because the cap was reached.
    pub truncated: bool,
}

/// The shared, capped buffer behind an attempt's streams.
#[derive(Debug)]
struct Buffer {
    lines: Vec<LogLine>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
    remaining: u64,
    truncated: bool,
}

impl Buffer {
    /// Takes as much of `len` bytes as the cap allows.
    fn admit(&mut self, len: usize) -> usize {
        let admitted = (len as u64).min(self.remaining);
        self.remaining -= admitted;
        if admitted < len as u64 {
            self.truncated = true;
        }
        admitted as usize
    }
}

/// A handle on an attempt's logs; clones share the buffer.
#[derive(Debug, Clone)]
pub(crate) struct LogSink(Arc<Mutex<Buffer>>);

impl LogSink {
    /// An empty sink that keeps at most `max_bytes`.
    pub(crate) fn new(max_bytes: u64) -> LogSink {
        LogSink(Arc::new(Mutex::new(Buffer {
            lines: Vec::new(),
            stdout: Vec::new(),
            stderr: Vec::new(),
            remaining: max_bytes,
            truncated: false,
        })))
    }

    fn lock(&self) -> MutexGuard<'_, Buffer> {
        // A panic while holding this lock cannot leave the buffer
        // inconsistent (every update is a single push or extend).
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a `log` line, cut to what fits.
    pub(crate) fn line(&self, level: Level, message: &str) {
        let mut buffer = self.lock();
        let admitted = buffer.admit(message.len());
        if admitted > 0 {
            let mut end = admitted;
            while !message.is_char_boundary(end) {
                end -= 1;
            }
            buffer.lines.push(LogLine {
                level,
                message: message[..end].to_string(),
            });
        }
    }

    /// A stdout stream for the WASI context.
    pub(crate) fn stdout(&self) -> Capture {
        Capture {
            sink: self.clone(),
            stream: Stream::Stdout,
        }
    }

    /// A stderr stream for the WASI context.
    pub(crate) fn stderr(&self) -> Capture {
        Capture {
            sink: self.clone(),
            stream: Stream::Stderr,
        }
    }

    /// What was kept.
    pub(crate) fn take(&self) -> AttemptLogs {
        let mut buffer = self.lock();
        AttemptLogs {
            lines: std::mem::take(&mut buffer.lines),
            stdout: String::from_utf8_lossy(&std::mem::take(&mut buffer.stdout)).into_owned(),
            stderr: String::from_utf8_lossy(&std::mem::take(&mut buffer.stderr)).into_owned(),
            truncated: buffer.truncated,
        }
    }

    fn write(&self, stream: Stream, bytes: &[u8]) {
        let mut buffer = self.lock();
        let admitted = buffer.admit(bytes.len());
        let target = match stream {
            Stream::Stdout => &mut buffer.stdout,
            Stream::Stderr => &mut buffer.stderr,
        };
        target.extend_from_slice(&bytes[..admitted]);
    }
}

#[derive(Debug, Clone, Copy)]
enum Stream {
    Stdout,
    Stderr,
}

/// stdout or stderr of one attempt, writing into its [`LogSink`].
#[derive(Debug, Clone)]
pub(crate) struct Capture {
    sink: LogSink,
    stream: Stream,
}

/// How much the guest may write per `check-write`; the stream is never full.
const WRITE_PERMIT: usize = 64 << 10;

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> Result<(), StreamError> {
        self.sink.write(self.stream, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(WRITE_PERMIT)
    }
}

#[wasmtime_wasi::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for Capture {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.sink.write(self.stream, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_everything_under_the_cap() {
        let sink = LogSink::new(100);
        sink.write(Stream::Stdout, b"out\n");
        sink.write(Stream::Stderr, b"err\n");
        sink.line(Level::Info, "hello");
        let logs = sink.take();
        assert_eq!(logs.stdout, "out\n");
        assert_eq!(logs.stderr, "err\n");
        assert_eq!(
            logs.lines,
            vec![LogLine {
                level: Level::Info,
                message: "hello".into()
            }]
        );
        assert!(!logs.truncated);
    }

    #[test]
    fn shares_one_cap_and_marks_truncation() {
        let sink = LogSink::new(10);
        sink.write(Stream::Stdout, b"0123456");
        sink.write(Stream::Stderr, b"789abc");
        sink.line(Level::Warn, "dropped");
        let logs = sink.take();
        assert_eq!(logs.stdout, "0123456");
        assert_eq!(logs.stderr, "789");
        assert!(logs.lines.is_empty());
        assert!(logs.truncated);
    }

    #[test]
    fn cuts_log_lines_on_a_char_boundary() {
        let sink = LogSink::new(3);
        sink.line(Level::Info, "héllo");
        assert_eq!(sink.take().lines[0].message, "hé");
    }
}

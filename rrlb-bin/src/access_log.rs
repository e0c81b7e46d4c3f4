//! The access log: one line per request, formatted on the request's own thread and written by one writer
//! thread, so that a request never waits for a disk, a pipe or a terminal.
//!
//! # Why not `tracing`
//! Through the subscriber, every line was a visitor walk, a formatting pass and a `write` to stderr on the
//! worker that served the request: ~2.8 µs, and a worker stalled whenever stderr did. Here a line is appended
//! to a per-thread buffer (a `Mutex` only the writer ever contends, to swap the buffer out) in ~0.3 µs; full
//! buffers go to the writer over a bounded channel, and the writer also collects what the buffers hold every
//! [`FLUSH_EVERY`]. When the writer cannot keep up, buffers are dropped, never waited for, and the lines
//! counted in `rrlb_access_log_dropped_total`.
//!
//! # Format
//! `text`: `time=2026-12-05T21:35:32.123Z request_id=… trace_id=… client=… method=GET path=/x status=200
//! backend=echo-go attempts=1 bytes_in=0 bytes_out=120 duration_ms=1.234` (logfmt; a value with a space, a
//! quote or a backslash is quoted). `json`: one object per line with the same keys.

use std::cell::Cell;
use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::metrics::counter::Counter;

use crate::config::AccessLogConfig;
use crate::logging::{ErrorChain, LogFormat};

/// A thread's buffer goes to the writer when it holds this much.
const FLUSH_BYTES: usize = 32 * 1024;
/// The writer collects the threads' buffers at least this often.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Full buffers waiting for the writer; past this, buffers are dropped (and counted).
const QUEUE: usize = 64;
/// The longest a flush waits for the writer.
const FLUSH_WAIT: Duration = Duration::from_secs(5);
/// Buffers, one per thread (threads beyond this share them).
const SHARDS: usize = 16;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    Stdout,
    File(PathBuf),
}

impl Target {
    fn of(path: &str) -> Self {
        match path {
            "stdout" | "-" => Self::Stdout,
            path => Self::File(PathBuf::from(path)),
        }
    }

    /// Opens the target for appending (a file is created if missing).
    fn open(&self) -> io::Result<Box<dyn Write + Send>> {
        Ok(match self {
            Self::Stdout => Box::new(io::stdout()),
            Self::File(path) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?,
            ),
        })
    }
}

/// One thread's lines not yet handed to the writer.
#[derive(Default)]
struct Shard {
    buf: Vec<u8>,
    lines: u64,
    /// The second `second_text` is for, and `YYYY-MM-DDTHH:MM:SS` of it.
    second: u64,
    second_text: String,
}

enum Msg {
    Lines(Vec<u8>),
    Flush(SyncSender<()>),
}

struct Shared {
    enabled: AtomicBool,
    json: AtomicBool,
    shards: Box<[Mutex<Shard>]>,
    dropped: Counter,
    /// The target, and whether the writer should reopen it (SIGUSR1, or a new path on reload).
    target: Mutex<(Target, bool)>,
}

/// The access log of one rrlb instance.
pub(crate) struct AccessLog {
    shared: Arc<Shared>,
    tx: SyncSender<Msg>,
}

impl std::fmt::Debug for AccessLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLog").finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

thread_local! {
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// This thread's shard.
fn shard_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    SHARD.with(|s| match s.get() {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % SHARDS;
            s.set(Some(i));
            i
        }
    })
}

impl AccessLog {
    /// Opens the log as `config` says (`format` when the section names none) and starts its writer thread.
    /// Fails when the file cannot be opened.
    pub(crate) fn new(
        config: &AccessLogConfig,
        format: LogFormat,
        dropped: Counter,
    ) -> io::Result<Self> {
        let target = Target::of(&config.path);
        let sink = target.open()?;
        Ok(Self::with_sink(config, format, dropped, target, sink))
    }

    fn with_sink(
        config: &AccessLogConfig,
        format: LogFormat,
        dropped: Counter,
        target: Target,
        sink: Box<dyn Write + Send>,
    ) -> Self {
        let shared = Arc::new(Shared {
            enabled: AtomicBool::new(config.enabled),
            json: AtomicBool::new(config.format.unwrap_or(format) == LogFormat::Json),
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            dropped,
            target: Mutex::new((target, false)),
        });
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let writer = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("rrlb-access-log".to_owned())
            .spawn(move || writer.write_until_closed(&rx, sink));
        if let Err(e) = spawned {
            tracing::error!(error = %ErrorChain(&e), "cannot start the access log writer; access lines are dropped");
        }
        Self { shared, tx }
    }

    /// Whether `config`'s target can be opened (a reload checks a new path before it applies anything).
    pub(crate) fn check(config: &AccessLogConfig) -> io::Result<()> {
        Target::of(&config.path).open().map(drop)
    }

    /// Applies a reloaded configuration: on or off, the format, and a new path (opened by the writer before
    /// this returns; the caller checked that it opens).
    pub(crate) fn apply(&self, config: &AccessLogConfig, format: LogFormat) {
        let s = &self.shared;
        s.enabled.store(config.enabled, Ordering::Relaxed);
        s.json.store(
            config.format.unwrap_or(format) == LogFormat::Json,
            Ordering::Relaxed,
        );
        let target = Target::of(&config.path);
        let moved = {
            let mut current = lock(&s.target);
            let moved = current.0 != target;
            if moved {
                *current = (target, true);
            }
            moved
        };
        if moved {
            // As for SIGUSR1: what was logged before the reload goes to the old file, what follows to the new.
            let _ = self.flush();
        }
    }

    /// Reopens the file (after a log rotation moved it: `SIGUSR1`): the lines written so far go to the old file,
    /// those written after this returns to the new one. Waits for the writer, at most [`FLUSH_WAIT`] (call it
    /// off the runtime).
    pub(crate) fn reopen(&self) {
        lock(&self.shared.target).1 = true;
        let _ = self.flush();
    }

    /// Whether lines are written.
    pub(crate) fn is_on(&self) -> bool {
        self.shared.enabled.load(Ordering::Relaxed)
    }

    /// A line for a request, or `None` when the log is off.
    pub(crate) fn line(&self) -> Option<Line> {
        let s = &self.shared;
        s.enabled.load(Ordering::Relaxed).then(|| Line {
            buf: crate::bufs::take(256),
            json: s.json.load(Ordering::Relaxed),
        })
    }

    /// Appends `line` to this thread's buffer, stamped with the time; hands the buffer to the writer when it is
    /// full, or drops it (counting its lines) when the writer is behind. Never waits for I/O.
    pub(crate) fn write(&self, line: &Line) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let mut shard = lock(&self.shared.shards[shard_index()]);
        let shard = &mut *shard;
        if shard.second != now.as_secs() || shard.second_text.is_empty() {
            let text =
                humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(now.as_secs()));
            shard.second = now.as_secs();
            shard.second_text = text.to_string().trim_end_matches('Z').to_owned();
        }
        let (millis, second) = (now.subsec_millis(), &shard.second_text);
        let _ = match line.json {
            true => write!(shard.buf, "{{\"time\":\"{second}.{millis:03}Z\""),
            false => write!(shard.buf, "time={second}.{millis:03}Z"),
        };
        shard.buf.extend_from_slice(&line.buf);
        shard
            .buf
            .extend_from_slice(if line.json { b"}\n" } else { b"\n" });
        shard.lines += 1;
        if shard.buf.len() >= FLUSH_BYTES {
            let full = std::mem::replace(&mut shard.buf, Vec::with_capacity(FLUSH_BYTES + 512));
            let lines = std::mem::take(&mut shard.lines);
            if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) =
                self.tx.try_send(Msg::Lines(full))
            {
                self.shared.dropped.inc_by(lines);
            }
        }
    }

    /// Waits until every line written so far is out of rrlb's hands (shutdown, reopen, tests), but at most
    /// [`FLUSH_WAIT`]: a writer stuck on a full pipe or a dead disk must not hold up a shutdown or a reload.
    /// Whether the flush completed.
    pub(crate) fn flush(&self) -> bool {
        self.flush_within(FLUSH_WAIT)
    }

    fn flush_within(&self, limit: Duration) -> bool {
        let deadline = std::time::Instant::now() + limit;
        let (done, wait) = std::sync::mpsc::sync_channel(1);
        let mut msg = Msg::Flush(done);
        // The queue may be full of buffers for a slow writer: retry until there is room or time is up.
        loop {
            match self.tx.try_send(msg) {
                Ok(()) => break,
                Err(TrySendError::Disconnected(_)) => return false,
                Err(TrySendError::Full(back)) => {
                    if std::time::Instant::now() >= deadline {
                        return false;
                    }
                    msg = back;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        wait.recv_timeout(left).is_ok()
    }
}

impl Shared {
    /// The writer thread: writes what arrives, collects the threads' buffers every [`FLUSH_EVERY`], reopens
    /// the target when asked; ends when the log is dropped.
    fn write_until_closed(&self, rx: &Receiver<Msg>, mut sink: Box<dyn Write + Send>) {
        loop {
            let msg = rx.recv_timeout(FLUSH_EVERY);
            if let Ok(Msg::Lines(buf)) = &msg {
                Self::out(&mut sink, buf);
            }
            // Lines from before a reopen was asked for go to the old file.
            self.reopen_if_asked(&mut sink);
            match msg {
                Ok(Msg::Lines(_)) => {}
                Ok(Msg::Flush(done)) => {
                    self.collect(&mut sink);
                    // Another flush queued meanwhile is answered too, once the lines written before it
                    // (the threads' buffers again) are out; dropping it would fail that flush at once.
                    let mut waiting = vec![done];
                    while let Ok(msg) = rx.try_recv() {
                        match msg {
                            Msg::Lines(buf) => Self::out(&mut sink, &buf),
                            Msg::Flush(done) => waiting.push(done),
                        }
                    }
                    if waiting.len() > 1 {
                        self.collect(&mut sink);
                    }
                    let _ = sink.flush();
                    for done in waiting {
                        let _ = done.send(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => self.collect(&mut sink),
                Err(RecvTimeoutError::Disconnected) => {
                    self.collect(&mut sink);
                    let _ = sink.flush();
                    return;
                }
            }
        }
    }

    /// Takes every thread's buffer and writes it.
    fn collect(&self, sink: &mut Box<dyn Write + Send>) {
        for shard in &*self.shards {
            let buf = {
                let mut shard = lock(shard);
                shard.lines = 0;
                std::mem::take(&mut shard.buf)
            };
            if !buf.is_empty() {
                Self::out(sink, &buf);
            }
        }
        let _ = sink.flush();
    }

    fn out(sink: &mut Box<dyn Write + Send>, buf: &[u8]) {
        if let Err(e) = sink.write_all(buf) {
            tracing::warn!(error = %ErrorChain(&e), "cannot write the access log");
        }
    }

    fn reopen_if_asked(&self, sink: &mut Box<dyn Write + Send>) {
        let target = {
            let mut t = lock(&self.target);
            if !std::mem::take(&mut t.1) {
                return;
            }
            t.0.clone()
        };
        self.collect(sink);
        match target.open() {
            Ok(new) => *sink = new,
            Err(e) => {
                tracing::error!(error = %ErrorChain(&e), "cannot reopen the access log; writing on to the old file")
            }
        }
    }
}

/// A line being built for one request: its fields after `time`, in the log's format.
#[derive(Debug)]
pub(crate) struct Line {
    /// Reused from earlier lines (a line is formatted into it, then copied to the thread's buffer).
    buf: crate::bufs::Buf,
    json: bool,
}

impl Line {
    /// Adds `key=value` (`"key":"value"`).
    pub(crate) fn str(&mut self, key: &str, value: &[u8]) {
        let b = &mut self.buf;
        if self.json {
            b.extend_from_slice(b",\"");
            b.extend_from_slice(key.as_bytes());
            b.extend_from_slice(b"\":\"");
            escape_json(b, value);
            b.push(b'"');
        } else {
            b.push(b' ');
            b.extend_from_slice(key.as_bytes());
            b.push(b'=');
            let plain = !value.is_empty()
                && value
                    .iter()
                    .all(|&c| c > b' ' && c != b'"' && c != b'\\' && c < 0x7f);
            if plain {
                b.extend_from_slice(value);
            } else {
                b.push(b'"');
                escape_json(b, value);
                b.push(b'"');
            }
        }
    }

    /// Adds a number.
    pub(crate) fn num(&mut self, key: &str, value: u64) {
        self.key(key);
        self.buf
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    /// Adds a duration in milliseconds with three decimals (`1.234`), rounded to the microsecond: integer
    /// formatting only (a float formatted with a precision cost more than the rest of the line).
    pub(crate) fn millis(&mut self, key: &str, duration: Duration) {
        let micros = (duration.as_nanos() + 500) / 1000;
        self.key(key);
        let mut digits = itoa::Buffer::new();
        self.buf
            .extend_from_slice(digits.format(micros / 1000).as_bytes());
        self.buf.push(b'.');
        let frac = digits.format(micros % 1000 + 1000);
        self.buf.extend_from_slice(&frac.as_bytes()[1..]);
    }

    /// ` key=` (`,"key":`).
    fn key(&mut self, key: &str) {
        let b = &mut self.buf;
        if self.json {
            b.extend_from_slice(b",\"");
            b.extend_from_slice(key.as_bytes());
            b.extend_from_slice(b"\":");
        } else {
            b.push(b' ');
            b.extend_from_slice(key.as_bytes());
            b.push(b'=');
        }
    }
}

/// Writes `value` as the inside of a JSON string (also used for quoted logfmt values).
fn escape_json(out: &mut Vec<u8>, value: &[u8]) {
    for &c in value {
        match c {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            // Control characters, and any byte that is not ASCII: a line is always ASCII (and valid JSON),
            // whatever a client managed to put in a field.
            c if !(0x20..0x7f).contains(&c) => {
                let _ = write!(out, "\\u{c:04x}");
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// A sink that hands what it gets to the test, and can be held shut.
    #[derive(Clone)]
    struct Sink {
        data: Arc<Mutex<Vec<u8>>>,
        gate: Option<Arc<Barrier>>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if let Some(gate) = self.gate.take() {
                gate.wait(); // blocked until the test opens the gate
            }
            lock(&self.data).extend_from_slice(buf);
            Ok(buf.len())
        }

        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn log(
        format: Option<LogFormat>,
        gate: Option<Arc<Barrier>>,
    ) -> (AccessLog, Arc<Mutex<Vec<u8>>>, Counter) {
        let data = Arc::new(Mutex::new(Vec::new()));
        let sink = Sink {
            data: Arc::clone(&data),
            gate,
        };
        let config = AccessLogConfig {
            format,
            ..AccessLogConfig::default()
        };
        let dropped = Counter::default();
        let log = AccessLog::with_sink(
            &config,
            LogFormat::Text,
            dropped.clone(),
            Target::Stdout,
            Box::new(sink),
        );
        (log, data, dropped)
    }

    fn request(log: &AccessLog, path: &[u8]) {
        let mut line = log.line().unwrap();
        line.str("path", path);
        line.num("status", 200);
        line.millis("duration_ms", Duration::from_micros(1500));
        log.write(&line);
    }

    #[test]
    fn lines_are_logfmt_or_json() {
        let (text, data, _) = log(None, None);
        request(&text, b"/a b\"c");
        text.flush();
        let out = String::from_utf8(lock(&data).clone()).unwrap();
        let (time, rest) = out.split_once(' ').unwrap();
        assert_eq!(rest, "path=\"/a b\\\"c\" status=200 duration_ms=1.500\n");
        assert!(
            time.starts_with("time=20") && time.ends_with('Z') && time.len() == 29,
            "{out}"
        );

        let (json, data, _) = log(Some(LogFormat::Json), None);
        request(&json, b"/x\x01");
        json.flush();
        let out = String::from_utf8(lock(&data).clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v["path"], "/x\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.5);
        assert!(v["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn lines_are_ascii_whatever_the_fields_hold() {
        let (log, data, _) = log(Some(LogFormat::Json), None);
        request(&log, "/caf\u{e9}\n".as_bytes());
        log.flush();
        let out = lock(&data).clone();
        assert!(out.is_ascii(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(out.trim_ascii_end()).unwrap();
        assert_eq!(v["path"], "/caf\u{c3}\u{a9}\n");
    }

    /// A writer stuck on its sink (a pipe nobody reads) cannot hold up a shutdown or a reopen: the flush gives
    /// up and says so.
    #[test]
    fn a_flush_gives_up_on_a_stuck_writer() {
        let gate = Arc::new(Barrier::new(2));
        let (log, _, _) = log(None, Some(Arc::clone(&gate)));
        request(&log, b"/x");
        // The writer is held at the gate: whatever the machine's load, this flush cannot complete.
        assert!(!log.flush_within(Duration::from_millis(300)));
        gate.wait();
        // Released, it completes; the bound is generous so that a loaded machine (a CI box running the whole
        // suite) cannot make the writer look stuck.
        assert!(log.flush_within(Duration::from_secs(120)));
    }

    #[test]
    fn durations_are_milliseconds_with_three_decimals() {
        let text = |d: Duration| {
            let mut line = Line {
                buf: crate::bufs::take(16),
                json: false,
            };
            line.millis("d", d);
            String::from_utf8(line.buf.to_vec()).unwrap()
        };
        assert_eq!(text(Duration::ZERO), " d=0.000");
        assert_eq!(text(Duration::from_micros(1500)), " d=1.500");
        assert_eq!(text(Duration::from_nanos(1_234_567)), " d=1.235");
        assert_eq!(text(Duration::from_nanos(999_999_600)), " d=1000.000");
        assert_eq!(text(Duration::from_secs(61)), " d=61000.000");
        let mut json = Line {
            buf: crate::bufs::take(16),
            json: true,
        };
        json.millis("d", Duration::from_micros(7));
        json.num("n", 42);
        assert_eq!(&json.buf[..], b",\"d\":0.007,\"n\":42");
    }

    #[test]
    fn off_means_no_line() {
        let (log, _, _) = log(None, None);
        log.apply(
            &AccessLogConfig {
                enabled: false,
                ..AccessLogConfig::default()
            },
            LogFormat::Text,
        );
        assert!(log.line().is_none());
    }

    /// The writer is stuck (a full disk, a pipe nobody reads): requests keep being served, and the lines that
    /// do not fit are dropped and counted instead of waited for.
    #[test]
    fn a_full_buffer_drops_and_counts_instead_of_blocking() {
        let gate = Arc::new(Barrier::new(2));
        let (log, data, dropped) = log(None, Some(Arc::clone(&gate)));
        // Enough lines to fill the queue and this thread's buffer many times over.
        let path = vec![b'p'; 200];
        let mut written = 0;
        while dropped.get() == 0 && written < 1_000_000 {
            // The writer may have taken one buffer and be stuck writing it.
            request(&log, &path);
            written += 1;
        }
        assert!(dropped.get() > 0, "nothing dropped after {written} lines");
        // This thread was never blocked: it is here. Open the gate; what was kept is written, whole lines only.
        gate.wait();
        log.flush();
        let out = lock(&data).clone();
        let kept = out.iter().filter(|&&b| b == b'\n').count() as u64;
        assert!(out.ends_with(b"\n"));
        // Every line is either written or counted as dropped.
        assert_eq!(kept + dropped.get(), written);
        assert!(kept > 0);
    }
}

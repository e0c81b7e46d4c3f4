//! One implementation running as a real process on `127.0.0.1` with `PORT=0`.

use std::net::{Ipv4Addr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Method;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::process::Child;
use tokio::task::JoinHandle;

use crate::client::{self, KeepAlive, RawConnection, Reply};
use crate::implementation::{Implementation, Launcher};

/// How long a process may take to print its startup line (a JVM on a busy machine is slow).
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a process may take to exit: the contract bounds the drain at 30 s.
pub const EXIT_TIMEOUT: Duration = Duration::from_secs(45);

/// A running echo service. Killed (`SIGKILL`) when dropped, so a failing case leaves no
/// process behind; its stderr is printed then if the thread is panicking.
#[derive(Debug)]
pub struct Service {
    implementation: Implementation,
    name: String,
    addr: SocketAddr,
    child: Child,
    stdout_rest: Option<JoinHandle<Vec<String>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Service {
    /// Starts `implementation` with `HOST=127.0.0.1`, `PORT=0` and `env`, and waits for its
    /// startup line, which must be exactly `<name> listening on 127.0.0.1:<port>`.
    ///
    /// # Panics
    ///
    /// When the process cannot start, exits, or prints anything else first.
    pub async fn start(
        implementation: Implementation,
        launcher: &Launcher,
        env: &[(&str, &str)],
    ) -> Self {
        let name = env
            .iter()
            .find(|(variable, _)| *variable == "SERVICE_NAME")
            .map_or(implementation.name(), |(_, value)| *value)
            .to_owned();
        let mut command = launcher.command();
        command.env("HOST", "127.0.0.1").env("PORT", "0");
        command.envs(env.iter().copied());
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let mut child = command.spawn().unwrap_or_else(|err| {
            panic!("{}: cannot start {command:?}: {err}", implementation.name())
        });
        let stderr = collect(child.stderr.take());
        let Some(stdout) = child.stdout.take() else {
            panic!("{}: no stdout pipe", implementation.name());
        };
        let mut stdout = BufReader::new(stdout).lines();

        let first = tokio::time::timeout(STARTUP_TIMEOUT, stdout.next_line()).await;
        let line = match first {
            Ok(Ok(Some(line))) => line,
            Ok(Ok(None) | Err(_)) => {
                let status = tokio::time::timeout(EXIT_TIMEOUT, child.wait()).await;
                panic!(
                    "{}: stdout closed before the startup line (exit: {status:?}); stderr:\n{}",
                    implementation.name(),
                    text(&stderr)
                );
            }
            Err(_) => panic!(
                "{}: no startup line within {STARTUP_TIMEOUT:?}; stderr:\n{}",
                implementation.name(),
                text(&stderr)
            ),
        };
        let expected = format!("{name} listening on 127.0.0.1:");
        let port = line
            .strip_prefix(&expected)
            .and_then(|port| port.parse::<u16>().ok())
            .filter(|port| *port != 0)
            .unwrap_or_else(|| {
                panic!(
                    "{}: startup line {line:?} is not `{expected}<port>` (with the actual port)",
                    implementation.name()
                )
            });
        let stdout_rest = tokio::spawn(async move {
            let mut rest = Vec::new();
            while let Ok(Some(line)) = stdout.next_line().await {
                rest.push(line);
            }
            rest
        });
        Self {
            implementation,
            name,
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
            child,
            stdout_rest: Some(stdout_rest),
            stderr,
        }
    }

    /// The implementation under test.
    pub fn implementation(&self) -> Implementation {
        self.implementation
    }

    /// The service name it must report (`SERVICE_NAME` or the implementation's default).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// One request on a fresh connection; checks the headers every response must carry.
    ///
    /// # Panics
    ///
    /// When the exchange fails or a header is missing or wrong.
    pub async fn request(&self, method: Method, path: &str, body: impl Into<Bytes>) -> Reply {
        let what = format!("{method} {path}");
        let reply = client::exchange(self.addr, method, path, body)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", self.name));
        self.check_headers(&reply, &what);
        reply
    }

    /// `POST path` with `body`.
    pub async fn post(&self, path: &str, body: impl Into<Bytes>) -> Reply {
        self.request(Method::POST, path, body).await
    }

    /// `GET path`.
    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Bytes::new()).await
    }

    /// Asserts `x-echo-service: <name>` and `content-type: application/json`.
    ///
    /// # Panics
    ///
    /// When either is missing or different.
    pub fn check_headers(&self, reply: &Reply, what: &str) {
        assert_eq!(
            reply.header("x-echo-service"),
            Some(self.name.as_str()),
            "{}: {what}: x-echo-service on every response; got {reply}",
            self.name
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{}: {what}: content-type on every response; got {reply}",
            self.name
        );
    }

    /// A keep-alive connection to the service.
    pub async fn keep_alive(&self) -> KeepAlive {
        KeepAlive::open(self.addr)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", self.name))
    }

    /// A raw TCP connection to the service.
    pub async fn raw(&self) -> RawConnection {
        RawConnection::open(self.addr)
            .await
            .unwrap_or_else(|err| panic!("{}: {err}", self.name))
    }

    /// Sends a signal by name (`TERM`, `INT`) with `kill(1)`.
    ///
    /// # Panics
    ///
    /// When the process is gone or `kill` fails.
    pub async fn signal(&self, signal: &str) {
        let pid = self
            .child
            .id()
            .unwrap_or_else(|| panic!("{}: the process has already exited", self.name));
        let status = tokio::process::Command::new("kill")
            .args(["-s", signal, &pid.to_string()])
            .status()
            .await
            .unwrap_or_else(|err| panic!("kill -s {signal} {pid}: {err}"));
        assert!(status.success(), "kill -s {signal} {pid}: {status}");
    }

    /// Waits for the process to exit (at most [`EXIT_TIMEOUT`]).
    ///
    /// # Panics
    ///
    /// When it is still running after the timeout.
    pub async fn wait_exit(&mut self) -> ExitStatus {
        match tokio::time::timeout(EXIT_TIMEOUT, self.child.wait()).await {
            Ok(Ok(status)) => status,
            Ok(Err(err)) => panic!("{}: waiting for the process: {err}", self.name),
            Err(_) => panic!(
                "{}: still running {EXIT_TIMEOUT:?} after being asked to stop",
                self.name
            ),
        }
    }

    /// Every stdout line after the startup line. Call after the process exited.
    pub async fn stdout_after_startup(&mut self) -> Vec<String> {
        match self.stdout_rest.take() {
            Some(task) => tokio::time::timeout(EXIT_TIMEOUT, task)
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default(),
            None => Vec::new(),
        }
    }

    /// What the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        text(&self.stderr)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        if std::thread::panicking() {
            eprintln!(
                "--- stderr of {} ({}) ---\n{}",
                self.name,
                self.implementation.name(),
                self.stderr()
            );
        }
    }
}

/// How a process that was expected to exit by itself ended.
#[derive(Debug)]
pub struct Exit {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything it wrote to stdout.
    pub stdout: String,
    /// Everything it wrote to stderr.
    pub stderr: String,
}

/// Starts `implementation` with `HOST=127.0.0.1`, `PORT=0` and `env`, expecting it to exit on
/// its own (e.g. on a bad configuration value), and returns how it ended.
///
/// # Panics
///
/// When it cannot start or is still running after [`EXIT_TIMEOUT`].
pub async fn run_to_exit(
    implementation: Implementation,
    launcher: &Launcher,
    env: &[(&str, &str)],
) -> Exit {
    let mut command = launcher.command();
    command.env("HOST", "127.0.0.1").env("PORT", "0");
    command.envs(env.iter().copied());
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|err| panic!("{}: cannot start {command:?}: {err}", implementation.name()));
    match tokio::time::timeout(EXIT_TIMEOUT, child.wait_with_output()).await {
        Ok(Ok(output)) => Exit {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Ok(Err(err)) => panic!("{}: {err}", implementation.name()),
        Err(_) => panic!(
            "{} with {env:?}: still running after {EXIT_TIMEOUT:?} (expected it to exit)",
            implementation.name()
        ),
    }
}

fn collect(pipe: Option<impl AsyncRead + Unpin + Send + 'static>) -> Arc<Mutex<Vec<u8>>> {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    if let Some(mut pipe) = pipe {
        let sink = Arc::clone(&buffer);
        tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while let Ok(n @ 1..) = pipe.read(&mut chunk).await {
                sink.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .extend_from_slice(&chunk[..n]);
            }
        });
    }
    buffer
}

fn text(buffer: &Mutex<Vec<u8>>) -> String {
    String::from_utf8_lossy(&buffer.lock().unwrap_or_else(PoisonError::into_inner)).into_owned()
}

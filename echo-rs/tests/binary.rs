//! The `echo-rs` binary: configuration errors, the startup line, signals, `--healthcheck`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use echo_rs::{Config, EchoServer};

fn echo_rs() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_echo-rs"));
    for variable in [
        "PORT",
        "HOST",
        "SERVICE_NAME",
        "ECHO_DELAY_MS",
        "ECHO_CHAOS",
    ] {
        command.env_remove(variable);
    }
    command
}

/// Kills the child on drop, so a failing test leaves no process behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn bad_values_exit_2_with_a_message() {
    for (variable, value) in [
        ("PORT", "abc"),
        ("ECHO_DELAY_MS", "-1"),
        ("HOST", "nowhere"),
    ] {
        let output = echo_rs().env(variable, value).output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{variable}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{stderr}");
        assert!(output.stdout.is_empty());
    }
    let output = echo_rs().arg("--bogus").output().unwrap();
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn prints_the_startup_line_and_exits_0_on_sigterm() {
    let child = echo_rs()
        .env("HOST", "127.0.0.1")
        .env("PORT", "0")
        .env("SERVICE_NAME", "bin-test")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Running(child);
    let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let port = line
        .trim_end()
        .strip_prefix("bin-test listening on 127.0.0.1:")
        .unwrap_or_else(|| panic!("unexpected startup line {line:?}"));
    assert!(port.parse::<u16>().unwrap() > 0);

    let health = echo_rs()
        .arg("--healthcheck")
        .env("HOST", "127.0.0.1")
        .env("PORT", port)
        .status()
        .unwrap();
    assert!(health.success());

    let kill = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert_eq!(child.0.wait().unwrap().code(), Some(0));
}

#[tokio::test]
async fn healthcheck_exits_1_when_unhealthy_or_down() {
    let server = EchoServer::start("127.0.0.1:0", Config::new("hc"))
        .await
        .unwrap();
    let port = server.local_addr().port().to_string();
    let check = {
        let port = port.clone();
        move || {
            echo_rs()
                .arg("--healthcheck")
                .env("PORT", &port)
                .stderr(Stdio::null())
                .status()
                .unwrap()
                .code()
        }
    };
    // HOST defaults to 0.0.0.0; the probe then asks 127.0.0.1.
    assert_eq!(
        tokio::task::spawn_blocking(check.clone()).await.unwrap(),
        Some(0)
    );
    server.chaos().set_healthy(false);
    assert_eq!(
        tokio::task::spawn_blocking(check.clone()).await.unwrap(),
        Some(1)
    );
    server.kill().await;
    assert_eq!(tokio::task::spawn_blocking(check).await.unwrap(), Some(1));
    // Docker reserves exit code 2 for health checks: a bad configuration is a failed check.
    let bad = echo_rs()
        .arg("--healthcheck")
        .env("PORT", "abc")
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert_eq!(bad.code(), Some(1));
}

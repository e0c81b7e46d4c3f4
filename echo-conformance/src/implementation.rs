//! The four implementations: where they live, how to build them once, how to start them.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::time::Duration;

/// How long one build (cargo, go, maven) may take before the suite gives up on it.
const BUILD_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One implementation of the echo contract.
///
/// Adding an implementation: a variant here (name, directory, build and launch in
/// [`Implementation::prepare`]) and one line in `tests/conformance.rs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Implementation {
    /// `echo-rs/`, built with cargo.
    Rust,
    /// `echo-go/`, built with `go build`.
    Go,
    /// `echo-node/`, run with `node server.js`.
    Node,
    /// `echo-java/`, built with `mvn package`, run with `java -jar`.
    Java,
}

impl Implementation {
    /// Every implementation, in the order the suite reports them.
    pub const ALL: [Self; 4] = [Self::Rust, Self::Go, Self::Node, Self::Java];

    /// The directory name, which is also the default `SERVICE_NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Rust => "echo-rs",
            Self::Go => "echo-go",
            Self::Node => "echo-node",
            Self::Java => "echo-java",
        }
    }

    /// The implementation's directory in the repository.
    pub fn dir(self) -> PathBuf {
        repo_root().join(self.name())
    }

    /// Builds the implementation (once per test process) and returns how to start it.
    ///
    /// Returns `None`, after a notice on stderr, when its directory or toolchain is missing
    /// and the environment variable `CI` is not `true`.
    ///
    /// # Panics
    ///
    /// When the implementation is missing and `CI=true`, or when its build fails.
    pub fn prepare(self) -> Option<&'static Launcher> {
        static PREPARED: [OnceLock<Prepared>; 4] = [const { OnceLock::new() }; 4];
        let slot = &PREPARED[self as usize];
        match slot.get_or_init(|| self.build()) {
            Prepared::Ready(launcher) => Some(launcher),
            Prepared::Missing(reason) => {
                let ci = std::env::var("CI").is_ok_and(|value| value == "true");
                assert!(
                    !ci,
                    "{}: {reason} (CI=true: a missing implementation is a failure)",
                    self.name()
                );
                // Straight to the stderr handle: the test harness captures `eprintln!` of
                // passing tests, and this notice must be seen.
                let _ = writeln!(
                    std::io::stderr(),
                    "NOTICE: skipping {} conformance case: {reason}",
                    self.name()
                );
                None
            }
            Prepared::Failed(reason) => panic!("{}: {reason}", self.name()),
        }
    }

    fn build(self) -> Prepared {
        let dir = self.dir();
        let entry = match self {
            Self::Rust => "Cargo.toml",
            Self::Go => "go.mod",
            Self::Node => "server.js",
            Self::Java => "pom.xml",
        };
        if !dir.join(entry).is_file() {
            return Prepared::Missing(format!("{} does not exist yet", dir.join(entry).display()));
        }
        match self {
            Self::Rust => build_rust(),
            Self::Go => {
                if let Some(missing) = missing_tool("go", &["version"]) {
                    return missing;
                }
                let out = build_dir().join("echo-go");
                let mut go = Command::new("go");
                go.arg("build")
                    .arg("-o")
                    .arg(&out)
                    .arg(".")
                    .current_dir(&dir);
                match run_build(go) {
                    Ok(_) => Prepared::Ready(Launcher::new(out, [], dir)),
                    Err(err) => Prepared::Failed(err),
                }
            }
            Self::Node => match missing_tool("node", &["--version"]) {
                Some(missing) => missing,
                None => Prepared::Ready(Launcher::new("node".into(), ["server.js".into()], dir)),
            },
            Self::Java => {
                if let Some(missing) =
                    missing_tool("java", &["-version"]).or_else(|| missing_tool("mvn", &["-v"]))
                {
                    return missing;
                }
                let mut mvn = Command::new("mvn");
                mvn.args(["-q", "-B", "-DskipTests", "package"])
                    .current_dir(&dir);
                if let Err(err) = run_build(mvn) {
                    return Prepared::Failed(err);
                }
                let jar = dir.join("target").join("echo-java.jar");
                if !jar.is_file() {
                    return Prepared::Failed(format!(
                        "mvn package did not produce {}",
                        jar.display()
                    ));
                }
                Prepared::Ready(Launcher::new(
                    "java".into(),
                    ["-jar".into(), jar.into_os_string()],
                    dir,
                ))
            }
        }
    }
}

/// A prepared way to start one implementation: program, arguments, working directory.
#[derive(Debug, Clone)]
pub struct Launcher {
    program: PathBuf,
    args: Vec<OsString>,
    cwd: PathBuf,
}

impl Launcher {
    fn new<const N: usize>(program: PathBuf, args: [OsString; N], cwd: PathBuf) -> Self {
        Self {
            program,
            args: args.into(),
            cwd,
        }
    }

    /// A command that starts the service, with the contract's environment variables removed
    /// (so the caller's environment cannot leak into a case), and SIGINT and SIGTERM at their default
    /// handling. A process started in the background by a non-interactive shell (`scripts/test.sh &`,
    /// `nohup`) inherits SIGINT *ignored*, and a JVM then installs no handler for it: echo-java would
    /// never see the signal the shutdown cases send. `env --default-signal` (GNU coreutils 8.31+) undoes
    /// that before the service starts; a POSIX shell cannot (a signal ignored on entry stays ignored).
    pub fn command(&self) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("env");
        command
            .arg("--default-signal=INT,TERM")
            .arg(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd);
        for variable in crate::CLEARED_VARIABLES {
            command.env_remove(variable);
        }
        command
    }
}

enum Prepared {
    Ready(Launcher),
    Missing(String),
    Failed(String),
}

fn repo_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir.parent().unwrap_or(manifest_dir).to_path_buf()
}

/// `<target>/<profile>/echo-conformance`, next to the test binary (`<profile>/deps/...`).
fn build_dir() -> PathBuf {
    let dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(Path::to_path_buf))
        .unwrap_or_else(std::env::temp_dir)
        .join("echo-conformance");
    let _ = std::fs::create_dir_all(&dir);
    dir
}

fn missing_tool(program: &str, version_args: &[&str]) -> Option<Prepared> {
    let status = Command::new(program)
        .args(version_args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) if status.success() => None,
        Ok(status) => Some(Prepared::Missing(format!(
            "`{program} {}` failed ({status})",
            version_args.join(" ")
        ))),
        Err(err) => Some(Prepared::Missing(format!(
            "`{program}` is not available: {err}"
        ))),
    }
}

/// Builds the `echo-rs` binary with the cargo that runs the tests, in the same target
/// directory and profile, and reads the binary's path from cargo's JSON messages.
fn build_rust() -> Prepared {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "-p", "echo-rs", "--bin", "echo-rs"])
        .arg("--message-format=json-render-diagnostics")
        .current_dir(repo_root());
    // The test binary lives in <target>/<profile>/deps/; reuse that target dir and profile.
    if let Some(profile_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(Path::to_path_buf))
        && let Some(target_dir) = profile_dir
            .parent()
            .filter(|dir| dir.join("CACHEDIR.TAG").is_file())
    {
        command.arg("--target-dir").arg(target_dir);
        match profile_dir.file_name().and_then(|name| name.to_str()) {
            Some("debug") | None => {}
            Some(profile) => {
                command.args(["--profile", profile]);
            }
        }
    }
    let output = match run_build(command) {
        Ok(output) => output,
        Err(err) => return Prepared::Failed(err),
    };
    let executable = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| {
            message["reason"] == "compiler-artifact" && message["target"]["name"] == "echo-rs"
        })
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    match executable {
        Some(executable) => Prepared::Ready(Launcher::new(executable, [], repo_root())),
        None => Prepared::Failed("cargo build reported no echo-rs executable".to_owned()),
    }
}

/// Runs a build command to completion (at most [`BUILD_TIMEOUT`]), failing on a non-zero exit.
fn run_build(mut command: Command) -> Result<Output, String> {
    let description = format!("{command:?}");
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|err| format!("{description}: {err}"))?;
    let pid = child.id();
    let (done, finished) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match finished.recv_timeout(BUILD_TIMEOUT) {
        Ok(output) => output.map_err(|err| format!("{description}: {err}"))?,
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            return Err(format!("{description} took longer than {BUILD_TIMEOUT:?}"));
        }
    };
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{description} failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_directories() {
        for implementation in Implementation::ALL {
            assert_eq!(
                implementation
                    .dir()
                    .file_name()
                    .and_then(|name| name.to_str()),
                Some(implementation.name())
            );
        }
    }

    #[test]
    fn a_failing_build_reports_its_output() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo out; echo err >&2; exit 3"]);
        let err = run_build(command).unwrap_err();
        assert!(err.contains("out") && err.contains("err"), "{err}");
    }

    #[test]
    fn a_missing_tool_is_reported() {
        assert!(missing_tool("definitely-not-a-real-toolchain", &["--version"]).is_some());
        assert!(missing_tool("sh", &["-c", "true"]).is_none());
    }
}

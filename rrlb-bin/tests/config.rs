//! The configuration contract (`docs/configuration.md`): the schema and defaults, precedence, errors, reload.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rrlb::config::{
    Algorithm, Cli, Config, ConfigError, ConfigErrorKind, InitialHealth, Origin, RetryCondition,
};
use rrlb::logging::LogFormat;

/// The example file of `docs/configuration.md` (the contract's), verbatim.
const SPEC_EXAMPLE: &str = r#"
listen = "0.0.0.0:8080"
admin_listen = "127.0.0.1:9901"
algorithm = "round-robin"

[[backends]]
url = "http://127.0.0.1:8081"
weight = 1            # default 1, range 1..=10000 (0 is refused: drain instead)
name = "echo-go"      # default: host:port

[health]              # active checks
path = "/health"
interval = "2s"
timeout = "1s"
healthy_threshold = 2     # consecutive passes to become healthy (rise)
unhealthy_threshold = 3   # consecutive failures to become unhealthy (fall)

[circuit_breaker]     # passive, per backend
consecutive_failures = 5
failure_rate = 0.5        # over the last `window` calls, once `min_calls` were seen
window = 20
min_calls = 10
slow_call_duration = "1s" # a call slower than this counts toward slow_call_rate
slow_call_rate = 0.8
open_duration = "5s"      # first ejection; doubles on each re-open, up to max_open_duration
max_open_duration = "2m"
half_open_max_calls = 3   # probes let through while half-open; all must succeed to close

[timeouts]
request = "2s"        # per attempt
connect = "500ms"
header_read = "10s"   # client must send its headers within this (slowloris)

[retries]
attempts = 2          # extra attempts, each on a different backend
on = ["connect-failure"]  # also: "timeout", "reset", "5xx" (request bodies are buffered, so POST is safe to retry before bytes reached a backend)

[limits]
max_body_bytes = 1048576
rate_per_client = 0   # requests/s per client IP, 0 = off
burst = 50

[admin]
token = ""            # same as --admin-token
"#;

const NO_ENV: [(&str, &str); 0] = [];

fn cli(args: &[&str], env: &[(&str, &str)]) -> Cli {
    let argv = std::iter::once("rrlb").chain(args.iter().copied());
    Cli::try_parse_from_env(argv, env.iter().copied()).unwrap()
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::from_toml_str("rrlb.toml", text, &Cli::default())
}

fn parse_err(text: &str) -> ConfigError {
    match parse(text) {
        Ok(c) => panic!("accepted:\n{text}\nas {c:?}"),
        Err(e) => e,
    }
}

/// A file in the temp dir, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(text: &str) -> Self {
        static N: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "rrlb-config-test-{}-{}.toml",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::write(&path, text).unwrap();
        Self(path)
    }

    fn write(&self, text: &str) {
        std::fs::write(&self.0, text).unwrap();
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn defaults_match_spec() {
    let c = Config::load(&cli(&[], &[])).unwrap();
    assert_eq!(c, Config::default());
    assert_eq!(c.source, None);
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:9901");
    assert_eq!(c.algorithm, Algorithm::RoundRobin);
    assert!(c.backends.is_empty());
    assert_eq!(c.panic_threshold, 0);

    let h = &c.health;
    assert!(h.enabled);
    assert_eq!(h.path.as_str(), "/health");
    assert_eq!(
        (h.interval, h.timeout),
        (Duration::from_secs(2), Duration::from_secs(1))
    );
    assert_eq!((h.healthy_threshold, h.unhealthy_threshold), (2, 3));
    assert_eq!(h.initial, InitialHealth::Healthy);

    let b = &c.circuit_breaker;
    assert_eq!(b.consecutive_failures, 5);
    assert_eq!((b.failure_rate, b.window, b.min_calls), (0.5, 20, 10));
    assert_eq!(
        (b.slow_call_duration, b.slow_call_rate),
        (Duration::from_secs(1), 0.8)
    );
    assert_eq!(b.open_duration, Duration::from_secs(5));
    assert_eq!(b.max_open_duration, Duration::from_secs(120));
    assert_eq!(b.half_open_max_calls, 3);

    let t = &c.timeouts;
    assert_eq!(t.request, Duration::from_secs(2));
    assert_eq!(t.connect, Duration::from_millis(500));
    assert_eq!(t.header_read, Duration::from_secs(10));
    assert_eq!(t.drain, Duration::from_secs(30));

    assert_eq!(c.retries.attempts, 2);
    assert_eq!(
        c.retries.on.iter().copied().collect::<Vec<_>>(),
        [RetryCondition::ConnectFailure]
    );
    assert_eq!(
        (c.retries.budget_ratio, c.retries.budget_min_per_second),
        (0.2, 10)
    );

    assert_eq!(c.limits.max_body_bytes, 1_048_576);
    assert_eq!((c.limits.rate_per_client, c.limits.burst), (0, 50));

    assert_eq!(c.admin.token, None);
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level.as_str(), "info");
}

#[test]
fn spec_example_parses_to_the_documented_values() {
    let c = parse(SPEC_EXAMPLE).unwrap();
    assert_eq!(c.source.as_deref(), Some(Path::new("rrlb.toml")));
    assert_eq!(c.backends.len(), 1);
    let b = &c.backends[0];
    assert_eq!((b.name.as_str(), b.weight), ("echo-go", 1));
    assert_eq!(b.url.to_string(), "http://127.0.0.1:8081/");
    assert_eq!(
        (b.host(), b.port(), b.path_prefix()),
        ("127.0.0.1", 8081, "")
    );
    // Everything else in the example is the default.
    let expected = Config {
        source: c.source.clone(),
        backends: c.backends.clone(),
        ..Config::default()
    };
    assert_eq!(c, expected);
}

#[test]
fn extensions_parse() {
    let c = parse(
        r#"
panic_threshold = 50
[health]
enabled = false
[timeouts]
drain = "5s"
[retries]
on = ["5xx", "timeout", "reset", "connect-failure", "timeout"]
budget_ratio = 0
budget_min_per_second = 0
"#,
    )
    .unwrap();
    assert_eq!(c.panic_threshold, 50);
    assert!(!c.health.enabled);
    assert_eq!(c.timeouts.drain, Duration::from_secs(5));
    assert_eq!(c.retries.on.len(), 4);
    assert_eq!(c.retries.budget_ratio, 0.0);

    let c = parse("[health]\ninitial = \"unhealthy\"").unwrap();
    assert_eq!(c.health.initial, InitialHealth::Unhealthy);
}

#[test]
fn backend_urls_names_and_prefixes() {
    let c = parse(
        r#"
[[backends]]
url = "HTTP://Echo-Go:8081/"
[[backends]]
url = "https://api.example.com/v1/"
weight = 10000
[[backends]]
url = "http://[::1]:9000"
name = "local-v6"
"#,
    )
    .unwrap();
    let names: Vec<_> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["echo-go:8081", "api.example.com:443", "local-v6"]);
    assert_eq!(c.backends[1].path_prefix(), "/v1");
    assert_eq!(c.backends[1].url_string(), "https://api.example.com/v1");
    assert_eq!(c.backends[1].weight, 10000);
    assert!(c.backends[1].is_https());
}

#[test]
fn precedence_flag_over_env_over_file_over_default() {
    let file = TempFile::new(
        r#"
listen = "127.0.0.1:7001"
admin_listen = "127.0.0.1:7002"
algorithm = "least-request"
[timeouts]
request = "3s"
connect = "1s"
[admin]
token = "from-file"
[[backends]]
url = "http://file:1"
"#,
    );
    let env = [
        ("RRLB_CONFIG", file.path()),
        ("RRLB_LISTEN", "127.0.0.1:8001"),
        ("RRLB_ALGORITHM", "random"),
        ("RRLB_TIMEOUT", "4s"),
        ("RRLB_ADMIN_TOKEN", "from-env"),
        ("RRLB_LOG_FORMAT", "json"),
        ("RRLB_LOG", "debug"),
    ];

    // Env over file over default.
    let c = Config::load(&cli(&[], &env)).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:8001"); // env
    assert_eq!(c.admin_listen.to_string(), "127.0.0.1:7002"); // file
    assert_eq!(c.algorithm, Algorithm::Random); // env
    assert_eq!(c.timeouts.request, Duration::from_secs(4)); // env
    assert_eq!(c.timeouts.connect, Duration::from_secs(1)); // file
    assert_eq!(c.timeouts.header_read, Duration::from_secs(10)); // default
    assert_eq!(c.admin.token.as_ref().map(|t| t.expose()), Some("from-env"));
    assert_eq!(c.log.format, LogFormat::Json);
    assert_eq!(c.log.level.as_str(), "debug");
    assert_eq!(c.backends[0].name, "file:1"); // file
    assert_eq!(c.source.as_deref(), Some(file.0.as_path()));

    // Flags over env.
    let c = Config::load(&cli(
        &[
            "--listen",
            "127.0.0.1:9001",
            "--algorithm",
            "weighted-round-robin",
            "--timeout",
            "5s",
            "--admin-token",
            "from-flag",
            "--log-format",
            "text",
            "--log-level",
            "warn,rrlb=trace",
            "-b",
            "http://flag:1=7",
        ],
        &env,
    ))
    .unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9001");
    assert_eq!(c.algorithm, Algorithm::WeightedRoundRobin);
    assert_eq!(c.timeouts.request, Duration::from_secs(5));
    assert_eq!(
        c.admin.token.as_ref().map(|t| t.expose()),
        Some("from-flag")
    );
    assert_eq!(c.log.format, LogFormat::Text);
    assert_eq!(c.log.level.as_str(), "warn,rrlb=trace");
    // Backends from flags replace the file's list.
    assert_eq!(c.backends.len(), 1);
    assert_eq!(
        (c.backends[0].name.as_str(), c.backends[0].weight),
        ("flag:1", 7)
    );

    // `--config` beats RRLB_CONFIG.
    let other = TempFile::new("algorithm = \"random\"");
    let c = Config::load(&cli(&["-c", other.path()], &[("RRLB_CONFIG", file.path())])).unwrap();
    assert_eq!(c.algorithm, Algorithm::Random);
    assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
}

#[test]
fn env_backends_replace_the_files_list() {
    let file = TempFile::new("[[backends]]\nurl = \"http://file:1\"\n");
    let c = Config::load(&cli(
        &["-c", file.path()],
        &[("RRLB_BACKENDS", "http://env:1=2,http://env:2")],
    ))
    .unwrap();
    let names: Vec<_> = c.backends.iter().map(|b| b.name.as_str()).collect();
    assert_eq!(names, ["env:1", "env:2"]);
}

#[test]
fn reload_rereads_the_file_and_keeps_flag_overrides() {
    let file = TempFile::new(
        "algorithm = \"random\"\n[timeouts]\nrequest = \"3s\"\n[[backends]]\nurl = \"http://a:1\"\n",
    );
    let cli = cli(
        &["-c", file.path(), "--timeout", "9s"],
        &[("RRLB_LISTEN", "127.0.0.1:8123")],
    );
    let first = Config::load(&cli).unwrap();
    assert_eq!(first.algorithm, Algorithm::Random);
    assert_eq!(first.timeouts.request, Duration::from_secs(9));

    file.write(
        "algorithm = \"least-request\"\nlisten = \"127.0.0.1:1\"\n[timeouts]\nrequest = \"1s\"\n\
         [[backends]]\nurl = \"http://a:1\"\n[[backends]]\nurl = \"http://b:1\"\n",
    );
    let second = Config::reload(&cli).unwrap();
    assert_eq!(second.algorithm, Algorithm::LeastRequest); // from the new file
    assert_eq!(second.backends.len(), 2); // the list comes from the file again
    assert_eq!(second.timeouts.request, Duration::from_secs(9)); // the flag still wins
    assert_eq!(second.listen.to_string(), "127.0.0.1:8123"); // so does the environment
    assert!(first.changes_needing_restart(&second).is_empty());

    // An invalid new file is an error (the caller keeps `second`).
    file.write("algorithm = \"fastest\"\n");
    let e = Config::reload(&cli).unwrap_err();
    assert!(e.is_invalid_value());
    assert!(e.to_string().contains(file.path()), "{e}");

    // A removed file is an error too.
    let path = file.0.clone();
    drop(file);
    let e = Config::reload(&cli).unwrap_err();
    assert!(e.is_read());
    assert!(e.to_string().contains(path.to_str().unwrap()), "{e}");
}

#[test]
fn reload_without_a_file_is_an_error() {
    let e = Config::reload(&cli(&["-b", "http://a:1"], &[])).unwrap_err();
    assert!(e.is_no_file());
    assert!(
        e.to_string().starts_with("no configuration file to reload"),
        "{e}"
    );
}

#[test]
fn changes_needing_restart_names_the_listeners() {
    let a = Config::default();
    let b = parse("listen = \"127.0.0.1:1\"\nadmin_listen = \"127.0.0.1:2\"").unwrap();
    assert_eq!(a.changes_needing_restart(&b), ["listen", "admin_listen"]);
}

/// Asserts an error's kind, key, value, and that its message names file, key and value.
#[track_caller]
fn assert_error(text: &str, kind: ConfigErrorKind, key: &str, value: Option<&str>) -> ConfigError {
    let e = parse_err(text);
    let msg = e.to_string();
    assert_eq!(e.kind(), kind, "{msg}");
    assert_eq!(e.key(), Some(key), "{msg}");
    assert_eq!(e.value(), value, "{msg}");
    assert_eq!(e.origin(), &Origin::File("rrlb.toml".into()));
    assert!(msg.starts_with("rrlb.toml: "), "{msg}");
    assert!(msg.contains(key), "{msg}");
    if let Some(value) = value {
        assert!(msg.contains(&format!("{key} = {value}: ")), "{msg}");
    }
    assert!(e.location().is_some(), "{msg}");
    assert!(!msg.contains('\n'), "{msg}");
    e
}

#[test]
fn errors_name_file_key_and_value() {
    use ConfigErrorKind::*;
    let e = assert_error(
        "[[backends]]\nurl = \"http://a\"\n[[backends]]\nurl = \"http://b\"\nweight = 0\n",
        InvalidValue,
        "backends[1].weight",
        Some("0"),
    );
    assert_eq!(
        e.to_string(),
        "rrlb.toml: backends[1].weight = 0: out of range 1..=10000 \
         (0 is refused: drain the backend instead) (line 5, column 10)"
    );
    let e = assert_error(
        "[timeouts]\nrequest = \"2 parsecs\"",
        InvalidValue,
        "timeouts.request",
        Some("\"2 parsecs\""),
    );
    assert!(e.reason().starts_with("invalid duration"), "{e}");
    let e = assert_error(
        "[health]\nintervall = \"2s\"",
        UnknownKey,
        "health.intervall",
        None,
    );
    assert!(
        e.to_string()
            .starts_with("rrlb.toml: unknown key `health.intervall`"),
        "{e}"
    );
    assert_error(
        "[[backends]]\nurl = \"ftp://x\"",
        InvalidValue,
        "backends[0].url",
        Some("\"ftp://x\""),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a\"\nweight = 10001",
        InvalidValue,
        "backends[0].weight",
        Some("10001"),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a\"\nweight = -1",
        InvalidValue,
        "backends[0].weight",
        Some("-1"),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a\"\nweight = \"3\"",
        InvalidValue,
        "backends[0].weight",
        Some("\"3\""),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a\"\nname = \"\"",
        InvalidValue,
        "backends[0].name",
        Some("\"\""),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a\"\n[[backends]]\nurl = \"http://A:80/\"",
        Duplicate,
        "backends[1].url",
        Some("\"http://A:80/\""),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a\"\nname = \"x\"\n[[backends]]\nurl = \"http://b\"\nname = \"x\"",
        Duplicate,
        "backends[1].name",
        Some("\"x\""),
    );
    assert_error(
        "[[backends]]\nurl = \"http://a/v1\"\n[[backends]]\nurl = \"http://a/v2\"",
        Duplicate,
        "backends[1].url",
        Some("\"http://a/v2\""),
    );
    assert_error(
        "listen = \"localhost:8080\"",
        InvalidValue,
        "listen",
        Some("\"localhost:8080\""),
    );
    assert_error(
        "admin_listen = \"127.0.0.1\"",
        InvalidValue,
        "admin_listen",
        Some("\"127.0.0.1\""),
    );
    assert_error("listen = 8080", InvalidValue, "listen", Some("8080"));
    assert_error(
        "algorithm = \"fastest\"",
        InvalidValue,
        "algorithm",
        Some("\"fastest\""),
    );
    assert_error(
        "panic_threshold = 101",
        InvalidValue,
        "panic_threshold",
        Some("101"),
    );
    assert_error(
        "[health]\ninterval = 2",
        InvalidValue,
        "health.interval",
        Some("2"),
    );
    assert_error(
        "[health]\ninterval = \"0s\"",
        InvalidValue,
        "health.interval",
        Some("\"0s\""),
    );
    assert_error(
        "[health]\ninterval = \"2d\"",
        InvalidValue,
        "health.interval",
        Some("\"2d\""),
    );
    assert_error(
        "[health]\ntimeout = \"3s\"",
        InvalidValue,
        "health.timeout",
        Some("\"3s\""),
    );
    assert_error(
        "[health]\nhealthy_threshold = 0",
        InvalidValue,
        "health.healthy_threshold",
        Some("0"),
    );
    assert_error(
        "[health]\nunhealthy_threshold = 0",
        InvalidValue,
        "health.unhealthy_threshold",
        Some("0"),
    );
    assert_error(
        "[health]\npath = \"health\"",
        InvalidValue,
        "health.path",
        Some("\"health\""),
    );
    assert_error(
        "[health]\ninitial = \"maybe\"",
        InvalidValue,
        "health.initial",
        Some("\"maybe\""),
    );
    assert_error(
        "[health]\nenabled = false\ninitial = \"unhealthy\"",
        InvalidValue,
        "health.initial",
        Some("\"unhealthy\""),
    );
    assert_error(
        "[circuit_breaker]\nconsecutive_failures = 0",
        InvalidValue,
        "circuit_breaker.consecutive_failures",
        Some("0"),
    );
    assert_error(
        "[circuit_breaker]\nfailure_rate = 1.5",
        InvalidValue,
        "circuit_breaker.failure_rate",
        Some("1.5"),
    );
    assert_error(
        "[circuit_breaker]\nfailure_rate = nan",
        InvalidValue,
        "circuit_breaker.failure_rate",
        Some("nan"),
    );
    assert_error(
        "[circuit_breaker]\nslow_call_rate = -0.1",
        InvalidValue,
        "circuit_breaker.slow_call_rate",
        Some("-0.1"),
    );
    assert_error(
        "[circuit_breaker]\nwindow = 0",
        InvalidValue,
        "circuit_breaker.window",
        Some("0"),
    );
    assert_error(
        "[circuit_breaker]\nmin_calls = 21",
        InvalidValue,
        "circuit_breaker.min_calls",
        Some("21"),
    );
    assert_error(
        "[circuit_breaker]\nwindow = 5",
        InvalidValue,
        "circuit_breaker.window",
        Some("5"),
    );
    assert_error(
        "[circuit_breaker]\nopen_duration = \"3m\"",
        InvalidValue,
        "circuit_breaker.open_duration",
        Some("\"3m\""),
    );
    assert_error(
        "[circuit_breaker]\nmax_open_duration = \"1s\"",
        InvalidValue,
        "circuit_breaker.max_open_duration",
        Some("\"1s\""),
    );
    assert_error(
        "[circuit_breaker]\nhalf_open_max_calls = 0",
        InvalidValue,
        "circuit_breaker.half_open_max_calls",
        Some("0"),
    );
    assert_error(
        "[timeouts]\nconnect = \"fast\"",
        InvalidValue,
        "timeouts.connect",
        Some("\"fast\""),
    );
    assert_error(
        "[timeouts]\ndrain = \"\"",
        InvalidValue,
        "timeouts.drain",
        Some("\"\""),
    );
    assert_error(
        "[retries]\nattempts = 11",
        InvalidValue,
        "retries.attempts",
        Some("11"),
    );
    assert_error(
        "[retries]\non = [\"timeout\", \"4xx\"]",
        InvalidValue,
        "retries.on[1]",
        Some("\"4xx\""),
    );
    assert_error(
        "[retries]\nbudget_ratio = 2",
        InvalidValue,
        "retries.budget_ratio",
        Some("2"),
    );
    assert_error(
        "[limits]\nmax_body_bytes = 0",
        InvalidValue,
        "limits.max_body_bytes",
        Some("0"),
    );
    assert_error(
        "[limits]\nrate_per_client = 10\nburst = 0",
        InvalidValue,
        "limits.burst",
        Some("0"),
    );
    assert_error(
        "[limits]\nrate_per_client = -1",
        InvalidValue,
        "limits.rate_per_client",
        Some("-1"),
    );
    assert_error("bogus = 1", UnknownKey, "bogus", None);
    assert_error("[admin]\nuser = \"x\"", UnknownKey, "admin.user", None);
    assert_error(
        "[[backends]]\nurl = \"http://a\"\nwieght = 2",
        UnknownKey,
        "backends[0].wieght",
        None,
    );
    assert_error(
        "[[backends]]\nweight = 2",
        InvalidValue,
        "backends[0]",
        None,
    );
    assert_error("health = 1", InvalidValue, "health", Some("1"));
}

#[test]
fn syntax_errors_name_the_file_and_line() {
    let e = parse_err("listen = \"0.0.0.0:8080\"\n[health\ninterval = \"2s\"\n");
    assert!(e.is_syntax());
    assert_eq!(e.location().map(|l| l.line), Some(2));
    assert!(
        e.to_string().starts_with("rrlb.toml: TOML syntax error"),
        "{e}"
    );
    assert!(parse_err("a = 1\na = 2").is_syntax());
    assert!(parse_err("\u{0}").is_syntax());
}

#[test]
fn flag_and_env_errors_name_their_source() {
    let e = Config::load(&cli(&["-b", "http://a:1", "-b", "http://a:1/"], &[])).unwrap_err();
    assert!(e.is_duplicate());
    assert_eq!(e.origin(), &Origin::Flag("--backend"));
    assert!(
        e.to_string()
            .starts_with("--backend http://a:1: duplicate backend URL"),
        "{e}"
    );

    let e = Config::load(&cli(&[], &[("RRLB_BACKENDS", "http://a:1/x,http://a:1/y")])).unwrap_err();
    assert_eq!(e.origin(), &Origin::Env("RRLB_BACKENDS"));
    assert!(
        e.to_string()
            .starts_with("RRLB_BACKENDS=http://a:1/y: duplicate"),
        "{e}"
    );

    let e = Config::load(&cli(&["--timeout", "0s"], &[])).unwrap_err();
    assert_eq!(e.to_string(), "--timeout 0s: must be greater than 0");

    // Bad flag values are clap usage errors (exit status 2), naming the flag.
    let e = Cli::try_parse_from_env(["rrlb", "--backend", "ftp://x"], NO_ENV).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    let text = e.to_string();
    assert!(
        text.contains("--backend") && text.contains("ftp://x"),
        "{text}"
    );
    assert!(
        text.contains("unsupported scheme \"ftp\" (only http and https)"),
        "{text}"
    );

    let e = Cli::try_parse_from_env(["rrlb"], [("RRLB_ALGORITHM", "fastest")]).unwrap_err();
    assert_eq!(e.exit_code(), 2);
    assert!(e.to_string().contains("RRLB_ALGORITHM"), "{e}");

    let e = Config::load(&cli(&["-c", "/nonexistent/rrlb.toml"], &[])).unwrap_err();
    assert!(e.is_read());
    assert!(
        e.to_string()
            .starts_with("/nonexistent/rrlb.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn non_loopback_admin_needs_a_token() {
    let e = parse_err("admin_listen = \"0.0.0.0:9901\"");
    assert!(e.is_insecure(), "{e}");
    assert!(
        e.to_string()
            .starts_with("rrlb.toml: admin_listen = \"0.0.0.0:9901\": "),
        "{e}"
    );

    let e = Config::load(&cli(&["--admin-listen", "[::]:9901"], &[])).unwrap_err();
    assert!(e.is_insecure());
    assert_eq!(e.origin(), &Origin::Flag("--admin-listen"));

    let e = Config::load(&cli(&[], &[("RRLB_ADMIN_LISTEN", "10.0.0.1:9901")])).unwrap_err();
    assert!(e.is_insecure());
    assert_eq!(e.origin(), &Origin::Env("RRLB_ADMIN_LISTEN"));

    // An empty token is no token.
    assert!(parse_err("admin_listen = \"0.0.0.0:9901\"\n[admin]\ntoken = \"\"").is_insecure());

    // Loopback (v4, v6, v4-mapped) needs none; a token from any layer allows the rest.
    for addr in [
        "127.0.0.1:9901",
        "127.1.2.3:9901",
        "[::1]:9901",
        "[::ffff:127.0.0.1]:9901",
    ] {
        parse(&format!("admin_listen = \"{addr}\"")).unwrap();
    }
    parse("admin_listen = \"0.0.0.0:9901\"\n[admin]\ntoken = \"t0k3n\"").unwrap();
    let c = Config::from_toml_str(
        "rrlb.toml",
        "admin_listen = \"0.0.0.0:9901\"",
        &cli(&[], &[("RRLB_ADMIN_TOKEN", "t0k3n")]),
    )
    .unwrap();
    assert!(c.admin.token.unwrap().verify("t0k3n"));
}

#[test]
fn listeners_must_not_share_a_port() {
    let e = parse_err("listen = \"127.0.0.1:9901\"");
    assert_eq!(e.key(), Some("listen"));
    let e = parse_err("admin_listen = \"127.0.0.1:8080\"");
    assert_eq!(e.key(), Some("admin_listen"));
    // Port 0 (ephemeral) never clashes.
    parse("listen = \"127.0.0.1:0\"\nadmin_listen = \"127.0.0.1:0\"").unwrap();
}

#[test]
fn token_is_redacted_everywhere() {
    let c = parse("[admin]\ntoken = \"s3cret-token\"").unwrap();
    assert_eq!(c.admin.token.as_ref().unwrap().expose(), "s3cret-token");
    let toml = c.to_toml_string();
    assert!(toml.contains("token = \"<redacted>\""), "{toml}");
    for shown in [
        toml,
        c.to_string(),
        format!("{c:?}"),
        serde_json::to_string(&c).unwrap(),
        format!("{:?}", cli(&["--admin-token", "s3cret-token"], &[])),
    ] {
        assert!(!shown.contains("s3cret"), "{shown}");
    }
    let e = parse_err("[admin]\ntoken = \"s3cret token\"");
    assert!(!e.to_string().contains("s3cret"), "{e}");
    assert_eq!(e.key(), Some("admin.token"));
}

#[test]
fn effective_config_round_trips() {
    let text = r#"
listen = "127.0.0.1:18080"
admin_listen = "[::1]:19901"
algorithm = "weighted-round-robin"
panic_threshold = 30
[[backends]]
url = "http://a:1/api/"
weight = 5
[[backends]]
url = "https://b"
name = "bee"
[health]
enabled = true
path = "/healthz?full=1"
interval = "1500ms"
timeout = "250ms"
initial = "unhealthy"
[circuit_breaker]
failure_rate = 0.25
slow_call_duration = "1m 30s"
open_duration = "10s"
max_open_duration = "1h"
[timeouts]
request = "750ms"
drain = "1m"
[retries]
attempts = 0
on = []
budget_ratio = 0.125
[limits]
max_body_bytes = 1073741824
rate_per_client = 100
burst = 1
"#;
    let c = parse(text).unwrap();
    let printed = c.to_toml_string();
    let again = Config::from_toml_str("rrlb.toml", &printed, &Cli::default()).unwrap();
    assert_eq!(again, c, "{printed}");
    assert!(printed.contains("interval = \"1s 500ms\""), "{printed}");
    assert!(printed.contains("url = \"http://a:1/api\""), "{printed}");

    let json = serde_json::to_value(&c).unwrap();
    assert_eq!(json["backends"][1]["name"], "bee");
    assert_eq!(json["timeouts"]["request"], "750ms");
    assert_eq!(json["admin"]["token"], "");
}

#[test]
fn empty_file_is_all_defaults() {
    let c = parse("").unwrap();
    assert_eq!(
        c,
        Config {
            source: Some("rrlb.toml".into()),
            ..Config::default()
        }
    );
    let c = parse("# only a comment\n[health]\n[admin]\n").unwrap();
    assert_eq!(c.health, Config::default().health);
}

#[test]
fn fuzz_seeds_are_valid_configurations() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/config");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return; // the fuzz crate is not part of every checkout of this package
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        if let Err(e) = Config::from_toml_str(&path, &text, &Cli::default()) {
            panic!("{e}");
        }
    }
}

#[test]
fn a_bad_file_value_is_an_error_even_when_a_flag_overrides_it() {
    let flags = cli(
        &[
            "--timeout",
            "3s",
            "--listen",
            "127.0.0.1:8000",
            "--algorithm",
            "random",
            "--admin-token",
            "t0ken",
            "-b",
            "http://127.0.0.1:9000",
        ],
        &[],
    );
    for (text, key) in [
        ("[timeouts]\nrequest = \"2 parsecs\"\n", "timeouts.request"),
        ("listen = \"nowhere\"\n", "listen"),
        ("algorithm = \"fastest\"\n", "algorithm"),
        ("[[backends]]\nurl = \"ftp://x\"\n", "backends[0].url"),
    ] {
        let err = Config::from_toml_str("rrlb.toml", text, &flags).unwrap_err();
        assert_eq!(err.key(), Some(key), "{text}: {err}");
    }
    // A valid file under the same flags loads, and the flags win.
    let ok = Config::from_toml_str("rrlb.toml", "[timeouts]\nrequest = \"9s\"\n", &flags).unwrap();
    assert_eq!(ok.timeouts.request, Duration::from_secs(3));
}

#[test]
fn tracing_section_is_checked() {
    let c = parse("").unwrap();
    assert_eq!(c.tracing.otlp_endpoint, None);
    assert_eq!(c.tracing.sample_ratio, 0.01);
    assert_eq!(c.tracing.service_name, "rrlb");
    let c = parse(
        "[tracing]\notlp_endpoint = \"http://127.0.0.1:4318/\"\nsample_ratio = 1\nservice_name = \"edge\"\n",
    )
    .unwrap();
    assert_eq!(
        c.tracing.otlp_endpoint.as_deref(),
        Some("http://127.0.0.1:4318")
    );
    assert_eq!(
        (c.tracing.sample_ratio, c.tracing.service_name.as_str()),
        (1.0, "edge")
    );
    assert_eq!(
        parse("[tracing]\notlp_endpoint = \"\"\n")
            .unwrap()
            .tracing
            .otlp_endpoint,
        None
    );
    for (text, key, why) in [
        (
            "otlp_endpoint = \"ftp://collector\"",
            "tracing.otlp_endpoint",
            "http or https",
        ),
        (
            "otlp_endpoint = \"collector:4318\"",
            "tracing.otlp_endpoint",
            "http or https",
        ),
        (
            "otlp_endpoint = \"http://c:4318/?x=1\"",
            "tracing.otlp_endpoint",
            "no query",
        ),
        ("sample_ratio = 1.5", "tracing.sample_ratio", "0..=1"),
        ("sample_ratio = -0.1", "tracing.sample_ratio", "0..=1"),
        ("service_name = \" \"", "tracing.service_name", "empty"),
        ("sampler = \"always\"", "tracing.sampler", "unknown"),
    ] {
        let e = parse_err(&format!("[tracing]\n{text}\n")).to_string();
        assert!(e.contains(key) && e.contains(why), "{text}: {e}");
    }
}

#[test]
fn balancing_additions_parse_print_and_refuse_bad_values() {
    use ConfigErrorKind::*;
    let c = parse(
        r#"
algorithm = "peak-ewma"
[balancer]
ewma_decay = "30s"
[slow_start]
window = "1m"
[circuit_breaker]
max_ejection_percent = 50
"#,
    )
    .unwrap();
    assert_eq!(c.algorithm.as_str(), "peak-ewma");
    assert_eq!(c.balancer.ewma_decay, Duration::from_secs(30));
    assert_eq!(c.slow_start.window, Duration::from_secs(60));
    assert_eq!(c.circuit_breaker.max_ejection_percent, 50);
    let printed = c.to_toml_string();
    assert!(
        printed.contains("[slow_start]\nwindow = \"1m\""),
        "{printed}"
    );
    assert!(printed.contains("ewma_decay = \"30s\""), "{printed}");
    assert!(printed.contains("max_ejection_percent = 50"), "{printed}");
    assert_eq!(
        Config::from_toml_str("rrlb.toml", &printed, &Cli::default()).unwrap(),
        c
    );

    let d = parse("").unwrap();
    assert_eq!(d.balancer.ewma_decay, Duration::from_secs(10));
    assert_eq!(d.slow_start.window, Duration::ZERO, "off by default");
    assert_eq!(d.circuit_breaker.max_ejection_percent, 100);
    assert_eq!(
        parse("[slow_start]\nwindow = \"0s\"")
            .unwrap()
            .slow_start
            .window,
        Duration::ZERO
    );

    assert_error(
        "[balancer]\newma_decay = \"0s\"",
        InvalidValue,
        "balancer.ewma_decay",
        Some("\"0s\""),
    );
    assert_error(
        "[slow_start]\nwindow = \"soon\"",
        InvalidValue,
        "slow_start.window",
        Some("\"soon\""),
    );
    assert_error(
        "[slow_start]\nwindow = \"2d\"",
        InvalidValue,
        "slow_start.window",
        Some("\"2d\""),
    );
    assert_error(
        "[circuit_breaker]\nmax_ejection_percent = 101",
        InvalidValue,
        "circuit_breaker.max_ejection_percent",
        Some("101"),
    );
    assert_error(
        "[balancer]\ndecay = \"1s\"",
        UnknownKey,
        "balancer.decay",
        None,
    );
    let flags = cli(&["--algorithm", "peak-ewma"], &[]);
    assert_eq!(flags.algorithm.map(|a| a.as_str()), Some("peak-ewma"));
}

/// `Algorithm::ALL` is the one list of algorithm names: `docs/configuration.md` (the `--algorithm` row and the
/// `algorithm = ...` line of the example file) and `docs/api-spec.yml` (the effective configuration's enum)
/// list exactly its names, in its order.
#[test]
fn docs_list_exactly_the_engines_algorithms() {
    let docs = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/");
    let names: Vec<&str> = Algorithm::ALL.iter().map(|a| a.as_str()).collect();

    let md = std::fs::read_to_string(format!("{docs}configuration.md")).unwrap();
    let row = md
        .lines()
        .find(|l| l.starts_with("| `--algorithm NAME` |"))
        .expect("configuration.md has the --algorithm row");
    let meaning = row.trim_end_matches(['|', ' ']).rsplit('|').next().unwrap();
    let listed: Vec<&str> = meaning
        .split(',')
        .map(|n| n.trim().trim_matches('`'))
        .collect();
    assert_eq!(
        listed, names,
        "the --algorithm row of docs/configuration.md"
    );
    let example = md
        .lines()
        .find(|l| l.starts_with("algorithm = "))
        .expect("configuration.md's example file sets algorithm");
    let (_, comment) = example.split_once('#').unwrap();
    let listed: Vec<&str> = comment.split('|').map(str::trim).collect();
    assert_eq!(
        listed, names,
        "the example file's algorithm line in docs/configuration.md"
    );

    // The API spec names no algorithm itself (one list fewer to keep in step): it points to configuration.md.
    let yml = std::fs::read_to_string(format!("{docs}api-spec.yml")).unwrap();
    let spec: serde_norway::Value = serde_norway::from_str(&yml).unwrap();
    let algorithm = &spec["components"]["schemas"]["EffectiveConfig"]["properties"]["algorithm"];
    assert!(
        algorithm.get("enum").is_none(),
        "EffectiveConfig.algorithm in docs/api-spec.yml lists names again: {algorithm:?}"
    );
}

#[test]
fn tls_sections_parse_print_and_refuse_what_cannot_work() {
    use rrlb::config::ClientAuth;
    let c = parse("").unwrap();
    assert!(!c.tls.is_on());
    assert_eq!(c.tls.client_auth, ClientAuth::None);
    assert!(!c.upstream_tls.insecure_skip_verify);
    let text = "[tls]\ncert = \"a.crt\"\nkey = \"a.key\"\nclient_ca = \"ca.pem\"\nclient_auth = \"required\"\n\
                client_subject_header = \"x-client-subject\"\n[[tls.certificates]]\ncert = \"b.crt\"\nkey = \"b.key\"\n\
                [upstream_tls]\nca = \"ca.pem\"\nserver_name = \"backend.internal\"\n\
                [[backends]]\nurl = \"https://127.0.0.1:8443\"\ntls = { insecure_skip_verify = true, cert = \"c.crt\", key = \"c.key\" }\n";
    let c = parse(text).unwrap();
    assert!(c.tls.is_on());
    assert_eq!(c.tls.client_auth, ClientAuth::Required);
    assert_eq!(c.tls.certificates.len(), 1);
    let own = c.upstream_tls.overridden_by(c.backends[0].tls.as_ref());
    assert_eq!(
        own.ca.as_deref(),
        Some(std::path::Path::new("ca.pem")),
        "the global key stays where the backend sets none"
    );
    assert_eq!(
        own.cert.as_deref(),
        Some(std::path::Path::new("c.crt")),
        "the backend's own key wins"
    );
    assert!(own.insecure_skip_verify);
    // What --check prints loads back to the same configuration; paths are printed, never a key's contents.
    let printed = c.to_toml_string();
    assert_eq!(parse(&printed).unwrap().tls, c.tls);
    assert!(
        printed.contains("a.key") && !printed.contains("PRIVATE KEY"),
        "{printed}"
    );
    for (text, key, why) in [
        ("[tls]\ncert = \"a.crt\"\n", "tls.cert", "go together"),
        ("[tls]\nkey = \"a.key\"\n", "tls.key", "go together"),
        (
            "[[tls.certificates]]\ncert = \"b\"\nkey = \"b\"\n",
            "tls.certificates",
            "default pair",
        ),
        (
            "[tls]\ncert = \"a\"\nkey = \"a\"\nclient_auth = \"required\"\n",
            "tls.client_auth",
            "client_ca",
        ),
        (
            "[tls]\nclient_ca = \"ca\"\n",
            "tls.client_ca",
            "TLS on the listener",
        ),
        (
            "[tls]\ncert = \"a\"\nkey = \"a\"\nclient_subject_header = \"x-request-id\"\n",
            "tls.client_subject_header",
            "does not set",
        ),
        (
            "[tls]\ncert = \"a\"\nkey = \"a\"\nclient_subject_header = \"bad header\"\n",
            "tls.client_subject_header",
            "header field name",
        ),
        (
            "[tls]\nclient_auth = \"sometimes\"\n",
            "tls.client_auth",
            "unknown variant",
        ),
        (
            "[upstream_tls]\ncert = \"c\"\n",
            "upstream_tls.cert",
            "go together",
        ),
        (
            "[upstream_tls]\nverify = false\n",
            "upstream_tls.verify",
            "unknown",
        ),
        (
            "[[backends]]\nurl = \"http://a\"\ntls = { ca = \"ca\" }\n",
            "backends[0].tls",
            "only for https",
        ),
        (
            "[[backends]]\nurl = \"https://a\"\ntls = { key = \"k\" }\n",
            "backends[0].tls",
            "go together",
        ),
    ] {
        let e = parse_err(text).to_string();
        assert!(
            e.starts_with("rrlb.toml: ") && e.contains(key) && e.contains(why),
            "{text}: {e}"
        );
    }
}

//! [`Cli`]: the command line, with its environment variables.
//!
//! Every setting is an `Option` (or an empty `Vec`) when not given, so that [`Config::load`]
//! can apply the precedence flag > environment > file > default.
//!
//! The environment is read by [`Cli::try_parse_from_env`] from an explicit list of variables
//! (the process environment in [`Cli::from_process`]), not by clap from the process: tests
//! inject their own without touching process-global state, and production and tests share one
//! code path. The `env` attributes below document the names, and `--help` shows them.
//!
//! [`Config::load`]: super::Config::load

use std::collections::HashMap;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::parser::ValueSource;
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser};

use super::backend::BackendConfig;
use super::error::Origin;
use super::model::Algorithm;
use super::value::{parse_duration, parse_socket_addr};
use crate::admin_token::AdminToken;
use crate::logging::{LogFormat, LogLevel};

/// Command line of `rrlb`. Each flag has an `RRLB_*` environment variable; the flag wins.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "rrlb",
    version,
    about = "rrlb: an HTTP reverse proxy and load balancer",
    after_help = "Precedence: flags > environment (RRLB_*) > TOML file > defaults. \
                  An empty environment variable counts as unset. \
                  See docs/configuration.md for the file schema."
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(short = 'c', long = "config", env = "RRLB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Proxy listener, IP:PORT [default: 0.0.0.0:8080].
    #[arg(long = "listen", env = "RRLB_LISTEN", value_name = "ADDR", value_parser = parse_socket_addr)]
    pub listen: Option<SocketAddr>,

    /// Admin listener, IP:PORT [default: 127.0.0.1:9901].
    #[arg(long = "admin-listen", env = "RRLB_ADMIN_LISTEN", value_name = "ADDR", value_parser = parse_socket_addr)]
    pub admin_listen: Option<SocketAddr>,

    /// Backend, e.g. http://echo-go:8081=3 (repeatable; RRLB_BACKENDS is comma-separated).
    /// Replaces the file's backends.
    #[arg(
        short = 'b',
        long = "backend",
        env = "RRLB_BACKENDS",
        value_name = "URL[=WEIGHT]",
        value_delimiter = ','
    )]
    pub backends: Vec<BackendConfig>,

    /// Balancing algorithm [default: round-robin].
    #[arg(long = "algorithm", env = "RRLB_ALGORITHM", value_name = "NAME", value_parser = algorithm_parser())]
    pub algorithm: Option<Algorithm>,

    /// Per-attempt upstream timeout, e.g. 250ms or 2s (= timeouts.request) [default: 2s].
    #[arg(long = "timeout", env = "RRLB_TIMEOUT", value_name = "DURATION", value_parser = parse_duration)]
    pub timeout: Option<Duration>,

    /// Bearer token required by mutating admin calls.
    #[arg(
        long = "admin-token",
        env = "RRLB_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<AdminToken>,

    /// Log format [default: text].
    #[arg(long = "log-format", env = "RRLB_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<LogFormat>,

    /// Log level filter, e.g. info or info,rrlb=debug [default: info].
    #[arg(long = "log-level", env = "RRLB_LOG", value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,

    /// Start three in-process echo backends (added latency 5, 15, 25 ms) and balance over them.
    #[arg(long = "demo")]
    pub demo: bool,

    /// Validate the configuration, print the effective configuration, exit 0 (valid) or 2.
    #[arg(long = "check")]
    pub check: bool,

    /// Probe the admin listener's /healthz and exit 0 if it answers 200, else 1
    /// (for container HEALTHCHECKs).
    #[arg(long = "healthcheck")]
    pub healthcheck: bool,

    /// Which settings came from the environment rather than a flag (for error messages).
    #[arg(skip)]
    from_env: Vec<&'static str>,
}

/// Every setting with an environment variable: (argument id, flag, variable).
const ENV_ARGS: [(&str, &str, &str); 9] = [
    ("config", "--config", "RRLB_CONFIG"),
    ("listen", "--listen", "RRLB_LISTEN"),
    ("admin_listen", "--admin-listen", "RRLB_ADMIN_LISTEN"),
    ("backends", "--backend", "RRLB_BACKENDS"),
    ("algorithm", "--algorithm", "RRLB_ALGORITHM"),
    ("timeout", "--timeout", "RRLB_TIMEOUT"),
    ("admin_token", "--admin-token", "RRLB_ADMIN_TOKEN"),
    ("log_format", "--log-format", "RRLB_LOG_FORMAT"),
    ("log_level", "--log-level", "RRLB_LOG"),
];

/// `--algorithm`: the engine's names, listed with a line each in `--help`.
fn algorithm_parser() -> impl TypedValueParser<Value = Algorithm> {
    PossibleValuesParser::new(
        Algorithm::ALL.map(|a| PossibleValue::new(a.as_str()).help(a.summary())),
    )
    .try_map(|name| name.parse::<Algorithm>())
}

impl Cli {
    /// Parses the process's arguments and environment; on error or `--help`/`--version`,
    /// prints and exits as clap does (status 2 for usage errors).
    pub fn from_process() -> Self {
        Self::try_parse_from_env(std::env::args_os(), std::env::vars_os())
            .unwrap_or_else(|e| e.exit())
    }

    /// Parses `args` (the first is the program name) with `env` as the environment: a flag
    /// beats its variable, an empty variable counts as unset.
    ///
    /// ```
    /// use rrlb::config::Cli;
    ///
    /// let cli = Cli::try_parse_from_env(
    ///     ["rrlb", "--listen", "127.0.0.1:8000"],
    ///     [("RRLB_LISTEN", "127.0.0.1:1"), ("RRLB_ALGORITHM", "random")],
    /// )?;
    /// assert_eq!(cli.listen, Some("127.0.0.1:8000".parse()?));
    /// assert_eq!(cli.algorithm.map(|a| a.as_str()), Some("random"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_parse_from_env<A, T, E, K, V>(args: A, env: E) -> Result<Self, clap::Error>
    where
        A: IntoIterator<Item = T>,
        T: Into<OsString>,
        E: IntoIterator<Item = (K, V)>,
        K: Into<OsString>,
        V: Into<OsString>,
    {
        let env: HashMap<OsString, OsString> =
            env.into_iter().map(|(k, v)| (k.into(), v.into())).collect();
        let mut argv: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let mut cmd = command_without_env();

        // First pass: which settings did the flags give?
        let flags = cmd.try_get_matches_from_mut(argv.iter())?;
        let mut from_env = Vec::new();
        for (id, flag, var) in ENV_ARGS {
            if given_on_command_line(&flags, id) {
                continue;
            }
            let Some(value) = env.get(std::ffi::OsStr::new(var)).filter(|v| !v.is_empty()) else {
                continue;
            };
            let mut arg = OsString::from(format!("{flag}="));
            arg.push(value);
            // Check the variable on its own, to name it (not the flag) if it is invalid.
            if let Err(e) = cmd.try_get_matches_from_mut([OsString::from("rrlb"), arg.clone()]) {
                let shown = if var == "RRLB_ADMIN_TOKEN" {
                    "<redacted>".to_owned()
                } else {
                    value.to_string_lossy().into_owned()
                };
                let reason = clap_reason(&e);
                return Err(clap::Error::raw(
                    clap::error::ErrorKind::ValueValidation,
                    format!("invalid value {shown:?} in environment variable {var}: {reason}\n"),
                )
                .format(&mut cmd));
            }
            argv.push(arg);
            from_env.push(id);
        }

        let matches = cmd.try_get_matches_from_mut(argv)?;
        let mut cli = Self::from_arg_matches(&matches).map_err(|e| e.format(&mut cmd))?;
        cli.from_env = from_env;
        Ok(cli)
    }

    /// Where the file key `key` was overridden, if a flag or variable set it: e.g. `--timeout` for
    /// `timeouts.request`.
    pub(crate) fn overrides(&self, key: &str) -> Option<Origin> {
        let (id, given) = match key {
            "listen" => ("listen", self.listen.is_some()),
            "admin_listen" => ("admin_listen", self.admin_listen.is_some()),
            "algorithm" => ("algorithm", self.algorithm.is_some()),
            "timeouts.request" => ("timeout", self.timeout.is_some()),
            "admin.token" => ("admin_token", self.admin_token.is_some()),
            "backends" => ("backends", !self.backends.is_empty()),
            _ => return None,
        };
        given.then(|| self.origin(id))
    }

    /// Where the value of setting `id` (a field name such as `"listen"`) came from:
    /// [`Origin::Env`] if from its environment variable, else [`Origin::Flag`].
    pub(crate) fn origin(&self, id: &str) -> Origin {
        let Some(&(id, flag, var)) = ENV_ARGS.iter().find(|(i, _, _)| *i == id) else {
            return Origin::Default;
        };
        if self.from_env.contains(&id) {
            Origin::Env(var)
        } else {
            Origin::Flag(flag)
        }
    }
}

/// The derived command with clap's own environment lookup turned off (we feed the variables
/// ourselves); `--help` still names each variable.
fn command_without_env() -> clap::Command {
    Cli::command().mut_args(
        |arg| match arg.get_env().map(|v| v.to_string_lossy().into_owned()) {
            Some(var) => {
                let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
                arg.env(None::<&'static str>)
                    .help(format!("{help} [env: {var}]"))
            }
            None => arg,
        },
    )
}

fn given_on_command_line(matches: &ArgMatches, id: &str) -> bool {
    matches.try_contains_id(id).unwrap_or(false)
        && matches.value_source(id) == Some(ValueSource::CommandLine)
}

/// The value parser's message inside a clap error, without clap's framing.
fn clap_reason(e: &clap::Error) -> String {
    use std::error::Error as _;
    match e.source() {
        Some(source) => source.to_string(),
        None => e
            .to_string()
            .lines()
            .next()
            .unwrap_or_default()
            .trim_start_matches("error: ")
            .to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ENV: [(&str, &str); 0] = [];

    #[test]
    fn command_is_consistent() {
        Cli::command().debug_assert();
        command_without_env().debug_assert();
        // Every argument with an environment variable is in ENV_ARGS, and the reverse.
        let cmd = Cli::command();
        let with_env: Vec<(String, String)> = cmd
            .get_arguments()
            .filter_map(|a| {
                Some((
                    a.get_id().to_string(),
                    a.get_env()?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert_eq!(with_env.len(), ENV_ARGS.len());
        for (id, flag, var) in ENV_ARGS {
            assert!(with_env.contains(&(id.to_owned(), var.to_owned())), "{id}");
            let arg = cmd.get_arguments().find(|a| a.get_id() == id).unwrap();
            assert_eq!(format!("--{}", arg.get_long().unwrap()), flag);
        }
    }

    #[test]
    fn flag_beats_env_and_empty_env_is_unset() {
        let cli = Cli::try_parse_from_env(
            ["rrlb", "--algorithm", "random"],
            [
                ("RRLB_ALGORITHM", "least-request"),
                ("RRLB_LISTEN", ""),
                ("RRLB_TIMEOUT", "250ms"),
            ],
        )
        .unwrap();
        assert_eq!(cli.algorithm, Some(Algorithm::Random));
        assert_eq!(cli.listen, None);
        assert_eq!(cli.timeout, Some(Duration::from_millis(250)));
        assert_eq!(cli.origin("timeout"), Origin::Env("RRLB_TIMEOUT"));
        assert_eq!(cli.origin("algorithm"), Origin::Flag("--algorithm"));
    }

    #[test]
    fn backends_split_on_commas_and_repeat() {
        let cli = Cli::try_parse_from_env(
            [
                "rrlb",
                "-b",
                "http://a:1=2",
                "--backend",
                "http://b:2,http://c:3",
            ],
            NO_ENV,
        )
        .unwrap();
        assert_eq!(cli.backends.len(), 3);
        let cli =
            Cli::try_parse_from_env(["rrlb"], [("RRLB_BACKENDS", "http://a:1, http://b:2=5")])
                .unwrap();
        assert_eq!(cli.backends.len(), 2);
        assert_eq!(cli.backends[1].weight, 5);
        // Flags replace the variable entirely.
        let cli = Cli::try_parse_from_env(
            ["rrlb", "-b", "http://x:1"],
            [("RRLB_BACKENDS", "http://a:1,http://b:2")],
        )
        .unwrap();
        assert_eq!(cli.backends.len(), 1);
    }

    #[test]
    fn bad_env_value_names_the_variable() {
        let e = Cli::try_parse_from_env(["rrlb"], [("RRLB_TIMEOUT", "2 parsecs")]).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("RRLB_TIMEOUT"), "{text}");
        assert!(text.contains("2 parsecs"), "{text}");
        let e = Cli::try_parse_from_env(["rrlb"], [("RRLB_ADMIN_TOKEN", "has space")]).unwrap_err();
        assert!(!e.to_string().contains("has space"), "{e}");
        let e = Cli::try_parse_from_env(["rrlb"], [("RRLB_BACKENDS", "ftp://x")]).unwrap_err();
        assert!(e.to_string().contains("unsupported scheme \"ftp\""), "{e}");
    }

    #[test]
    fn bad_flags_are_usage_errors() {
        for args in [
            vec!["rrlb", "--listen", "localhost:80"],
            vec!["rrlb", "--algorithm", "fastest"],
            vec!["rrlb", "--timeout", "2 parsecs"],
            vec!["rrlb", "-b", "ftp://x"],
            vec!["rrlb", "--log-format", "xml"],
            vec!["rrlb", "--log-level", "loud"],
            vec!["rrlb", "--bogus"],
        ] {
            let e = Cli::try_parse_from_env(args.clone(), NO_ENV).unwrap_err();
            assert_eq!(e.exit_code(), 2, "{args:?}");
        }
    }

    #[test]
    fn help_names_the_variables_and_hides_the_token() {
        let help = command_without_env().render_long_help().to_string();
        for (_, _, var) in ENV_ARGS {
            assert!(help.contains(var), "{var} missing from\n{help}");
        }
        let e = Cli::try_parse_from_env(["rrlb", "--help"], [("RRLB_ADMIN_TOKEN", "s3cret")])
            .unwrap_err();
        assert!(!e.to_string().contains("s3cret"));
    }
}

//! Configuration: command line, environment, TOML file and defaults, validated into one
//! [`Config`].
//!
//! # Why a separate layer
//! The proxy, the admin API and the reload path all need the same answer to "what is the
//! configuration now?", and an operator needs to know *before* a restart whether a file is valid
//! (`rrlb --check`). So everything is parsed and checked here, once, into plain typed values
//! ([`SocketAddr`](std::net::SocketAddr)s, [`Duration`](std::time::Duration)s, enums), and every
//! refusal is a [`ConfigError`] that names the file (or flag, or variable), the key and the value.
//!
//! # Precedence
//! Highest first: flags > environment (`RRLB_*`) > TOML file > defaults, setting by setting.
//! Backends are the exception: a list from `--backend`/`RRLB_BACKENDS` *replaces* the file's list.
//! [`Config::reload`] re-reads the file and re-applies the same flags and environment.
//!
//! ```
//! use rrlb::config::{Cli, Config};
//!
//! let file = r#"
//! listen = "127.0.0.1:8080"
//! [[backends]]
//! url = "http://127.0.0.1:8081"
//! weight = 2
//! [timeouts]
//! request = "5s"
//! "#;
//! // The flag beats the file.
//! let cli = Cli::try_parse_from_env(["rrlb", "--timeout", "250ms"], [("RRLB_ALGORITHM", "random")])?;
//! let config = Config::from_toml_str("rrlb.toml", file, &cli)?;
//! assert_eq!(config.timeouts.request.as_millis(), 250);
//! assert_eq!(config.backends[0].name, "127.0.0.1:8081");
//! assert_eq!(config.algorithm.as_str(), "random");
//!
//! let err = Config::from_toml_str("rrlb.toml", "[[backends]]\nurl = \"http://a\"\nweight = 0", &cli)
//!     .unwrap_err();
//! assert_eq!(
//!     err.to_string(),
//!     "rrlb.toml: backends[0].weight = 0: out of range 1..=10000 \
//!      (0 is refused: drain the backend instead) (line 3, column 10)"
//! );
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The schema, every flag and variable, and the reload rules are in `docs/configuration.md`.

mod backend;
mod cli;
mod error;
mod load;
mod model;
mod source;
mod value;

pub use crate::admin_token::{AdminToken, InvalidToken};
pub use backend::{
    BackendConfig, Discovery, InvalidBackend, MAX_NAME_LEN, check_backend_name, check_weight,
    parse_backend_url,
};
pub use cli::Cli;
pub use error::{ConfigError, ConfigErrorKind, Location, Origin};
pub use model::{
    AccessLogConfig, AdminConfig, Algorithm, BalancerConfig, CertPair, CircuitBreakerConfig,
    ClientAuth, Config, DiscoveryConfig, EtcdConfig, HealthConfig, InitialHealth, LimitsConfig,
    RetriesConfig, RetryCondition, SlowStartConfig, StateConfig, StoreKind, TimeoutsConfig,
    TlsConfig, TracingConfig, UpstreamTlsConfig,
};
pub use value::{MAX_BODY_BYTES, MAX_DURATION, MAX_RETRY_ATTEMPTS};

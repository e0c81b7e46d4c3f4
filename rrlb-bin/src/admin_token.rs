//! The admin API's bearer token: what a valid one looks like, a comparison whose time does not depend on where
//! the tokens differ, and a `Debug`/`Display` that never show it.

use std::fmt;
use std::str::FromStr;

/// A bearer token. `Debug` and `Display` print `<redacted>`; read it with [`AdminToken::expose`]
/// and compare with [`AdminToken::verify`].
#[derive(Clone, PartialEq, Eq)]
pub struct AdminToken(String);

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidToken(&'static str);

impl AdminToken {
    /// The longest token accepted, in bytes.
    pub const MAX_LEN: usize = 1024;

    /// The token itself. Do not log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Compares `presented` with the token in time independent of where they differ.
    pub fn verify(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        let mut diff = a.len() ^ b.len();
        for (i, x) in a.iter().enumerate() {
            diff |= usize::from(x ^ b.get(i).copied().unwrap_or(0));
        }
        std::hint::black_box(diff) == 0
    }
}

impl FromStr for AdminToken {
    type Err = InvalidToken;

    /// Accepts 1 to 1024 visible ASCII characters (what fits in `authorization: Bearer TOKEN`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            Err(InvalidToken("empty token"))
        } else if s.len() > Self::MAX_LEN {
            Err(InvalidToken("token longer than 1024 characters"))
        } else if !s.bytes().all(|b| b.is_ascii_graphic()) {
            Err(InvalidToken(
                "a token is visible ASCII characters only (no spaces or control characters)",
            ))
        } else {
            Ok(Self(s.to_owned()))
        }
    }
}

impl fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for AdminToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_redacted_and_verified() {
        let t: AdminToken = "s3cret".parse().unwrap();
        assert_eq!(format!("{t:?} {t}"), "<redacted> <redacted>");
        assert!(t.verify("s3cret"));
        assert!(!t.verify("s3cre"));
        assert!(!t.verify("s3cret!"));
        assert!(!t.verify(""));
        assert!("".parse::<AdminToken>().is_err());
        assert!("a b".parse::<AdminToken>().is_err());
    }
}

//! Run-time fault injection: added latency, injected `500`s and a failing `/health`.
//!
//! One [`Chaos`] value is shared by a server's request handler, its `/_chaos` routes and any
//! Rust code holding a clone (tests of the load balancer flip a backend unhealthy without
//! going through HTTP). Settings are replaced as a whole under a lock, so a request never sees
//! half of an update, and an invalid update changes nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::MAX_DELAY_MS;

/// A snapshot of the fault-injection settings, as shown by `GET /_chaos`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChaosSettings {
    /// Latency added to every echo before answering.
    pub delay: Duration,
    /// Share of echoes answered with `500`, in `0.0..=1.0`.
    pub fail_rate: f64,
    /// Whether `/health` answers `200` (`true`) or `503` (`false`).
    pub healthy: bool,
}

impl ChaosSettings {
    /// No faults, with the given baseline delay.
    pub const fn with_delay(delay: Duration) -> Self {
        Self {
            delay,
            fail_rate: 0.0,
            healthy: true,
        }
    }
}

/// A refused chaos setting. Nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ChaosError {
    field: Option<String>,
    message: String,
}

impl ChaosError {
    fn body(message: impl Into<String>) -> Self {
        Self {
            field: None,
            message: message.into(),
        }
    }

    fn field_error(field: &str, message: String) -> Self {
        Self {
            field: Some(field.to_owned()),
            message,
        }
    }

    /// The name of the refused field as in `POST /_chaos` (`delay_ms`, `fail_rate`, `healthy`
    /// or an unknown name), or `None` when the body as a whole was refused.
    pub fn field(&self) -> Option<&str> {
        self.field.as_deref()
    }
}

/// A shared, cloneable handle on a server's fault-injection settings.
///
/// Changes apply to the next request; requests already sleeping keep the delay they started
/// with.
///
/// ```
/// use std::time::Duration;
/// use echo_rs::Chaos;
///
/// let chaos = Chaos::new(Duration::ZERO);
/// chaos.set_healthy(false);
/// chaos.set_fail_rate(0.25).unwrap();
/// assert!(chaos.set_fail_rate(1.5).is_err());
/// assert_eq!(chaos.settings().fail_rate, 0.25);
/// chaos.reset();
/// assert!(chaos.settings().healthy);
/// ```
#[derive(Debug, Clone)]
pub struct Chaos {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    initial: ChaosSettings,
    current: RwLock<ChaosSettings>,
    rng: SplitMix64,
}

impl Chaos {
    /// Settings without faults; `initial_delay` is also what [`Chaos::reset`] restores.
    pub fn new(initial_delay: Duration) -> Self {
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64);
        Self::with_seed(initial_delay, seed)
    }

    /// Like [`Chaos::new`], with a fixed seed for the `fail_rate` draws (reproducible tests).
    pub fn with_seed(initial_delay: Duration, seed: u64) -> Self {
        let initial = ChaosSettings::with_delay(initial_delay);
        Self {
            inner: Arc::new(Inner {
                initial,
                current: RwLock::new(initial),
                rng: SplitMix64::new(seed),
            }),
        }
    }

    /// The current settings.
    pub fn settings(&self) -> ChaosSettings {
        *self
            .inner
            .current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Sets the latency added to every echo.
    pub fn set_delay(&self, delay: Duration) {
        self.modify(|settings| settings.delay = delay);
    }

    /// Sets the share of echoes answered with `500`.
    ///
    /// # Errors
    ///
    /// [`ChaosError`] when `fail_rate` is not in `0.0..=1.0`; nothing changes.
    pub fn set_fail_rate(&self, fail_rate: f64) -> Result<(), ChaosError> {
        check_fail_rate(fail_rate)?;
        self.modify(|settings| settings.fail_rate = fail_rate);
        Ok(())
    }

    /// Makes `/health` answer `200` (`true`) or `503` (`false`).
    pub fn set_healthy(&self, healthy: bool) {
        self.modify(|settings| settings.healthy = healthy);
    }

    /// Restores the initial settings: the configured delay, no failures, healthy.
    pub fn reset(&self) -> ChaosSettings {
        let initial = self.inner.initial;
        self.modify(|settings| *settings = initial);
        initial
    }

    /// Applies a `POST /_chaos` body: a JSON object whose fields (`delay_ms`, `fail_rate`,
    /// `healthy`) are all optional. Either every given field is applied or none is.
    ///
    /// # Errors
    ///
    /// [`ChaosError`] naming the field when the body is not an object, a field has the wrong
    /// type or an out-of-range value, or a field is unknown.
    pub fn apply_json(&self, body: &[u8]) -> Result<ChaosSettings, ChaosError> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|err| ChaosError::body(format!("invalid JSON: {err}")))?;
        let serde_json::Value::Object(fields) = value else {
            return Err(ChaosError::body(
                "expected a JSON object with optional fields delay_ms, fail_rate, healthy",
            ));
        };
        let mut delay = None;
        let mut fail_rate = None;
        let mut healthy = None;
        for (name, value) in &fields {
            match name.as_str() {
                "delay_ms" => {
                    let millis = value
                        .as_u64()
                        .filter(|millis| *millis <= MAX_DELAY_MS)
                        .ok_or_else(|| {
                            ChaosError::field_error(
                                "delay_ms",
                                format!(
                                    "delay_ms must be an integer 0..={MAX_DELAY_MS}, got {value}"
                                ),
                            )
                        })?;
                    delay = Some(Duration::from_millis(millis));
                }
                "fail_rate" => {
                    let rate = value.as_f64().ok_or_else(|| {
                        ChaosError::field_error(
                            "fail_rate",
                            format!("fail_rate must be a number 0.0..=1.0, got {value}"),
                        )
                    })?;
                    check_fail_rate(rate)?;
                    fail_rate = Some(rate);
                }
                "healthy" => {
                    healthy = Some(value.as_bool().ok_or_else(|| {
                        ChaosError::field_error(
                            "healthy",
                            format!("healthy must be true or false, got {value}"),
                        )
                    })?);
                }
                unknown => {
                    return Err(ChaosError::field_error(
                        unknown,
                        format!(
                            "unknown field {unknown:?}: expected delay_ms, fail_rate or healthy"
                        ),
                    ));
                }
            }
        }
        Ok(self.modify(|settings| {
            if let Some(delay) = delay {
                settings.delay = delay;
            }
            if let Some(rate) = fail_rate {
                settings.fail_rate = rate;
            }
            if let Some(healthy) = healthy {
                settings.healthy = healthy;
            }
        }))
    }

    /// Draws whether one echo fails, with probability `fail_rate`.
    pub(crate) fn draw_failure(&self, fail_rate: f64) -> bool {
        if fail_rate <= 0.0 {
            false
        } else if fail_rate >= 1.0 {
            true
        } else {
            self.inner.rng.next_unit() < fail_rate
        }
    }

    fn modify(&self, change: impl FnOnce(&mut ChaosSettings)) -> ChaosSettings {
        let mut settings = self
            .inner
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        change(&mut settings);
        *settings
    }
}

fn check_fail_rate(rate: f64) -> Result<(), ChaosError> {
    if (0.0..=1.0).contains(&rate) {
        Ok(())
    } else {
        Err(ChaosError::field_error(
            "fail_rate",
            format!("fail_rate must be a number 0.0..=1.0, got {rate}"),
        ))
    }
}

/// A lock-free SplitMix64 generator: plenty for deciding which echoes fail.
#[derive(Debug)]
struct SplitMix64 {
    state: AtomicU64,
}

impl SplitMix64 {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new(seed: u64) -> Self {
        Self {
            state: AtomicU64::new(seed),
        }
    }

    fn next_u64(&self) -> u64 {
        let mut z = self
            .state
            .fetch_add(Self::GAMMA, Ordering::Relaxed)
            .wrapping_add(Self::GAMMA);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform draw in `0.0..1.0`.
    fn next_unit(&self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chaos() -> Chaos {
        Chaos::with_seed(Duration::from_millis(7), 42)
    }

    #[test]
    fn starts_without_faults() {
        let settings = chaos().settings();
        assert_eq!(
            settings,
            ChaosSettings::with_delay(Duration::from_millis(7))
        );
        assert!(settings.healthy);
        assert_eq!(settings.fail_rate, 0.0);
    }

    #[test]
    fn applies_every_field() {
        let chaos = chaos();
        let settings = chaos
            .apply_json(br#"{"delay_ms":500,"fail_rate":0.25,"healthy":false}"#)
            .unwrap();
        assert_eq!(
            settings,
            ChaosSettings {
                delay: Duration::from_millis(500),
                fail_rate: 0.25,
                healthy: false
            }
        );
        assert_eq!(chaos.settings(), settings);
    }

    #[test]
    fn fields_are_optional_and_keep_the_rest() {
        let chaos = chaos();
        chaos.apply_json(br#"{"healthy":false}"#).unwrap();
        chaos.apply_json(br#"{"fail_rate":1}"#).unwrap();
        chaos.apply_json(b"{}").unwrap();
        let settings = chaos.settings();
        assert!(!settings.healthy);
        assert_eq!(settings.fail_rate, 1.0);
        assert_eq!(settings.delay, Duration::from_millis(7));
    }

    #[test]
    fn refuses_bad_bodies_without_changing_anything() {
        let chaos = chaos();
        for (body, field) in [
            (&br#"{"healthy":false,"delay_ms":-1}"#[..], Some("delay_ms")),
            (br#"{"delay_ms":600001}"#, Some("delay_ms")),
            (br#"{"delay_ms":1.5}"#, Some("delay_ms")),
            (br#"{"delay_ms":"5"}"#, Some("delay_ms")),
            (br#"{"fail_rate":1.01}"#, Some("fail_rate")),
            (br#"{"fail_rate":-0.1}"#, Some("fail_rate")),
            (br#"{"fail_rate":"0.5"}"#, Some("fail_rate")),
            (br#"{"healthy":"false"}"#, Some("healthy")),
            (br#"{"healthy":false,"fail":1}"#, Some("fail")),
            (b"[]", None),
            (b"1", None),
            (b"{", None),
            (b"", None),
        ] {
            let err = chaos.apply_json(body).unwrap_err();
            assert_eq!(err.field(), field, "{err}");
            assert_eq!(
                chaos.settings(),
                ChaosSettings::with_delay(Duration::from_millis(7))
            );
        }
        let err = chaos.apply_json(br#"{"fail":1}"#).unwrap_err();
        assert!(err.to_string().contains("\"fail\""), "{err}");
    }

    #[test]
    fn reset_restores_the_initial_delay() {
        let chaos = chaos();
        chaos.set_delay(Duration::from_secs(1));
        chaos.set_healthy(false);
        chaos.set_fail_rate(0.5).unwrap();
        assert_eq!(
            chaos.reset(),
            ChaosSettings::with_delay(Duration::from_millis(7))
        );
        assert_eq!(chaos.settings(), chaos.reset());
    }

    #[test]
    fn clones_share_state() {
        let chaos = chaos();
        chaos.clone().set_healthy(false);
        assert!(!chaos.settings().healthy);
    }

    #[test]
    fn set_fail_rate_checks_range() {
        let chaos = chaos();
        assert!(chaos.set_fail_rate(f64::NAN).is_err());
        assert!(chaos.set_fail_rate(1.0 + f64::EPSILON).is_err());
        assert!(chaos.set_fail_rate(0.0).is_ok());
        assert!(chaos.set_fail_rate(1.0).is_ok());
    }

    #[test]
    fn failure_draws_follow_the_rate() {
        let chaos = chaos();
        assert!((0..1000).all(|_| !chaos.draw_failure(0.0)));
        assert!((0..1000).all(|_| chaos.draw_failure(1.0)));
        let failures = (0..10_000).filter(|_| chaos.draw_failure(0.25)).count();
        assert!((2_200..2_800).contains(&failures), "{failures}");
    }

    #[test]
    fn unit_draws_stay_in_range() {
        let rng = SplitMix64::new(0);
        assert!(
            (0..10_000)
                .map(|_| rng.next_unit())
                .all(|x| (0.0..1.0).contains(&x))
        );
    }
}

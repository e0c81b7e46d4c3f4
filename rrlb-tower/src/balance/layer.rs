//! The [`Layer`] that wraps an inner service in a [`Balance`].

use rrlb_core::{BackendSet, Balancer};
use tower::Layer;

use super::service::{Balance, BalanceConfig};
use crate::budget::RetryBudget;

/// Builds [`Balance`] services over one shared [`BackendSet`]; use it with `tower::ServiceBuilder`.
///
/// ```
/// use rrlb_core::{BackendSet, BackendSpec, RoundRobin, SetOptions};
/// use rrlb_tower::{BalanceConfig, BalanceLayer, BasicPolicy, RetryBudget, Routed};
/// use tower::{ServiceBuilder, ServiceExt, service_fn};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
/// let set = BackendSet::with_backends(RoundRobin::new(), SetOptions::default(), [BackendSpec::new("a", "http://10.0.0.1")])?;
/// let layer = BalanceLayer::new(set, BasicPolicy, BalanceConfig::default()).with_budget(RetryBudget::new(0.2, 10));
/// let svc = ServiceBuilder::new()
///     .layer(layer)
///     .service(service_fn(|r: Routed<()>| async move { Ok::<_, std::convert::Infallible>(r.backend.name().to_owned()) }));
/// assert_eq!(svc.oneshot(()).await?, "a");
/// # Ok(())
/// # }
/// ```
pub struct BalanceLayer<B: Balancer, P> {
    set: BackendSet<B>,
    policy: P,
    config: BalanceConfig,
    budget: RetryBudget,
}

impl<B: Balancer, P: Clone> Clone for BalanceLayer<B, P> {
    fn clone(&self) -> Self {
        Self {
            set: self.set.clone(),
            policy: self.policy.clone(),
            config: self.config,
            budget: self.budget.clone(),
        }
    }
}

impl<B: Balancer, P> std::fmt::Debug for BalanceLayer<B, P> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BalanceLayer")
            .field("set", &self.set)
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl<B: Balancer, P> BalanceLayer<B, P> {
    /// A layer balancing over `set` with `policy` and `config` (and the default [`RetryBudget`]).
    pub fn new(set: BackendSet<B>, policy: P, config: BalanceConfig) -> Self {
        Self {
            set,
            policy,
            config,
            budget: RetryBudget::default(),
        }
    }

    /// The same layer with another retry budget (shared by every service it builds).
    pub fn with_budget(mut self, budget: RetryBudget) -> Self {
        self.budget = budget;
        self
    }
}

impl<S, B: Balancer, P: Clone> Layer<S> for BalanceLayer<B, P> {
    type Service = Balance<S, B, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Balance::new(inner, self.set.clone(), self.policy.clone(), self.config)
            .with_budget(self.budget.clone())
    }
}

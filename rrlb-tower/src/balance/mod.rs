//! [`Balance`], the engine as a `tower::Service`, in tower's layout: the service (`service.rs`: pick, call,
//! record), its response future (`future.rs`: the attempt's timeout, classification and retries on another
//! backend, a state machine) and the layer that carries its configuration (`layer.rs`).

mod future;
mod layer;
mod service;

pub use self::future::ResponseFuture;
pub use self::layer::BalanceLayer;
pub use self::service::{Balance, BalanceConfig, Routed};

//! Huawei's AXE API: request signing, wire types and the outbound client. Knows nothing of our
//! storage or REST API.

pub mod client;
pub mod error;
pub mod notify;
pub mod resilience;
pub mod signer;
pub mod wire;

pub use client::{HuaweiClient, HuaweiSettings};
pub use error::{HuaweiError, Refusal, TransportFailure, UpstreamKind};
pub use resilience::{Resilience, UpstreamGuard};

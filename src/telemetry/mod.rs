//! Telemetry: Prometheus metrics, request ids and the log format. Cross-cutting, so every
//! layer may reach it; it reaches only the database (for the gauges' counts) and the domain's
//! masking of phone numbers.

pub mod gauges;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod request_id;

pub use metrics::Metrics;
pub use request_id::RequestId;

//! Outbound events to business services (Standard Webhooks): the kinds and their bodies, the
//! signing, where the gateway may connect, the endpoints' management, and the relay that
//! delivers the outbox (`db::events`) at least once.

pub mod endpoints;
pub mod kind;
pub mod listen;
pub mod relay;
pub mod signing;
pub mod target;

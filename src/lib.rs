//! axe-gateway: one internal service that owns AXE bindings at Huawei Cloud PrivateNumber.
//!
//! Layers, arrows pointing down: `api` (REST routes, DTOs) → `service` (flows) → `db` (storage)
//! and `huawei` (signed client, wire types). `sandbox` emulates Huawei on `huawei`'s wire types;
//! `jobs` runs service flows in the background; `startup` wires it all; `error` maps errors to
//! HTTP once.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod huawei;
pub mod jobs;
pub mod sandbox;
pub mod service;
pub mod startup;
pub mod telemetry;
pub mod timestamp;
pub mod webhooks;

/// What the gateway calls itself in the `User-Agent` of its outbound requests (to Huawei and to
/// event receivers).
pub const USER_AGENT: &str = concat!("axe-gateway/", env!("CARGO_PKG_VERSION"));

/// mimalloc instead of the system allocator, for every binary built on this library (the
/// gateway, its tests and benchmarks alike): the webhook path allocates and frees many short
/// strings per notification, and glibc's malloc showed up at several percent of the writer.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

//! axe-gateway: one internal service that owns AXE bindings at Huawei Cloud PrivateNumber.
//!
//! Layers, arrows pointing down: `api` (REST routes, DTOs) → `service` (flows) → `db` (storage)
//! and `huawei` (signed client, wire types). `sandbox` emulates Huawei on `huawei`'s wire types;
//! `jobs` runs service flows in the background; `startup` wires it all; `error` maps errors to
//! HTTP once.

pub mod api;
pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod huawei;
pub mod jobs;
pub mod sandbox;
pub mod service;
pub mod startup;
pub mod timestamp;
pub mod webhooks;

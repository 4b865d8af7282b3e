//! axe-gateway: one internal service that owns AXE bindings at Huawei Cloud PrivateNumber.

pub mod domain;
pub mod huawei;
pub mod sandbox;

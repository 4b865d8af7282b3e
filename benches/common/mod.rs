//! What the benches share: the gateway started in this process, the wrk-like load generator,
//! what /proc says about the process and the machine, the benches' databases, and the
//! yardsticks measured beside our figures.
//!
//! Every bench compiles this whole module but uses only a part of it; the rest would be
//! reported as dead code in that bench.
#![allow(dead_code)]

pub mod database;
pub mod gateway;
pub mod load;
pub mod receiver;
pub mod system;
pub mod webhook;
pub mod yardstick;

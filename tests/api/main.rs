//! Black-box tests: the real gateway on a free port, the sandbox as Huawei, a real database.

mod helpers;

mod admin;
mod allocation;
mod banner;
mod bindings;
mod clients;
mod contract;
mod crash;
mod deploy;
mod events;
mod hostile;
mod instances;
mod log_scan;
mod nul;
mod numbers;
mod ordering;
mod reliability;
mod retention;
mod serve;
mod shutdown;
mod storage;
mod telemetry;
mod upstream;
mod webhooks;

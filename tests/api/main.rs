//! Black-box tests: the real gateway on a free port, the sandbox as Huawei, a real database.

mod helpers;

mod allocation;
mod banner;
mod bindings;
mod crash;
mod instances;
mod nul;
mod numbers;
mod ordering;
mod reliability;
mod serve;
mod shutdown;
mod upstream;
mod webhooks;

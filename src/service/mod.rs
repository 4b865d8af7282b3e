//! The flows that both the REST API and the background jobs (and, later, webhooks) use: create,
//! modify, release, sync and reconcile bindings, allocate numbers and extensions. The service
//! speaks domain types and returns [`ServiceError`]; the API maps that to HTTP once.

pub mod allocation;
pub mod bindings;
pub mod calls;
pub mod health;
pub mod ingest;
pub mod numbers;

use crate::db::DbError;
use crate::huawei::HuaweiError;

pub use bindings::{
    BindingService, Callback, CreateBinding, CreateOutcome, Lifetime, ModifyBinding, Policy,
};
pub use numbers::{AddManyError, NewNumber, NumberService, NumberUsage};

/// A request field and what is wrong with it. The detail may quote the value sent (a parser's
/// message), so `Debug` masks phone numbers in it.
#[derive(Clone, PartialEq, Eq, serde::Serialize)]
pub struct FieldError {
    pub field: String,
    pub detail: String,
}

crate::debug_masking!(FieldError { field } masking { detail });

impl FieldError {
    pub fn new(field: impl Into<String>, detail: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            detail: detail.into(),
        }
    }
}

/// The service layer's one error type.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid request")]
    Invalid(Vec<FieldError>),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NoCapacity(String),
    /// Huawei refused or failed; `binding_id` names the binding it concerned, if any.
    #[error("{source}")]
    Upstream {
        source: HuaweiError,
        binding_id: Option<String>,
    },
    #[error(transparent)]
    Database(#[from] DbError),
}

impl ServiceError {
    pub fn invalid(field: &str, detail: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, detail)])
    }

    pub fn upstream(source: HuaweiError, binding_id: Option<&str>) -> Self {
        Self::Upstream {
            source,
            binding_id: binding_id.map(str::to_owned),
        }
    }
}

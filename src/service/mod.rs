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
    BindingReads, BindingService, Callback, CreateBinding, CreateOutcome, Lifetime, ModifyBinding,
    Policy,
};
pub use numbers::{AddManyError, NewNumber, NumberService, NumberUsage};

/// Who a flow runs for: an API client (which sees only the bindings it created, unless it has
/// `admin`) or a background job. Recorded in each binding's history as the actor.
#[derive(Debug, Clone)]
pub struct Actor {
    name: String,
    sees_all: bool,
    request_id: Option<String>,
}

impl Actor {
    pub fn client(name: impl Into<String>, sees_all: bool, request_id: Option<String>) -> Self {
        Self {
            name: name.into(),
            sees_all,
            request_id,
        }
    }

    /// A background job (`reconciler`, `expiry`, `huawei`), which acts on every binding.
    pub fn job(name: &str) -> Self {
        Self::client(name, true, None)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn sees_all(&self) -> bool {
        self.sees_all
    }

    /// Whether this actor may see or change a binding `created_by` that client.
    pub fn may_see(&self, created_by: &str) -> bool {
        self.sees_all || self.name == created_by
    }

    pub fn audit(&self) -> crate::db::history::Audit<'_> {
        crate::db::history::Audit {
            actor: &self.name,
            request_id: self.request_id.as_deref(),
        }
    }
}

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

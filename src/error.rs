//! The one mapping from errors to HTTP: RFC 9457 `application/problem+json` with a stable `code`.
//!
//! Policy: client mistakes are 4xx with the field named; Huawei's refusals keep Huawei's code and
//! text in `upstream`; database trouble is 503 (retry later); anything unexpected is a 500 whose
//! body says nothing internal (the cause is logged once, here).

use actix_web::http::{header, StatusCode};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use utoipa::ToSchema;

use crate::db::DbError;
use crate::huawei::{HuaweiError, UpstreamKind};
use crate::service::{FieldError, ServiceError};

pub const PROBLEM_JSON: &str = "application/problem+json";

fn current_request_id() -> Option<String> {
    crate::telemetry::request_id::current().map(|id| id.to_string())
}

/// Huawei's side of an upstream failure, as shown to clients.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UpstreamInfo {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resultcode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resultdesc: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
}

// Its `Debug` and `Display` (which actix-web logs for an error response at debug level) mask
// phone numbers: a client's detail may echo one.
/// An RFC 9457 problem document: every error of the API.
#[derive(Clone, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:axe-gateway:problem:invalid_request",
    "title": "Bad Request",
    "status": 400,
    "detail": "ttl_minutes: must be from 1 to 525600",
    "code": "invalid_request",
    "errors": [{"field": "ttl_minutes", "detail": "must be from 1 to 525600"}],
    "request_id": "0192f7a0-1c2d-7e3f-8a4b-5c6d7e8f9a0b"
}))]
pub struct Problem {
    /// `urn:axe-gateway:problem:<code>`.
    #[serde(rename = "type")]
    pub type_uri: String,
    /// The HTTP status's reason phrase.
    #[schema(value_type = String)]
    pub title: &'static str,
    pub status: u16,
    /// What went wrong, for a person to read.
    pub detail: String,
    /// Stable and machine-readable: what a client branches on.
    #[schema(value_type = String)]
    pub code: &'static str,
    /// Each offending field (or failing readiness check) and what is wrong with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    #[schema(value_type = Vec<FieldErrorSchema>)]
    pub errors: Vec<FieldError>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub binding_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<UpstreamInfo>,
    /// The request's id (as in `X-Request-Id`), to quote when reporting a problem.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    #[serde(skip)]
    pub retry_after: Option<u32>,
}

// The schema of `FieldError` in a problem document: the service layer, which defines the type,
// stays free of the HTTP contract's derives.
/// A field of the request and what is wrong with it.
#[derive(ToSchema)]
#[schema(as = FieldError)]
#[allow(dead_code)]
pub struct FieldErrorSchema {
    /// The request field (`ttl_minutes`, `numbers[2].number`, `body`, `query`).
    field: String,
    detail: String,
}

crate::debug_masking!(
    Problem {
        type_uri, title, status, code, binding_id, request_id, retry_after
    } masking { detail, errors, upstream }
);

impl Problem {
    pub fn new(status: StatusCode, code: &'static str, detail: impl Into<String>) -> Self {
        Self {
            type_uri: format!("urn:axe-gateway:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            detail: detail.into(),
            code,
            errors: Vec::new(),
            binding_id: None,
            upstream: None,
            request_id: current_request_id(),
            retry_after: None,
        }
    }

    /// A problem whose `errors` name each offending field; `detail` joins them.
    fn with_errors(status: StatusCode, code: &'static str, errors: Vec<FieldError>) -> Self {
        let detail = errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.detail))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            errors,
            ..Self::new(status, code, detail)
        }
    }

    /// `503 not_ready`: each failing readiness check in `errors` (its name as `field`).
    pub fn not_ready(failing: Vec<FieldError>) -> Self {
        Self {
            retry_after: Some(5),
            ..Self::with_errors(StatusCode::SERVICE_UNAVAILABLE, "not_ready", failing)
        }
    }

    pub fn invalid(errors: Vec<FieldError>) -> Self {
        Self::with_errors(StatusCode::BAD_REQUEST, "invalid_request", errors)
    }

    /// `409 conflict` naming each field whose value conflicts with what is stored (the numbers
    /// of a batch that are already pooled).
    pub fn conflicts(errors: Vec<FieldError>) -> Self {
        Self::with_errors(StatusCode::CONFLICT, "conflict", errors)
    }

    pub fn invalid_field(field: &str, detail: impl Into<String>) -> Self {
        Self::invalid(vec![FieldError::new(field, detail)])
    }

    pub fn unauthorized(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", detail)
    }

    /// `403 insufficient_scope`: the client is known but may not do this.
    pub fn insufficient_scope(scope: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("this request needs the scope {scope}, which this client does not have"),
        )
    }

    /// `429 rate_limited`, with `Retry-After` (whole seconds, at least 1).
    pub fn rate_limited(client: &str, wait: std::time::Duration) -> Self {
        let secs = u32::try_from(wait.as_secs() + u64::from(wait.subsec_nanos() > 0))
            .unwrap_or(u32::MAX)
            .max(1);
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("client {client} is over its rate limit; retry after {secs} s"),
            )
        }
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", detail)
    }

    fn upstream(err: &HuaweiError, binding_id: Option<String>) -> Self {
        let (status, code, retry_after) = match err.kind() {
            UpstreamKind::InvalidParameter => {
                (StatusCode::UNPROCESSABLE_ENTITY, "upstream_rejected", None)
            }
            UpstreamKind::ExtensionTaken | UpstreamKind::NotFound => {
                (StatusCode::CONFLICT, "conflict", None)
            }
            UpstreamKind::NoNumberInArea => (StatusCode::CONFLICT, "no_capacity", None),
            UpstreamKind::FlowControl { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                Some(retry_after_secs),
            ),
            UpstreamKind::Unreachable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                Some(30),
            ),
            UpstreamKind::NotCalled { retry_after_secs } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "upstream_unavailable",
                Some(retry_after_secs),
            ),
            UpstreamKind::Timeout => (StatusCode::GATEWAY_TIMEOUT, "upstream_timeout", None),
            UpstreamKind::NumberUnusable
            | UpstreamKind::AuthOrApp
            | UpstreamKind::UpstreamFault
            | UpstreamKind::Other => (StatusCode::BAD_GATEWAY, "upstream_error", None),
        };
        let detail = match err.kind() {
            UpstreamKind::InvalidParameter => "Huawei refused a parameter of the request",
            UpstreamKind::FlowControl { .. } => "Huawei is throttling requests; retry later",
            UpstreamKind::Unreachable => "Huawei could not be reached",
            UpstreamKind::NotCalled { .. } => "Huawei was not called; retry later",
            UpstreamKind::Timeout => "Huawei did not answer in time",
            UpstreamKind::AuthOrApp => {
                "Huawei refused the gateway's credentials or app; an operator must check the configuration"
            }
            UpstreamKind::NumberUnusable => {
                "Huawei says the virtual number is not this app's or not usable now"
            }
            UpstreamKind::NoNumberInArea => "Huawei has no free virtual number in the area",
            _ => "Huawei could not carry out the request",
        };
        Self {
            binding_id,
            retry_after,
            upstream: Some(UpstreamInfo {
                resultcode: err.resultcode().map(str::to_owned),
                resultdesc: err.resultdesc().map(str::to_owned),
                http_status: err.http_status(),
            }),
            ..Self::new(status, code, format!("{detail}: {}", err.summary()))
        }
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.status,
            self.code,
            crate::domain::mask_phones(&self.detail)
        )
    }
}

impl ResponseError for Problem {
    fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    fn error_response(&self) -> HttpResponse {
        let mut resp = HttpResponse::build(self.status_code());
        resp.insert_header((header::CONTENT_TYPE, PROBLEM_JSON));
        if let Some(secs) = self.retry_after {
            resp.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        // Built outside the request (a problem made by a background task and rendered later)
        // it takes the id of the request it is rendered for.
        let body = match (&self.request_id, current_request_id()) {
            (None, Some(id)) => serde_json::to_string(&Self {
                request_id: Some(id),
                ..self.clone()
            }),
            _ => serde_json::to_string(self),
        };
        resp.body(body.unwrap_or_else(|_| "{}".into()))
    }
}

impl From<ServiceError> for Problem {
    fn from(e: ServiceError) -> Self {
        match e {
            ServiceError::Invalid(errors) => Self::invalid(errors),
            ServiceError::NotFound(d) => Self::not_found(d),
            ServiceError::Conflict(d) => Self::new(StatusCode::CONFLICT, "conflict", d),
            ServiceError::NoCapacity(d) => Self::new(StatusCode::CONFLICT, "no_capacity", d),
            ServiceError::Upstream { source, binding_id } => {
                // Refusals while the breaker is open or the cap is reached come in floods;
                // the guard logs its transitions once.
                if matches!(source, HuaweiError::NotCalled { .. }) {
                    log::debug!("upstream failure: {}", source.summary());
                } else {
                    log::warn!("upstream failure: {}", source.summary());
                }
                Self::upstream(&source, binding_id)
            }
            ServiceError::Database(DbError::Overloaded) => {
                log::debug!("request refused: the database is saturated");
                Self {
                    retry_after: Some(1),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "overloaded",
                        "the gateway has more work waiting for its database than it can take; retry shortly",
                    )
                }
            }
            ServiceError::Database(db) if db.is_unavailable() => {
                // DbError's text masks numbers (the database may quote a value).
                log::error!("database unavailable: {db}");
                let detail = match db.storage_fault() {
                    Some(fault) => {
                        format!("the database cannot store changes: {fault}; retry later")
                    }
                    None => "the database is unavailable; retry later".to_owned(),
                };
                Self {
                    retry_after: Some(5),
                    ..Self::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "database_unavailable",
                        detail,
                    )
                }
            }
            ServiceError::Database(db) => {
                log::error!("unexpected database error: {db}");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal_error",
                    "an unexpected error occurred; it has been logged",
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_field_error_schema_names_the_fields_a_field_error_has() {
        let json = serde_json::to_value(FieldError::new("a", "b")).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let schema =
            serde_json::to_value(<FieldErrorSchema as utoipa::PartialSchema>::schema()).unwrap();
        let properties: Vec<&str> = schema["properties"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, properties);
    }

    #[test]
    fn flow_control_is_a_503_with_retry_after_and_keeps_huawei_code() {
        let err = HuaweiError::Rejected {
            http_status: 403,
            resultcode: "1010010".into(),
            resultdesc: "The flow control upper limit is reached on the platform.".into(),
        };
        let p = Problem::upstream(&err, None);
        assert_eq!(p.status, 503);
        assert_eq!(p.retry_after, Some(60));
        let resp = p.error_response();
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "60");
        assert_eq!(resp.headers().get("Content-Type").unwrap(), PROBLEM_JSON);
        let json = serde_json::to_value(&p).unwrap();
        assert_eq!(json["upstream"]["resultcode"], "1010010");
        assert_eq!(json["code"], "upstream_unavailable");
    }

    #[test]
    fn a_call_the_guard_refused_is_a_503_with_its_retry_after() {
        let err = HuaweiError::NotCalled {
            reason: crate::huawei::Refusal::CircuitOpen,
            retry_after_secs: 12,
        };
        let p = Problem::upstream(&err, None);
        assert_eq!((p.status, p.code), (503, "upstream_unavailable"));
        let resp = p.error_response();
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "12");
    }

    #[test]
    fn a_saturated_database_is_a_quick_503_overloaded_with_retry_after() {
        let p = Problem::from(ServiceError::Database(DbError::Overloaded));
        assert_eq!((p.status, p.code), (503, "overloaded"));
        let resp = p.error_response();
        assert_eq!(resp.headers().get("Retry-After").unwrap(), "1");
        assert_eq!(resp.headers().get("Content-Type").unwrap(), PROBLEM_JSON);
    }

    #[test]
    fn invalid_parameters_and_timeouts_map_to_their_classes() {
        let invalid = HuaweiError::Rejected {
            http_status: 403,
            resultcode: "1010002".into(),
            resultdesc: "Invalid request.".into(),
        };
        assert_eq!(Problem::upstream(&invalid, None).status, 422);
        let timeout = HuaweiError::Transport(crate::huawei::TransportFailure::Timeout);
        assert_eq!(Problem::upstream(&timeout, None).status, 504);
        let auth = HuaweiError::Rejected {
            http_status: 401,
            resultcode: "1010010".into(),
            resultdesc: "Invalid digest.".into(),
        };
        assert_eq!(Problem::upstream(&auth, None).status, 502);
        let no_number = HuaweiError::Rejected {
            http_status: 403,
            resultcode: "1012006".into(),
            resultdesc: "No idle virtual number in the area.".into(),
        };
        let p = Problem::upstream(&no_number, None);
        assert_eq!((p.status, p.code), (409, "no_capacity"));
    }
}

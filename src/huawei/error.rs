//! The Huawei layer's one error type, and the single place where Huawei's result codes are
//! given a meaning (reference §13).

use super::wire::{codes, BasicResponse};

/// How a call failed before a Huawei answer was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportFailure {
    /// No byte of the request can have reached Huawei (DNS, TCP connect refused or timed out,
    /// TLS handshake, bad URL): Huawei certainly did nothing.
    NotSent(String),
    /// No answer within the configured timeout: Huawei may or may not have acted.
    Timeout,
    /// The connection broke once the request may have been written (including a connection
    /// the server closed without answering): outcome unknown.
    AfterSend(String),
}

/// Why the gateway refused to call Huawei at all (nothing was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The circuit breaker is open: Huawei failed repeatedly and is left alone for a while.
    CircuitOpen,
    /// Too many calls in flight or per second, and no slot freed within the queue timeout.
    Saturated,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HuaweiError {
    #[error("Huawei answered {resultcode} ({resultdesc}) with HTTP {http_status}")]
    Rejected {
        http_status: u16,
        resultcode: String,
        resultdesc: String,
    },
    #[error("Huawei could not be reached: {0:?}")]
    Transport(TransportFailure),
    #[error("Huawei was not called: {}", match .reason {
        Refusal::CircuitOpen => "it failed repeatedly and is given a rest",
        Refusal::Saturated => "too many calls to it are in flight",
    })]
    NotCalled {
        reason: Refusal,
        retry_after_secs: u32,
    },
    #[error("Huawei sent an unreadable response (HTTP {http_status}): {detail}")]
    BadResponse { http_status: u16, detail: String },
    #[error("could not encode the request: {0}")]
    Encode(String),
}

/// What a Huawei failure means for us. The service layer decides what to do; the API layer maps
/// these to HTTP once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// A parameter was refused (`1010002`, `1020001`): the client's request needs changing.
    InvalidParameter,
    /// The requested extension is taken (`1020167`, `1013102`): pick another and retry.
    ExtensionTaken,
    /// The binding or record does not exist at Huawei (`1012007`, `1011004`).
    NotFound,
    /// The virtual number is not this app's, or not usable now (`1012001`, `1012102`).
    NumberUnusable,
    /// Huawei is throttling us (`1010010` without HTTP 401); back off for `retry_after_secs`.
    FlowControl { retry_after_secs: u32 },
    /// Our credentials or app are wrong (digest, app key, clock skew, frozen account): an
    /// operator must act.
    AuthOrApp,
    /// Huawei had an internal error or timed out on its side.
    UpstreamFault,
    /// No answer in time, or the connection broke after sending: outcome unknown.
    Timeout,
    /// Huawei could not be reached at all: the call certainly did not happen.
    Unreachable,
    /// The gateway did not call Huawei (circuit open, or over its cap of calls); retry after
    /// `retry_after_secs`.
    NotCalled { retry_after_secs: u32 },
    /// Anything else: passed through with Huawei's code and text.
    Other,
}

impl HuaweiError {
    pub fn rejected(http_status: u16, basic: BasicResponse) -> Self {
        Self::Rejected {
            http_status,
            resultcode: basic.resultcode,
            resultdesc: basic.resultdesc,
        }
    }

    pub fn kind(&self) -> UpstreamKind {
        match self {
            Self::Rejected {
                http_status,
                resultcode,
                resultdesc,
            } => classify(*http_status, resultcode, resultdesc),
            Self::Transport(TransportFailure::NotSent(_)) => UpstreamKind::Unreachable,
            Self::NotCalled {
                retry_after_secs, ..
            } => UpstreamKind::NotCalled {
                retry_after_secs: *retry_after_secs,
            },
            Self::Transport(_) => UpstreamKind::Timeout,
            Self::BadResponse { .. } => UpstreamKind::UpstreamFault,
            Self::Encode(_) => UpstreamKind::Other,
        }
    }

    /// Whether Huawei may have acted on the request despite the error (so a create must be
    /// reconciled rather than marked failed).
    pub fn outcome_unknown(&self) -> bool {
        matches!(
            self,
            Self::Transport(TransportFailure::Timeout | TransportFailure::AfterSend(_))
                | Self::BadResponse { .. }
        ) || matches!(self.resultcode(), Some(codes::RESPONSE_TIMEOUT))
    }

    /// Whether this failure says Huawei itself is in trouble (no answer, a broken connection,
    /// a 5xx): what the circuit breaker counts. A refusal with a 4xx is Huawei working.
    pub fn is_upstream_fault(&self) -> bool {
        match self {
            Self::Transport(_) => true,
            Self::BadResponse { http_status, .. } => *http_status >= 500,
            Self::Rejected { .. } => matches!(
                self.kind(),
                UpstreamKind::UpstreamFault | UpstreamKind::Timeout
            ),
            Self::NotCalled { .. } | Self::Encode(_) => false,
        }
    }

    pub fn resultcode(&self) -> Option<&str> {
        match self {
            Self::Rejected { resultcode, .. } => Some(resultcode),
            _ => None,
        }
    }

    pub fn resultdesc(&self) -> Option<&str> {
        match self {
            Self::Rejected { resultdesc, .. } => Some(resultdesc),
            _ => None,
        }
    }

    pub fn http_status(&self) -> Option<u16> {
        match self {
            Self::Rejected { http_status, .. } | Self::BadResponse { http_status, .. } => {
                Some(*http_status)
            }
            _ => None,
        }
    }

    /// One line for `bindings.last_error` and logs: Huawei's code and text when there are some.
    pub fn summary(&self) -> String {
        match self {
            Self::Rejected {
                resultcode,
                resultdesc,
                ..
            } => format!("{resultcode}: {resultdesc}"),
            other => other.to_string(),
        }
    }
}

fn classify(http_status: u16, code: &str, desc: &str) -> UpstreamKind {
    match code {
        codes::INVALID_REQUEST | codes::PARAMETER_ERROR => UpstreamKind::InvalidParameter,
        codes::NO_IDLE_EXTENSION | codes::EXTENSION_BOUND => UpstreamKind::ExtensionTaken,
        codes::RECORD_NOT_EXIST | codes::BINDING_NOT_FOUND => UpstreamKind::NotFound,
        codes::NUMBER_NOT_APPLIED | codes::NUMBER_STATUS => UpstreamKind::NumberUnusable,
        // 1010010 means both "Invalid digest" (401) and "flow control"; tell them apart by
        // status and text, never by code alone.
        codes::DIGEST_OR_FLOW_CONTROL
            if http_status != 401 || desc.to_ascii_lowercase().contains("flow control") =>
        {
            UpstreamKind::FlowControl {
                retry_after_secs: 60,
            }
        }
        codes::AUTH_BLOCKED => UpstreamKind::FlowControl {
            retry_after_secs: 1800,
        },
        codes::INTERNAL_ERROR | codes::INTERNAL_ERROR_2 => UpstreamKind::UpstreamFault,
        codes::RESPONSE_TIMEOUT => UpstreamKind::Timeout,
        c if c == codes::DIGEST_OR_FLOW_CONTROL
            || c == codes::INVALID_APP_KEY
            || c == codes::TIME_OUT_LIMIT
            || c.starts_with("1023")
            || matches!(c, "1010006" | "1010008" | "1010029" | "1010040" | "1011001") =>
        {
            UpstreamKind::AuthOrApp
        }
        _ if http_status >= 500 => UpstreamKind::UpstreamFault,
        _ => UpstreamKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rejected(status: u16, code: &str, desc: &str) -> HuaweiError {
        HuaweiError::Rejected {
            http_status: status,
            resultcode: code.into(),
            resultdesc: desc.into(),
        }
    }

    #[test]
    fn digest_and_flow_control_share_a_code_but_not_a_meaning() {
        assert_eq!(
            rejected(401, "1010010", "Invalid digest.").kind(),
            UpstreamKind::AuthOrApp
        );
        assert_eq!(
            rejected(
                403,
                "1010010",
                "The flow control upper limit is reached on the platform."
            )
            .kind(),
            UpstreamKind::FlowControl {
                retry_after_secs: 60
            }
        );
    }

    #[test]
    fn codes_map_to_their_meaning() {
        assert_eq!(
            rejected(403, "1010002", "Invalid request.").kind(),
            UpstreamKind::InvalidParameter
        );
        assert_eq!(
            rejected(200, "1020167", "No idle extend Number.").kind(),
            UpstreamKind::ExtensionTaken
        );
        assert_eq!(
            rejected(403, "1013102", "The extend number has been bound.").kind(),
            UpstreamKind::ExtensionTaken
        );
        assert_eq!(rejected(403, "1012007", "").kind(), UpstreamKind::NotFound);
        assert_eq!(rejected(400, "1023033", "").kind(), UpstreamKind::AuthOrApp);
        assert_eq!(rejected(401, "1010013", "").kind(), UpstreamKind::AuthOrApp);
        assert_eq!(
            rejected(500, "1010001", "").kind(),
            UpstreamKind::UpstreamFault
        );
        assert_eq!(rejected(403, "9999999", "").kind(), UpstreamKind::Other);
        assert_eq!(
            rejected(502, "9999999", "").kind(),
            UpstreamKind::UpstreamFault
        );
    }

    #[test]
    fn only_failures_after_sending_leave_the_outcome_unknown() {
        assert!(HuaweiError::Transport(TransportFailure::Timeout).outcome_unknown());
        assert!(
            HuaweiError::Transport(TransportFailure::AfterSend("reset".into())).outcome_unknown()
        );
        assert!(
            !HuaweiError::Transport(TransportFailure::NotSent("refused".into())).outcome_unknown()
        );
        assert!(!HuaweiError::NotCalled {
            reason: Refusal::CircuitOpen,
            retry_after_secs: 5
        }
        .outcome_unknown());
        assert!(!rejected(403, "1010002", "").outcome_unknown());
        assert!(rejected(500, "1023002", "Response timeout.").outcome_unknown());
    }
}

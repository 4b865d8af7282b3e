//! The Huawei layer's one error type, and the single place where Huawei's result codes are
//! given a meaning (reference §13).

use super::wire::{codes, BasicResponse};
use crate::domain::mask_phones;

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

/// Text that came from Huawei or the transport (`resultdesc`, an unreadable body, a socket
/// error) is held with its phone numbers masked, so whatever logs or stores an error cannot
/// leak one: see the constructors [`HuaweiError::rejected`], [`HuaweiError::bad_response`] and
/// [`TransportFailure::not_sent`] / [`TransportFailure::after_send`].
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
    /// Huawei has no free virtual number in the requested area (`1012006`).
    NoNumberInArea,
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

impl TransportFailure {
    pub fn not_sent(text: &str) -> Self {
        Self::NotSent(mask_phones(text).into_owned())
    }

    pub fn after_send(text: &str) -> Self {
        Self::AfterSend(mask_phones(text).into_owned())
    }
}

impl HuaweiError {
    /// Huawei's refusal, its text masked (Huawei echoes parameters, numbers among them).
    pub fn rejected(http_status: u16, basic: BasicResponse) -> Self {
        Self::Rejected {
            http_status,
            // Huawei's codes have seven digits: kept as they are, they are no number.
            resultcode: basic.resultcode,
            resultdesc: mask_phones(&basic.resultdesc).into_owned(),
        }
    }

    /// A response we could not use; `detail` is masked, then cut to at most `max_bytes`.
    pub fn bad_response(http_status: u16, detail: &str, max_bytes: usize) -> Self {
        let masked = mask_phones(detail);
        let mut end = masked.len().min(max_bytes);
        while !masked.is_char_boundary(end) {
            end -= 1;
        }
        Self::BadResponse {
            http_status,
            detail: masked[..end].to_owned(),
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

    /// One line for `bindings.last_error` and logs: Huawei's code and text when there are some,
    /// phone numbers masked (also in an error built without the masking constructors).
    pub fn summary(&self) -> String {
        match self {
            Self::Rejected {
                resultcode,
                resultdesc,
                ..
            } => format!("{resultcode}: {}", mask_phones(resultdesc)),
            other => mask_phones(&other.to_string()).into_owned(),
        }
    }
}

fn classify(http_status: u16, code: &str, desc: &str) -> UpstreamKind {
    match code {
        codes::INVALID_REQUEST | codes::PARAMETER_ERROR => UpstreamKind::InvalidParameter,
        codes::NO_IDLE_EXTENSION | codes::EXTENSION_BOUND => UpstreamKind::ExtensionTaken,
        codes::RECORD_NOT_EXIST | codes::BINDING_NOT_FOUND => UpstreamKind::NotFound,
        codes::NUMBER_NOT_APPLIED | codes::NUMBER_STATUS => UpstreamKind::NumberUnusable,
        codes::NO_NUMBER_IN_AREA => UpstreamKind::NoNumberInArea,
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
    fn numbers_in_huawei_text_are_masked_before_anyone_sees_them() {
        let e = HuaweiError::rejected(
            400,
            BasicResponse {
                resultcode: "1010002".into(),
                resultdesc: "Invalid request. bindNum +8613800000001 is invalid".into(),
            },
        );
        assert_eq!(e.resultcode(), Some("1010002"), "codes stay readable");
        assert!(e.summary().starts_with("1010002: "), "{}", e.summary());
        for shown in [e.summary(), e.to_string(), format!("{e:?}")] {
            assert!(!shown.contains("8613800000001"), "{shown}");
            assert!(shown.contains("+86138****0001"), "{shown}");
        }
        let body = format!("<html>{}%2B8613800000001</html>", "x".repeat(180));
        let e = HuaweiError::bad_response(502, &body, 200);
        let shown = format!("{e} {e:?} {}", e.summary());
        assert!(!shown.contains("8613800000001"), "{shown}");
        assert!(shown.contains("%2B86138****"), "{shown}");
        // Cut on a character boundary, never inside one.
        let e = HuaweiError::bad_response(502, &"é".repeat(150), 201);
        assert!(matches!(e, HuaweiError::BadResponse { detail, .. } if detail.len() == 200));
        let e = HuaweiError::Transport(TransportFailure::after_send(
            "connection reset by http://h/x?virtualNum=%2B8617000000001",
        ));
        assert!(!e.summary().contains("8617000000001"), "{}", e.summary());
        // Built directly, without the masking constructor: the summary still masks.
        let raw = HuaweiError::Rejected {
            http_status: 400,
            resultcode: "1".into(),
            resultdesc: "A=+8613800000001".into(),
        };
        assert!(!raw.summary().contains("8613800000001"));
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

//! The signed outbound client for Huawei's AXE API.
//!
//! `awc::Client` is `!Send`, so a `HuaweiClient` lives on one actix worker (built inside the
//! `HttpServer::new` factory) or on the thread of a background job. Every request is signed with a
//! fresh nonce, sent with `Connection: close` (Huawei treats calls as short connections and closes
//! them itself), never follows redirects, and is bounded by the configured connect and total
//! timeouts. Every call goes through the endpoint's [`UpstreamGuard`] (breaker, limits, retries
//! of the calls that are safe to repeat).

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::Method;
use awc::error::{ConnectError, SendRequestError};
use secrecy::{ExposeSecret, SecretString};
use serde::{de::DeserializeOwned, Serialize};

use super::error::{HuaweiError, TransportFailure};
use super::resilience::{Repeat, UpstreamGuard};
use super::signer;
use super::wire::{
    self, BasicResponse, BindRequest, BindResponse, BindingSelector, ListBindingsQuery,
    ListBindingsResponse, ListNumbersQuery, ListNumbersResponse, ListedBinding, ModifyRequest,
    NumberCount, QueryResponse, RecordingQuery,
};

/// Largest Huawei response body we read; their answers are a few hundred bytes (a listing page
/// a few tens of kilobytes).
const MAX_RESPONSE_BYTES: usize = 256 * 1024;
/// Items asked for per listing page (the count API allows 1–100).
const LIST_PAGE: u32 = 100;
/// Most of an unusable answer copied into an error (and so into logs and `last_error`).
const MAX_ERROR_TEXT: usize = 200;
/// Pages read at most in one listing, so a cursor that never ends cannot loop for ever.
const MAX_LIST_PAGES: usize = 1_000;

/// Where and how to reach Huawei. `Send + Clone`, so it can be handed to each worker, which builds
/// its own [`HuaweiClient`] from it.
#[derive(Clone)]
pub struct HuaweiSettings {
    pub base_url: String,
    pub app_key: String,
    pub app_secret: SecretString,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for HuaweiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiSettings")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &self.app_secret)
            .field("connect_timeout", &self.connect_timeout)
            .field("request_timeout", &self.request_timeout)
            .finish()
    }
}

/// Makes sure rustls has a crypto provider; awc's TLS connector panics without one.
pub fn install_crypto_provider() {
    // Err only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Serialises query parameters the way Huawei requires: form-encoded, so `+` becomes `%2B`.
pub fn query_string<T: Serialize>(params: &T) -> Result<String, HuaweiError> {
    serde_urlencoded::to_string(params).map_err(|e| HuaweiError::Encode(e.to_string()))
}

pub struct HuaweiClient {
    http: awc::Client,
    settings: HuaweiSettings,
    guard: Arc<UpstreamGuard>,
}

impl HuaweiClient {
    /// A client for one worker; `guard` is the endpoint's, shared by every client of it.
    pub fn new(settings: HuaweiSettings, guard: Arc<UpstreamGuard>) -> Self {
        install_crypto_provider();
        let connector = awc::Connector::new()
            .timeout(settings.connect_timeout)
            .handshake_timeout(settings.connect_timeout);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(settings.request_timeout)
            .disable_redirects()
            .add_default_header(("User-Agent", crate::USER_AGENT))
            .finish();
        Self {
            http,
            settings,
            guard,
        }
    }

    pub fn settings(&self) -> &HuaweiSettings {
        &self.settings
    }

    pub fn guard(&self) -> &UpstreamGuard {
        &self.guard
    }

    /// CreateAXEBinding.
    pub async fn bind(&self, req: &BindRequest) -> Result<BindResponse, HuaweiError> {
        let body = serde_json::to_vec(req).map_err(|e| HuaweiError::Encode(e.to_string()))?;
        self.guard
            .run(Repeat::Never, || {
                self.call(
                    "bind",
                    Method::POST,
                    wire::BINDING_PATH,
                    None,
                    Some(body.clone()),
                )
            })
            .await
    }

    /// DeleteAXEBinding.
    pub async fn unbind(&self, sel: &BindingSelector) -> Result<BasicResponse, HuaweiError> {
        let query = query_string(sel)?;
        self.guard
            .run(Repeat::Safe, || {
                self.call(
                    "unbind",
                    Method::DELETE,
                    wire::BINDING_PATH,
                    Some(query.clone()),
                    None,
                )
            })
            .await
    }

    /// ModifyAXEBinding.
    pub async fn modify(&self, req: &ModifyRequest) -> Result<BasicResponse, HuaweiError> {
        let body = serde_json::to_vec(req).map_err(|e| HuaweiError::Encode(e.to_string()))?;
        self.guard
            .run(Repeat::Safe, || {
                self.call(
                    "modify",
                    Method::PUT,
                    wire::BINDING_PATH,
                    None,
                    Some(body.clone()),
                )
            })
            .await
    }

    /// QueryAXEBinding v1.0 (one binding, by subscription id or X+E).
    pub async fn query(&self, sel: &BindingSelector) -> Result<QueryResponse, HuaweiError> {
        let query = query_string(sel)?;
        self.guard
            .run(Repeat::Safe, || {
                self.call(
                    "query",
                    Method::GET,
                    wire::BINDING_PATH,
                    Some(query.clone()),
                    None,
                )
            })
            .await
    }

    /// Every binding on X, through QueryAXEBinding v2.0's cursor paging.
    pub async fn list_bindings_on(
        &self,
        virtual_num: &str,
    ) -> Result<Vec<ListedBinding>, HuaweiError> {
        let mut all = Vec::new();
        let mut cursor = wire::FIRST_LIST_CURSOR.to_owned();
        for _ in 0..MAX_LIST_PAGES {
            let query = query_string(&ListBindingsQuery {
                virtual_num: virtual_num.to_owned(),
                cursor: cursor.clone(),
                limit: LIST_PAGE,
            })?;
            let page: ListBindingsResponse = self
                .guard
                .run(Repeat::Safe, || {
                    self.call(
                        "list_bindings",
                        Method::GET,
                        wire::BINDING_LIST_PATH,
                        Some(query.clone()),
                        None,
                    )
                })
                .await?;
            all.extend(page.bindings);
            match page.next_cursor.filter(|c| !c.is_empty() && *c != cursor) {
                Some(next) => cursor = next,
                None => return Ok(all),
            }
        }
        Err(HuaweiError::bad_response(
            200,
            &format!("the binding listing did not end within {MAX_LIST_PAGES} pages"),
            MAX_ERROR_TEXT,
        ))
    }

    /// The app's numbers and how many bindings each holds (QueryAXEBindingCount, paged).
    pub async fn list_numbers(&self) -> Result<Vec<NumberCount>, HuaweiError> {
        let mut all = Vec::new();
        let mut cursor = wire::FIRST_COUNT_CURSOR.to_owned();
        for _ in 0..MAX_LIST_PAGES {
            let query = query_string(&ListNumbersQuery {
                cursor: cursor.clone(),
                limit: LIST_PAGE,
            })?;
            let page: ListNumbersResponse = self
                .guard
                .run(Repeat::Safe, || {
                    self.call(
                        "list_numbers",
                        Method::GET,
                        wire::NUMBER_COUNT_PATH,
                        Some(query.clone()),
                        None,
                    )
                })
                .await?;
            all.extend(page.numbers);
            match page.next_cursor.filter(|c| !c.is_empty() && *c != cursor) {
                Some(next) => cursor = next,
                None => return Ok(all),
            }
        }
        Err(HuaweiError::bad_response(
            200,
            &format!("the number listing did not end within {MAX_LIST_PAGES} pages"),
            MAX_ERROR_TEXT,
        ))
    }

    /// GetRecordingDownloadUrl: Huawei answers 301 with the URL in `Location`; we read it and do
    /// not follow it (following would download the audio).
    pub async fn recording_link(&self, q: &RecordingQuery) -> Result<String, HuaweiError> {
        let query = query_string(q)?;
        self.guard
            .run(Repeat::Safe, || {
                self.observed("recording_link", self.recording_link_once(&query))
            })
            .await
    }

    async fn recording_link_once(&self, query: &str) -> Result<String, HuaweiError> {
        let url = format!(
            "{}{}?{}",
            self.settings.base_url.trim_end_matches('/'),
            wire::RECORDING_PATH,
            query
        );
        let mut resp = self
            .signed(Method::GET, &url)
            .send()
            .await
            .map_err(classify_send_error)?;
        let status = resp.status();
        if status.is_redirection() {
            return resp
                .headers()
                .get("Location")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or_else(|| {
                    HuaweiError::bad_response(
                        status.as_u16(),
                        "redirect without a Location header",
                        MAX_ERROR_TEXT,
                    )
                });
        }
        let body = read_body(&mut resp, self.settings.request_timeout).await?;
        let basic: BasicResponse = parse_body(status.as_u16(), &body)?;
        Err(HuaweiError::rejected(status.as_u16(), basic))
    }

    fn signed(&self, method: Method, url: &str) -> awc::ClientRequest {
        let (nonce, created) = signer::fresh_nonce_and_created(chrono::Utc::now());
        let x_aksk = signer::x_aksk_header(
            &self.settings.app_key,
            self.settings.app_secret.expose_secret(),
            &nonce,
            &created,
        );
        self.http
            .request(method, url)
            .insert_header(("Content-Type", wire::CONTENT_TYPE))
            .insert_header(("Authorization", signer::AUTHORIZATION))
            .insert_header((signer::X_AKSK, x_aksk))
            .force_close()
    }

    /// Runs one request to Huawei (one attempt of a call), recording it in the endpoint's
    /// metrics: the one place Huawei requests are counted and timed.
    async fn observed<T>(
        &self,
        op: &'static str,
        request: impl std::future::Future<Output = Result<T, HuaweiError>>,
    ) -> Result<T, HuaweiError> {
        let started = std::time::Instant::now();
        let outcome = request.await;
        if let Some(metrics) = self.guard.metrics() {
            metrics.huawei_request(op, result_label(&outcome), started.elapsed());
        }
        outcome
    }

    async fn call<T>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Result<T, HuaweiError>
    where
        T: DeserializeOwned + HasResult,
    {
        self.observed(op, self.call_once(method, path, query, body))
            .await
    }

    async fn call_once<T>(
        &self,
        method: Method,
        path: &str,
        query: Option<String>,
        body: Option<Vec<u8>>,
    ) -> Result<T, HuaweiError>
    where
        T: DeserializeOwned + HasResult,
    {
        let mut url = format!("{}{}", self.settings.base_url.trim_end_matches('/'), path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(&q);
        }
        let req = self.signed(method.clone(), &url);
        let sent = match body {
            Some(b) => req.send_body(b).await,
            None => req.send().await,
        };
        let mut resp = sent.map_err(classify_send_error)?;
        let status = resp.status().as_u16();
        let bytes = read_body(&mut resp, self.settings.request_timeout).await?;
        let parsed: T = parse_body(status, &bytes)?;
        if parsed.resultcode() == wire::codes::SUCCESS {
            Ok(parsed)
        } else {
            Err(HuaweiError::rejected(
                status,
                BasicResponse {
                    resultcode: parsed.resultcode().to_owned(),
                    resultdesc: parsed.resultdesc().to_owned(),
                },
            ))
        }
    }
}

/// A request's result as a metrics label: Huawei's resultcode when it answered, else how the
/// request failed. Codes are Huawei's few fixed values; anything else (a proxy's garbage) is
/// `other`, so an answer cannot mint series.
fn result_label<T>(outcome: &Result<T, HuaweiError>) -> &str {
    match outcome {
        Ok(_) => wire::codes::SUCCESS,
        Err(HuaweiError::Rejected { resultcode, .. })
            if !resultcode.is_empty()
                && resultcode.len() <= 12
                && resultcode.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            resultcode
        }
        Err(HuaweiError::Rejected { .. }) => "other",
        Err(HuaweiError::Transport(TransportFailure::Timeout)) => "timeout",
        Err(HuaweiError::Transport(TransportFailure::NotSent(_))) => "unreachable",
        Err(
            HuaweiError::Transport(TransportFailure::AfterSend(_))
            | HuaweiError::BadResponse { .. },
        ) => "unknown_outcome",
        // Never sent: neither is counted as a request, but a label is still needed.
        Err(HuaweiError::NotCalled { .. }) => "not_called",
        Err(HuaweiError::Encode(_)) => "not_sent",
    }
}

/// Every Huawei response carries `resultcode`/`resultdesc`.
pub trait HasResult {
    fn resultcode(&self) -> &str;
    fn resultdesc(&self) -> &str;
}

macro_rules! has_result {
    ($($t:ty),*) => {$(
        impl HasResult for $t {
            fn resultcode(&self) -> &str { &self.resultcode }
            fn resultdesc(&self) -> &str { &self.resultdesc }
        }
    )*};
}
has_result!(
    BasicResponse,
    BindResponse,
    QueryResponse,
    ListBindingsResponse,
    ListNumbersResponse
);

async fn read_body(
    resp: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
    timeout: Duration,
) -> Result<actix_web::web::Bytes, HuaweiError> {
    match actix_rt::time::timeout(timeout, resp.body().limit(MAX_RESPONSE_BYTES)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(HuaweiError::Transport(TransportFailure::after_send(
            &format!("reading the response body failed: {e}"),
        ))),
        Err(_) => Err(HuaweiError::Transport(TransportFailure::Timeout)),
    }
}

fn parse_body<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, HuaweiError> {
    serde_json::from_slice(body).map_err(|e| {
        // The body may echo the request, numbers and all: `bad_response` masks them before
        // this text reaches a log or `bindings.last_error`.
        let start = body.len().min(MAX_ERROR_TEXT * 2);
        HuaweiError::bad_response(
            status,
            &format!(
                "response is not Huawei's JSON ({e}): {}",
                String::from_utf8_lossy(&body[..start])
            ),
            MAX_ERROR_TEXT,
        )
    })
}

/// Splits awc's errors into "certainly not sent" and "outcome unknown".
///
/// Only failures that happen before any byte of the request is written prove that Huawei did
/// nothing: a bad URL, DNS, the TCP connect (refused, or timed out together with the TLS
/// handshake, which is bounded by the same connect timeout), TLS itself. Everything else may
/// come after Huawei read the request. Note `Connect(Disconnected)`: despite its name, awc
/// reports it when the server closed the connection *after* the request was written and
/// before any response head, which is exactly a lost answer.
fn classify_send_error(e: SendRequestError) -> HuaweiError {
    let text = e.to_string();
    let (not_sent, after_send) = (
        || TransportFailure::not_sent(&text),
        || TransportFailure::after_send(&text),
    );
    HuaweiError::Transport(match e {
        SendRequestError::Url(_)
        | SendRequestError::Http(_)
        | SendRequestError::TunnelNotSupported => not_sent(),
        SendRequestError::Connect(c) => match c {
            ConnectError::Disconnected | ConnectError::H2(_) => after_send(),
            ConnectError::SslIsNotSupported
            | ConnectError::Resolver(_)
            | ConnectError::NoRecords
            | ConnectError::Timeout
            | ConnectError::Unresolved
            | ConnectError::Io(_) => not_sent(),
            // awc may add kinds: unknown ones are treated as the unsafe case.
            _ => after_send(),
        },
        SendRequestError::Timeout => TransportFailure::Timeout,
        SendRequestError::Send(_)
        | SendRequestError::Response(_)
        | SendRequestError::H2(_)
        | SendRequestError::Body(_)
        | SendRequestError::Custom(..) => after_send(),
        // awc may add kinds: unknown ones are treated as the unsafe case.
        #[allow(unreachable_patterns)]
        _ => after_send(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    fn not_sent(e: SendRequestError) -> bool {
        match classify_send_error(e) {
            HuaweiError::Transport(TransportFailure::NotSent(_)) => true,
            HuaweiError::Transport(_) => false,
            other => panic!("not a transport failure: {other:?}"),
        }
    }

    #[test]
    fn failures_before_the_request_is_written_are_certainly_not_sent() {
        assert!(not_sent(SendRequestError::Url(
            awc::error::InvalidUrl::MissingHost
        )));
        assert!(not_sent(SendRequestError::TunnelNotSupported));
        assert!(not_sent(SendRequestError::Http(
            awc::error::HttpError::from(
                actix_web::http::header::HeaderName::from_bytes(b"bad header").unwrap_err()
            )
        )));
        let connect = |c| SendRequestError::Connect(c);
        assert!(not_sent(connect(ConnectError::SslIsNotSupported)));
        assert!(not_sent(connect(ConnectError::Resolver(Box::new(
            io::Error::other("no such host")
        )))));
        assert!(not_sent(connect(ConnectError::NoRecords)));
        assert!(not_sent(connect(ConnectError::Timeout)));
        assert!(not_sent(connect(ConnectError::Unresolved)));
        assert!(not_sent(connect(ConnectError::Io(io::Error::new(
            io::ErrorKind::ConnectionRefused,
            "refused"
        )))));
        // A TLS handshake failure surfaces as an I/O error of the connector.
        assert!(not_sent(connect(ConnectError::Io(io::Error::new(
            io::ErrorKind::InvalidData,
            "invalid peer certificate"
        )))));
    }

    #[test]
    fn a_connection_closed_without_an_answer_leaves_the_outcome_unknown() {
        let e = classify_send_error(SendRequestError::Connect(ConnectError::Disconnected));
        assert!(e.outcome_unknown(), "{e:?}");
        assert!(matches!(
            e,
            HuaweiError::Transport(TransportFailure::AfterSend(_))
        ));
    }

    #[test]
    fn failures_once_the_request_may_have_been_written_leave_the_outcome_unknown() {
        let unknown = |e| classify_send_error(e).outcome_unknown();
        assert!(unknown(SendRequestError::Timeout));
        assert!(unknown(SendRequestError::Send(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "broken pipe"
        ))));
        assert!(unknown(SendRequestError::Response(
            actix_web::error::ParseError::Incomplete
        )));
        assert!(unknown(SendRequestError::H2(h2::Error::from(
            h2::Reason::INTERNAL_ERROR
        ))));
        assert!(unknown(SendRequestError::Connect(ConnectError::H2(
            h2::Error::from(h2::Reason::REFUSED_STREAM)
        ))));
        assert!(unknown(SendRequestError::Body(Box::new(io::Error::other(
            "body stream failed"
        )))));
        assert!(unknown(SendRequestError::Custom(
            Box::new(io::Error::other("custom")),
            Box::new("after submit")
        )));
    }
}

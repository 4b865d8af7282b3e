//! The signed outbound client for Huawei's AXE API.
//!
//! `awc::Client` is `!Send`, so a `HuaweiClient` lives on one actix worker (built inside the
//! `HttpServer::new` factory) or on the thread of a background job. Every request is signed with a
//! fresh nonce, sent with `Connection: close` (Huawei treats calls as short connections and closes
//! them itself), never follows redirects, and is bounded by the configured connect and total
//! timeouts.

use std::time::Duration;

use actix_web::http::Method;
use awc::error::SendRequestError;
use serde::{de::DeserializeOwned, Serialize};

use super::error::{HuaweiError, TransportFailure};
use super::signer;
use super::wire::{
    self, BasicResponse, BindRequest, BindResponse, BindingSelector, ModifyRequest, QueryResponse,
    RecordingQuery,
};

/// Largest Huawei response body we read; their answers are a few hundred bytes.
const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// Where and how to reach Huawei. `Send + Clone`, so it can be handed to each worker, which builds
/// its own [`HuaweiClient`] from it.
#[derive(Clone)]
pub struct HuaweiSettings {
    pub base_url: String,
    pub app_key: String,
    pub app_secret: String,
    pub connect_timeout: Duration,
    pub request_timeout: Duration,
}

impl std::fmt::Debug for HuaweiSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HuaweiSettings")
            .field("base_url", &self.base_url)
            .field("app_key", &self.app_key)
            .field("app_secret", &"<redacted>")
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
}

impl HuaweiClient {
    pub fn new(settings: HuaweiSettings) -> Self {
        install_crypto_provider();
        let connector = awc::Connector::new()
            .timeout(settings.connect_timeout)
            .handshake_timeout(settings.connect_timeout);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(settings.request_timeout)
            .disable_redirects()
            .add_default_header((
                "User-Agent",
                concat!("axe-gateway/", env!("CARGO_PKG_VERSION")),
            ))
            .finish();
        Self { http, settings }
    }

    pub fn settings(&self) -> &HuaweiSettings {
        &self.settings
    }

    /// CreateAXEBinding.
    pub async fn bind(&self, req: &BindRequest) -> Result<BindResponse, HuaweiError> {
        let body = serde_json::to_vec(req).map_err(|e| HuaweiError::Encode(e.to_string()))?;
        self.call(Method::POST, wire::BINDING_PATH, None, Some(body))
            .await
    }

    /// DeleteAXEBinding.
    pub async fn unbind(&self, sel: &BindingSelector) -> Result<BasicResponse, HuaweiError> {
        let query = query_string(sel)?;
        self.call(Method::DELETE, wire::BINDING_PATH, Some(query), None)
            .await
    }

    /// ModifyAXEBinding.
    pub async fn modify(&self, req: &ModifyRequest) -> Result<BasicResponse, HuaweiError> {
        let body = serde_json::to_vec(req).map_err(|e| HuaweiError::Encode(e.to_string()))?;
        self.call(Method::PUT, wire::BINDING_PATH, None, Some(body))
            .await
    }

    /// QueryAXEBinding v1.0 (one binding, by subscription id or X+E).
    pub async fn query(&self, sel: &BindingSelector) -> Result<QueryResponse, HuaweiError> {
        let query = query_string(sel)?;
        self.call(Method::GET, wire::BINDING_PATH, Some(query), None)
            .await
    }

    /// GetRecordingDownloadUrl: Huawei answers 301 with the URL in `Location`; we read it and do
    /// not follow it (following would download the audio).
    pub async fn recording_link(&self, q: &RecordingQuery) -> Result<String, HuaweiError> {
        let query = query_string(q)?;
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
                .ok_or(HuaweiError::BadResponse {
                    http_status: status.as_u16(),
                    detail: "redirect without a Location header".into(),
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
            &self.settings.app_secret,
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

    async fn call<T>(
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
has_result!(BasicResponse, BindResponse, QueryResponse);

async fn read_body(
    resp: &mut awc::ClientResponse<
        impl futures_util::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    >,
    timeout: Duration,
) -> Result<actix_web::web::Bytes, HuaweiError> {
    match actix_rt::time::timeout(timeout, resp.body().limit(MAX_RESPONSE_BYTES)).await {
        Ok(Ok(b)) => Ok(b),
        Ok(Err(e)) => Err(HuaweiError::Transport(TransportFailure::AfterSend(
            format!("reading the response body failed: {e}"),
        ))),
        Err(_) => Err(HuaweiError::Transport(TransportFailure::Timeout)),
    }
}

fn parse_body<T: DeserializeOwned>(status: u16, body: &[u8]) -> Result<T, HuaweiError> {
    serde_json::from_slice(body).map_err(|e| HuaweiError::BadResponse {
        http_status: status,
        detail: format!(
            "response is not Huawei's JSON ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        ),
    })
}

/// Splits awc's errors into "never left us" (connect/URL problems: the call certainly did not
/// happen) and "may have reached Huawei" (timeouts and failures after sending).
fn classify_send_error(e: SendRequestError) -> HuaweiError {
    HuaweiError::Transport(match e {
        SendRequestError::Connect(c) => TransportFailure::Connect(c.to_string()),
        SendRequestError::Url(u) => TransportFailure::Connect(u.to_string()),
        SendRequestError::Timeout => TransportFailure::Timeout,
        other => TransportFailure::AfterSend(other.to_string()),
    })
}

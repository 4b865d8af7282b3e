//! An in-process emulator of Huawei Cloud PrivateNumber's AXE API, for tests and local runs.
//!
//! It serves the same paths, signature checks, parameter rules and result codes as Huawei
//! (reference §3–§8, §13), keeps bindings in memory, and lets tests queue faults (refusals,
//! lost responses, hangs, latency, connections closed before or after acting, garbage) so that the gateway's signed client can be exercised end to
//! end over HTTP. Mount it in any `App` with [`Sandbox::configure`], or run it standalone with
//! [`Sandbox::serve`].
//!
//! Huawei routes (all need `Authorization` + `X-AKSK`):
//! `POST|DELETE|PUT|GET /rest/caas/extendnumber/v1.0` and `GET /rest/provision/voice/record/v1.0`.
//! Control routes (no auth, JSON): `GET /sandbox/bindings`, `POST /sandbox/numbers`,
//! `GET /sandbox/stats`, `POST /sandbox/faults`, `DELETE /sandbox/faults`,
//! `POST /sandbox/recordings`, `POST /sandbox/clock`, `GET /sandbox/recordings/{file}`
//! (the download a recording link points to), and the notification players
//! `POST /sandbox/calls` and `POST /sandbox/num-status`.
//!
//! Notifications (reference §9–§11): [`Sandbox::play_call`] plays one call as Huawei would
//! report it — the call events, then the CDR — to [`SandboxConfig::webhook_events_url`] and
//! [`SandboxConfig::webhook_cdr_url`], signed with the sandbox's own app key and secret;
//! [`Sandbox::push_num_status`] sends a `numStatus`.
//!
//! Time: `Created` is checked against the real clock; binding expiry and recording age use the
//! sandbox clock, which [`Sandbox::advance_clock`] can move forward.

mod calls;
mod routes;
mod state;
mod validate;

#[cfg(test)]
mod call_tests;
#[cfg(test)]
mod tests;

pub use calls::{play_call_remote, CallSpec, Delivery, Outcome, PlayError, PlayedCall};

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{mask_phone, ExtensionDigits};
use state::{NumberEntry, Recording, State};

/// How the emulated Huawei app is set up.
#[derive(Clone)]
pub struct SandboxConfig {
    pub app_key: String,
    pub app_secret: secrecy::SecretString,
    /// Extension length of the app: 10^digits - 1 bindings fit on one X.
    pub extension_digits: ExtensionDigits,
    /// How far `Created` may lie from the sandbox's wall clock (Huawei's is unpublished).
    pub max_clock_skew: chrono::Duration,
    /// Treat any virtual number named in a bind as the app's own (instead of `1012001`), so
    /// numbers added to the gateway's pool later work in `serve --sandbox`. Off by default:
    /// Huawei itself refuses numbers the app does not own.
    pub adopt_unknown_numbers: bool,
    /// Where call events (and `numStatus`) are POSTed, like the app's call-status URL at
    /// Huawei. `None`: not configured (the CDR URL is used instead if set).
    pub webhook_events_url: Option<String>,
    /// Where CDRs (`fee`) are POSTed, like the app's CDR URL at Huawei. `None`: the events URL
    /// is used.
    pub webhook_cdr_url: Option<String>,
}

impl SandboxConfig {
    /// Four-digit extensions and a 15-minute skew window.
    pub fn new(app_key: impl Into<String>, app_secret: impl Into<String>) -> Self {
        Self {
            app_key: app_key.into(),
            app_secret: secrecy::SecretString::from(app_secret.into()),
            extension_digits: ExtensionDigits::default(),
            max_clock_skew: chrono::Duration::minutes(15),
            adopt_unknown_numbers: false,
            webhook_events_url: None,
            webhook_cdr_url: None,
        }
    }
}

impl std::fmt::Debug for SandboxConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxConfig")
            .field("app_key", &self.app_key)
            .field("app_secret", &self.app_secret)
            .field("extension_digits", &self.extension_digits)
            .field("max_clock_skew", &self.max_clock_skew)
            .field("adopt_unknown_numbers", &self.adopt_unknown_numbers)
            .field("webhook_events_url", &self.webhook_events_url)
            .field("webhook_cdr_url", &self.webhook_cdr_url)
            .finish()
    }
}

/// One binding held by the sandbox. The option fields are Huawei's strings as given at bind time
/// (`None` when the request left them out); `time_unit` and `bind_expired_time` keep their
/// bind-time values across modifies, like Huawei's query does, while `expires_at` is the real
/// deadline.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct SandboxBinding {
    pub subscription_id: String,
    pub virtual_num: String,
    pub extend_num: String,
    pub bind_num: String,
    pub record_flag: Option<String>,
    pub record_hint_tone: Option<String>,
    pub callback_num: Option<String>,
    pub callback_tone: Option<String>,
    pub time_unit: Option<String>,
    pub bind_expired_time: Option<i64>,
    pub callback_expired_time: Option<i64>,
    pub user_data: Option<String>,
    pub display_num_mode: Option<String>,
    pub created_at: DateTime<Utc>,
    pub expires_at: Option<DateTime<Utc>>,
}

crate::debug_masking!(
    SandboxBinding {
        subscription_id, extend_num, record_flag, record_hint_tone, callback_tone, time_unit,
        bind_expired_time, callback_expired_time, user_data, display_num_mode, created_at,
        expires_at
    } masking { virtual_num, bind_num, callback_num }
);

/// Requests that reached each handler (refused ones included), and authentication refusals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct SandboxStats {
    pub bind_requests: u64,
    pub unbind_requests: u64,
    pub modify_requests: u64,
    pub query_requests: u64,
    pub auth_failures: u64,
}

/// Which Huawei operation a fault applies to. `Any` matches the four binding operations (not
/// the recording link).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Bind,
    Unbind,
    Modify,
    Query,
    Any,
}

/// A misbehaviour to inject. Faults wait in a FIFO queue; each request that passes
/// authentication takes the first one queued for its operation (or for `Any`). `Debug` masks
/// phone numbers in a rejection's text.
#[derive(Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this instead of acting.
    Reject {
        http_status: u16,
        resultcode: String,
        resultdesc: String,
    },
    /// Perform the operation, then sleep this long before answering (a lost response).
    HangAfterApply(Duration),
    /// Sleep this long, then answer 503 without performing anything.
    HangBeforeApply(Duration),
    /// Perform nothing; answer HTTP 500 with a non-JSON body.
    Drop,
    /// Sleep this long, then act and answer normally (a slow Huawei).
    Latency(Duration),
    /// Close the connection without acting or answering (Huawei crashed on receipt). Needs the
    /// sandbox to be run by [`Sandbox::serve`]; mounted elsewhere it answers like [`Fault::Drop`].
    DropBeforeCommit,
    /// Act, then close the connection without answering (the binding exists, the answer is
    /// lost). Same note as [`Fault::DropBeforeCommit`].
    DropAfterCommit,
}

impl fmt::Debug for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reject {
                http_status,
                resultcode,
                resultdesc,
            } => f
                .debug_struct("Reject")
                .field("http_status", http_status)
                .field("resultcode", resultcode)
                .field("resultdesc", &crate::domain::Masked(resultdesc))
                .finish(),
            Self::HangAfterApply(d) => f.debug_tuple("HangAfterApply").field(d).finish(),
            Self::HangBeforeApply(d) => f.debug_tuple("HangBeforeApply").field(d).finish(),
            Self::Drop => f.write_str("Drop"),
            Self::Latency(d) => f.debug_tuple("Latency").field(d).finish(),
            Self::DropBeforeCommit => f.write_str("DropBeforeCommit"),
            Self::DropAfterCommit => f.write_str("DropAfterCommit"),
        }
    }
}

/// The emulator. Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct Sandbox {
    config: Arc<SandboxConfig>,
    state: Arc<Mutex<State>>,
}

impl std::fmt::Debug for Sandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sandbox")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Sandbox {
    pub fn new(config: SandboxConfig) -> Self {
        Self {
            config: Arc::new(config),
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    pub fn config(&self) -> &SandboxConfig {
        &self.config
    }

    /// The state, with expired bindings already dropped. A poisoned lock is recovered: every
    /// mutation leaves the state consistent.
    fn lock(&self) -> (MutexGuard<'_, State>, DateTime<Utc>) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Utc::now() + st.clock_offset;
        st.purge_expired(now);
        (st, now)
    }

    /// The sandbox clock: the wall clock plus everything passed to [`Sandbox::advance_clock`].
    pub fn now(&self) -> DateTime<Utc> {
        self.lock().1
    }

    /// Moves the sandbox clock forward (binding expiry, recording age). `Created` in `X-AKSK`
    /// is still checked against the real clock.
    pub fn advance_clock(&self, by: chrono::Duration) {
        let mut st = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        st.clock_offset += by;
    }

    /// Adds X to the app's inventory in a normal state (idempotent: an existing number keeps its
    /// status and gets the new area code).
    pub fn add_number(&self, number: &str, area_code: &str) {
        let (mut st, _) = self.lock();
        st.numbers
            .entry(number.to_owned())
            .and_modify(|n| n.area_code = area_code.to_owned())
            .or_insert_with(|| NumberEntry {
                area_code: area_code.to_owned(),
                normal: true,
            });
        log::debug!("sandbox: number {} in area {area_code}", mask_phone(number));
    }

    /// Marks X normal or not (paused, unavailable, bind-frozen: binds on it get `1012102`).
    /// Unknown numbers are ignored.
    pub fn set_number_status(&self, number: &str, normal: bool) {
        let (mut st, _) = self.lock();
        if let Some(n) = st.numbers.get_mut(number) {
            n.normal = normal;
        }
    }

    /// All live bindings, ordered by X then E.
    pub fn bindings(&self) -> Vec<SandboxBinding> {
        let (st, _) = self.lock();
        st.bindings.iter().cloned().collect()
    }

    pub fn binding_by_number(&self, virtual_num: &str, extend_num: &str) -> Option<SandboxBinding> {
        let (st, _) = self.lock();
        st.bindings.at(virtual_num, extend_num).cloned()
    }

    pub fn stats(&self) -> SandboxStats {
        self.lock().0.stats
    }

    /// Occupies X+E with a binding that did not come through the API (as if someone else had
    /// bound it at Huawei), replacing any binding already there. Returns its subscription id.
    /// The number need not be in the inventory.
    pub fn insert_binding_directly(
        &self,
        virtual_num: &str,
        extend_num: &str,
        bind_num: &str,
    ) -> String {
        let (mut st, now) = self.lock();
        let id = uuid::Uuid::new_v4().to_string();
        // Displaces whatever binding is on X+E.
        st.bindings.insert(SandboxBinding {
            subscription_id: id.clone(),
            virtual_num: virtual_num.to_owned(),
            extend_num: extend_num.to_owned(),
            bind_num: bind_num.to_owned(),
            record_flag: None,
            record_hint_tone: None,
            callback_num: None,
            callback_tone: None,
            time_unit: None,
            bind_expired_time: None,
            callback_expired_time: None,
            user_data: None,
            display_num_mode: None,
            created_at: now,
            expires_at: None,
        });
        id
    }

    /// Makes a recording available to the recording-link API for 7 days from `recorded_at`.
    pub fn add_recording(&self, file_name: &str, record_domain: &str, recorded_at: DateTime<Utc>) {
        let (mut st, _) = self.lock();
        st.recordings.insert(
            file_name.to_owned(),
            Recording {
                record_domain: record_domain.to_owned(),
                recorded_at,
            },
        );
    }

    /// Queues a fault for the next request of `op` (FIFO, one fault per request).
    pub fn push_fault(&self, op: Op, fault: Fault) {
        let (mut st, _) = self.lock();
        log::info!("sandbox: fault queued for {op:?}: {fault:?}");
        st.faults.push_back((op, fault));
    }

    /// Faults still waiting.
    pub fn pending_faults(&self) -> usize {
        self.lock().0.faults.len()
    }

    pub fn clear_faults(&self) {
        self.lock().0.faults.clear();
    }

    /// Registers the Huawei and control routes, with this sandbox as app data.
    pub fn configure(&self, cfg: &mut actix_web::web::ServiceConfig) {
        routes::configure(self.clone(), cfg);
    }

    /// Runs the sandbox alone on `listener` (two workers, no signal handling: stop it through
    /// the returned server's handle). The server must be awaited or spawned to run.
    pub fn serve(
        &self,
        listener: std::net::TcpListener,
    ) -> std::io::Result<actix_web::dev::Server> {
        let sandbox = self.clone();
        Ok(actix_web::HttpServer::new(move || {
            let sandbox = sandbox.clone();
            actix_web::App::new().configure(move |cfg| sandbox.configure(cfg))
        })
        .on_connect(routes::ConnectionCut::remember)
        .workers(2)
        .disable_signals()
        .shutdown_timeout(1)
        .listen(listener)?
        .run())
    }
}

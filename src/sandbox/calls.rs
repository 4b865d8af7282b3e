//! Playing calls: the sandbox sends the notifications Huawei would send for one call through an
//! AXE binding — call events (reference §9), then the CDR (§10) — and X-number status (§11), to
//! the webhook URLs of [`SandboxConfig`](super::SandboxConfig), signed with `X-AKSK` exactly as
//! Huawei signs them.
//!
//! What a played call looks like (A-called scenario; t0 = the sandbox clock):
//!
//! | outcome | events (offset from t0) | `stateCode` | CDR `fwdUnaswRsn` / `sipStatusCode` |
//! |---------|-------------------------|-------------|-------------------------------------|
//! | `answered` | callin 0, collectInfo +5, callout +6, alerting +8, answer +15, disconnect +15+talk | 0 | 0 / 0 |
//! | `no_answer` | … alerting +8, disconnect +28 | 8101 | 19 / 480 |
//! | `busy` | … alerting +8, disconnect +28 | 8102 | 17 / 486 |
//! | `caller_hangup` | … alerting +8, disconnect +28 | 7502 | 16 / 487 |
//! | `wrong_extension`, or an E without binding | callin 0, collectInfo +5, disconnect +6 | 8022 | 0 / 404, `direction` 2 |
//! | X not the app's | callin 0, disconnect +2 | 8025 | 0 / 404, `direction` 2 |
//!
//! Every notification is one HTTP request per delivery (a fresh nonce each time); one that is
//! not answered 200 is retried twice more, quickly (Huawei retries too, but over hours).

use std::time::Duration;

use actix_web::http::header;
use chrono::{DateTime, Utc};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::state::State;
use super::{Sandbox, SandboxBinding};
use crate::domain::{mask_phone, mask_phones, NumberStatus, PhoneNumber};
use crate::huawei::client::install_crypto_provider;
use crate::huawei::notify::{self, FeeInfo, Notification, NumInfo, StatusInfo};
use crate::huawei::{signer, wire};

/// Host named in session ids and in the CDR's `hostName`.
pub const SANDBOX_HOST_NAME: &str = "callenabler.sandbox";
/// `recordDomain` of sandbox recordings (pass it to the recording-link API).
pub const SANDBOX_RECORD_DOMAIN: &str = "record.sandbox.example";
/// `recordBucketName` of sandbox recordings.
pub const SANDBOX_RECORD_BUCKET: &str = "sandbox-recordings";
/// `spId` of the sandbox's (imaginary) cloud account.
pub const SANDBOX_SP_ID: &str = "sandbox_sp";
/// `serviceType` as in Huawei's PrivateNumber samples.
const SERVICE_TYPE: &str = "004";

/// Per-request timeout of a notification.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// First delivery plus two retries.
const MAX_ATTEMPTS: u32 = 3;
/// Pause before retry n is n times this.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// How long [`play_call_remote`] waits for the sandbox to play a call (every notification may
/// take up to 3 × 10 s when the gateway hangs).
const REMOTE_TIMEOUT: Duration = Duration::from_secs(300);
/// The gateway's answer body is read (and dropped) up to this size.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// Longest call a spec may ask for (a day).
const MAX_TALK_SECONDS: u32 = 86_400;

/// How the played call ends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A answers; the call lasts `talk_seconds`, then ends normally (`stateCode` 0).
    #[default]
    Answered,
    /// A's phone rings and nobody answers (`stateCode` 8101).
    NoAnswer,
    /// A is busy (`stateCode` 8102).
    Busy,
    /// The caller hangs up while A's phone rings (`stateCode` 7502).
    CallerHangup,
    /// The caller dials an extension that has no binding on X (`stateCode` 8022, no callout).
    WrongExtension,
}

impl Outcome {
    /// `disconnect.stateCode`, `stateDesc`, CDR `fwdUnaswRsn` (Q.850), CDR `sipStatusCode`.
    fn codes(self) -> (i64, &'static str, i64, i64) {
        match self {
            Self::Answered => (0, "The user releases the call.", 0, 0),
            Self::NoAnswer => (8101, "The callee does not answer.", 19, 480),
            Self::Busy => (8102, "The callee is busy.", 17, 486),
            Self::CallerHangup => (7502, "The caller hangs up after the callee rings.", 16, 487),
            Self::WrongExtension => (
                BINDING_MISSING,
                BINDING_MISSING_DESC,
                0,
                ABNORMAL_SIP_STATUS,
            ),
        }
    }
}

const BINDING_MISSING: i64 = 8022;
const BINDING_MISSING_DESC: &str = "The binding relationship does not exist or has expired.";
const X_MISSING: i64 = 8025;
const X_MISSING_DESC: &str = "The called X number does not exist.";
const ABNORMAL_SIP_STATUS: i64 = 404;
/// CDR `direction`: someone called A through X+E.
const DIRECTION_A_CALLED: i64 = 0;
/// CDR `direction`: abnormal (no binding data).
const DIRECTION_ABNORMAL: i64 = 2;

fn default_talk_seconds() -> u32 {
    30
}

/// A call to play. The binding is found by `virtual_num` + `extend_num` (what the caller dials)
/// or by `subscription_id`; the gateway's own binding ids mean nothing to the sandbox.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSpec {
    /// X, E.164. May be left out when `subscription_id` names a binding.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub virtual_num: String,
    /// The extension the caller dials. With `wrong_extension`, a bound or missing E is
    /// replaced by a free one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_num: Option<String>,
    /// Finds the binding by its Huawei subscription id instead of X+E.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    /// The calling party B, E.164.
    pub caller: String,
    #[serde(default)]
    pub outcome: Outcome,
    /// Talk time of an answered call (default 30, at most 86,400).
    #[serde(default = "default_talk_seconds")]
    pub talk_seconds: u32,
    /// Record an answered call: the CDR carries the recording fields and the recording-link API
    /// serves the file.
    #[serde(default)]
    pub record: bool,
    /// Deliver every notification twice.
    #[serde(default)]
    pub duplicates: bool,
    /// Deliver the call events shuffled (never in their real order); the CDR still comes last.
    #[serde(default)]
    pub out_of_order: bool,
}

crate::debug_masking!(
    CallSpec {
        extend_num, subscription_id, outcome, talk_seconds, record, duplicates, out_of_order
    } masking { virtual_num, caller }
);

impl CallSpec {
    /// An answered 30-second call from `caller` to X+E, otherwise defaults.
    pub fn new(
        virtual_num: impl Into<String>,
        extend_num: impl Into<String>,
        caller: impl Into<String>,
    ) -> Self {
        Self {
            virtual_num: virtual_num.into(),
            extend_num: Some(extend_num.into()),
            subscription_id: None,
            caller: caller.into(),
            outcome: Outcome::Answered,
            talk_seconds: default_talk_seconds(),
            record: false,
            duplicates: false,
            out_of_order: false,
        }
    }
}

/// One HTTP delivery of one notification.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// `callin` … `disconnect`, `fee` or `numStatus`.
    pub event_type: String,
    /// `statusInfo.timestamp` of an event (absent for the CDR).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp: Option<String>,
    pub url: String,
    /// The second copy of a duplicated notification.
    #[serde(default)]
    pub duplicate: bool,
    /// Requests made: 1, or up to 3 when the gateway did not answer 200.
    pub attempts: u32,
    /// The gateway's last HTTP status (`None` if it never answered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_status: Option<u16>,
    /// The last transport error, if the last attempt got no answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

crate::debug_masking!(
    Delivery { event_type, timestamp, url, duplicate, attempts, http_status } masking { error }
);

impl Delivery {
    pub fn delivered(&self) -> bool {
        self.http_status == Some(200)
    }
}

/// What [`Sandbox::play_call`] did.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlayedCall {
    pub session_id: String,
    pub icid: String,
    /// The binding the call went through (`None` on the 8022/8025 paths).
    #[serde(default)]
    pub subscription_id: Option<String>,
    pub virtual_num: String,
    /// The digits the caller entered (`None` when X does not exist: no prompt was played).
    #[serde(default)]
    pub extend_num: Option<String>,
    pub caller: String,
    /// What happened: the spec's outcome, or `wrong_extension` when no binding was reached
    /// (8022, or 8025 for an X the app does not own).
    pub outcome: Outcome,
    /// `stateCode` of the `disconnect` event.
    pub state_code: i64,
    /// Answer to end; 0 unless answered.
    pub talk_seconds: u32,
    /// The CDR's `recordObjectName` when the call was recorded.
    #[serde(default)]
    pub record_object_name: Option<String>,
    #[serde(default)]
    pub record_domain: Option<String>,
    /// Every delivery in the order sent; the CDR is last.
    pub deliveries: Vec<Delivery>,
    /// Every delivery was eventually answered 200.
    pub all_delivered: bool,
}

crate::debug_masking!(
    PlayedCall {
        session_id, icid, subscription_id, extend_num, outcome, state_code, talk_seconds,
        record_object_name, record_domain, deliveries, all_delivered
    } masking { virtual_num, caller }
);

/// Why a call (or a number status) could not be played.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlayError {
    #[error("no webhook URL configured")]
    NoWebhookUrl,
    #[error("{0}")]
    InvalidSpec(String),
    /// The gateway never answered (after the retries).
    #[error("notification not delivered: {0}")]
    Transport(String),
}

fn invalid(msg: impl Into<String>) -> PlayError {
    PlayError::InvalidSpec(msg.into())
}

// ---------------------------------------------------------------------------------------------
// Planning: what Huawei would send for this call

/// Where the call goes after `callin`.
enum Route {
    Connected(Box<SandboxBinding>),
    NoBinding { dialled: String },
    UnknownX,
}

struct Outgoing {
    event_type: String,
    timestamp: Option<String>,
    url: String,
    body: String,
}

struct Plan {
    report: PlayedCall,
    outgoing: Vec<Outgoing>,
    /// File name and start time of a recording to register.
    recording: Option<(String, DateTime<Utc>)>,
}

/// Huawei's dialled digits: 1–8 decimal digits (extensions are 1–4, callers mistype).
fn check_digits(e: &str) -> Result<(), PlayError> {
    if (1..=8).contains(&e.len()) && e.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(invalid(format!(
            "extend_num {e:?} must be 1 to 8 digits (what the caller dials)"
        )))
    }
}

fn time(t: DateTime<Utc>) -> String {
    notify::format_time(t.naive_utc())
}

fn secs(n: u32) -> chrono::Duration {
    chrono::Duration::seconds(i64::from(n))
}

/// A call event with the common fields filled.
fn event(kind: &str, session_id: &str, at: DateTime<Utc>, info: StatusInfo) -> Notification {
    Notification {
        event_type: Some(kind.to_owned()),
        status_info: Some(StatusInfo {
            session_id: Some(session_id.to_owned()),
            timestamp: Some(time(at)),
            ..info
        }),
        fee_lst: None,
        num_info: None,
    }
}

impl Sandbox {
    /// The events URL, else the CDR URL.
    fn events_url(&self) -> Option<String> {
        self.config
            .webhook_events_url
            .clone()
            .or_else(|| self.config.webhook_cdr_url.clone())
    }

    /// The CDR URL, else the events URL.
    fn cdr_url(&self) -> Option<String> {
        self.config
            .webhook_cdr_url
            .clone()
            .or_else(|| self.config.webhook_events_url.clone())
    }

    /// Finds where the call goes, as Huawei would when the caller dials X and then E.
    fn route(&self, st: &State, spec: &CallSpec) -> Result<(String, Route), PlayError> {
        let wants_wrong = spec.outcome == Outcome::WrongExtension;
        let sub_id = spec
            .subscription_id
            .as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty());
        if let Some(e) = &spec.extend_num {
            check_digits(e)?;
        }
        let by_id = sub_id.and_then(|id| st.bindings.get(id));
        let (x, e) = match (by_id, sub_id) {
            (Some(b), _) => {
                if !spec.virtual_num.is_empty() && spec.virtual_num != b.virtual_num {
                    return Err(invalid(format!(
                        "subscription_id {} is on virtual_num {}, not {}",
                        b.subscription_id, b.virtual_num, spec.virtual_num
                    )));
                }
                if !wants_wrong && spec.extend_num.as_ref().is_some_and(|e| *e != b.extend_num) {
                    return Err(invalid(format!(
                        "subscription_id {} is on extend_num {}, not {}",
                        b.subscription_id,
                        b.extend_num,
                        spec.extend_num.as_deref().unwrap_or_default()
                    )));
                }
                let e = if wants_wrong {
                    spec.extend_num.clone()
                } else {
                    Some(b.extend_num.clone())
                };
                (b.virtual_num.clone(), e)
            }
            (None, Some(id)) if spec.virtual_num.is_empty() => {
                return Err(invalid(format!(
                    "no binding with subscription_id {id:?}; give virtual_num and extend_num to \
                     dial an unbound extension"
                )))
            }
            (None, _) => (spec.virtual_num.clone(), spec.extend_num.clone()),
        };
        PhoneNumber::parse(&x).map_err(|err| invalid(format!("virtual_num {err}")))?;

        let x_known = st.numbers.contains_key(&x) || st.bindings.count_on(&x) > 0;
        if !x_known {
            return Ok((x, Route::UnknownX));
        }
        if wants_wrong {
            let dialled = match e {
                Some(e) if st.id_at(&x, &e).is_none() => e,
                _ => st
                    .free_extension(&x, self.config.extension_digits)
                    .map(|e| e.as_str().to_owned())
                    .ok_or_else(|| invalid("every extension of this X is bound"))?,
            };
            return Ok((x, Route::NoBinding { dialled }));
        }
        let Some(e) = e else {
            return Err(invalid(
                "extend_num or subscription_id is required (or outcome wrong_extension)",
            ));
        };
        let route = match st.bindings.at(&x, &e) {
            Some(b) => Route::Connected(Box::new(b.clone())),
            None => Route::NoBinding { dialled: e },
        };
        Ok((x, route))
    }

    /// Session ids, icid and the next call number, under one lock.
    fn next_call_number(st: &mut State) -> u64 {
        if st.call_seq == 0 {
            st.call_seq = rand::random_range(1..9_000);
        }
        st.call_seq += 1;
        st.call_seq
    }

    fn plan(&self, spec: &CallSpec) -> Result<Plan, PlayError> {
        let events_url = self.events_url().ok_or(PlayError::NoWebhookUrl)?;
        let cdr_url = self.cdr_url().ok_or(PlayError::NoWebhookUrl)?;
        PhoneNumber::parse(&spec.caller).map_err(|e| invalid(format!("caller {e}")))?;
        if spec.talk_seconds > MAX_TALK_SECONDS {
            return Err(invalid(format!(
                "talk_seconds must be at most {MAX_TALK_SECONDS}"
            )));
        }
        let (x, route, n, now) = {
            let (mut st, now) = self.lock();
            let (x, route) = self.route(&st, spec)?;
            (x, route, Self::next_call_number(&mut st), now)
        };

        let t0 = DateTime::<Utc>::from_timestamp(now.timestamp(), 0).unwrap_or(now);
        let session_id = format!(
            "1200_{n:04}_4294967295_{}@{SANDBOX_HOST_NAME}",
            t0.format("%Y%m%d%H%M%S")
        );
        let icid = format!(
            "{}.{}.{n}.1",
            &uuid::Uuid::new_v4().simple().to_string()[..12],
            t0.timestamp()
        );
        let caller = spec.caller.clone();
        let at = |offset: u32| t0 + secs(offset);

        let mut events = vec![event(
            "callin",
            &session_id,
            t0,
            StatusInfo {
                caller: Some(caller.clone()),
                called: Some(x.clone()),
                ..StatusInfo::default()
            },
        )];
        let mut fee = FeeInfo {
            direction: Some(DIRECTION_A_CALLED),
            sp_id: Some(SANDBOX_SP_ID.to_owned()),
            app_key: Some(self.config.app_key.clone()),
            icid: Some(icid.clone()),
            bind_num: Some(x.clone()),
            session_id: Some(session_id.clone()),
            caller_num: Some(caller.clone()),
            callee_num: Some(x.clone()),
            call_in_time: Some(time(t0)),
            ul_fail_reason: Some(0),
            record_flag: Some(0),
            service_type: Some(SERVICE_TYPE.to_owned()),
            host_name: Some(SANDBOX_HOST_NAME.to_owned()),
            ..FeeInfo::default()
        };
        let collect = |digits: &str| {
            event(
                "collectInfo",
                &session_id,
                at(5),
                StatusInfo {
                    digit_info: Some(digits.to_owned()),
                    ..StatusInfo::default()
                },
            )
        };
        let abnormal_end = |fee: &mut FeeInfo, end: DateTime<Utc>, code: i64, desc: &str| {
            fee.direction = Some(DIRECTION_ABNORMAL);
            fee.call_end_time = Some(time(end));
            fee.fail_time = Some(time(end));
            fee.fwd_unaswrsn = Some(0);
            fee.sip_status_code = Some(ABNORMAL_SIP_STATUS);
            event(
                "disconnect",
                &session_id,
                end,
                StatusInfo {
                    caller: Some(caller.clone()),
                    called: Some(x.clone()),
                    state_code: Some(code),
                    state_desc: Some(desc.to_owned()),
                    ..StatusInfo::default()
                },
            )
        };

        let mut report = PlayedCall {
            session_id: session_id.clone(),
            icid,
            subscription_id: None,
            virtual_num: x.clone(),
            extend_num: None,
            caller: caller.clone(),
            outcome: spec.outcome,
            state_code: 0,
            talk_seconds: 0,
            record_object_name: None,
            record_domain: None,
            deliveries: Vec::new(),
            all_delivered: false,
        };
        let mut recording = None;

        match route {
            Route::UnknownX => {
                report.state_code = X_MISSING;
                report.outcome = Outcome::WrongExtension;
                fee.extend_num = spec.extend_num.clone();
                events.push(abnormal_end(&mut fee, at(2), X_MISSING, X_MISSING_DESC));
            }
            Route::NoBinding { dialled } => {
                report.state_code = BINDING_MISSING;
                report.outcome = Outcome::WrongExtension;
                report.extend_num = Some(dialled.clone());
                fee.extend_num = Some(dialled.clone());
                events.push(collect(&dialled));
                events.push(abnormal_end(
                    &mut fee,
                    at(6),
                    BINDING_MISSING,
                    BINDING_MISSING_DESC,
                ));
            }
            Route::Connected(b) => {
                let a = b.bind_num.clone();
                let (code, desc, unanswered, sip) = spec.outcome.codes();
                let leg = |kind: &str, when: DateTime<Utc>, end: Option<(i64, &str)>| {
                    event(
                        kind,
                        &session_id,
                        when,
                        StatusInfo {
                            caller: Some(caller.clone()),
                            called: Some(a.clone()),
                            subscription_id: Some(b.subscription_id.clone()),
                            state_code: end.map(|(c, _)| c),
                            state_desc: end.map(|(_, d)| d.to_owned()),
                            ..StatusInfo::default()
                        },
                    )
                };
                events.push(collect(&b.extend_num));
                events.push(leg("callout", at(6), None));
                events.push(leg("alerting", at(8), None));
                let end = if spec.outcome == Outcome::Answered {
                    let answer = at(15);
                    let end = answer + secs(spec.talk_seconds);
                    events.push(leg("answer", answer, None));
                    fee.fwd_answer_time = Some(time(answer));
                    report.talk_seconds = spec.talk_seconds;
                    if spec.record {
                        let file = format!("{}{n:06}.wav", answer.format("%Y%m%d%H%M%S"));
                        fee.record_flag = Some(1);
                        fee.record_start_time = Some(time(answer));
                        fee.record_object_name = Some(file.clone());
                        fee.record_bucket_name = Some(SANDBOX_RECORD_BUCKET.to_owned());
                        fee.record_domain = Some(SANDBOX_RECORD_DOMAIN.to_owned());
                        report.record_object_name = Some(file.clone());
                        report.record_domain = Some(SANDBOX_RECORD_DOMAIN.to_owned());
                        recording = Some((file, answer));
                    }
                    end
                } else {
                    let end = at(28);
                    fee.fail_time = Some(time(end));
                    end
                };
                events.push(leg("disconnect", end, Some((code, desc))));
                fee.subscription_id = Some(b.subscription_id.clone());
                fee.fwd_display_num = Some(x.clone());
                fee.fwd_dst_num = Some(a);
                fee.fwd_start_time = Some(time(at(6)));
                fee.fwd_alerting_time = Some(time(at(8)));
                fee.call_end_time = Some(time(end));
                fee.fwd_unaswrsn = Some(unanswered);
                fee.sip_status_code = Some(sip);
                fee.extend_num = Some(b.extend_num.clone());
                report.state_code = code;
                report.subscription_id = Some(b.subscription_id);
                report.extend_num = Some(b.extend_num);
            }
        }

        if spec.out_of_order && events.len() > 1 {
            let original: Vec<_> = events.iter().map(|e| e.event_type.clone()).collect();
            events.shuffle(&mut rand::rng());
            if events.iter().map(|e| &e.event_type).eq(original.iter()) {
                events.reverse();
            }
        }

        let fee_value = serde_json::to_value(&fee).map_err(|e| invalid(e.to_string()))?;
        let cdr = Notification {
            event_type: Some(notify::FEE.to_owned()),
            status_info: None,
            fee_lst: Some(vec![fee_value]),
            num_info: None,
        };
        let mut outgoing = Vec::with_capacity(events.len() + 1);
        for (note, url) in events
            .into_iter()
            .map(|e| (e, &events_url))
            .chain(std::iter::once((cdr, &cdr_url)))
        {
            outgoing.push(Outgoing {
                event_type: note.event_type.clone().unwrap_or_default(),
                timestamp: note.status_info.as_ref().and_then(|s| s.timestamp.clone()),
                url: url.clone(),
                body: serde_json::to_string(&note).map_err(|e| invalid(e.to_string()))?,
            });
        }
        Ok(Plan {
            report,
            outgoing,
            recording,
        })
    }

    /// Plays one call: sends its call events, then its CDR, to the configured webhook URLs
    /// (sequentially, each signed afresh, retried twice when not answered 200) and reports every
    /// delivery. Transport failures and non-200 answers are reported, not errors.
    ///
    /// Errors: [`PlayError::NoWebhookUrl`] when neither URL is set, [`PlayError::InvalidSpec`]
    /// for a malformed spec. An X the app does not own plays the 8025 path, an extension without
    /// binding the 8022 path.
    pub async fn play_call(&self, spec: CallSpec) -> Result<PlayedCall, PlayError> {
        let Plan {
            mut report,
            outgoing,
            recording,
        } = self.plan(&spec)?;
        if let Some((file, at)) = &recording {
            self.add_recording(file, SANDBOX_RECORD_DOMAIN, *at);
        }
        log::info!(
            "sandbox: playing {:?} call {} from {} to X={} E={}",
            report.outcome,
            report.session_id,
            mask_phone(&report.caller),
            mask_phone(&report.virtual_num),
            report.extend_num.as_deref().unwrap_or("-")
        );
        let client = notification_client();
        let copies = if spec.duplicates { 2 } else { 1 };
        for out in &outgoing {
            for copy in 0..copies {
                let d = self.deliver(&client, out, copy > 0).await;
                report.deliveries.push(d);
            }
        }
        report.all_delivered = report.deliveries.iter().all(Delivery::delivered);
        Ok(report)
    }

    /// Sends a signed `numStatus` for X (`status` "5" normal, "9" paused, "10" unavailable,
    /// "11" bind-frozen, or those names; `cause` only with "10") to the events URL (else the
    /// CDR URL), and applies it to the sandbox's own inventory. Returns the gateway's HTTP
    /// status after the retries; [`PlayError::Transport`] if it never answered.
    pub async fn push_num_status(
        &self,
        number: &str,
        status: &str,
        cause: Option<&str>,
    ) -> Result<u16, PlayError> {
        let url = self.events_url().ok_or(PlayError::NoWebhookUrl)?;
        PhoneNumber::parse(number).map_err(|e| invalid(format!("number {e}")))?;
        let parsed = NumberStatus::from_huawei_code(status)
            .or_else(|| NumberStatus::parse(status).ok())
            .ok_or_else(|| {
                invalid(
                    "status must be 5 (normal), 9 (paused), 10 (unavailable) or 11 (bind-frozen)",
                )
            })?;
        let code = huawei_status_code(parsed);
        let cause = cause.filter(|c| !c.is_empty());
        if let Some(c) = cause {
            if parsed != NumberStatus::Unavailable {
                return Err(invalid("cause is only sent with status 10 (unavailable)"));
            }
            if !(1..=4).contains(&c.len()) || !c.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid("cause must be a short numeric code, e.g. \"2\""));
            }
        }
        self.set_number_status(number, parsed == NumberStatus::Normal);
        let n = Notification {
            event_type: Some(notify::NUM_STATUS.to_owned()),
            status_info: None,
            fee_lst: None,
            num_info: Some(vec![NumInfo {
                number: Some(number.to_owned()),
                status: Some(code.to_owned()),
                cause: cause.map(str::to_owned),
            }]),
        };
        let out = Outgoing {
            event_type: notify::NUM_STATUS.to_owned(),
            timestamp: None,
            url,
            body: serde_json::to_string(&n).map_err(|e| invalid(e.to_string()))?,
        };
        let d = self.deliver(&notification_client(), &out, false).await;
        match (d.http_status, d.error) {
            (Some(s), _) => Ok(s),
            (None, e) => Err(PlayError::Transport(e.unwrap_or_default())),
        }
    }

    /// One notification, up to [`MAX_ATTEMPTS`] requests until one is answered 200.
    async fn deliver(&self, client: &awc::Client, out: &Outgoing, duplicate: bool) -> Delivery {
        let mut d = Delivery {
            event_type: out.event_type.clone(),
            timestamp: out.timestamp.clone(),
            url: out.url.clone(),
            duplicate,
            attempts: 0,
            http_status: None,
            error: None,
        };
        while d.attempts < MAX_ATTEMPTS {
            if d.attempts > 0 {
                actix_rt::time::sleep(RETRY_DELAY * d.attempts).await;
            }
            d.attempts += 1;
            let (nonce, created) = signer::fresh_nonce_and_created(Utc::now());
            let sent = client
                .post(&out.url)
                .insert_header((header::CONTENT_TYPE, wire::CONTENT_TYPE))
                .insert_header((header::AUTHORIZATION, signer::AUTHORIZATION))
                .insert_header((
                    signer::X_AKSK,
                    signer::x_aksk_header(
                        &self.config.app_key,
                        secrecy::ExposeSecret::expose_secret(&self.config.app_secret),
                        &nonce,
                        &created,
                    ),
                ))
                .send_body(out.body.clone())
                .await;
            match sent {
                Ok(mut resp) => {
                    // Drain the answer so the connection can be reused; its content is unused.
                    let _ = resp.body().limit(MAX_ANSWER_BYTES).await;
                    d.http_status = Some(resp.status().as_u16());
                    d.error = None;
                }
                Err(e) => {
                    d.http_status = None;
                    d.error = Some(e.to_string());
                }
            }
            log::info!(
                "sandbox: {} {}{} -> {} (attempt {})",
                d.event_type,
                d.url,
                if duplicate { " (duplicate)" } else { "" },
                d.http_status.map_or_else(
                    || mask_phones(d.error.as_deref().unwrap_or_default()).into_owned(),
                    |s| s.to_string()
                ),
                d.attempts
            );
            if d.delivered() {
                break;
            }
        }
        d
    }
}

fn huawei_status_code(s: NumberStatus) -> &'static str {
    match s {
        NumberStatus::Normal => "5",
        NumberStatus::Paused => "9",
        NumberStatus::Unavailable => "10",
        NumberStatus::BindFrozen => "11",
    }
}

/// The client notifications are sent with (HTTP or HTTPS, no redirects, 10 s per request).
fn notification_client() -> awc::Client {
    install_crypto_provider();
    awc::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .disable_redirects()
        .add_default_header(("User-Agent", "Huawei-PrivateNumber-Sandbox"))
        .finish()
}

/// Asks a running sandbox (`sandbox_url`, e.g. `http://127.0.0.1:8089`) to play `spec` through
/// `POST /sandbox/calls`, and returns its report (a [`PlayedCall`] as JSON). `Err` carries a
/// one-line reason: transport failure, or the sandbox's status and `error`.
pub async fn play_call_remote(
    sandbox_url: &str,
    spec: &CallSpec,
) -> Result<serde_json::Value, String> {
    install_crypto_provider();
    let client = awc::Client::builder()
        .timeout(REMOTE_TIMEOUT)
        .disable_redirects()
        .finish();
    let url = format!("{}/sandbox/calls", sandbox_url.trim().trim_end_matches('/'));
    let mut resp = client
        .post(&url)
        .send_json(spec)
        .await
        .map_err(|e| format!("POST {url}: {e}"))?;
    let status = resp.status();
    let body = resp
        .body()
        .limit(16 * 1024 * 1024)
        .await
        .map_err(|e| format!("POST {url}: reading the answer: {e}"))?;
    let value = serde_json::from_slice::<serde_json::Value>(&body);
    match value {
        Ok(v) if status.as_u16() == 200 => Ok(v),
        Ok(v) => Err(format!(
            "POST {url}: {status}: {}",
            v.get("error")
                .and_then(serde_json::Value::as_str)
                .map_or_else(|| v.to_string(), str::to_owned)
        )),
        Err(_) => Err(format!(
            "POST {url}: {status}: {}",
            String::from_utf8_lossy(&body)
                .chars()
                .take(200)
                .collect::<String>()
        )),
    }
}

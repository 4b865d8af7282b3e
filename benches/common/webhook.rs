//! What both webhook benchmarks share: the bindings they seed and the notifications they send.

use axe_gateway::db::models::Binding;
use axe_gateway::db::{self, bindings, Db};
use axe_gateway::huawei::notify::EVENT_TYPES;

use super::gateway::APP_KEY;

pub const BINDINGS: usize = 200;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Scenario {
    /// One call event per notification.
    Events,
    /// One `fee` notification with 50 CDRs.
    Cdr50,
}

/// Live bindings with subscription ids, inserted directly (no Huawei involved).
pub fn seed_bindings(db: &Db) -> Vec<(String, String)> {
    db.run_blocking(|conn| {
        let now = db::now();
        let mut out = Vec::new();
        for i in 0..BINDINGS {
            let sub = uuid::Uuid::new_v4().to_string();
            let ext = format!("{:04}", i + 1);
            bindings::insert(
                conn,
                axe_gateway::db::history::Audit::system("bench"),
                &Binding {
                    id: uuid::Uuid::now_v7().to_string(),
                    order_id: format!("bench-{i}"),
                    status: "active".into(),
                    bind_num: format!("+86138{:08}", i),
                    virtual_num: Some("+8617000000001".into()),
                    extend_num: Some(ext.clone()),
                    number_choice: "client".into(),
                    subscription_id: Some(sub.clone()),
                    area_code: None,
                    record: false,
                    record_hint_tone: None,
                    callback_num: None,
                    callback_tone: None,
                    ttl_minutes: None,
                    callback_ttl_minutes: None,
                    expires_at: None,
                    user_data: None,
                    created_by: "bench".into(),
                    created_at: now,
                    updated_at: now,
                    released_at: None,
                    last_error: None,
                    in_quarantine: false,
                },
            )?;
            out.push((sub, ext));
        }
        Ok::<_, db::DbError>(out)
    })
    .expect("seed bindings")
}

/// The n-th notification body of connection `conn`: a distinct event or 50 distinct CDRs.
pub fn body(scenario: Scenario, conn: usize, n: usize, subs: &[(String, String)]) -> String {
    let base = chrono::NaiveDate::from_ymd_opt(2026, 11, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .expect("date");
    match scenario {
        Scenario::Events => {
            let call = n / 6;
            let kind = EVENT_TYPES[n % EVENT_TYPES.len()];
            let (sub, ext) = &subs[(conn * 7919 + call) % subs.len()];
            let at = base + chrono::Duration::seconds((call * 10 + n % 6) as i64);
            let session = format!("bench-{conn}-{call}");
            let extra = match kind {
                "callin" => r#","caller":"+8613900000001","called":"+8617000000001""#.to_owned(),
                "collectInfo" => format!(r#","digitInfo":"{ext}""#),
                "disconnect" => format!(
                    r#","caller":"+8613900000001","called":"+8613800000001","subscriptionId":"{sub}","stateCode":0,"stateDesc":"The user releases the call.""#
                ),
                _ => format!(
                    r#","caller":"+8613900000001","called":"+8613800000001","subscriptionId":"{sub}""#
                ),
            };
            format!(
                r#"{{"eventType":"{kind}","statusInfo":{{"sessionId":"{session}","timestamp":"{}"{extra}}}}}"#,
                at.format("%Y-%m-%d %H:%M:%S")
            )
        }
        Scenario::Cdr50 => {
            let fees: Vec<String> = (0..50)
                .map(|i| {
                    let binding = (conn * 31 + n * 50 + i) % subs.len();
                    let (sub, ext) = &subs[binding];
                    let id = format!("{conn}-{n}-{i}");
                    // Like a real message: every call has its own caller and times, and the
                    // calls of later messages started later (as every connection sends its n-th
                    // message at about the same time, so do their calls).
                    let call = conn * 1_000_003 + n * 50 + i;
                    let caller = format!("+86139{:08}", call % 100_000_000);
                    let started = n * 60 + i + conn % 8;
                    let time = |seconds: usize| {
                        (base + chrono::Duration::seconds((started + seconds) as i64))
                            .format("%Y-%m-%d %H:%M:%S")
                    };
                    let talk = 20 + call % 300;
                    format!(
                        r#"{{"direction":0,"spId":"sp","appKey":"{APP_KEY}","icid":"icid-{id}","bindNum":"+8617000000001","sessionId":"cdr-{id}","subscriptionId":"{sub}","callerNum":"{caller}","calleeNum":"+8617000000001","fwdDisplayNum":"+8617000000001","fwdDstNum":"+86138{binding:08}","callInTime":"{}","fwdStartTime":"{}","fwdAlertingTime":"{}","fwdAnswerTime":"{}","callEndTime":"{}","fwdUnaswRsn":0,"ulFailReason":0,"sipStatusCode":0,"recordFlag":0,"serviceType":"004","hostName":"bench","extendNum":"{ext}"}}"#,
                        time(0),
                        time(6),
                        time(8),
                        time(15),
                        time(15 + talk)
                    )
                })
                .collect();
            format!(r#"{{"eventType":"fee","feeLst":[{}]}}"#, fees.join(","))
        }
    }
}

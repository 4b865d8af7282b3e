//! Huawei's notifications to us (reference §9–§11): call events, CDRs (`fee`) and X-number
//! status (`numStatus`), with Huawei's field names.
//!
//! Parsing is lenient by design: unknown fields are ignored, every field is optional, and
//! integers may arrive as numbers or numeric strings. The raw JSON is kept by the caller, so
//! nothing is lost when a field is missing or malformed.

use chrono::NaiveDateTime;
use serde::{Deserialize, Deserializer, Serialize};

/// Huawei's time format in notifications: `yyyy-MM-dd HH:mm:ss`, UTC.
pub const TIME_FORMAT: &str = "%Y-%m-%d %H:%M:%S";

/// Parses a notification time (UTC). Also accepts ISO-8601 (`2024-05-01T08:00:00Z`), which
/// some of Huawei's other pushes use.
pub fn parse_time(raw: &str) -> Option<NaiveDateTime> {
    let raw = raw.trim();
    // Huawei's own form, without chrono's format interpreter (the common case by far).
    if raw.len() == TIME_FORMAT_LEN {
        if let Some(t) = crate::timestamp::parse_ymd_hms(raw) {
            return Some(t);
        }
    }
    NaiveDateTime::parse_from_str(raw, TIME_FORMAT)
        .ok()
        .or_else(|| {
            chrono::DateTime::parse_from_rfc3339(raw)
                .ok()
                .map(|d| d.naive_utc())
        })
}

/// Length of a time in [`TIME_FORMAT`]: `2024-05-01 08:00:00`.
const TIME_FORMAT_LEN: usize = 19;

pub fn format_time(t: NaiveDateTime) -> String {
    t.format(TIME_FORMAT).to_string()
}

/// The call-event types of AXE mode.
pub const EVENT_TYPES: [&str; 6] = [
    "callin",
    "collectInfo",
    "callout",
    "alerting",
    "answer",
    "disconnect",
];
pub const FEE: &str = "fee";
pub const NUM_STATUS: &str = "numStatus";

/// The envelope shared by every notification.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Notification {
    #[serde(default)]
    pub event_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_info: Option<StatusInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fee_lst: Option<Vec<serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub num_info: Option<Vec<NumInfo>>,
}

/// `statusInfo` of a call event.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StatusInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub session_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub timestamp: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub caller: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub called: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub subscription_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub user_data: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub digit_info: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub state_code: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub state_desc: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub extend_num: Option<String>,
}

crate::debug_masking!(
    StatusInfo {
        session_id, timestamp, subscription_id, user_data, digit_info, state_code, state_desc,
        extend_num
    } masking { caller, called }
);

/// One CDR of a `fee` notification (`feeLst[]`), every documented field.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeeInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub direction: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub sp_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub app_key: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub icid: Option<String>,
    /// The privacy number X (not A).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub bind_num: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub session_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub subscription_id: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub caller_num: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub callee_num: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub fwd_display_num: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub fwd_dst_num: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub call_in_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub fwd_start_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub fwd_alerting_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub fwd_answer_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub call_end_time: Option<String>,
    #[serde(
        rename = "fwdUnaswRsn",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub fwd_unaswrsn: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub fail_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub ul_fail_reason: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub sip_status_code: Option<i64>,
    #[serde(
        rename = "callOutUnaswRsn",
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub call_out_unaswrsn: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub record_flag: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub record_start_time: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub record_object_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub record_bucket_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub record_domain: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub record_file_download_url: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub service_type: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub host_name: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub extend_num: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub user_data: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub area_code: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_i64"
    )]
    pub call_duration: Option<i64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub call_rel_direction: Option<String>,
}

crate::debug_masking!(
    FeeInfo {
        direction, sp_id, app_key, icid, session_id, subscription_id, call_in_time, fwd_start_time,
        fwd_alerting_time, fwd_answer_time, call_end_time, fwd_unaswrsn, fail_time, ul_fail_reason,
        sip_status_code, call_out_unaswrsn, record_flag, record_start_time, record_object_name,
        record_bucket_name, record_domain, record_file_download_url, service_type, host_name,
        extend_num, user_data, area_code, call_duration, call_rel_direction
    } masking { bind_num, caller_num, callee_num, fwd_display_num, fwd_dst_num }
);

/// One entry of a `numStatus` notification.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub number: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub status: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "lenient_string"
    )]
    pub cause: Option<String>,
}

crate::debug_masking!(NumInfo { status, cause } masking { number });

/// A string, or a number written as a string; `null` and anything else become `None`.
fn lenient_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::String(s) => Some(s),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    })
}

/// An integer, or a string holding one; anything else becomes `None`.
fn lenient_i64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(match serde_json::Value::deserialize(d)? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

impl FeeInfo {
    /// Parses one `feeLst` entry; lenient, so only a non-object fails.
    pub fn from_value(v: &serde_json::Value) -> Option<Self> {
        if !v.is_object() {
            return None;
        }
        Self::deserialize(v).ok()
    }

    /// Whether this CDR, read from `v`, holds every non-null field `v` carried: false when `v`
    /// has a field FeeInfo has no place for, or one whose value could not be read (and so is
    /// none here).
    pub fn holds_all_of(&self, v: &serde_json::Value) -> bool {
        v.as_object().is_some_and(|sent| {
            sent.iter()
                .all(|(key, value)| value.is_null() || self.holds(key))
        })
    }

    /// Whether the field Huawei names `key` is set; false for a name FeeInfo does not know.
    fn holds(&self, key: &str) -> bool {
        match key {
            "direction" => self.direction.is_some(),
            "spId" => self.sp_id.is_some(),
            "appKey" => self.app_key.is_some(),
            "icid" => self.icid.is_some(),
            "bindNum" => self.bind_num.is_some(),
            "sessionId" => self.session_id.is_some(),
            "subscriptionId" => self.subscription_id.is_some(),
            "callerNum" => self.caller_num.is_some(),
            "calleeNum" => self.callee_num.is_some(),
            "fwdDisplayNum" => self.fwd_display_num.is_some(),
            "fwdDstNum" => self.fwd_dst_num.is_some(),
            "callInTime" => self.call_in_time.is_some(),
            "fwdStartTime" => self.fwd_start_time.is_some(),
            "fwdAlertingTime" => self.fwd_alerting_time.is_some(),
            "fwdAnswerTime" => self.fwd_answer_time.is_some(),
            "callEndTime" => self.call_end_time.is_some(),
            "fwdUnaswRsn" => self.fwd_unaswrsn.is_some(),
            "failTime" => self.fail_time.is_some(),
            "ulFailReason" => self.ul_fail_reason.is_some(),
            "sipStatusCode" => self.sip_status_code.is_some(),
            "callOutUnaswRsn" => self.call_out_unaswrsn.is_some(),
            "recordFlag" => self.record_flag.is_some(),
            "recordStartTime" => self.record_start_time.is_some(),
            "recordObjectName" => self.record_object_name.is_some(),
            "recordBucketName" => self.record_bucket_name.is_some(),
            "recordDomain" => self.record_domain.is_some(),
            "recordFileDownloadUrl" => self.record_file_download_url.is_some(),
            "serviceType" => self.service_type.is_some(),
            "hostName" => self.host_name.is_some(),
            "extendNum" => self.extend_num.is_some(),
            "userData" => self.user_data.is_some(),
            "areaCode" => self.area_code.is_some(),
            "callDuration" => self.call_duration.is_some(),
            "callRelDirection" => self.call_rel_direction.is_some(),
            _ => false,
        }
    }

    /// Talk time as Huawei bills it: call end minus forward-leg answer, 0 if never answered.
    pub fn talk_seconds(&self) -> i64 {
        talk_seconds(
            self.fwd_answer_time.as_deref().and_then(parse_time),
            self.call_end_time.as_deref().and_then(parse_time),
        )
    }
}

/// Talk time as Huawei bills it, from a CDR's parsed forward-leg answer and call end times.
pub fn talk_seconds(answer: Option<NaiveDateTime>, end: Option<NaiveDateTime>) -> i64 {
    match (answer, end) {
        (Some(answer), Some(end)) if end > answer => (end - answer).num_seconds(),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_parse_leniently() {
        let n: Notification = serde_json::from_str(
            r#"{"eventType":"disconnect","statusInfo":{"sessionId":"s1","timestamp":"2024-05-01 08:03:10",
               "caller":"+8613800000005","stateCode":"0","stateDesc":"The user releases the call.","extra":{"x":1}}}"#,
        )
        .unwrap();
        let s = n.status_info.unwrap();
        assert_eq!(s.state_code, Some(0));
        assert_eq!(s.session_id.as_deref(), Some("s1"));
        assert_eq!(
            parse_time(s.timestamp.as_deref().unwrap())
                .map(format_time)
                .as_deref(),
            Some("2024-05-01 08:03:10")
        );
    }

    #[test]
    fn huawei_times_parse_in_either_form() {
        let t = chrono::NaiveDate::from_ymd_opt(2024, 5, 1)
            .unwrap()
            .and_hms_opt(8, 0, 15)
            .unwrap();
        assert_eq!(parse_time("2024-05-01 08:00:15"), Some(t));
        assert_eq!(parse_time(" 2024-05-01 08:00:15 "), Some(t));
        assert_eq!(parse_time("2024-05-01T08:00:15Z"), Some(t));
        assert_eq!(parse_time("2024-05-01T16:00:15+08:00"), Some(t));
        assert_eq!(parse_time("2024-05-32 08:00:15"), None);
        assert_eq!(parse_time("2024-05-01 08:00"), None);
    }

    #[test]
    fn cdrs_read_huawei_spelling_and_derive_talk_time() {
        let v = serde_json::json!({"icid":"i1","sessionId":"s1","fwdUnaswRsn":17,"recordFlag":1,
            "fwdAnswerTime":"2024-05-01 08:00:15","callEndTime":"2024-05-01 08:03:10","unknown":"kept raw"});
        let fee = FeeInfo::from_value(&v).unwrap();
        assert_eq!(fee.fwd_unaswrsn, Some(17));
        assert_eq!(serde_json::to_value(&fee).unwrap()["fwdUnaswRsn"], 17);
        assert_eq!(fee.record_flag, Some(1));
        assert_eq!(fee.talk_seconds(), 175);
        let no_times = FeeInfo::from_value(&serde_json::json!({"sessionId":"s2"})).unwrap();
        assert_eq!(no_times.talk_seconds(), 0);
        assert!(FeeInfo::from_value(&serde_json::json!("x")).is_none());
    }

    #[test]
    fn a_cdr_knows_each_of_its_fields_by_huawei_name() {
        let names = [
            "direction",
            "spId",
            "appKey",
            "icid",
            "bindNum",
            "sessionId",
            "subscriptionId",
            "callerNum",
            "calleeNum",
            "fwdDisplayNum",
            "fwdDstNum",
            "callInTime",
            "fwdStartTime",
            "fwdAlertingTime",
            "fwdAnswerTime",
            "callEndTime",
            "fwdUnaswRsn",
            "failTime",
            "ulFailReason",
            "sipStatusCode",
            "callOutUnaswRsn",
            "recordFlag",
            "recordStartTime",
            "recordObjectName",
            "recordBucketName",
            "recordDomain",
            "recordFileDownloadUrl",
            "serviceType",
            "hostName",
            "extendNum",
            "userData",
            "areaCode",
            "callDuration",
            "callRelDirection",
        ];
        let every: serde_json::Map<String, serde_json::Value> = names
            .iter()
            .map(|n| ((*n).to_owned(), json!("1")))
            .collect();
        let every = serde_json::Value::Object(every);
        let fee = FeeInfo::from_value(&every).unwrap();
        // Each name reads into a field, and that field writes back under the same name.
        let written = serde_json::to_value(&fee).unwrap();
        let mut written: Vec<&String> = written.as_object().unwrap().keys().collect();
        written.sort();
        let mut expected: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        expected.sort();
        assert_eq!(written, expected.iter().collect::<Vec<_>>());
        assert!(fee.holds_all_of(&every));
        // A name it does not know, or a value it could not read, is not held.
        let mut extra = every.clone();
        extra["ttsPlayTimes"] = json!(1);
        assert!(!fee.holds_all_of(&extra));
        assert!(FeeInfo::default().holds_all_of(&json!({"icid": null})));
        assert!(!FeeInfo::default().holds_all_of(&json!({"icid": "i"})));
    }
}

/// Hostile notifications: any JSON (or any bytes) is read leniently or refused, never a panic.
#[cfg(test)]
pub(crate) mod props {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// Field names Huawei uses, so generated objects reach the typed fields, not only the
    /// ignored ones.
    const KEYS: [&str; 16] = [
        "eventType",
        "statusInfo",
        "feeLst",
        "numInfo",
        "sessionId",
        "timestamp",
        "caller",
        "called",
        "stateCode",
        "number",
        "status",
        "icid",
        "callEndTime",
        "fwdAnswerTime",
        "callDuration",
        "recordFlag",
    ];

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::from),
            "[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}Z?".prop_map(Value::from),
            prop::sample::select(&EVENT_TYPES[..]).prop_map(Value::from),
            prop::sample::select(vec![FEE, NUM_STATUS]).prop_map(Value::from),
        ]
    }

    /// Any JSON value, a few levels deep, with Huawei's keys among random ones.
    pub(crate) fn json_value() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 48, 6, |inner| {
            let key = prop_oneof![
                prop::sample::select(&KEYS[..]).prop_map(str::to_owned),
                any::<String>()
            ];
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                prop::collection::vec((key, inner), 0..6)
                    .prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_json_never_panics(v in json_value()) {
            if let Ok(n) = Notification::deserialize(&v) {
                let _ = format!("{n:?}");
            }
            let _ = StatusInfo::deserialize(&v);
            let _ = Vec::<NumInfo>::deserialize(&v);
            if let Some(fee) = FeeInfo::from_value(&v) {
                let _ = fee.holds_all_of(&v);
                let _ = fee.talk_seconds();
            }
        }

        #[test]
        fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..256)) {
            let _ = serde_json::from_slice::<Notification>(&body);
            if let Ok(text) = std::str::from_utf8(&body) {
                let _ = parse_time(text);
            }
        }

        #[test]
        fn arbitrary_times_never_panic(raw in any::<String>(), start in any::<i64>(), end in any::<i64>()) {
            let _ = parse_time(&raw);
            let at = |s: i64| chrono::DateTime::from_timestamp(s, 0).map(|d| d.naive_utc());
            prop_assert!(talk_seconds(at(start), at(end)) >= 0);
        }

        #[test]
        fn times_round_trip(secs in 0i64..253_402_300_799) {
            let t = chrono::DateTime::from_timestamp(secs, 0).unwrap().naive_utc();
            prop_assert_eq!(parse_time(&format_time(t)), Some(t));
        }
    }
}

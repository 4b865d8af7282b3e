//! Huawei's AXE wire types, with Huawei's own field names (reference §4–§8).
//!
//! Responses tolerate unknown fields (Huawei adds fields over time); requests skip absent options
//! so that "absent" keeps Huawei's own meaning (unchanged / app default).

use serde::{Deserialize, Serialize};

pub const BINDING_PATH: &str = "/rest/caas/extendnumber/v1.0";
pub const RECORDING_PATH: &str = "/rest/provision/voice/record/v1.0";
/// QueryAXEBinding v2.0: with `virtualNum` alone, the bindings on that X, a page at a time.
pub const BINDING_LIST_PATH: &str = "/rest/caas/extendnumber/v2.0";
/// QueryAXEBindingCount: without `number`, the app's numbers with their binding counts, paged.
pub const NUMBER_COUNT_PATH: &str = "/rest/caas/virtualnumber/v1.0";
/// The first cursor of a v2.0 listing (reference §7.2).
pub const FIRST_LIST_CURSOR: &str = "0000000000000_0";
/// The first cursor of a count listing (reference §7.3).
pub const FIRST_COUNT_CURSOR: &str = "0";
pub const CONTENT_TYPE: &str = "application/json;charset=UTF-8";

/// `timeUnit` value for minutes; the gateway always sends lifetimes in minutes.
pub const TIME_UNIT_MINUTES: &str = "1";
pub const TIME_UNIT_HOURS: &str = "0";

/// Result codes the gateway acts on (reference §13). Everything else is passed through.
pub mod codes {
    pub const SUCCESS: &str = "0";
    pub const INVALID_REQUEST: &str = "1010002";
    pub const INVALID_APP_KEY: &str = "1010003";
    /// "Invalid digest" (HTTP 401) *and* "flow control upper limit" (other statuses).
    pub const DIGEST_OR_FLOW_CONTROL: &str = "1010010";
    pub const TIME_OUT_LIMIT: &str = "1010013";
    pub const BINDING_NOT_FOUND: &str = "1011004";
    pub const NUMBER_NOT_APPLIED: &str = "1012001";
    /// No virtual number of the requested city is free (the sandbox answers it too).
    pub const NO_NUMBER_IN_AREA: &str = "1012006";
    pub const RECORD_NOT_EXIST: &str = "1012007";
    pub const NUMBER_STATUS: &str = "1012102";
    pub const EXTENSION_BOUND: &str = "1013102";
    pub const PARAMETER_ERROR: &str = "1020001";
    pub const NO_IDLE_EXTENSION: &str = "1020167";
    pub const AUTH_BLOCKED: &str = "1020176";
    pub const INTERNAL_ERROR: &str = "1010001";
    pub const INTERNAL_ERROR_2: &str = "1023001";
    pub const RESPONSE_TIMEOUT: &str = "1023002";
}

/// Body of `POST /rest/caas/extendnumber/v1.0` (CreateAXEBinding).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area_code: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub area_match_mode: Option<String>,
    #[serde(default)]
    pub bind_num: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_num_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_flag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_hint_tone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_tone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_expired_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_expired_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

crate::debug_masking!(
    BindRequest {
        area_code, area_match_mode, extend_num, display_num_mode, record_flag, record_hint_tone,
        callback_tone, time_unit, bind_expired_time, callback_expired_time, user_data
    } masking { virtual_num, bind_num, callback_num }
);

/// Response of CreateAXEBinding.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindResponse {
    pub resultcode: String,
    #[serde(default)]
    pub resultdesc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_num: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_num: Option<String>,
}

crate::debug_masking!(
    BindResponse {
        resultcode, subscription_id, extend_num
    } masking { resultdesc, virtual_num }
);

/// Body of `PUT /rest/caas/extendnumber/v1.0` (ModifyAXEBinding).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ModifyRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_num_mode: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_flag: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub record_hint_tone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_tone: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bind_expired_time: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub callback_expired_time: Option<i64>,
}

crate::debug_masking!(
    ModifyRequest {
        subscription_id, extend_num, display_num_mode, record_flag, record_hint_tone, callback_tone,
        time_unit, bind_expired_time, callback_expired_time
    } masking { virtual_num, callback_num }
);

/// Which binding an unbind or query names: `subscriptionId` wins over the X+E pair.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BindingSelector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub virtual_num: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extend_num: Option<String>,
}

crate::debug_masking!(BindingSelector { subscription_id, extend_num } masking { virtual_num });

impl BindingSelector {
    pub fn by_subscription(id: impl Into<String>) -> Self {
        Self {
            subscription_id: Some(id.into()),
            ..Self::default()
        }
    }

    pub fn by_number(virtual_num: impl Into<String>, extend_num: impl Into<String>) -> Self {
        Self {
            virtual_num: Some(virtual_num.into()),
            extend_num: Some(extend_num.into()),
            ..Self::default()
        }
    }
}

/// `resultcode`/`resultdesc`: the whole response of unbind and modify, and the head of all others.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BasicResponse {
    pub resultcode: String,
    #[serde(default)]
    pub resultdesc: String,
}

crate::debug_masking!(BasicResponse { resultcode } masking { resultdesc });

/// Response of QueryAXEBinding v1.0 (single binding).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueryResponse {
    pub resultcode: String,
    #[serde(default)]
    pub resultdesc: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_num: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extend_num: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_num: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_num_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_flag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record_hint_tone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_tone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_num: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_unit: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind_expired_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_expired_time: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

crate::debug_masking!(
    QueryResponse {
        resultcode, subscription_id, extend_num, display_num_mode, record_flag,
        record_hint_tone, callback_tone, time_unit, bind_expired_time, callback_expired_time,
        user_data
    } masking { resultdesc, virtual_num, bind_num, callback_num }
);

/// Query of `GET /rest/caas/extendnumber/v2.0` listing the bindings on one X.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBindingsQuery {
    pub virtual_num: String,
    pub cursor: String,
    pub limit: u32,
}

crate::debug_masking!(ListBindingsQuery { cursor, limit } masking { virtual_num });

/// One binding of a v2.0 listing: the v1.0 query's fields that identify it.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListedBinding {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscription_id: Option<String>,
    pub virtual_num: String,
    pub extend_num: String,
    pub bind_num: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_data: Option<String>,
}

crate::debug_masking!(
    ListedBinding {
        subscription_id, extend_num, user_data
    } masking { virtual_num, bind_num }
);

/// Response of a v2.0 listing. Huawei's page does not give this schema (reference §7.2, §15):
/// these names are the gateway's assumption, served by the sandbox, with the spellings Huawei
/// is likely to use accepted too. An absent or empty cursor ends the listing.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListBindingsResponse {
    pub resultcode: String,
    #[serde(default)]
    pub resultdesc: String,
    #[serde(default, alias = "nextCusor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(default, alias = "bindList", alias = "bindingList")]
    pub bindings: Vec<ListedBinding>,
}

crate::debug_masking!(
    ListBindingsResponse { resultcode, next_cursor, bindings } masking { resultdesc }
);

/// Query of `GET /rest/caas/virtualnumber/v1.0` listing the app's numbers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListNumbersQuery {
    pub cursor: String,
    pub limit: u32,
}

/// One number of the count listing.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NumberCount {
    #[serde(alias = "number")]
    pub virtual_num: String,
    #[serde(default, alias = "count")]
    pub bind_count: u32,
}

crate::debug_masking!(NumberCount { bind_count } masking { virtual_num });

/// Response of the count listing; same caveat as [`ListBindingsResponse`] (reference §7.3).
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListNumbersResponse {
    pub resultcode: String,
    #[serde(default)]
    pub resultdesc: String,
    #[serde(default, alias = "nextCusor", skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
    #[serde(default, alias = "numberList")]
    pub numbers: Vec<NumberCount>,
}

crate::debug_masking!(
    ListNumbersResponse { resultcode, next_cursor, numbers } masking { resultdesc }
);

/// Query of `GET /rest/provision/voice/record/v1.0`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RecordingQuery {
    pub file_name: String,
    pub record_domain: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_masks_the_numbers_of_requests_and_answers() {
        let req = BindRequest {
            virtual_num: Some("+8617000000009".into()),
            bind_num: "+8613800000001".into(),
            callback_num: Some("+8613800000002".into()),
            extend_num: Some("0042".into()),
            ..BindRequest::default()
        };
        let answer = QueryResponse {
            resultcode: "1010002".into(),
            resultdesc: "bindNum +8613800000001 is invalid".into(),
            bind_num: Some("+8613800000001".into()),
            ..QueryResponse::default()
        };
        let fee = crate::huawei::notify::FeeInfo {
            caller_num: Some("+8613900000001".into()),
            callee_num: Some("8613800000001".into()),
            ..Default::default()
        };
        let shown = format!("{req:?} {answer:#?} {fee:?}");
        for number in [
            "8617000000009",
            "8613800000001",
            "8613800000002",
            "8613900000001",
        ] {
            assert!(!shown.contains(number), "{number} in {shown}");
        }
        // What is no number stays readable.
        for kept in ["0042", "1010002", "+86138****0001", "86138****0001"] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
    }

    #[test]
    fn bind_request_omits_absent_options_and_uses_huawei_names() {
        let req = BindRequest {
            virtual_num: Some("+8613800000009".into()),
            bind_num: "+8613800000001".into(),
            extend_num: Some("0042".into()),
            ..BindRequest::default()
        };
        let json = serde_json::to_value(&req).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"virtualNum":"+8613800000009","bindNum":"+8613800000001","extendNum":"0042"})
        );
    }

    #[test]
    fn responses_tolerate_unknown_fields() {
        let r: QueryResponse = serde_json::from_str(
            r#"{"resultcode":"0","resultdesc":"Success","subscriptionId":"s","bindNum":"+8613800000001","newField":1}"#,
        )
        .unwrap();
        assert_eq!(r.subscription_id.as_deref(), Some("s"));
    }

    #[test]
    fn selector_serialises_as_a_query_string_with_plus_escaped() {
        let q = serde_urlencoded_like(&BindingSelector::by_number("+8613800000009", "0042"));
        assert_eq!(q, "virtualNum=%2B8613800000009&extendNum=0042");
    }

    fn serde_urlencoded_like(sel: &BindingSelector) -> String {
        super::super::client::query_string(sel).unwrap()
    }
}

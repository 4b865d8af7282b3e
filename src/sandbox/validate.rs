//! Huawei's parameter rules for bind, modify and the binding selectors (reference §4–§7), turned
//! into validated values. Every failure is a [`Refusal`] carrying Huawei's result code and a
//! `resultdesc` that names the field, as Huawei's own answers usually do.

use crate::domain::{AreaCode, ExtensionDigits, ExtensionNumber, PhoneNumber, ToneName, UserData};
use crate::huawei::wire::{codes, BindRequest, BindingSelector, ModifyRequest};

/// `1023006`: the `Authorization` header is missing or not Huawei's constant.
pub(crate) const AUTHORIZATION_MISSING: &str = "1023006";
/// `1010006`: wrong method or path.
pub(crate) const INVALID_REST_API: &str = "1010006";

/// A refused request: the HTTP status and Huawei's `resultcode`/`resultdesc`.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub status: u16,
    pub code: String,
    pub desc: String,
}

crate::debug_masking!(Refusal { status, code } masking { desc });

impl Refusal {
    pub fn new(status: u16, code: &str, desc: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_owned(),
            desc: desc.into(),
        }
    }

    /// `1010002` with the field named: `Invalid request. bindNum is not E.164`.
    pub fn invalid(detail: impl AsRef<str>) -> Self {
        Self::new(
            400,
            codes::INVALID_REQUEST,
            format!("Invalid request. {}", detail.as_ref()),
        )
    }

    pub fn not_found() -> Self {
        Self::new(403, codes::RECORD_NOT_EXIST, "The record does not exist.")
    }

    pub fn number_not_applied() -> Self {
        Self::new(
            403,
            codes::NUMBER_NOT_APPLIED,
            "Resource of number is not to be applied.",
        )
    }

    pub fn number_status() -> Self {
        Self::new(
            403,
            codes::NUMBER_STATUS,
            "The number status is abnormal and cannot be bound.",
        )
    }

    pub fn no_idle_extension() -> Self {
        Self::new(403, codes::NO_IDLE_EXTENSION, "No idle extend Number.")
    }

    pub fn no_number_in_area() -> Self {
        Self::new(
            403,
            codes::NO_NUMBER_IN_AREA,
            "No idle virtual number in the area.",
        )
    }
}

/// How a bind names its virtual number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Target {
    /// `virtualNum` given (it wins over `areaCode`), with an optional requested extension.
    Number {
        virtual_num: PhoneNumber,
        extend_num: Option<ExtensionNumber>,
    },
    /// Only `areaCode` given; `loose` is `areaMatchMode = "1"`.
    Area { area_code: AreaCode, loose: bool },
}

/// The options shared by bind and modify, each validated and kept as Huawei's string.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Options {
    pub display_num_mode: Option<String>,
    pub record_flag: Option<String>,
    pub record_hint_tone: Option<String>,
    pub callback_tone: Option<String>,
    pub callback_num: Option<String>,
    pub time_unit: Option<String>,
    pub bind_expired_time: Option<i64>,
    pub callback_expired_time: Option<i64>,
}

crate::debug_masking!(
    Options {
        display_num_mode, record_flag, record_hint_tone, callback_tone, time_unit,
        bind_expired_time, callback_expired_time
    } masking { callback_num }
);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidBind {
    pub target: Target,
    pub bind_num: PhoneNumber,
    pub options: Options,
    pub user_data: Option<String>,
}

/// A binding named by subscription id, or by X+E.
#[derive(Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    Subscription(String),
    Number {
        virtual_num: String,
        extend_num: String,
    },
}

impl std::fmt::Debug for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Subscription(id) => f.debug_tuple("Subscription").field(id).finish(),
            Self::Number {
                virtual_num,
                extend_num,
            } => f
                .debug_struct("Number")
                .field("virtual_num", &crate::domain::Masked(virtual_num))
                .field("extend_num", extend_num)
                .finish(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ValidModify {
    pub selector: Selector,
    pub options: Options,
}

/// Treats an empty string like an absent field (Huawei: "absent/empty ⇒ platform chooses").
fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().filter(|s| !s.is_empty())
}

fn e164(field: &str, raw: &str) -> Result<PhoneNumber, Refusal> {
    PhoneNumber::parse(raw).map_err(|_| Refusal::invalid(format!("{field} is not E.164")))
}

fn one_of(field: &str, raw: &Option<String>, allowed: &[&str]) -> Result<Option<String>, Refusal> {
    match raw {
        None => Ok(None),
        Some(v) if allowed.contains(&v.as_str()) => Ok(Some(v.clone())),
        Some(_) => Err(Refusal::invalid(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        ))),
    }
}

fn tone(field: &str, raw: &Option<String>) -> Result<Option<String>, Refusal> {
    raw.as_deref()
        .map(|t| {
            ToneName::parse(t)
                .map(|t| t.as_str().to_owned())
                .map_err(|e| Refusal::invalid(format!("{field} {e}")))
        })
        .transpose()
}

fn extension(raw: &str, digits: ExtensionDigits) -> Result<ExtensionNumber, Refusal> {
    ExtensionNumber::parse(raw, digits).map_err(|e| Refusal::invalid(format!("extendNum {e}")))
}

#[allow(clippy::too_many_arguments)]
fn options(
    display_num_mode: &Option<String>,
    record_flag: &Option<String>,
    record_hint_tone: &Option<String>,
    callback_tone: &Option<String>,
    callback_num: &Option<String>,
    time_unit: &Option<String>,
    bind_expired_time: Option<i64>,
    callback_expired_time: Option<i64>,
) -> Result<Options, Refusal> {
    if callback_num.is_some() && callback_tone.is_some() {
        return Err(Refusal::invalid(
            "callbackNum and callbackTone are mutually exclusive",
        ));
    }
    let callback_num = callback_num
        .as_deref()
        .map(|n| e164("callbackNum", n).map(|n| n.as_str().to_owned()))
        .transpose()?;
    for (field, value) in [
        ("bindExpiredTime", bind_expired_time),
        ("callbackExpiredTime", callback_expired_time),
    ] {
        if value.is_some_and(|v| v < 0) {
            return Err(Refusal::invalid(format!("{field} must not be negative")));
        }
    }
    if let (Some(bind), Some(callback)) = (bind_expired_time, callback_expired_time) {
        if bind > 0 && bind < callback {
            return Err(Refusal::invalid(
                "bindExpiredTime must not be less than callbackExpiredTime",
            ));
        }
    }
    Ok(Options {
        display_num_mode: one_of("displayNumMode", display_num_mode, &["0", "1"])?,
        record_flag: one_of("recordFlag", record_flag, &["true", "false"])?,
        record_hint_tone: tone("recordHintTone", record_hint_tone)?,
        callback_tone: tone("callbackTone", callback_tone)?,
        callback_num,
        time_unit: one_of("timeUnit", time_unit, &["0", "1"])?,
        bind_expired_time,
        callback_expired_time,
    })
}

/// The rules of CreateAXEBinding (§4.1).
pub(crate) fn bind(req: &BindRequest, digits: ExtensionDigits) -> Result<ValidBind, Refusal> {
    if req.bind_num.is_empty() {
        return Err(Refusal::invalid("bindNum is required"));
    }
    let bind_num = e164("bindNum", &req.bind_num)?;
    let area_match_mode = one_of("areaMatchMode", &req.area_match_mode, &["0", "1"])?;
    let target = match (present(&req.virtual_num), present(&req.area_code)) {
        (Some(x), _) => Target::Number {
            virtual_num: e164("virtualNum", x)?,
            // Only honoured together with virtualNum.
            extend_num: present(&req.extend_num)
                .map(|e| extension(e, digits))
                .transpose()?,
        },
        (None, Some(area)) => Target::Area {
            area_code: AreaCode::parse(area)
                .map_err(|e| Refusal::invalid(format!("areaCode {e}")))?,
            loose: area_match_mode.as_deref() == Some("1"),
        },
        (None, None) => return Err(Refusal::invalid("virtualNum or areaCode is required")),
    };
    let options = options(
        &req.display_num_mode,
        &req.record_flag,
        &req.record_hint_tone,
        &req.callback_tone,
        &req.callback_num,
        &req.time_unit,
        req.bind_expired_time,
        req.callback_expired_time,
    )?;
    let user_data = req
        .user_data
        .as_deref()
        .map(|u| {
            UserData::parse(u)
                .map(|u| u.as_str().to_owned())
                .map_err(|e| Refusal::invalid(format!("userData {e}")))
        })
        .transpose()?;
    Ok(ValidBind {
        target,
        bind_num,
        options,
        user_data,
    })
}

/// `subscriptionId` wins; otherwise `virtualNum` and `extendNum` are both required.
pub(crate) fn selector(sel: &BindingSelector) -> Result<Selector, Refusal> {
    select(&sel.subscription_id, &sel.virtual_num, &sel.extend_num)
}

fn select(
    subscription_id: &Option<String>,
    virtual_num: &Option<String>,
    extend_num: &Option<String>,
) -> Result<Selector, Refusal> {
    if let Some(id) = present(subscription_id) {
        if id.len() > 64 {
            return Err(Refusal::invalid("subscriptionId is longer than 64"));
        }
        return Ok(Selector::Subscription(id.to_owned()));
    }
    match (present(virtual_num), present(extend_num)) {
        (Some(x), Some(e)) => {
            let x = e164("virtualNum", x)?;
            if e.len() > 4 || !e.bytes().all(|b| b.is_ascii_digit()) {
                return Err(Refusal::invalid("extendNum must be 1 to 4 digits"));
            }
            Ok(Selector::Number {
                virtual_num: x.as_str().to_owned(),
                extend_num: e.to_owned(),
            })
        }
        (Some(_), None) => Err(Refusal::invalid("extendNum is required with virtualNum")),
        (None, Some(_)) => Err(Refusal::invalid("virtualNum is required with extendNum")),
        (None, None) => Err(Refusal::invalid(
            "subscriptionId or virtualNum and extendNum are required",
        )),
    }
}

/// The rules of ModifyAXEBinding (§6).
pub(crate) fn modify(req: &ModifyRequest) -> Result<ValidModify, Refusal> {
    let selector = select(&req.subscription_id, &req.virtual_num, &req.extend_num)?;
    let options = options(
        &req.display_num_mode,
        &req.record_flag,
        &req.record_hint_tone,
        &req.callback_tone,
        &req.callback_num,
        &req.time_unit,
        req.bind_expired_time,
        req.callback_expired_time,
    )?;
    Ok(ValidModify { selector, options })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digits() -> ExtensionDigits {
        ExtensionDigits::new(4).unwrap()
    }

    fn base() -> BindRequest {
        BindRequest {
            virtual_num: Some("+8613800000009".into()),
            bind_num: "+8613800000001".into(),
            ..BindRequest::default()
        }
    }

    fn refused(req: BindRequest) -> Refusal {
        bind(&req, digits()).unwrap_err()
    }

    #[test]
    fn a_minimal_bind_is_valid() {
        let v = bind(&base(), digits()).unwrap();
        assert_eq!(v.bind_num.as_str(), "+8613800000001");
        assert!(matches!(
            v.target,
            Target::Number {
                extend_num: None,
                ..
            }
        ));
    }

    #[test]
    fn parameter_errors_name_the_field() {
        let r = refused(BindRequest {
            bind_num: "13800000001".into(),
            ..base()
        });
        assert_eq!((r.status, r.code.as_str()), (400, "1010002"));
        assert_eq!(r.desc, "Invalid request. bindNum is not E.164");
        let r = refused(BindRequest {
            bind_num: String::new(),
            ..base()
        });
        assert!(r.desc.contains("bindNum is required"));
        let r = refused(BindRequest {
            extend_num: Some("42".into()),
            ..base()
        });
        assert!(r.desc.contains("extendNum"), "{}", r.desc);
        let r = refused(BindRequest {
            callback_num: Some("+8613800000002".into()),
            callback_tone: Some("tone.wav".into()),
            ..base()
        });
        assert!(r.desc.contains("callbackNum"));
        for bad in [
            BindRequest {
                time_unit: Some("2".into()),
                ..base()
            },
            BindRequest {
                record_flag: Some("yes".into()),
                ..base()
            },
            BindRequest {
                display_num_mode: Some("2".into()),
                ..base()
            },
            BindRequest {
                user_data: Some("{x}".into()),
                ..base()
            },
            BindRequest {
                record_hint_tone: Some("x".repeat(129)),
                ..base()
            },
            BindRequest {
                bind_expired_time: Some(-1),
                ..base()
            },
            BindRequest {
                bind_expired_time: Some(5),
                callback_expired_time: Some(6),
                ..base()
            },
            BindRequest {
                virtual_num: None,
                ..base()
            },
            BindRequest {
                virtual_num: None,
                area_code: Some("755".into()),
                ..base()
            },
        ] {
            assert_eq!(refused(bad.clone()).code, "1010002", "{bad:?}");
        }
    }

    #[test]
    fn never_expiring_binding_may_have_any_callback_lifetime() {
        assert!(bind(
            &BindRequest {
                bind_expired_time: Some(0),
                callback_expired_time: Some(6),
                ..base()
            },
            digits()
        )
        .is_ok());
    }

    #[test]
    fn extension_is_ignored_without_virtual_num() {
        let v = bind(
            &BindRequest {
                virtual_num: None,
                area_code: Some("0755".into()),
                area_match_mode: Some("1".into()),
                extend_num: Some("bad".into()),
                ..base()
            },
            digits(),
        )
        .unwrap();
        assert!(matches!(v.target, Target::Area { loose: true, .. }));
    }

    #[test]
    fn selectors_need_an_id_or_both_numbers() {
        assert_eq!(
            selector(&BindingSelector::by_subscription("s")).unwrap(),
            Selector::Subscription("s".into())
        );
        assert!(selector(&BindingSelector::by_number("+8613800000009", "0042")).is_ok());
        let only_x = BindingSelector {
            virtual_num: Some("+8613800000009".into()),
            ..BindingSelector::default()
        };
        assert_eq!(selector(&only_x).unwrap_err().code, "1010002");
        assert_eq!(
            selector(&BindingSelector::default()).unwrap_err().code,
            "1010002"
        );
        // A raw '+' decodes as a space: not E.164.
        assert_eq!(
            selector(&BindingSelector::by_number(" 8613800000009", "0042"))
                .unwrap_err()
                .code,
            "1010002"
        );
    }
}

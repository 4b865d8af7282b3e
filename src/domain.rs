//! Domain newtypes: every value that crosses an edge (HTTP body, query string, config, Huawei
//! response) is parsed into one of these once, so the inner layers never re-check them.

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};

/// Why a raw value could not become a domain value. The message names the rule, not the field;
/// callers add the field name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

fn err(msg: impl Into<String>) -> ParseError {
    ParseError(msg.into())
}

/// Text both backends can store: PostgreSQL refuses a NUL (U+0000) in `text`, SQLite does not,
/// so the check is made here for both and the two answer alike.
pub fn storable_text(raw: &str) -> Result<&str, ParseError> {
    if raw.contains('\0') {
        return Err(err("must not contain a NUL character (U+0000)"));
    }
    Ok(raw)
}

/// The id of a row we created (a binding or a call): a UUID, in its canonical lower-case form.
/// Anything else names no row, so callers answer 404 rather than ask the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowId(String);

impl RowId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        storable_text(raw)?;
        uuid::Uuid::parse_str(raw)
            .map(|u| Self(u.to_string()))
            .map_err(|_| err("is not an id this API returned"))
    }

    /// Only the canonical form itself, for ids inside values the API wrote (list cursors):
    /// another spelling of the same UUID (upper case, braces, no hyphens) would compare as
    /// different text in the database and page wrongly.
    pub fn parse_canonical(raw: &str) -> Result<Self, ParseError> {
        Self::parse(raw)
            .ok()
            .filter(|id| id.0 == raw)
            .ok_or_else(|| err("is not an id this API wrote"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A phone number in E.164 form with its leading `+` (`+8613800000001`). `Debug` and `Display`
/// both show it masked.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct PhoneNumber(String);

impl PhoneNumber {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        storable_text(raw)?;
        let digits = raw
            .strip_prefix('+')
            .ok_or_else(|| err("must be in E.164 form with a leading '+', e.g. +8613800000001"))?;
        if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err("must be '+' followed by 8 to 15 digits (E.164)"));
        }
        if digits.starts_with('0') {
            return Err(err("the country code cannot start with 0 (E.164)"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The number for logs: country code and the first digits, then `****`, then the last four
    /// (`+86138****0001`). Phone numbers are personal data and never appear whole in logs.
    pub fn masked(&self) -> String {
        mask_phone(&self.0)
    }
}

/// Masks any phone-like string for logs, whether or not it parsed. At least four digits are
/// always hidden, and a short value is hidden whole.
pub fn mask_phone(raw: &str) -> String {
    let digits = raw.strip_prefix('+').unwrap_or(raw);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        let sign = if digits.len() < raw.len() { "+" } else { "" };
        return format!("{sign}{}", mask_digits(digits));
    }
    let chars: Vec<char> = raw.chars().collect();
    if chars.len() <= 8 {
        return "****".to_owned();
    }
    let head: String = chars[..(chars.len() - 8).min(6)].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}****{tail}")
}

/// A run of digits, masked: up to five leading and the last four digits are kept, at least four
/// in between become `****`; eight digits or fewer become `****` whole.
fn mask_digits(digits: &str) -> String {
    let len = digits.len();
    if len <= 8 {
        return "****".to_owned();
    }
    let head = (len - 8).min(5);
    format!("{}****{}", &digits[..head], &digits[len - 4..])
}

/// Shortest digit run taken for a phone number in free text (a local number without its area
/// code has seven).
const PHONE_RUN_DIGITS: usize = 7;

/// Masks everything in free text that may be a phone number: a run of seven or more digits,
/// with or without a leading `+` or its URL encoding `%2B`, wherever it stands (inside a word, a
/// URL or JSON). Text from outside (Huawei's error descriptions and bodies, database and parser
/// messages) passes through this before it is logged or stored.
pub fn mask_phones(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let long_run = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let mut out = String::new();
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !bytes[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let run = long_run(i);
        if run >= PHONE_RUN_DIGITS {
            out.push_str(&text[copied..i]);
            out.push_str(&mask_digits(&text[i..i + run]));
            copied = i + run;
        }
        i += run;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// A field shown through [`mask_phones`] by a masking `Debug` ([`crate::debug_masking`]).
pub struct Masked<'a, T: ?Sized>(pub &'a T);

impl<T: fmt::Debug + ?Sized> fmt::Debug for Masked<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown = if f.alternate() {
            format!("{:#?}", self.0)
        } else {
            format!("{:?}", self.0)
        };
        f.write_str(&mask_phones(&shown))
    }
}

/// `Debug` for a struct with phone numbers in plain `String` fields: the fields after `masking`
/// are shown through [`mask_phones`]. Every field must be named (the struct is destructured), so
/// a field added later cannot slip out unmasked unnoticed.
#[macro_export]
macro_rules! debug_masking {
    (
        $ty:ident $(<$lt:lifetime>)? { $($plain:ident),* $(,)? }
        masking { $($masked:ident),+ $(,)? }
    ) => {
        impl $(<$lt>)? ::std::fmt::Debug for $ty $(<$lt>)? {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                let $ty { $($plain,)* $($masked,)+ } = self;
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($plain), $plain))*
                    $(.field(stringify!($masked), &$crate::domain::Masked($masked)))+
                    .finish()
            }
        }
    };
}

impl fmt::Display for PhoneNumber {
    /// Display is masked on purpose: a number formatted into a log line by accident stays private.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({:?})", self.masked())
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// A business service's order id: 1–64 of `[A-Za-z0-9._:-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct OrderId(String);

impl OrderId {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        storable_text(raw)?;
        if raw.is_empty() || raw.len() > 64 {
            return Err(err("must be 1 to 64 characters long"));
        }
        if !raw
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(err("may only contain A-Z a-z 0-9 . _ : -"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for OrderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// How many digits extensions have for this Huawei app (fixed when the app is created, 1–4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionDigits(u8);

impl ExtensionDigits {
    pub fn new(digits: u8) -> Result<Self, ParseError> {
        if (1..=4).contains(&digits) {
            Ok(Self(digits))
        } else {
            Err(err("must be between 1 and 4"))
        }
    }

    pub fn get(self) -> u8 {
        self.0
    }

    /// Extensions run from 1 to 10^digits - 1 (`0001`..`9999` for four digits); all zeros is not
    /// offered, as Huawei's own ranges start at 1.
    pub fn max_value(self) -> u32 {
        10u32.pow(u32::from(self.0)) - 1
    }
}

impl Default for ExtensionDigits {
    fn default() -> Self {
        Self(4)
    }
}

/// An extension number E: exactly `digits` decimal digits, zero-padded (`0042`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ExtensionNumber(String);

impl ExtensionNumber {
    pub fn parse(raw: &str, digits: ExtensionDigits) -> Result<Self, ParseError> {
        storable_text(raw)?;
        if raw.len() != usize::from(digits.get()) || !raw.bytes().all(|b| b.is_ascii_digit()) {
            return Err(err(format!("must be exactly {} digits", digits.get())));
        }
        if raw.bytes().all(|b| b == b'0') {
            return Err(err("cannot be all zeros"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn from_index(value: u32, digits: ExtensionDigits) -> Self {
        Self(format!(
            "{:0width$}",
            value,
            width = usize::from(digits.get())
        ))
    }

    /// An extension as stored or as Huawei reported it, whatever the current digit setting.
    pub fn from_trusted(raw: String) -> Self {
        Self(raw)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExtensionNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A Chinese city dialling code with its leading zero (`010`, `0755`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct AreaCode(String);

impl AreaCode {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        storable_text(raw)?;
        if !(3..=4).contains(&raw.len())
            || !raw.starts_with('0')
            || !raw.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(err(
                "must be a city code of 3 or 4 digits starting with 0, e.g. 0755",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Huawei's `userData`: 1–256 characters, no `{` or `}` (Huawei rejects them), printable ASCII
/// (Huawei rejects Chinese characters and advises Base64 for anything else).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct UserData(String);

impl UserData {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        storable_text(raw)?;
        if raw.is_empty() || raw.len() > 256 {
            return Err(err("must be 1 to 256 characters long"));
        }
        if raw.contains(['{', '}']) {
            return Err(err("must not contain '{' or '}'"));
        }
        if !raw.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(err("must be printable ASCII (Base64-encode anything else)"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The name of an approved Huawei voice file (`record_hint_tone`, `callback_tone`): 1–128
/// characters, no control characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ToneName(String);

impl ToneName {
    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        storable_text(raw)?;
        if raw.is_empty() || raw.len() > 128 {
            return Err(err("must be 1 to 128 characters long"));
        }
        if raw.chars().any(char::is_control) {
            return Err(err("must not contain control characters"));
        }
        Ok(Self(raw.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A binding lifetime in minutes: 1 minute to 365 days. Absent means "never expires" (Huawei's
/// own default), so zero is not accepted as a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct TtlMinutes(u32);

impl TtlMinutes {
    pub const MAX: u32 = 525_600;

    pub fn parse(raw: i64) -> Result<Self, ParseError> {
        match u32::try_from(raw) {
            Ok(v) if (1..=Self::MAX).contains(&v) => Ok(Self(v)),
            _ => Err(err(format!("must be between 1 and {} minutes", Self::MAX))),
        }
    }

    pub fn get(self) -> u32 {
        self.0
    }
}

/// Lifecycle of a binding row. Stored as this lowercase text in `bindings.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BindingStatus {
    /// Written before Huawei is called; stays so while the outcome is unknown.
    Pending,
    /// Huawei confirmed the binding; `subscription_id` is set.
    Active,
    /// Huawei refused the binding (its code and text are in `last_error`).
    Failed,
    /// Released through the API (or Huawei no longer had it when released).
    Released,
    /// Passed `expires_at`, or Huawei no longer has it.
    Expired,
}

impl BindingStatus {
    pub const ALL: [BindingStatus; 5] = [
        Self::Pending,
        Self::Active,
        Self::Failed,
        Self::Released,
        Self::Expired,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Released => "released",
            Self::Expired => "expired",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == raw)
            .ok_or_else(|| err("must be one of pending, active, failed, released, expired"))
    }

    /// Live bindings hold their X+E at Huawei (or may, while pending).
    pub fn is_live(self) -> bool {
        matches!(self, Self::Pending | Self::Active)
    }
}

/// The state of a virtual number X in our pool, following Huawei's number-status codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberStatus {
    /// Usable for new bindings (Huawei status "5").
    Normal,
    /// Huawei paused it (status "9"): no binding or call works.
    Paused,
    /// Huawei marked it unavailable (status "10").
    Unavailable,
    /// No new bindings, existing ones still work (status "11").
    BindFrozen,
}

impl NumberStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Paused => "paused",
            Self::Unavailable => "unavailable",
            Self::BindFrozen => "bind_frozen",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        [
            Self::Normal,
            Self::Paused,
            Self::Unavailable,
            Self::BindFrozen,
        ]
        .into_iter()
        .find(|s| s.as_str() == raw)
        .ok_or_else(|| err("must be one of normal, paused, unavailable, bind_frozen"))
    }

    /// Huawei's numeric status code from a `numStatus` notification.
    pub fn from_huawei_code(code: &str) -> Option<Self> {
        match code {
            "5" => Some(Self::Normal),
            "9" => Some(Self::Paused),
            "10" => Some(Self::Unavailable),
            "11" => Some(Self::BindFrozen),
            _ => None,
        }
    }
}

/// Who chose the virtual number of a binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberChoice {
    /// The client named `virtual_num`.
    Client,
    /// The gateway picked it from its pool.
    Pool,
    /// No pooled number fitted the area code; Huawei picked one from the app's numbers.
    Huawei,
}

impl NumberChoice {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Pool => "pool",
            Self::Huawei => "huawei",
        }
    }

    pub fn parse(raw: &str) -> Result<Self, ParseError> {
        match raw {
            "client" => Ok(Self::Client),
            "pool" => Ok(Self::Pool),
            "huawei" => Ok(Self::Huawei),
            _ => Err(err("must be one of client, pool, huawei")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_must_be_e164() {
        assert!(PhoneNumber::parse("+8613800000001").is_ok());
        assert!(PhoneNumber::parse("+8675500000001").is_ok());
        for bad in [
            "8613800000001",
            "+86 138",
            "+0861380000000",
            "+861380000000012345",
            "",
            "+",
            "+86abc",
        ] {
            assert!(PhoneNumber::parse(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn phone_numbers_are_masked_for_logs() {
        let n = PhoneNumber::parse("+8613800000001").unwrap();
        assert_eq!(n.masked(), "+86138****0001");
        assert_eq!(n.to_string(), "+86138****0001");
        assert_eq!(mask_phone("123"), "****");
        assert_eq!(format!("{n:?}"), r#"PhoneNumber("+86138****0001")"#);
        assert_eq!(
            format!("{:?}", Some(&n)),
            r#"Some(PhoneNumber("+86138****0001"))"#
        );
        // However short, at least four digits stay hidden.
        assert_eq!(mask_phone("+12345678"), "+****");
        assert_eq!(mask_phone("+123456789"), "+1****6789");
        assert_eq!(mask_phone("8613800000001"), "86138****0001");
        assert_eq!(mask_phone("not a number at all"), "not a **** all");
    }

    #[test]
    fn phone_numbers_in_free_text_are_masked_wherever_they_stand() {
        for (text, shown) in [
            (
                "bindNum +8613800000001 is invalid",
                "bindNum +86138****0001 is invalid",
            ),
            (
                "GET /rest/x?virtualNum=%2B8617000000001&extendNum=0001",
                "GET /rest/x?virtualNum=%2B86170****0001&extendNum=0001",
            ),
            (
                r#"{"callerNum":"8613800000001"}"#,
                r#"{"callerNum":"86138****0001"}"#,
            ),
            ("tel13800000001x", "tel138****0001x"),
            ("call 5551234 now", "call **** now"),
            (
                "a,+8613800000001,+8613800000002",
                "a,+86138****0001,+86138****0002",
            ),
        ] {
            assert_eq!(mask_phones(text), shown, "{text}");
        }
        // Short numbers are not phone numbers: codes, ports, extensions stay readable.
        for kept in [
            "HTTP 500: code 101000",
            "extension 0042 on port 8080",
            "",
            "+",
        ] {
            assert!(matches!(mask_phones(kept), Cow::Borrowed(_)), "{kept}");
        }
        let masked = mask_phones("+8613800000001 and 008613800000002");
        assert_eq!(
            mask_phones(&masked),
            masked,
            "masking twice changes nothing"
        );
    }

    #[test]
    fn masking_debug_hides_numbers_in_plain_string_fields() {
        struct Row {
            id: u32,
            note: &'static str,
            bind_num: String,
            callback_num: Option<String>,
        }
        crate::debug_masking!(Row { id, note } masking { bind_num, callback_num });
        let row = Row {
            id: 7,
            note: "kept 1234567",
            bind_num: "+8613800000001".into(),
            callback_num: Some("+8613800000002".into()),
        };
        let shown = format!("{row:?}");
        assert_eq!(
            shown,
            r#"Row { id: 7, note: "kept 1234567", bind_num: "+86138****0001", callback_num: Some("+86138****0002") }"#
        );
        assert!(!format!("{row:#?}").contains("8613800000001"));
    }

    #[test]
    fn order_ids_allow_the_documented_alphabet_only() {
        assert!(OrderId::parse("order-2024.05:01_x").is_ok());
        assert!(OrderId::parse(&"a".repeat(64)).is_ok());
        assert!(OrderId::parse(&"a".repeat(65)).is_err());
        assert!(OrderId::parse("").is_err());
        assert!(OrderId::parse("order 1").is_err());
        assert!(OrderId::parse("订单").is_err());
    }

    #[test]
    fn extensions_have_exactly_the_configured_digits() {
        let four = ExtensionDigits::new(4).unwrap();
        assert!(ExtensionNumber::parse("0042", four).is_ok());
        assert!(ExtensionNumber::parse("42", four).is_err());
        assert!(ExtensionNumber::parse("0000", four).is_err());
        assert!(ExtensionNumber::parse("12a4", four).is_err());
        assert_eq!(ExtensionNumber::from_index(7, four).as_str(), "0007");
        assert_eq!(four.max_value(), 9999);
        assert!(ExtensionDigits::new(0).is_err());
        assert!(ExtensionDigits::new(5).is_err());
    }

    #[test]
    fn user_data_rejects_braces_and_non_ascii() {
        assert!(UserData::parse("order-1").is_ok());
        assert!(UserData::parse("{x}").is_err());
        assert!(UserData::parse("订单").is_err());
        assert!(UserData::parse(&"x".repeat(257)).is_err());
    }

    #[test]
    fn area_codes_start_with_zero() {
        assert!(AreaCode::parse("0755").is_ok());
        assert!(AreaCode::parse("010").is_ok());
        assert!(AreaCode::parse("755").is_err());
        assert!(AreaCode::parse("07555").is_err());
    }

    #[test]
    fn ttl_is_bounded() {
        assert!(TtlMinutes::parse(1).is_ok());
        assert!(TtlMinutes::parse(0).is_err());
        assert!(TtlMinutes::parse(-5).is_err());
        assert!(TtlMinutes::parse(i64::from(TtlMinutes::MAX) + 1).is_err());
    }

    #[test]
    fn statuses_round_trip_as_text() {
        for s in BindingStatus::ALL {
            assert_eq!(BindingStatus::parse(s.as_str()).unwrap(), s);
        }
        assert_eq!(
            NumberStatus::from_huawei_code("11"),
            Some(NumberStatus::BindFrozen)
        );
        assert_eq!(NumberStatus::from_huawei_code("7"), None);
    }
}

/// Hostile input at the edge: any text is refused or accepted, never a panic; every value the
/// rules allow is accepted and comes back unchanged.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(raw in any::<String>(), digits in 0u8..8, ttl in any::<i64>()) {
            let _ = RowId::parse(&raw);
            let _ = PhoneNumber::parse(&raw);
            let _ = OrderId::parse(&raw);
            let _ = AreaCode::parse(&raw);
            let _ = UserData::parse(&raw);
            let _ = ToneName::parse(&raw);
            let _ = BindingStatus::parse(&raw);
            let _ = NumberStatus::parse(&raw);
            let _ = NumberChoice::parse(&raw);
            let _ = NumberStatus::from_huawei_code(&raw);
            let _ = mask_phone(&raw);
            if let Ok(d) = ExtensionDigits::new(digits) {
                let _ = ExtensionNumber::parse(&raw, d);
            }
            let _ = TtlMinutes::parse(ttl);
        }

        #[test]
        fn phone_like_text_never_panics(raw in "[+0-9\u{0}a ]{0,20}") {
            let _ = PhoneNumber::parse(&raw);
            let _ = mask_phone(&raw);
        }

        #[test]
        fn valid_phone_numbers_round_trip(raw in "\\+[1-9][0-9]{7,14}") {
            let n = PhoneNumber::parse(&raw).unwrap();
            prop_assert_eq!(n.as_str(), raw.as_str());
            // The masked form hides at least four digits.
            prop_assert!(!n.to_string().contains(&raw[1..]));
            prop_assert!(n.masked().contains("****"));
        }

        #[test]
        fn valid_order_ids_round_trip(raw in "[A-Za-z0-9._:-]{1,64}") {
            let parsed = OrderId::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }

        #[test]
        fn too_long_order_ids_are_refused(raw in "[A-Za-z0-9]{65,100}") {
            prop_assert!(OrderId::parse(&raw).is_err());
        }

        #[test]
        fn valid_extensions_round_trip(digits in 1u8..=4, seed in any::<u32>()) {
            let d = ExtensionDigits::new(digits).unwrap();
            let value = seed % d.max_value() + 1;
            let e = ExtensionNumber::from_index(value, d);
            prop_assert_eq!(e.as_str().len(), usize::from(digits));
            prop_assert_eq!(ExtensionNumber::parse(e.as_str(), d).unwrap(), e.clone());
            prop_assert_eq!(e.as_str().parse::<u32>().unwrap(), value);
        }

        #[test]
        fn valid_area_codes_round_trip(raw in "0[0-9]{2,3}") {
            let parsed = AreaCode::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }

        #[test]
        fn valid_user_data_round_trips(raw in "[ -z|~]{1,256}") {
            let parsed = UserData::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }

        #[test]
        fn valid_tone_names_round_trip(raw in "[^\\p{Cc}]{1,32}") {
            let parsed = ToneName::parse(&raw).unwrap();
            prop_assert_eq!(parsed.as_str(), raw.as_str());
        }

        #[test]
        fn ttl_accepts_exactly_its_range(raw in any::<i64>(), valid in 1i64..=i64::from(TtlMinutes::MAX)) {
            prop_assert_eq!(TtlMinutes::parse(valid).unwrap().get(), u32::try_from(valid).unwrap());
            prop_assert_eq!(
                TtlMinutes::parse(raw).is_ok(),
                (1..=i64::from(TtlMinutes::MAX)).contains(&raw)
            );
        }

        #[test]
        fn masked_text_never_holds_a_phone_number(text in any::<String>(), digits in "[0-9]{7,20}", prefix in "(\\+|%2B)?", suffix in any::<String>()) {
            for input in [text.clone(), format!("{text}{prefix}{digits}{suffix}")] {
                let out = mask_phones(&input);
                let mut run = 0;
                for c in out.chars() {
                    run = if c.is_ascii_digit() { run + 1 } else { 0 };
                    prop_assert!(run < PHONE_RUN_DIGITS, "{:?} -> {:?}", input, out);
                }
            }
        }
    }
}

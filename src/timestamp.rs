//! Timestamps as text, fast: the webhook writer formats and parses several per stored row, and
//! chrono's format-string interpreter was a noticeable part of its time. Each function gives
//! exactly what the chrono call it replaces gives (tests below).

use chrono::{Datelike, NaiveDateTime, Timelike};

/// A timestamp's text, held inline: the writer binds several per row, and neither formatting
/// nor binding one allocates.
#[derive(Clone, Copy)]
pub struct DbText {
    buf: [u8; 40],
    len: usize,
}

impl DbText {
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    pub fn as_str(&self) -> &str {
        // Only ASCII digits and separators are written (or chrono's own text).
        std::str::from_utf8(self.as_bytes()).unwrap_or_default()
    }

    fn push(&mut self, b: u8) {
        if let Some(slot) = self.buf.get_mut(self.len) {
            *slot = b;
            self.len += 1;
        }
    }

    /// `value` (< 100) as two digits.
    fn push2(&mut self, value: u32) {
        let i = usize::try_from(value % 100).unwrap_or(0) * 2;
        self.push(PAIRS[i]);
        self.push(PAIRS[i + 1]);
    }

    /// `value` (< 10) as one digit.
    fn push1(&mut self, value: u32) {
        self.push(b'0' + u8::try_from(value % 10).unwrap_or(0));
    }
}

impl std::fmt::Display for DbText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// "00", "01", … "99": two digits at a time.
const PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// RFC 3339 in UTC with microseconds (`2026-12-07T10:00:00.000000Z`), as the API and events
/// show times.
pub fn rfc3339(t: NaiveDateTime) -> String {
    t.and_utc()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// `t.format("%Y-%m-%d %H:%M:%S%.f")` (diesel's form), without chrono's format-string
/// interpreter, which was a noticeable part of the writer's time.
pub fn format_db(t: &NaiveDateTime) -> DbText {
    let mut out = DbText {
        buf: [0; 40],
        len: 0,
    };
    let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999);
    let Some(year) = year else {
        // Outside 0000–9999 chrono writes a sign and more digits (at most 33 bytes).
        for b in t.format("%Y-%m-%d %H:%M:%S%.f").to_string().bytes() {
            out.push(b);
        }
        return out;
    };
    // chrono keeps a leap second as nanoseconds >= 1e9 and prints it as second 60.
    let (second, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    out.push2(year / 100);
    out.push2(year);
    out.push(b'-');
    out.push2(t.month());
    out.push(b'-');
    out.push2(t.day());
    out.push(b' ');
    out.push2(t.hour());
    out.push(b':');
    out.push2(t.minute());
    out.push(b':');
    out.push2(second);
    // `%.f`: no fraction for whole seconds, else 3, 6 or 9 digits, the fewest that are exact.
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => {
            let ms = n / 1_000_000;
            out.push(b'.');
            out.push1(ms / 100);
            out.push2(ms);
        }
        n if n % 1_000 == 0 => {
            let us = n / 1_000;
            out.push(b'.');
            out.push2(us / 10_000);
            out.push2(us / 100);
            out.push2(us);
        }
        n => {
            out.push(b'.');
            out.push1(n / 100_000_000);
            out.push2(n / 1_000_000);
            out.push2(n / 10_000);
            out.push2(n / 100);
            out.push2(n);
        }
    }
    out
}

/// Reads what [`format_db`] (or diesel) wrote.
pub fn parse_db(s: &str) -> Option<NaiveDateTime> {
    fast_parse(s.as_bytes()).or_else(|| {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
            .or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f"))
            .ok()
    })
}

/// Exactly `YYYY-MM-DD HH:MM:SS`, optionally with a fraction of 1 to 9 digits.
pub fn parse_ymd_hms(s: &str) -> Option<NaiveDateTime> {
    fast_parse(s.as_bytes())
}

fn fast_parse(b: &[u8]) -> Option<NaiveDateTime> {
    fn num(b: &[u8]) -> Option<u32> {
        b.iter().try_fold(0u32, |acc, &c| {
            c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
        })
    }
    if b.len() < 19 || b[4] != b'-' || b[7] != b'-' || b[10] != b' ' || b[13] != b':' {
        return None;
    }
    if b[16] != b':' {
        return None;
    }
    let year = i32::try_from(num(&b[0..4])?).ok()?;
    let date = chrono::NaiveDate::from_ymd_opt(year, num(&b[5..7])?, num(&b[8..10])?)?;
    let (h, m, s) = (num(&b[11..13])?, num(&b[14..16])?, num(&b[17..19])?);
    let nanos = match &b[19..] {
        [] => 0,
        [b'.', digits @ ..] if (1..=9).contains(&digits.len()) => {
            num(digits)? * 10u32.pow(9 - u32::try_from(digits.len()).ok()?)
        }
        _ => return None,
    };
    date.and_hms_nano_opt(h, m, s, nanos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").unwrap()
    }

    #[test]
    fn timestamps_are_written_exactly_as_diesel_writes_them() {
        for s in [
            "2026-11-29 08:00:00",
            "2026-01-02 03:04:05.1",
            "2026-01-02 03:04:05.123",
            "2026-01-02 03:04:05.123456",
            "2026-01-02 03:04:05.000001",
            "2026-01-02 03:04:05.123456789",
            "0001-01-01 00:00:00",
            "9999-12-31 23:59:59.999999",
        ] {
            let t = at(s);
            assert_eq!(
                format_db(&t).as_str(),
                t.format("%Y-%m-%d %H:%M:%S%.f").to_string()
            );
            assert_eq!(parse_db(format_db(&t).as_str()), Some(t));
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        assert_eq!(
            format_db(&leap).as_str(),
            leap.format("%Y-%m-%d %H:%M:%S%.f").to_string()
        );
        // Years chrono writes with a sign, and a spread of ordinary times to the nanosecond.
        let far = [
            chrono::NaiveDate::from_ymd_opt(12_345, 6, 7),
            chrono::NaiveDate::from_ymd_opt(-44, 3, 15),
            chrono::NaiveDate::MAX.into(),
            chrono::NaiveDate::MIN.into(),
        ];
        let spread = (0..5_000u32).filter_map(|i| {
            chrono::NaiveDate::from_ymd_opt(1970 + i32::try_from(i % 60).ok()?, 1 + i % 12, 1)
                .map(|d| (d, i))
        });
        for (date, i) in far.into_iter().flatten().map(|d| (d, 7)).chain(spread) {
            let nanos = match i % 4 {
                0 => 0,
                1 => (i * 7_919 % 1_000) * 1_000_000,
                2 => (i * 104_729 % 1_000_000) * 1_000,
                _ => i.wrapping_mul(15_485_863) % 1_000_000_000,
            };
            let t = date
                .and_hms_nano_opt(i % 24, i % 60, (i * 7) % 60, nanos)
                .unwrap();
            assert_eq!(
                format_db(&t).as_str(),
                t.format("%Y-%m-%d %H:%M:%S%.f").to_string()
            );
        }
    }

    #[test]
    fn timestamps_in_other_forms_still_parse() {
        assert_eq!(
            parse_db("2026-01-02T03:04:05.5"),
            Some(at("2026-01-02 03:04:05.5"))
        );
        assert_eq!(parse_db("2026-13-02 03:04:05"), None);
        assert_eq!(parse_db("not a time"), None);
    }
}

/// Hostile input: any text is a time or `None`, never a panic; every time written is read back.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn any_time() -> impl Strategy<Value = NaiveDateTime> {
        // Every representable instant, to the nanosecond (years -262143..=262142).
        let lo = NaiveDateTime::MIN.and_utc().timestamp();
        let hi = NaiveDateTime::MAX.and_utc().timestamp();
        (lo..=hi, 0u32..1_000_000_000).prop_map(|(secs, nanos)| {
            chrono::DateTime::from_timestamp(secs, nanos)
                .unwrap()
                .naive_utc()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_text_never_panics(raw in any::<String>()) {
            let _ = parse_db(&raw);
            let _ = parse_ymd_hms(&raw);
        }

        #[test]
        fn time_shaped_text_never_panics(raw in "[0-9]{4}-[0-9]{2}-[0-9]{2}[ T][0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{0,12})?[^\\n]{0,3}") {
            let _ = parse_db(&raw);
            let parsed = parse_ymd_hms(&raw);
            // The fast path agrees with chrono wherever it answers.
            if let Some(t) = parsed {
                prop_assert_eq!(Some(t), NaiveDateTime::parse_from_str(&raw, "%Y-%m-%d %H:%M:%S%.f").ok());
            }
        }

        #[test]
        fn format_then_parse_round_trips(t in any_time()) {
            let text = format_db(&t);
            prop_assert_eq!(text.as_str(), t.format("%Y-%m-%d %H:%M:%S%.f").to_string());
            prop_assert_eq!(parse_db(text.as_str()), Some(t));
        }
    }
}

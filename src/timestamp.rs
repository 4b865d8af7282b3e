//! Timestamps as text, fast: the webhook writer formats and parses several per stored row, and
//! chrono's format-string interpreter was a noticeable part of its time. Each function gives
//! exactly what the chrono call it replaces gives (tests below).

use chrono::{Datelike, NaiveDateTime, Timelike};

/// `t.format("%Y-%m-%d %H:%M:%S%.f")` (diesel's form), without chrono's format-string
/// interpreter, which was a noticeable part of the writer's time.
pub fn format_db(t: &NaiveDateTime) -> String {
    let year = t.year();
    let Ok(year) = u32::try_from(year) else {
        return t.format("%Y-%m-%d %H:%M:%S%.f").to_string();
    };
    if year > 9999 {
        return t.format("%Y-%m-%d %H:%M:%S%.f").to_string();
    }
    // chrono keeps a leap second as nanoseconds >= 1e9 and prints it as second 60.
    let (second, nanos) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    let mut out = String::with_capacity(29);
    push_digits(&mut out, year, 4);
    out.push('-');
    push_digits(&mut out, t.month(), 2);
    out.push('-');
    push_digits(&mut out, t.day(), 2);
    out.push(' ');
    push_digits(&mut out, t.hour(), 2);
    out.push(':');
    push_digits(&mut out, t.minute(), 2);
    out.push(':');
    push_digits(&mut out, second, 2);
    // `%.f`: no fraction for whole seconds, else 3, 6 or 9 digits, the fewest that are exact.
    match nanos {
        0 => {}
        n if n % 1_000_000 == 0 => {
            out.push('.');
            push_digits(&mut out, n / 1_000_000, 3);
        }
        n if n % 1_000 == 0 => {
            out.push('.');
            push_digits(&mut out, n / 1_000, 6);
        }
        n => {
            out.push('.');
            push_digits(&mut out, n, 9);
        }
    }
    out
}

/// `value` as exactly `width` decimal digits, zero-padded (the caller keeps it in range).
fn push_digits(out: &mut String, value: u32, width: u32) {
    let mut divisor = 10u32.pow(width - 1);
    while divisor > 0 {
        let digit = (value / divisor) % 10;
        out.push(char::from(b'0' + u8::try_from(digit).unwrap_or(0)));
        divisor /= 10;
    }
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
            assert_eq!(format_db(&t), t.format("%Y-%m-%d %H:%M:%S%.f").to_string());
            assert_eq!(parse_db(&format_db(&t)), Some(t));
        }
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap();
        assert_eq!(
            format_db(&leap),
            leap.format("%Y-%m-%d %H:%M:%S%.f").to_string()
        );
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

//! Intervals: PostgreSQL text input and `postgres`-style output.
//!
//! An interval keeps months, days and µs apart, exactly like PostgreSQL: `1 mon`,
//! `30 days` and `720:00:00` are three different values (that compare equal in PG).
//!
//! Input accepted: `N unit` pairs (`1 year 2 mons`, `3 days`, `4 hours`, `1.5 weeks`,
//! `2 ms`, ...), `[-]H:MM[:SS[.f]]`, a trailing bare number (seconds), trailing `ago`,
//! a leading `@`, and ISO 8601 `P1Y2M3DT4H5M6S` / `P2W`. As in PostgreSQL each field may
//! be given once (`1 day 1 day` is an error), whole numbers are exact and fractions
//! cascade down (`1.5 months` = `1 mon 15 days`, fractional years round to months).
//!
//! Output (`IntervalStyle = postgres`): `1 year 2 mons 3 days 04:05:06`, `-1 days`,
//! `00:00:00`; each nonzero part carries its own sign, and a `+` marks a positive part
//! after a negative one (`-1 days +02:00:00`).
//!
//! Caveats:
//! - No SQL-standard (`1-2`) or `INTERVAL '1' DAY`-qualified forms; the caller handles
//!   field qualifiers.
//! - Comparison uses PG's 30-day months and 24-hour days ([`interval_span`]), then the
//!   fields as a tie-break (see `Datum::cmp_sql`).

use super::datetime::{
    fraction_usecs, push_clock, DAYS_PER_MONTH, USECS_PER_DAY, USECS_PER_HOUR, USECS_PER_MINUTE,
    USECS_PER_SEC,
};
use super::{SqlType, TypeError};

/// PostgreSQL `postgres` IntervalStyle: `1 year 2 mons 3 days 04:05:06`, `-1 days`,
/// `00:00:00`.
pub(crate) fn format_interval(months: i32, days: i32, usecs: i64) -> String {
    let mut out = String::new();
    let mut is_zero = true;
    let mut is_before = false;
    let mut part = |value: i64, unit: &str, out: &mut String| {
        if value == 0 {
            return;
        }
        if !is_zero {
            out.push(' ');
        }
        if is_before && value > 0 {
            out.push('+');
        }
        out.push_str(&format!(
            "{value} {unit}{}",
            if value != 1 { "s" } else { "" }
        ));
        is_before = value < 0;
        is_zero = false;
    };
    part(i64::from(months / 12), "year", &mut out);
    part(i64::from(months % 12), "mon", &mut out);
    part(i64::from(days), "day", &mut out);
    if is_zero || usecs != 0 {
        if !is_zero {
            out.push(' ');
        }
        if usecs < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        push_clock(&mut out, usecs);
    }
    out
}

/// An interval's position in PostgreSQL's comparison order (30-day months).
pub(crate) fn interval_span(months: i32, days: i32, usecs: i64) -> i128 {
    (i128::from(months) * i128::from(DAYS_PER_MONTH) + i128::from(days)) * i128::from(USECS_PER_DAY)
        + i128::from(usecs)
}

/// Accumulates interval fields with PostgreSQL's fraction cascading. Whole parts are
/// exact integers; only fractions go through f64.
#[derive(Default)]
struct IntervalAcc {
    months: i128,
    days: i128,
    usecs: i128,
}

/// A parsed interval number: exact whole part and signed fraction (`-1.5` is (-1, -0.5)).
#[derive(Clone, Copy)]
struct Number {
    whole: i128,
    frac: f64,
}

impl Number {
    /// `[+-]digits[.digits]`, `[+-].digits`; None if malformed or absurdly long.
    fn parse(s: &str) -> Option<Number> {
        let (negative, body) = match s.as_bytes().first()? {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        let (int, frac) = body.split_once('.').unwrap_or((body, ""));
        let all_digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
            return None;
        }
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac: f64 = if frac.is_empty() {
            0.0
        } else {
            format!("0.{frac}").parse().ok()?
        };
        Some(if negative {
            Number {
                whole: -whole,
                frac: -frac,
            }
        } else {
            Number { whole, frac }
        })
    }
}

impl IntervalAcc {
    fn add(&mut self, n: Number, unit: Unit) {
        match unit {
            Unit::Usecs(k) => {
                self.usecs = self
                    .usecs
                    .saturating_add(n.whole.saturating_mul(i128::from(k)))
                    .saturating_add((n.frac * k as f64).round() as i128);
            }
            Unit::Days(k) => {
                self.days = self
                    .days
                    .saturating_add(n.whole.saturating_mul(i128::from(k)));
                self.add_fraction_of_days(n.frac * k as f64);
            }
            Unit::Months(k) => {
                self.months = self
                    .months
                    .saturating_add(n.whole.saturating_mul(i128::from(k)));
                let months = n.frac * k as f64;
                let whole = months.trunc();
                self.months = self.months.saturating_add(whole as i128);
                self.add_fraction_of_days((months - whole) * DAYS_PER_MONTH as f64);
            }
            Unit::Years(k) => {
                // PG: fractional years round to whole months.
                self.months = self
                    .months
                    .saturating_add(n.whole.saturating_mul(i128::from(k)))
                    .saturating_add((n.frac * k as f64).round() as i128);
            }
        }
    }

    fn add_fraction_of_days(&mut self, days: f64) {
        let whole = days.trunc();
        self.days = self.days.saturating_add(whole as i128);
        self.usecs = self
            .usecs
            .saturating_add(((days - whole) * USECS_PER_DAY as f64).round() as i128);
    }

    fn finish(self, negate: bool) -> Option<(i32, i32, i64)> {
        let sign = if negate { -1 } else { 1 };
        let months = i32::try_from(self.months.saturating_mul(sign)).ok()?;
        let days = i32::try_from(self.days.saturating_mul(sign)).ok()?;
        let usecs = i64::try_from(self.usecs.saturating_mul(sign)).ok()?;
        Some((months, days, usecs))
    }
}

enum Unit {
    Months(i64),
    Years(i64),
    Days(i64),
    Usecs(i64),
}

/// Interval fields, each settable once per input (PostgreSQL rejects `1 day 1 day`).
mod field {
    pub const YEAR: u16 = 1 << 0;
    pub const MONTH: u16 = 1 << 1;
    pub const DAY: u16 = 1 << 2;
    pub const WEEK: u16 = 1 << 3;
    pub const HOUR: u16 = 1 << 4;
    pub const MINUTE: u16 = 1 << 5;
    pub const SECOND: u16 = 1 << 6;
    pub const MILLISECOND: u16 = 1 << 7;
    pub const MICROSECOND: u16 = 1 << 8;
    pub const DECADE: u16 = 1 << 9;
    pub const CENTURY: u16 = 1 << 10;
    pub const MILLENNIUM: u16 = 1 << 11;
    pub const ALL_SECONDS: u16 = SECOND | MILLISECOND | MICROSECOND;
}

/// A unit word: its scale and the field it sets.
fn interval_unit(word: &str) -> Option<(Unit, u16)> {
    Some(match word {
        "microsecond" | "microseconds" | "usec" | "usecs" | "us" | "usecond" | "useconds" => {
            (Unit::Usecs(1), field::MICROSECOND)
        }
        "millisecond" | "milliseconds" | "msec" | "msecs" | "ms" | "msecond" | "mseconds" => {
            (Unit::Usecs(1000), field::MILLISECOND)
        }
        "second" | "seconds" | "sec" | "secs" | "s" => (Unit::Usecs(USECS_PER_SEC), field::SECOND),
        "minute" | "minutes" | "min" | "mins" | "m" => {
            (Unit::Usecs(USECS_PER_MINUTE), field::MINUTE)
        }
        "hour" | "hours" | "hr" | "hrs" | "h" => (Unit::Usecs(USECS_PER_HOUR), field::HOUR),
        "day" | "days" | "d" => (Unit::Days(1), field::DAY),
        "week" | "weeks" | "w" => (Unit::Days(7), field::WEEK),
        "month" | "months" | "mon" | "mons" => (Unit::Months(1), field::MONTH),
        "year" | "years" | "yr" | "yrs" | "y" => (Unit::Years(12), field::YEAR),
        "decade" | "decades" => (Unit::Years(120), field::DECADE),
        "century" | "centuries" => (Unit::Years(1200), field::CENTURY),
        "millennium" | "millennia" | "millenniums" => (Unit::Years(12000), field::MILLENNIUM),
        _ => return None,
    })
}

/// Parses `[+-]H+:M[M][:S[S][.f]]` (already split off as `token`) into µs.
fn parse_clock(token: &str) -> Option<i128> {
    let (negative, body) = match token.as_bytes().first()? {
        b'-' => (true, &token[1..]),
        b'+' => (false, &token[1..]),
        _ => (false, token),
    };
    let digits = |t: &str, max_len: usize| {
        (!t.is_empty() && t.len() <= max_len && t.bytes().all(|b| b.is_ascii_digit()))
            .then(|| t.parse::<i128>().ok())
            .flatten()
    };
    let mut fields = body.split(':');
    let h = digits(fields.next()?, 10)?;
    let m = digits(fields.next()?, 2)?;
    let mut usecs = h * i128::from(USECS_PER_HOUR) + m * i128::from(USECS_PER_MINUTE);
    if let Some(s_text) = fields.next() {
        let (whole, frac) = s_text.split_once('.').unwrap_or((s_text, ""));
        if !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        usecs += digits(whole, 2)? * i128::from(USECS_PER_SEC);
        usecs += i128::from(fraction_usecs(frac.as_bytes()));
    }
    if fields.next().is_some() || m > 59 {
        return None;
    }
    Some(if negative { -usecs } else { usecs })
}

/// Splits interval text into words and signed numbers (a sign may be separated from
/// its digits by spaces, as in `- 1 day`).
fn interval_tokens(s: &str) -> Option<Vec<String>> {
    let mut tokens = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() || c == b',' {
            i += 1;
        } else if c.is_ascii_alphabetic() {
            let start = i;
            while i < b.len() && b[i].is_ascii_alphabetic() {
                i += 1;
            }
            tokens.push(s[start..i].to_string());
        } else if c.is_ascii_digit() || c == b'+' || c == b'-' || c == b'.' {
            let mut token = String::new();
            if c == b'+' || c == b'-' {
                token.push(c as char);
                i += 1;
                while i < b.len() && b[i].is_ascii_whitespace() {
                    i += 1;
                }
            }
            let start = i;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.' || b[i] == b':') {
                i += 1;
            }
            if i == start {
                return None;
            }
            token.push_str(&s[start..i]);
            tokens.push(token);
        } else {
            return None;
        }
    }
    Some(tokens)
}

/// Text input for `interval`: (months, days, µs).
pub(crate) fn parse_interval(input: &str) -> Result<(i32, i32, i64), TypeError> {
    let ty = SqlType::Interval;
    let syntax = || TypeError::datetime_syntax(&ty, input);
    let out_of_range =
        || TypeError::datetime_overflow(format!("interval field value out of range: \"{input}\""));
    let trimmed = input.trim();
    let trimmed = trimmed.strip_prefix('@').unwrap_or(trimmed).trim();
    if let Some(iso) = trimmed.strip_prefix('P') {
        return parse_iso_interval(iso)
            .ok_or_else(syntax)?
            .ok_or_else(out_of_range);
    }
    let lower = trimmed.to_ascii_lowercase();
    let mut tokens = interval_tokens(&lower).ok_or_else(syntax)?;
    // Trailing `ago` (any number of them) negates the whole interval.
    let mut ago = false;
    while tokens.last().is_some_and(|t| t == "ago") {
        tokens.pop();
        ago = true;
    }
    if tokens.is_empty() {
        return Err(syntax());
    }
    let mut acc = IntervalAcc::default();
    let mut seen = 0u16;
    let mut claim = |f: u16| {
        let fresh = seen & f == 0;
        seen |= f;
        fresh
    };
    let mut i = 0;
    while i < tokens.len() {
        let tok = &tokens[i];
        if !tok.as_bytes().iter().any(u8::is_ascii_digit) {
            return Err(syntax());
        }
        if tok.contains(':') {
            if !claim(field::HOUR | field::MINUTE | field::ALL_SECONDS) {
                return Err(syntax());
            }
            acc.usecs = acc
                .usecs
                .saturating_add(parse_clock(tok).ok_or_else(syntax)?);
            i += 1;
            continue;
        }
        let value = Number::parse(tok).ok_or_else(syntax)?;
        match tokens.get(i + 1) {
            Some(word) => {
                let (unit, mut f) = interval_unit(word).ok_or_else(syntax)?;
                if f == field::SECOND && value.frac != 0.0 {
                    // Fractional seconds also fill the sub-second fields (as in PG).
                    f = field::ALL_SECONDS;
                }
                if !claim(f) {
                    return Err(syntax());
                }
                acc.add(value, unit);
                i += 2;
            }
            None => {
                // A bare trailing number is seconds (but `1 ago` is an error in PG).
                let f = if value.frac != 0.0 {
                    field::ALL_SECONDS
                } else {
                    field::SECOND
                };
                if ago || !claim(f) {
                    return Err(syntax());
                }
                acc.add(value, Unit::Usecs(USECS_PER_SEC));
                i += 1;
            }
        }
    }
    acc.finish(ago).ok_or_else(out_of_range)
}

/// ISO 8601 `P[nY][nM][nW][nD][T[nH][nM][nS]]` (the leading `P` already removed;
/// designators are upper case, as PostgreSQL requires).
/// None: syntax error; Some(None): out of range.
fn parse_iso_interval(s: &str) -> Option<Option<(i32, i32, i64)>> {
    let mut acc = IntervalAcc::default();
    let mut in_time = false;
    let b = s.as_bytes();
    let mut i = 0;
    if b.is_empty() {
        return None;
    }
    while i < b.len() {
        if b[i] == b'T' && !in_time {
            in_time = true;
            i += 1;
            continue;
        }
        let start = i;
        if matches!(b[i], b'-' | b'+') {
            i += 1;
        }
        while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
            i += 1;
        }
        // Like PostgreSQL's ISO parser: the whole number as a double, then split.
        let full: f64 = Number::parse(&s[start..i]).and(s[start..i].parse().ok())?;
        let value = Number {
            whole: full.trunc() as i128,
            frac: full - full.trunc(),
        };
        let unit = match (*b.get(i)?, in_time) {
            (b'Y', false) => Unit::Years(12),
            (b'M', false) => Unit::Months(1),
            (b'W', false) => Unit::Days(7),
            (b'D', false) => Unit::Days(1),
            (b'H', true) => Unit::Usecs(USECS_PER_HOUR),
            (b'M', true) => Unit::Usecs(USECS_PER_MINUTE),
            (b'S', true) => Unit::Usecs(USECS_PER_SEC),
            _ => return None,
        };
        acc.add(value, unit);
        i += 1;
    }
    Some(acc.finish(false))
}

//! PostgreSQL text format: [`Datum::to_pg_text`] (output functions) and
//! [`Datum::parse_text`] (input functions), as PostgreSQL 15 prints and reads values
//! with `DateStyle = ISO`, `IntervalStyle = postgres`, `TimeZone = UTC`,
//! `extra_float_digits = 1` (the default: shortest round-trip floats).
//!
//! Floats print the shortest digits that read back to the same value, in fixed notation
//! when the decimal exponent is in `[-4, 15)` (float8) or `[-4, 6)` (float4), else as
//! `1e+20` / `1.5e-07`, exactly like PostgreSQL's Ryu-based `float8out`.
//!
//! Input follows each type's PostgreSQL input function: surrounding whitespace is
//! accepted for numbers and booleans; out-of-range numbers fail with 22003
//! (`value "3000000000" is out of range for type integer`); malformed text with 22P02.
//! Dates and times are parsed in `datetime.rs`, jsonb normalized in `json.rs`.
//!
//! Caveats: no `0x`/underscore integer literals (PostgreSQL 16 syntax); numeric output
//! for unconstrained numerics is normalized (see `numeric.rs`).

use super::datetime::{
    format_date, format_time, format_timestamp, parse_date, parse_time, parse_timestamp,
};
use super::datum::fit_string;
use super::interval::{format_interval, parse_interval};
use super::json::{normalize_jsonb, validate_json};
use super::numeric::{apply_typmod, numeric_to_text, parse_numeric};
use super::{Datum, SqlType, TypeError};

impl Datum {
    /// PostgreSQL text output of the value as a value of `ty` (see the module doc).
    /// `ty` matters for numeric scale; other datums print by their own variant.
    /// NULL prints as the empty string (callers send NULL out of band).
    pub fn to_pg_text(&self, ty: &SqlType) -> String {
        match self {
            Datum::Null => String::new(),
            Datum::Bool(b) => (if *b { "t" } else { "f" }).to_string(),
            Datum::Int2(v) => v.to_string(),
            Datum::Int4(v) => v.to_string(),
            Datum::Int8(v) => v.to_string(),
            Datum::Float4(v) => format_float(f64::from(*v), true),
            Datum::Float8(v) => format_float(*v, false),
            Datum::Numeric(d) => numeric_to_text(d, ty),
            Datum::Text(s) | Datum::Json(s) => s.clone(),
            Datum::Bytea(b) => format_bytea(b),
            Datum::Date(d) => format_date(*d),
            Datum::Time(t) => format_time(*t),
            Datum::Timestamp(us) => format_timestamp(*us, false),
            Datum::TimestampTz(us) => format_timestamp(*us, true),
            Datum::Interval {
                months,
                days,
                micros,
            } => format_interval(*months, *days, *micros),
            Datum::Uuid(u) => uuid::Uuid::from_bytes(*u).hyphenated().to_string(),
        }
    }

    /// Parses PostgreSQL text input for `ty` (see the module doc). Length limits of
    /// `varchar(n)`/`char(n)` and `numeric(p,s)` rounding apply.
    pub fn parse_text(s: &str, ty: &SqlType) -> Result<Datum, TypeError> {
        Ok(match ty {
            SqlType::Int2 => {
                Datum::Int2(parse_int(s, ty, i64::from(i16::MIN), i64::from(i16::MAX))? as i16)
            }
            SqlType::Int4 => {
                Datum::Int4(parse_int(s, ty, i64::from(i32::MIN), i64::from(i32::MAX))? as i32)
            }
            SqlType::Int8 => Datum::Int8(parse_int(s, ty, i64::MIN, i64::MAX)?),
            SqlType::Float4 => Datum::Float4(parse_float(s, ty)? as f32),
            SqlType::Float8 => Datum::Float8(parse_float(s, ty)?),
            SqlType::Numeric { precision, scale } => {
                let d = match parse_numeric(s) {
                    // Too big for any numeric(p,s) Meridian supports: PG's message.
                    Err(TypeError::OutOfRange(_)) if precision.is_some() => {
                        return Err(TypeError::OutOfRange("numeric field overflow".into()))
                    }
                    other => other?,
                };
                Datum::Numeric(apply_typmod(d, *precision, *scale)?)
            }
            SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
                Datum::Text(fit_string(s.to_string(), ty)?)
            }
            SqlType::Bool => {
                Datum::Bool(parse_bool(s).ok_or_else(|| TypeError::invalid_text(ty, s))?)
            }
            SqlType::Date => Datum::Date(parse_date(s)?),
            SqlType::Time => Datum::Time(parse_time(s)?),
            SqlType::Timestamp => Datum::Timestamp(parse_timestamp(s, false)?),
            SqlType::TimestampTz => Datum::TimestampTz(parse_timestamp(s, true)?),
            SqlType::Interval => {
                let (months, days, micros) = parse_interval(s)?;
                Datum::Interval {
                    months,
                    days,
                    micros,
                }
            }
            SqlType::Bytea => Datum::Bytea(parse_bytea(s)?),
            SqlType::Uuid => {
                Datum::Uuid(parse_uuid(s).ok_or_else(|| TypeError::invalid_text(ty, s))?)
            }
            SqlType::Json => {
                validate_json(s)?;
                Datum::Json(s.to_string())
            }
            SqlType::Jsonb => Datum::Json(normalize_jsonb(s)?),
        })
    }
}

/// PostgreSQL float output (shortest round trip; see the module doc).
pub(crate) fn format_float(v: f64, is_float4: bool) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: "-1.5e-7".
    let sci = if is_float4 {
        format!("{:e}", v as f32)
    } else {
        format!("{v:e}")
    };
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let max_fixed_exp = if is_float4 { 6 } else { 15 };
    let mut out = String::with_capacity(24);
    if negative {
        out.push('-');
    }
    if exp < -4 || exp >= max_fixed_exp {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.unsigned_abs()));
    } else if exp < 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
        out.push_str(&digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', int_len - digits.len()));
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
    out
}

/// `\x` followed by lowercase hex, PostgreSQL's default `bytea_output = hex`.
pub(crate) fn format_bytea(b: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(2 + 2 * b.len());
    out.push_str("\\x");
    for &byte in b {
        out.push(HEX[usize::from(byte >> 4)] as char);
        out.push(HEX[usize::from(byte & 0xF)] as char);
    }
    out
}

fn trim_pg(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_ascii_whitespace())
}

/// PostgreSQL integer input: whitespace, optional sign, decimal digits, whitespace.
/// Like PostgreSQL, digits that overflow are reported (22003) before trailing garbage.
fn parse_int(input: &str, ty: &SqlType, min: i64, max: i64) -> Result<i64, TypeError> {
    let s = input.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let (negative, rest) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let digits_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits_len == 0 {
        return Err(TypeError::invalid_text(ty, input));
    }
    let out_of_range = || {
        TypeError::OutOfRange(format!(
            "value \"{input}\" is out of range for type {}",
            ty.pg_name()
        ))
    };
    // Accumulate negatively so i64::MIN parses.
    let mut v: i64 = 0;
    for b in rest[..digits_len].bytes() {
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_sub(i64::from(b - b'0')))
            .ok_or_else(out_of_range)?;
    }
    let v = if negative {
        v
    } else {
        v.checked_neg().ok_or_else(out_of_range)?
    };
    if v < min || v > max {
        return Err(out_of_range());
    }
    if !rest[digits_len..].bytes().all(|b| b.is_ascii_whitespace()) {
        return Err(TypeError::invalid_text(ty, input));
    }
    Ok(v)
}

/// PostgreSQL float input: decimal or exponent notation, `NaN`, `[+-]Infinity`/`inf`.
/// Values that overflow (or underflow to zero) fail with 22003.
fn parse_float(input: &str, ty: &SqlType) -> Result<f64, TypeError> {
    let s = trim_pg(input);
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "nan" | "+nan" | "-nan" => return Ok(f64::NAN),
        "infinity" | "+infinity" | "inf" | "+inf" => return Ok(f64::INFINITY),
        "-infinity" | "-inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let valid = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.' | b'e' | b'E'))
        && s.bytes().any(|b| b.is_ascii_digit());
    if !valid {
        return Err(TypeError::invalid_text(ty, input));
    }
    let out_of_range =
        || TypeError::OutOfRange(format!("\"{s}\" is out of range for type {}", ty.pg_name()));
    // A nonzero digit before any exponent: a zero result is then an underflow.
    let mantissa_nonzero = s
        .bytes()
        .take_while(|b| !matches!(b, b'e' | b'E'))
        .any(|b| (b'1'..=b'9').contains(&b));
    let v: f64 = if *ty == SqlType::Float4 {
        f64::from(
            s.parse::<f32>()
                .map_err(|_| TypeError::invalid_text(ty, input))?,
        )
    } else {
        s.parse().map_err(|_| TypeError::invalid_text(ty, input))?
    };
    if v.is_infinite() || (v == 0.0 && mantissa_nonzero) {
        return Err(out_of_range());
    }
    Ok(v)
}

/// PostgreSQL `boolin`: unique prefixes of true/false/yes/no, on/off, 1/0.
pub(crate) fn parse_bool(input: &str) -> Option<bool> {
    let s = trim_pg(input).to_ascii_lowercase();
    let prefix_of = |word: &str, min_len: usize| s.len() >= min_len && word.starts_with(&s);
    match s.as_bytes().first()? {
        b't' if prefix_of("true", 1) => Some(true),
        b'f' if prefix_of("false", 1) => Some(false),
        b'y' if prefix_of("yes", 1) => Some(true),
        b'n' if prefix_of("no", 1) => Some(false),
        b'o' if prefix_of("on", 2) => Some(true),
        b'o' if prefix_of("off", 2) => Some(false),
        b'1' if s.len() == 1 => Some(true),
        b'0' if s.len() == 1 => Some(false),
        _ => None,
    }
}

/// PostgreSQL `byteain`: `\x` hex (whitespace allowed between digit pairs) or the
/// escape format (`\\` and `\ooo` octal escapes).
fn parse_bytea(input: &str) -> Result<Vec<u8>, TypeError> {
    let b = input.as_bytes();
    if b.starts_with(b"\\x") {
        let mut out = Vec::with_capacity((b.len() - 2) / 2);
        let mut i = 2;
        while i < b.len() {
            if b[i].is_ascii_whitespace() {
                i += 1;
                continue;
            }
            let hi = hex_value(b[i], input, i)?;
            let lo = match b.get(i + 1) {
                Some(&c) => hex_value(c, input, i + 1)?,
                None => {
                    return Err(TypeError::InvalidParameter(
                        "invalid hexadecimal data: odd number of digits".into(),
                    ))
                }
            };
            out.push((hi << 4) | lo);
            i += 2;
        }
        return Ok(out);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
        } else if b.get(i + 1) == Some(&b'\\') {
            out.push(b'\\');
            i += 2;
        } else if let Some(oct) = b.get(i + 1..i + 4).filter(|o| {
            (b'0'..=b'3').contains(&o[0]) && o[1..].iter().all(|c| (b'0'..=b'7').contains(c))
        }) {
            out.push(((oct[0] - b'0') << 6) | ((oct[1] - b'0') << 3) | (oct[2] - b'0'));
            i += 4;
        } else {
            return Err(TypeError::InvalidSyntax(
                "invalid input syntax for type bytea".into(),
            ));
        }
    }
    Ok(out)
}

/// PostgreSQL `uuid_in`: 32 hex digits, optionally in braces, with an optional hyphen
/// after any group of four digits.
fn parse_uuid(input: &str) -> Option<[u8; 16]> {
    let b = input.as_bytes();
    let (braces, mut i) = if b.first() == Some(&b'{') {
        (true, 1)
    } else {
        (false, 0)
    };
    let mut out = [0u8; 16];
    for (k, byte) in out.iter_mut().enumerate() {
        let pair = b.get(i..i + 2)?;
        let hex = std::str::from_utf8(pair).ok()?;
        if !pair.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        *byte = u8::from_str_radix(hex, 16).ok()?;
        i += 2;
        if b.get(i) == Some(&b'-') && k % 2 == 1 && k < 15 {
            i += 1;
        }
    }
    if braces {
        if b.get(i) != Some(&b'}') {
            return None;
        }
        i += 1;
    }
    (i == b.len()).then_some(out)
}

fn hex_value(c: u8, input: &str, at: usize) -> Result<u8, TypeError> {
    match c {
        b'0'..=b'9' => Ok(c - b'0'),
        b'a'..=b'f' => Ok(c - b'a' + 10),
        b'A'..=b'F' => Ok(c - b'A' + 10),
        _ => {
            let ch = input
                .get(at..)
                .and_then(|s| s.chars().next())
                .unwrap_or('?');
            Err(TypeError::InvalidParameter(format!(
                "invalid hexadecimal digit: \"{ch}\""
            )))
        }
    }
}

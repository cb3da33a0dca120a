//! `numeric` on top of `rust_decimal`: parsing, typmod rounding, display and the
//! PostgreSQL binary (base-10000) format.
//!
//! A `rust_decimal::Decimal` is a 96-bit integer mantissa with a decimal scale 0..=28.
//! It keeps its scale (`1.50` stays `1.50`), which is how a `numeric(p,s)` value carries
//! exactly `s` fractional digits once [`apply_typmod`] has run.
//!
//! Rounding is half away from zero everywhere, as PostgreSQL rounds numerics.
//!
//! Caveats:
//! - Input with more significant digits than fit (about 28-29) is rounded in its
//!   fractional part; input whose integer part does not fit fails with 22003
//!   `value overflows numeric format`.
//! - Unconstrained numerics print with the value's own scale, but a value stored or
//!   assigned to an unconstrained column is normalized (trailing fractional zeros
//!   stripped: `1.50::numeric` prints `1.5`, PostgreSQL prints `1.50`), so a value
//!   prints the same whether read from storage or through DataFusion, where
//!   unconstrained numerics travel as `Decimal128(38,10)` and lose their scale.
//!   Computed results whose PostgreSQL scale is known (division, `avg`) keep it: see
//!   `crate::numeric_scale`.
//! - `NaN` and `±Infinity` are not representable (0A000).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use super::{SqlType, TypeError};

/// Largest declared `numeric` precision (Arrow Decimal128's limit).
pub const NUMERIC_MAX_PRECISION: u8 = 38;
/// Largest declared `numeric` scale (rust_decimal's limit).
pub const NUMERIC_MAX_SCALE: u32 = 28;

/// Largest mantissa a `Decimal` can hold, 2^96 - 1.
const MAX_MANTISSA: u128 = (1u128 << 96) - 1;
/// PostgreSQL's binary numeric sign words.
const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;
/// Base of PostgreSQL's binary numeric digits.
const NBASE: u128 = 10_000;

pub(crate) fn overflow() -> TypeError {
    TypeError::OutOfRange("value overflows numeric format".into())
}

fn field_overflow() -> TypeError {
    TypeError::OutOfRange("numeric field overflow".into())
}

fn unsupported_special(what: &str) -> TypeError {
    TypeError::Unsupported(format!("numeric {what} is not supported"))
}

/// `d` with a positive sign if it is zero (rust_decimal has a signed zero).
pub(crate) fn fix_zero(mut d: Decimal) -> Decimal {
    if d.is_zero() {
        d.set_sign_positive(true);
    }
    d
}

/// Builds `sign * mantissa * 10^-scale` from an unbounded digit string, rounding away
/// fractional digits (half away from zero) until it fits a `Decimal`.
/// `digits` holds ASCII digits; the value is `digits * 10^exp10`.
fn decimal_from_digits(negative: bool, digits: &[u8], exp10: i64) -> Result<Decimal, TypeError> {
    let first = digits.iter().position(|&c| c != b'0');
    let Some(first) = first else {
        // Zero keeps its input scale (`0.00`), within bounds.
        let scale = exp10.clamp(-(NUMERIC_MAX_SCALE as i64), 0).unsigned_abs() as u32;
        return Ok(Decimal::new(0, scale));
    };
    // Trailing zeros are kept: they carry the input's scale (`1.50`).
    let sig = &digits[first..];
    let mut exp10 = exp10;
    // Digits to drop from the end: enough for the scale and the mantissa width.
    let mut drop: i64 = 0;
    drop = drop.max(sig.len() as i64 - 29);
    drop = drop.max(-exp10 - NUMERIC_MAX_SCALE as i64);
    let mut keep = (sig.len() as i64 - drop).max(0) as usize;
    let mut mantissa = digits_value(&sig[..keep]);
    if mantissa > MAX_MANTISSA {
        keep -= 1;
        mantissa = digits_value(&sig[..keep]);
    }
    let dropped = sig.len() - keep;
    exp10 = exp10.saturating_add(dropped as i64);
    if dropped > 0 && sig[keep] >= b'5' {
        mantissa += 1;
    }
    if mantissa > MAX_MANTISSA {
        // Only possible after rounding up 999...9: the result ends in 0.
        mantissa /= 10;
        exp10 += 1;
    }
    if exp10 > 0 {
        // Integer digits beyond the mantissa: shift left if it still fits.
        let factor = 10u128
            .checked_pow(u32::try_from(exp10).map_err(|_| overflow())?)
            .ok_or_else(overflow)?;
        mantissa = mantissa.checked_mul(factor).ok_or_else(overflow)?;
        if mantissa > MAX_MANTISSA {
            return Err(overflow());
        }
        exp10 = 0;
    }
    if exp10 < -(NUMERIC_MAX_SCALE as i64) {
        // Everything was rounded away.
        return Ok(Decimal::ZERO);
    }
    let signed = if negative {
        -(mantissa as i128)
    } else {
        mantissa as i128
    };
    Decimal::try_from_i128_with_scale(signed, (-exp10) as u32).map_err(|_| overflow())
}

fn digits_value(digits: &[u8]) -> u128 {
    digits
        .iter()
        .fold(0u128, |acc, &c| acc * 10 + u128::from(c - b'0'))
}

/// Parses PostgreSQL numeric text input: optional surrounding whitespace, sign, digits
/// with an optional point, optional exponent.
pub(crate) fn parse_numeric(input: &str) -> Result<Decimal, TypeError> {
    let ty = SqlType::Numeric {
        precision: None,
        scale: None,
    };
    let invalid = || TypeError::invalid_text(&ty, input);
    let s = input.trim_matches(|c: char| c.is_ascii_whitespace());
    let lower = s.to_ascii_lowercase();
    match lower.trim_start_matches(['+', '-']) {
        "nan" => return Err(unsupported_special("NaN")),
        "infinity" | "inf" => return Err(unsupported_special("Infinity")),
        _ => {}
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let negative = match bytes.first() {
        Some(b'-') => {
            i += 1;
            true
        }
        Some(b'+') => {
            i += 1;
            false
        }
        _ => false,
    };
    let mut digits = Vec::with_capacity(bytes.len());
    let mut frac_digits: i64 = 0;
    let mut seen_point = false;
    while i < bytes.len() {
        match bytes[i] {
            c @ b'0'..=b'9' => {
                digits.push(c);
                if seen_point {
                    frac_digits += 1;
                }
            }
            b'.' if !seen_point => seen_point = true,
            _ => break,
        }
        i += 1;
    }
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut exp: i64 = 0;
    if i < bytes.len() && (bytes[i] == b'e' || bytes[i] == b'E') {
        i += 1;
        let exp_negative = match bytes.get(i) {
            Some(b'-') => {
                i += 1;
                true
            }
            Some(b'+') => {
                i += 1;
                false
            }
            _ => false,
        };
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            exp = exp
                .saturating_mul(10)
                .saturating_add(i64::from(bytes[i] - b'0'));
            i += 1;
        }
        if i == start {
            return Err(invalid());
        }
        if exp_negative {
            exp = -exp;
        }
    }
    if i != bytes.len() {
        return Err(invalid());
    }
    decimal_from_digits(negative, &digits, exp.saturating_sub(frac_digits)).map(fix_zero)
}

/// Rounds `d` to a `numeric(precision, scale)` column: exactly `scale` fractional digits
/// (half away from zero), then at most `precision - scale` integer digits (22003
/// `numeric field overflow`).
pub(crate) fn apply_typmod(
    d: Decimal,
    precision: Option<u8>,
    scale: Option<u8>,
) -> Result<Decimal, TypeError> {
    let Some(p) = precision else {
        return Ok(fix_zero(d.normalize()));
    };
    let s = u32::from(scale.unwrap_or(0));
    let mut d = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
    if d.scale() < s {
        d.rescale(s);
        if d.scale() != s {
            return Err(field_overflow());
        }
    }
    let int_digits = count_digits(d.mantissa().unsigned_abs()).saturating_sub(d.scale());
    let allowed = u32::from(p).saturating_sub(s);
    if int_digits > allowed {
        return Err(field_overflow());
    }
    Ok(fix_zero(d))
}

/// Number of decimal digits of `v` (0 for 0).
pub(crate) fn count_digits(mut v: u128) -> u32 {
    let mut n = 0;
    while v > 0 {
        v /= 10;
        n += 1;
    }
    n
}

/// The decimal to print for a value of type `ty`: the declared scale if any, else the
/// value's own scale.
pub(crate) fn display_decimal(d: &Decimal, ty: &SqlType) -> Decimal {
    match ty {
        SqlType::Numeric { scale: Some(s), .. } => {
            let s = u32::from(*s);
            let mut d = d.round_dp_with_strategy(s, RoundingStrategy::MidpointAwayFromZero);
            if d.scale() < s {
                d.rescale(s);
            }
            fix_zero(d)
        }
        _ => fix_zero(*d),
    }
}

/// PostgreSQL `numeric` text output for a value of type `ty`.
pub(crate) fn numeric_to_text(d: &Decimal, ty: &SqlType) -> String {
    display_decimal(d, ty).to_string()
}

/// A float converted to numeric the way PostgreSQL does: through its text form with
/// `digits` significant digits (15 for float8, 6 for float4).
pub(crate) fn decimal_from_float(v: f64, digits: usize) -> Result<Decimal, TypeError> {
    if v.is_nan() {
        return Err(unsupported_special("NaN"));
    }
    if v.is_infinite() {
        return Err(TypeError::Unsupported(
            "cannot convert infinity to numeric".into(),
        ));
    }
    let text = format!("{:.*e}", digits - 1, v);
    parse_numeric(&text).map(|d| d.normalize())
}

/// The numeric value as f64, correctly rounded (via text, as PostgreSQL does).
pub(crate) fn decimal_to_f64(d: &Decimal) -> f64 {
    d.to_string()
        .parse::<f64>()
        .unwrap_or_else(|_| d.to_f64().unwrap_or(f64::NAN))
}

/// Rounds half away from zero to an integer in `[min, max]`, or None.
pub(crate) fn decimal_to_int(d: &Decimal, min: i64, max: i64) -> Option<i64> {
    let r = d.round_dp_with_strategy(0, RoundingStrategy::MidpointAwayFromZero);
    r.to_i64().filter(|v| (min..=max).contains(v))
}

/// PostgreSQL binary `numeric`: ndigits, weight, sign, dscale (i16/i16/u16/u16), then
/// ndigits base-10000 digits, most significant first, aligned on the decimal point.
pub(crate) fn numeric_to_binary(d: &Decimal) -> Vec<u8> {
    let scale = d.scale();
    let mut mantissa = d.mantissa().unsigned_abs();
    // Pad the fraction to whole base-10000 digits.
    let pad = (4 - scale % 4) % 4;
    mantissa *= 10u128.pow(pad);
    let frac_groups = ((scale + pad) / 4) as i32;
    let mut groups = Vec::new(); // least significant first
    while mantissa > 0 {
        groups.push((mantissa % NBASE) as i16);
        mantissa /= NBASE;
    }
    let mut weight = groups.len() as i32 - frac_groups - 1;
    // Strip trailing zero groups (they only cost bytes); leading ones cannot occur.
    let trailing = groups.iter().take_while(|&&g| g == 0).count();
    groups.drain(..trailing);
    groups.reverse();
    if groups.is_empty() {
        weight = 0;
    }
    let sign = if d.is_sign_negative() && !groups.is_empty() {
        NUMERIC_NEG
    } else {
        NUMERIC_POS
    };
    let mut out = Vec::with_capacity(8 + 2 * groups.len());
    out.extend_from_slice(&(groups.len() as i16).to_be_bytes());
    out.extend_from_slice(&(weight as i16).to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(scale as u16).to_be_bytes());
    for g in groups {
        out.extend_from_slice(&g.to_be_bytes());
    }
    out
}

/// Parses PostgreSQL binary `numeric` (see [`numeric_to_binary`]).
pub(crate) fn numeric_from_binary(b: &[u8]) -> Result<Decimal, TypeError> {
    let bad = || TypeError::InvalidBinary("invalid binary data for type numeric".into());
    if b.len() < 8 {
        return Err(bad());
    }
    let word = |i: usize| u16::from_be_bytes([b[i], b[i + 1]]);
    let ndigits = word(0) as i16;
    let weight = i64::from(word(2) as i16);
    let sign = word(4);
    let dscale = word(6);
    match sign {
        NUMERIC_POS | NUMERIC_NEG => {}
        NUMERIC_NAN => return Err(unsupported_special("NaN")),
        NUMERIC_PINF | NUMERIC_NINF => return Err(unsupported_special("Infinity")),
        _ => return Err(bad()),
    }
    if ndigits < 0 || b.len() != 8 + 2 * ndigits as usize || dscale & 0xC000 != 0 {
        return Err(bad());
    }
    // Decimal digit string of all groups, then place the point.
    let mut digits = Vec::with_capacity(4 * ndigits as usize);
    for i in 0..ndigits as usize {
        let g = word(8 + 2 * i);
        if g >= NBASE as u16 {
            return Err(bad());
        }
        digits.extend_from_slice(format!("{g:04}").as_bytes());
    }
    // Value = digits * 10000^(weight - ndigits + 1).
    let exp10 = 4 * (weight - i64::from(ndigits) + 1);
    let d = decimal_from_digits(sign == NUMERIC_NEG, &digits, exp10)?;
    // Honor the display scale where it fits.
    let target = u32::from(dscale).min(NUMERIC_MAX_SCALE);
    let mut d = d.round_dp_with_strategy(target, RoundingStrategy::MidpointAwayFromZero);
    if d.scale() < target {
        d.rescale(target);
    }
    Ok(fix_zero(d))
}

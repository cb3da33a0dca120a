//! Order-preserving key encoding of datums, for primary-key and index-key columns.
//!
//! Each datum is a null marker followed (for non-NULL values) by a payload built from
//! `kv::keycode`, so a key made of several datums sorts like the tuple of values:
//!
//! ```text
//! datum   = encode_bool(is_null) payload?      0x00 = value, 0x01 = NULL: NULLs last
//! ```
//!
//! | type                         | payload                                             |
//! |------------------------------|-----------------------------------------------------|
//! | int2/int4/int8               | encode_i64 (all widths identical: `Int2(5)` = `Int8(5)`) |
//! | float4/float8                | encode_f64 (`-0` = `0`, NaN last, as in PG)         |
//! | numeric                      | see below                                           |
//! | text/varchar/char/json/jsonb | encode_str                                          |
//! | bytea                        | encode_bytes                                        |
//! | bool                         | encode_bool                                         |
//! | date                         | encode_i64(days)                                    |
//! | time/timestamp/timestamptz   | encode_i64(µs)                                      |
//! | interval                     | PG span (30-day months) as i128, then months, days, µs (encode_i64 each) |
//! | uuid                         | the 16 bytes as two encode_u64                      |
//!
//! NULLs sort last, like PostgreSQL's default `ASC NULLS LAST` and like
//! [`Datum::cmp_sql`]; a range scan over non-NULL values of a column ends before the
//! `0x01` marker.
//!
//! Numeric: the value is normalized first, so equal values with different scales
//! (`1.5`, `1.50`) encode identically. Zero is `encode_i64(0)`. Otherwise, with `e` the
//! decimal exponent of the leading digit (`123.4` → 2) and `sig` the digits as a fixed
//! 29-digit integer (`1234` followed by 25 zeros), a positive value is
//! `encode_i64(1000 + e)` then `sig` as a big-endian u128, and a negative value
//! `encode_i64(-(1000 + e))` then `!sig`. `e` lies in -28..=28, so the header orders
//! sign first and magnitude by exponent, and the fixed-width significand breaks ties.
//!
//! Decoding needs the column type (the encoding is not self-describing). Decoded
//! numerics are normalized and then rescaled to the column's declared scale.
//!
//! Caveats:
//! - Text orders bytewise (C collation), so does `char(n)`, which is stored padded.
//! - Intervals equal under PG's comparison but with different fields (`1 mon`,
//!   `30 days`) get different, adjacent keys: a unique index treats them as distinct.
//! - Descending key columns are not supported.

use kv::keycode::{
    encode_bool, encode_bytes, encode_f64, encode_i64, encode_str, encode_u64, Decoder,
};
use rust_decimal::Decimal;

use super::interval::interval_span;
use super::numeric::count_digits;
use super::{Datum, SqlType, TypeError};

/// Digits of the fixed-width numeric significand (the most a Decimal mantissa has).
const SIG_DIGITS: u32 = 29;
/// Offset of the numeric exponent header, so it is positive for every nonzero value.
const EXP_BIAS: i64 = 1000;
const I128_SIGN: u128 = 1 << 127;

/// Appends the key encoding of `d` (see the module doc).
pub fn encode_key_datum(buf: &mut Vec<u8>, d: &Datum) {
    encode_bool(buf, d.is_null());
    match d {
        Datum::Null => {}
        Datum::Bool(b) => encode_bool(buf, *b),
        Datum::Int2(v) => encode_i64(buf, i64::from(*v)),
        Datum::Int4(v) => encode_i64(buf, i64::from(*v)),
        Datum::Int8(v) => encode_i64(buf, *v),
        Datum::Float4(v) => encode_f64(buf, f64::from(*v)),
        Datum::Float8(v) => encode_f64(buf, *v),
        Datum::Numeric(n) => encode_numeric(buf, n),
        Datum::Text(s) | Datum::Json(s) => encode_str(buf, s),
        Datum::Bytea(b) => encode_bytes(buf, b),
        Datum::Date(v) => encode_i64(buf, i64::from(*v)),
        Datum::Time(v) | Datum::Timestamp(v) | Datum::TimestampTz(v) => encode_i64(buf, *v),
        Datum::Interval {
            months,
            days,
            micros,
        } => {
            encode_u128(
                buf,
                interval_span(*months, *days, *micros) as u128 ^ I128_SIGN,
            );
            encode_i64(buf, i64::from(*months));
            encode_i64(buf, i64::from(*days));
            encode_i64(buf, *micros);
        }
        Datum::Uuid(u) => encode_u128(buf, u128::from_be_bytes(*u)),
    }
}

/// Reads one datum of column type `ty` written by [`encode_key_datum`].
pub fn decode_key_datum(dec: &mut Decoder, ty: &SqlType) -> Result<Datum, TypeError> {
    if dec.decode_bool()? {
        return Ok(Datum::Null);
    }
    let narrow = |v: i64| TypeError::corrupt(format!("key integer {v} out of range for {ty}"));
    Ok(match ty {
        SqlType::Bool => Datum::Bool(dec.decode_bool()?),
        SqlType::Int2 => {
            let v = dec.decode_i64()?;
            Datum::Int2(i16::try_from(v).map_err(|_| narrow(v))?)
        }
        SqlType::Int4 => {
            let v = dec.decode_i64()?;
            Datum::Int4(i32::try_from(v).map_err(|_| narrow(v))?)
        }
        SqlType::Int8 => Datum::Int8(dec.decode_i64()?),
        SqlType::Float4 => Datum::Float4(dec.decode_f64()? as f32),
        SqlType::Float8 => Datum::Float8(dec.decode_f64()?),
        SqlType::Numeric { scale, .. } => {
            let mut d = decode_numeric(dec)?;
            if let Some(s) = scale {
                d.rescale(u32::from(*s));
            }
            Datum::Numeric(d)
        }
        SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => Datum::Text(dec.decode_str()?),
        SqlType::Json | SqlType::Jsonb => Datum::Json(dec.decode_str()?),
        SqlType::Bytea => Datum::Bytea(dec.decode_bytes()?),
        SqlType::Date => {
            let v = dec.decode_i64()?;
            Datum::Date(i32::try_from(v).map_err(|_| narrow(v))?)
        }
        SqlType::Time => Datum::Time(dec.decode_i64()?),
        SqlType::Timestamp => Datum::Timestamp(dec.decode_i64()?),
        SqlType::TimestampTz => Datum::TimestampTz(dec.decode_i64()?),
        SqlType::Interval => {
            decode_u128(dec)?; // the span, redundant with the fields
            let months = dec.decode_i64()?;
            let days = dec.decode_i64()?;
            Datum::Interval {
                months: i32::try_from(months).map_err(|_| narrow(months))?,
                days: i32::try_from(days).map_err(|_| narrow(days))?,
                micros: dec.decode_i64()?,
            }
        }
        SqlType::Uuid => Datum::Uuid(decode_u128(dec)?.to_be_bytes()),
    })
}

fn encode_u128(buf: &mut Vec<u8>, v: u128) {
    encode_u64(buf, (v >> 64) as u64);
    encode_u64(buf, v as u64);
}

fn decode_u128(dec: &mut Decoder) -> Result<u128, TypeError> {
    let hi = dec.decode_u64()?;
    let lo = dec.decode_u64()?;
    Ok((u128::from(hi) << 64) | u128::from(lo))
}

fn encode_numeric(buf: &mut Vec<u8>, d: &Decimal) {
    let d = d.normalize();
    if d.is_zero() {
        encode_i64(buf, 0);
        return;
    }
    let mantissa = d.mantissa().unsigned_abs();
    let digits = count_digits(mantissa);
    let exp = i64::from(digits) - 1 - i64::from(d.scale());
    let sig = mantissa * 10u128.pow(SIG_DIGITS - digits);
    if d.is_sign_negative() {
        encode_i64(buf, -(EXP_BIAS + exp));
        encode_u128(buf, !sig);
    } else {
        encode_i64(buf, EXP_BIAS + exp);
        encode_u128(buf, sig);
    }
}

fn decode_numeric(dec: &mut Decoder) -> Result<Decimal, TypeError> {
    let header = dec.decode_i64()?;
    if header == 0 {
        return Ok(Decimal::ZERO);
    }
    let negative = header < 0;
    let exp = header.unsigned_abs() as i64 - EXP_BIAS;
    let raw = decode_u128(dec)?;
    let mut sig = if negative { !raw } else { raw };
    let bad = || TypeError::corrupt("invalid numeric key");
    if !(10u128.pow(SIG_DIGITS - 1)..10u128.pow(SIG_DIGITS)).contains(&sig) || exp.abs() > 28 {
        return Err(bad());
    }
    // value = sig * 10^(exp - 28); strip trailing zeros into the exponent.
    let mut e10 = exp - i64::from(SIG_DIGITS - 1);
    while sig % 10 == 0 {
        sig /= 10;
        e10 += 1;
    }
    let (mantissa, scale) = if e10 >= 0 {
        let m = sig.checked_mul(10u128.pow(e10 as u32)).ok_or_else(bad)?;
        (m, 0)
    } else {
        (sig, (-e10) as u32)
    };
    let signed = if negative {
        -(mantissa as i128)
    } else {
        mantissa as i128
    };
    Decimal::try_from_i128_with_scale(signed, scale).map_err(|_| bad())
}

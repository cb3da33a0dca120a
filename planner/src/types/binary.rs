//! PostgreSQL binary wire format: [`Datum::to_pg_binary`] (`*send` functions) and
//! [`Datum::from_pg_binary`] (`*recv` functions).
//!
//! | type              | bytes                                                        |
//! |-------------------|--------------------------------------------------------------|
//! | bool              | 1 byte, 0 or 1                                               |
//! | int2/int4/int8    | big-endian two's complement                                  |
//! | float4/float8     | big-endian IEEE 754                                          |
//! | numeric           | ndigits, weight, sign, dscale (16-bit each), base-10000 digits |
//! | text/varchar/char | UTF-8 bytes                                                  |
//! | bytea             | raw bytes                                                    |
//! | date              | int4 days since 2000-01-01 (i32::MIN/MAX = ∓infinity)        |
//! | time              | int8 µs since midnight                                       |
//! | timestamp(tz)     | int8 µs since 2000-01-01 00:00:00 (UTC) (i64::MIN/MAX = ∓infinity) |
//! | interval          | int8 µs, int4 days, int4 months                              |
//! | uuid              | 16 bytes                                                     |
//! | json              | UTF-8 text                                                   |
//! | jsonb             | version byte 1, then UTF-8 text                              |
//!
//! A datum whose variant does not match `ty` is first [`Datum::coerce`]d to it.
//! NULL has no binary form (the protocol sends length -1): encoding it is an error.
//!
//! Caveat: timestamps after 294247-01-01 (valid in PostgreSQL) are rejected with 22008.

use std::borrow::Cow;

use super::datetime::{
    date_in_range, timestamp_in_range, DATE_NEG_INFINITY, DATE_POS_INFINITY, PG_EPOCH_DAYS,
    PG_EPOCH_USECS, TS_NEG_INFINITY, TS_POS_INFINITY,
};
use super::datum::fit_string;
use super::json::{normalize_jsonb, validate_json};
use super::numeric::{apply_typmod, display_decimal, numeric_from_binary, numeric_to_binary};
use super::{Datum, SqlType, TypeError};

/// jsonb's binary format version.
const JSONB_VERSION: u8 = 1;

impl Datum {
    /// PostgreSQL binary format of the value as a `ty` (see the module doc).
    pub fn to_pg_binary(&self, ty: &SqlType) -> Result<Vec<u8>, TypeError> {
        if self.is_null() {
            return Err(TypeError::NullValue(
                "NULL has no binary representation".into(),
            ));
        }
        let d = if variant_fits(self, ty) {
            Cow::Borrowed(self)
        } else {
            Cow::Owned(self.clone().coerce(ty)?)
        };
        Ok(match (d.as_ref(), ty) {
            (Datum::Bool(b), _) => vec![u8::from(*b)],
            (Datum::Int2(v), _) => v.to_be_bytes().to_vec(),
            (Datum::Int4(v), _) => v.to_be_bytes().to_vec(),
            (Datum::Int8(v), _) => v.to_be_bytes().to_vec(),
            (Datum::Float4(v), _) => v.to_be_bytes().to_vec(),
            (Datum::Float8(v), _) => v.to_be_bytes().to_vec(),
            (Datum::Numeric(n), _) => numeric_to_binary(&display_decimal(n, ty)),
            (Datum::Text(s), _) => s.as_bytes().to_vec(),
            (Datum::Json(s), SqlType::Jsonb) => {
                let mut out = Vec::with_capacity(1 + s.len());
                out.push(JSONB_VERSION);
                out.extend_from_slice(s.as_bytes());
                out
            }
            (Datum::Json(s), _) => s.as_bytes().to_vec(),
            (Datum::Bytea(b), _) => b.clone(),
            (Datum::Date(days), _) => {
                let pg = match *days {
                    DATE_NEG_INFINITY | DATE_POS_INFINITY => *days,
                    d => d - PG_EPOCH_DAYS,
                };
                pg.to_be_bytes().to_vec()
            }
            (Datum::Time(us), _) => us.to_be_bytes().to_vec(),
            (Datum::Timestamp(us) | Datum::TimestampTz(us), _) => {
                let pg = match *us {
                    TS_NEG_INFINITY | TS_POS_INFINITY => *us,
                    u => u - PG_EPOCH_USECS,
                };
                pg.to_be_bytes().to_vec()
            }
            (
                Datum::Interval {
                    months,
                    days,
                    micros,
                },
                _,
            ) => {
                let mut out = Vec::with_capacity(16);
                out.extend_from_slice(&micros.to_be_bytes());
                out.extend_from_slice(&days.to_be_bytes());
                out.extend_from_slice(&months.to_be_bytes());
                out
            }
            (Datum::Uuid(u), _) => u.to_vec(),
            (Datum::Null, _) => unreachable!("NULL handled above"),
        })
    }

    /// Parses the PostgreSQL binary format of a `ty` (see the module doc); `varchar(n)`,
    /// `char(n)` and `numeric(p,s)` modifiers apply as in [`Datum::parse_text`].
    pub fn from_pg_binary(b: &[u8], ty: &SqlType) -> Result<Datum, TypeError> {
        let bad = || {
            TypeError::InvalidBinary(format!(
                "incorrect binary data format for type {}",
                ty.pg_name()
            ))
        };
        let fixed = |n: usize| -> Result<&[u8], TypeError> {
            if b.len() == n {
                Ok(b)
            } else {
                Err(bad())
            }
        };
        Ok(match ty {
            SqlType::Bool => Datum::Bool(fixed(1)?[0] != 0),
            SqlType::Int2 => Datum::Int2(i16::from_be_bytes(fixed(2)?.try_into().expect("2"))),
            SqlType::Int4 => Datum::Int4(i32::from_be_bytes(fixed(4)?.try_into().expect("4"))),
            SqlType::Int8 => Datum::Int8(i64::from_be_bytes(fixed(8)?.try_into().expect("8"))),
            SqlType::Float4 => Datum::Float4(f32::from_be_bytes(fixed(4)?.try_into().expect("4"))),
            SqlType::Float8 => Datum::Float8(f64::from_be_bytes(fixed(8)?.try_into().expect("8"))),
            SqlType::Numeric { precision, scale } => {
                Datum::Numeric(apply_typmod(numeric_from_binary(b)?, *precision, *scale)?)
            }
            SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
                Datum::Text(fit_string(utf8(b)?.to_string(), ty)?)
            }
            SqlType::Json => {
                let s = utf8(b)?;
                validate_json(s)?;
                Datum::Json(s.to_string())
            }
            SqlType::Jsonb => match b.split_first() {
                Some((&JSONB_VERSION, rest)) => Datum::Json(normalize_jsonb(utf8(rest)?)?),
                Some((v, _)) => {
                    return Err(TypeError::InvalidBinary(format!(
                        "unsupported jsonb version number {v}"
                    )))
                }
                None => return Err(bad()),
            },
            SqlType::Bytea => Datum::Bytea(b.to_vec()),
            SqlType::Date => {
                let pg = i32::from_be_bytes(fixed(4)?.try_into().expect("4"));
                Datum::Date(match pg {
                    DATE_NEG_INFINITY | DATE_POS_INFINITY => pg,
                    _ => pg
                        .checked_add(PG_EPOCH_DAYS)
                        .filter(|d| date_in_range(*d))
                        .ok_or_else(|| TypeError::datetime_overflow("date out of range"))?,
                })
            }
            SqlType::Time => {
                let us = i64::from_be_bytes(fixed(8)?.try_into().expect("8"));
                if !(0..=super::datetime::USECS_PER_DAY).contains(&us) {
                    return Err(TypeError::datetime_overflow("time out of range"));
                }
                Datum::Time(us)
            }
            SqlType::Timestamp | SqlType::TimestampTz => {
                let pg = i64::from_be_bytes(fixed(8)?.try_into().expect("8"));
                let us = match pg {
                    TS_NEG_INFINITY | TS_POS_INFINITY => pg,
                    _ => pg
                        .checked_add(PG_EPOCH_USECS)
                        .filter(|u| timestamp_in_range(*u))
                        .ok_or_else(|| TypeError::datetime_overflow("timestamp out of range"))?,
                };
                if *ty == SqlType::Timestamp {
                    Datum::Timestamp(us)
                } else {
                    Datum::TimestampTz(us)
                }
            }
            SqlType::Interval => {
                let b = fixed(16)?;
                Datum::Interval {
                    micros: i64::from_be_bytes(b[..8].try_into().expect("8")),
                    days: i32::from_be_bytes(b[8..12].try_into().expect("4")),
                    months: i32::from_be_bytes(b[12..].try_into().expect("4")),
                }
            }
            SqlType::Uuid => Datum::Uuid(fixed(16)?.try_into().expect("16")),
        })
    }
}

/// Whether the datum's variant is the one `ty` stores (no conversion needed).
pub(crate) fn variant_fits(d: &Datum, ty: &SqlType) -> bool {
    matches!(
        (d, ty),
        (Datum::Bool(_), SqlType::Bool)
            | (Datum::Int2(_), SqlType::Int2)
            | (Datum::Int4(_), SqlType::Int4)
            | (Datum::Int8(_), SqlType::Int8)
            | (Datum::Float4(_), SqlType::Float4)
            | (Datum::Float8(_), SqlType::Float8)
            | (Datum::Numeric(_), SqlType::Numeric { .. })
            | (
                Datum::Text(_),
                SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_)
            )
            | (Datum::Json(_), SqlType::Json | SqlType::Jsonb)
            | (Datum::Bytea(_), SqlType::Bytea)
            | (Datum::Date(_), SqlType::Date)
            | (Datum::Time(_), SqlType::Time)
            | (Datum::Timestamp(_), SqlType::Timestamp)
            | (Datum::TimestampTz(_), SqlType::TimestampTz)
            | (Datum::Interval { .. }, SqlType::Interval)
            | (Datum::Uuid(_), SqlType::Uuid)
    )
}

fn utf8(b: &[u8]) -> Result<&str, TypeError> {
    std::str::from_utf8(b).map_err(|e| {
        let at = e.valid_up_to();
        TypeError::InvalidEncoding(format!(
            "invalid byte sequence for encoding \"UTF8\": 0x{:02x}",
            b[at]
        ))
    })
}

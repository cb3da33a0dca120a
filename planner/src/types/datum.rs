//! [`Datum`], one SQL value: assignment casts ([`Datum::coerce`]) and the SQL total
//! order ([`Datum::cmp_sql`]).
//!
//! Assignment casts follow PostgreSQL's assignment-cast table, with one deliberate
//! widening: a `Datum::Text` converts to any type through its text input function,
//! because string literals reach us as `Text` (PostgreSQL types them `unknown`).
//!
//! | to \ from        | what is accepted                                              |
//! |------------------|---------------------------------------------------------------|
//! | int2/int4/int8   | any integer (22003 on overflow), float (round half even, like PG's `rint`), numeric (round half away from zero), text |
//! | float4/float8    | integers, floats (22003 on float4 overflow), numeric, text    |
//! | numeric(p,s)     | integers, floats (via 15/6 significant digits, like PG), numeric; rounded to s, 22003 `numeric field overflow` beyond p |
//! | text/varchar/char| any value (its text output; booleans as `true`/`false`); varchar(n)/char(n) 22001 when longer unless the excess is spaces; char(n) blank-pads |
//! | bool             | bool, text                                                    |
//! | date             | date, timestamp, timestamptz (UTC date), text                 |
//! | time             | time, timestamp, timestamptz (UTC time), interval, text       |
//! | timestamp(tz)    | timestamp, timestamptz (UTC), date, text                      |
//! | interval         | interval, time, text                                          |
//! | bytea, uuid      | same type, text                                               |
//! | json/jsonb       | json, text (validated; jsonb normalized)                      |
//!
//! Anything else is 42804 (`TypeError::Mismatch`, name the column with
//! `TypeError::with_column`).
//!
//! Order ([`Datum::cmp_sql`]): NULL sorts after every value (PostgreSQL's default for
//! ascending order) and equals NULL; numbers compare numerically across int, float and
//! numeric (floats: `-0 = 0`, NaN above everything, as in PG); text and json bytewise
//! (C collation); date/timestamp/timestamptz on one time line (session zone UTC);
//! intervals by PG's 30-day-month span, then by (months, days, µs) so that distinct
//! field values never compare equal (PostgreSQL treats `1 mon` = `30 days`). Values of
//! unrelated types order by a fixed type rank, which only keeps the order total.

use std::cmp::Ordering;

use rust_decimal::Decimal;

use super::datetime::{
    date_in_range, date_to_timestamp, timestamp_in_range, timestamp_to_date, TS_NEG_INFINITY,
    TS_POS_INFINITY, USECS_PER_DAY,
};
use super::interval::interval_span;
use super::numeric::{apply_typmod, decimal_from_float, decimal_to_f64, decimal_to_int};
use super::{SqlType, TypeError};

/// One SQL value.
#[derive(Clone, Debug, PartialEq)]
pub enum Datum {
    Null,
    Bool(bool),
    Int2(i16),
    Int4(i32),
    Int8(i64),
    Float4(f32),
    Float8(f64),
    Numeric(Decimal),
    /// text, varchar and char (blank-padded as stored).
    Text(String),
    Bytea(Vec<u8>),
    /// Days since 1970-01-01; i32::MIN/MAX are -infinity/infinity.
    Date(i32),
    /// µs since midnight.
    Time(i64),
    /// µs since 1970-01-01 00:00:00; i64::MIN/MAX are -infinity/infinity.
    Timestamp(i64),
    /// µs since 1970-01-01 00:00:00 UTC; i64::MIN/MAX are -infinity/infinity.
    TimestampTz(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    Uuid([u8; 16]),
    /// json (input text) and jsonb (normalized text).
    Json(String),
}

impl Datum {
    pub fn is_null(&self) -> bool {
        matches!(self, Datum::Null)
    }

    /// The PostgreSQL name of the datum's own type, for messages (`integer`, `text`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Datum::Null => "unknown",
            Datum::Bool(_) => "boolean",
            Datum::Int2(_) => "smallint",
            Datum::Int4(_) => "integer",
            Datum::Int8(_) => "bigint",
            Datum::Float4(_) => "real",
            Datum::Float8(_) => "double precision",
            Datum::Numeric(_) => "numeric",
            Datum::Text(_) => "text",
            Datum::Bytea(_) => "bytea",
            Datum::Date(_) => "date",
            Datum::Time(_) => "time without time zone",
            Datum::Timestamp(_) => "timestamp without time zone",
            Datum::TimestampTz(_) => "timestamp with time zone",
            Datum::Interval { .. } => "interval",
            Datum::Uuid(_) => "uuid",
            Datum::Json(_) => "json",
        }
    }

    /// The unconstrained type a datum of this variant naturally has (None for NULL).
    pub fn natural_type(&self) -> Option<SqlType> {
        Some(match self {
            Datum::Null => return None,
            Datum::Bool(_) => SqlType::Bool,
            Datum::Int2(_) => SqlType::Int2,
            Datum::Int4(_) => SqlType::Int4,
            Datum::Int8(_) => SqlType::Int8,
            Datum::Float4(_) => SqlType::Float4,
            Datum::Float8(_) => SqlType::Float8,
            Datum::Numeric(_) => SqlType::Numeric {
                precision: None,
                scale: None,
            },
            Datum::Text(_) => SqlType::Text,
            Datum::Bytea(_) => SqlType::Bytea,
            Datum::Date(_) => SqlType::Date,
            Datum::Time(_) => SqlType::Time,
            Datum::Timestamp(_) => SqlType::Timestamp,
            Datum::TimestampTz(_) => SqlType::TimestampTz,
            Datum::Interval { .. } => SqlType::Interval,
            Datum::Uuid(_) => SqlType::Uuid,
            Datum::Json(_) => SqlType::Json,
        })
    }

    /// The value as i64 if it is an integer datum.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Datum::Int2(v) => Some(i64::from(*v)),
            Datum::Int4(v) => Some(i64::from(*v)),
            Datum::Int8(v) => Some(*v),
            _ => None,
        }
    }

    /// The value as f64 if it is numeric (integers, floats, numeric).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Datum::Int2(_) | Datum::Int4(_) | Datum::Int8(_) => self.as_i64().map(|v| v as f64),
            Datum::Float4(v) => Some(f64::from(*v)),
            Datum::Float8(v) => Some(*v),
            Datum::Numeric(d) => Some(decimal_to_f64(d)),
            _ => None,
        }
    }

    /// Assignment cast to a column type (see the module doc). NULL passes.
    pub fn coerce(self, ty: &SqlType) -> Result<Datum, TypeError> {
        if self.is_null() {
            return Ok(Datum::Null);
        }
        if let Datum::Text(s) = &self {
            if !ty.is_string() {
                return Datum::parse_text(s, ty);
            }
        }
        match ty {
            SqlType::Int2 => self
                .to_int(i64::from(i16::MIN), i64::from(i16::MAX), "smallint", ty)
                .map(|v| Datum::Int2(v as i16)),
            SqlType::Int4 => self
                .to_int(i64::from(i32::MIN), i64::from(i32::MAX), "integer", ty)
                .map(|v| Datum::Int4(v as i32)),
            SqlType::Int8 => self
                .to_int(i64::MIN, i64::MAX, "bigint", ty)
                .map(Datum::Int8),
            SqlType::Float4 => {
                let v = self
                    .as_f64()
                    .ok_or_else(|| TypeError::mismatch(ty, &self))?;
                float4_from_f64(v).map(Datum::Float4)
            }
            SqlType::Float8 => match self {
                Datum::Float4(v) => Ok(Datum::Float8(f64::from(v))),
                other => other
                    .as_f64()
                    .map(Datum::Float8)
                    .ok_or_else(|| TypeError::mismatch(ty, &other)),
            },
            SqlType::Numeric { precision, scale } => {
                let d = match &self {
                    Datum::Numeric(d) => *d,
                    Datum::Int2(_) | Datum::Int4(_) | Datum::Int8(_) => {
                        Decimal::from(self.as_i64().expect("integer datum"))
                    }
                    Datum::Float4(v) => decimal_from_float(f64::from(*v), 6)?,
                    Datum::Float8(v) => decimal_from_float(*v, 15)?,
                    _ => return Err(TypeError::mismatch(ty, &self)),
                };
                apply_typmod(d, *precision, *scale).map(Datum::Numeric)
            }
            SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
                let text = match self {
                    Datum::Text(s) => s,
                    Datum::Bool(b) => (if b { "true" } else { "false" }).to_string(),
                    other => {
                        let natural = other.natural_type().expect("non-null datum");
                        other.to_pg_text(&natural)
                    }
                };
                fit_string(text, ty).map(Datum::Text)
            }
            SqlType::Bool => match self {
                Datum::Bool(b) => Ok(Datum::Bool(b)),
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Date => match self {
                Datum::Date(d) => Ok(Datum::Date(d)),
                Datum::Timestamp(us) | Datum::TimestampTz(us) => {
                    let d = timestamp_to_date(us);
                    if d == i32::MIN || d == i32::MAX || date_in_range(d) {
                        Ok(Datum::Date(d))
                    } else {
                        Err(TypeError::datetime_overflow("date out of range"))
                    }
                }
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Time => match self {
                Datum::Time(t) => Ok(Datum::Time(t)),
                Datum::Timestamp(us) | Datum::TimestampTz(us) => {
                    if us == TS_NEG_INFINITY || us == TS_POS_INFINITY {
                        return Err(TypeError::datetime_overflow("timestamp out of range"));
                    }
                    Ok(Datum::Time(us.rem_euclid(USECS_PER_DAY)))
                }
                Datum::Interval { micros, .. } => Ok(Datum::Time(micros.rem_euclid(USECS_PER_DAY))),
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Timestamp | SqlType::TimestampTz => {
                let us = match self {
                    Datum::Timestamp(us) | Datum::TimestampTz(us) => us,
                    Datum::Date(d) => date_to_timestamp(d)?,
                    other => return Err(TypeError::mismatch(ty, &other)),
                };
                if us != TS_NEG_INFINITY && us != TS_POS_INFINITY && !timestamp_in_range(us) {
                    return Err(TypeError::datetime_overflow("timestamp out of range"));
                }
                Ok(if *ty == SqlType::Timestamp {
                    Datum::Timestamp(us)
                } else {
                    Datum::TimestampTz(us)
                })
            }
            SqlType::Interval => match self {
                Datum::Interval { .. } => Ok(self),
                Datum::Time(t) => Ok(Datum::Interval {
                    months: 0,
                    days: 0,
                    micros: t,
                }),
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Bytea => match self {
                Datum::Bytea(b) => Ok(Datum::Bytea(b)),
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Uuid => match self {
                Datum::Uuid(u) => Ok(Datum::Uuid(u)),
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Json => match self {
                Datum::Json(j) => Ok(Datum::Json(j)),
                other => Err(TypeError::mismatch(ty, &other)),
            },
            SqlType::Jsonb => match self {
                Datum::Json(j) => Datum::parse_text(&j, ty),
                other => Err(TypeError::mismatch(ty, &other)),
            },
        }
    }

    /// Integer assignment cast with PG's rounding and range errors.
    fn to_int(&self, min: i64, max: i64, name: &str, ty: &SqlType) -> Result<i64, TypeError> {
        let out_of_range = || TypeError::OutOfRange(format!("{name} out of range"));
        match self {
            Datum::Int2(_) | Datum::Int4(_) | Datum::Int8(_) => {
                let v = self.as_i64().expect("integer datum");
                (min..=max)
                    .contains(&v)
                    .then_some(v)
                    .ok_or_else(out_of_range)
            }
            Datum::Float4(_) | Datum::Float8(_) => {
                let v = self.as_f64().expect("float datum").round_ties_even();
                // i64 bounds as f64 round up to 2^63: compare on the open upper side.
                if v.is_nan() || v < min as f64 || v >= (max as f64) + 1.0 {
                    return Err(out_of_range());
                }
                let v = v as i64;
                (min..=max)
                    .contains(&v)
                    .then_some(v)
                    .ok_or_else(out_of_range)
            }
            Datum::Numeric(d) => decimal_to_int(d, min, max).ok_or_else(out_of_range),
            _ => Err(TypeError::mismatch(ty, self)),
        }
    }

    /// The SQL total order (see the module doc): NULLs last, numbers across types.
    pub fn cmp_sql(&self, other: &Datum) -> Ordering {
        use Datum as D;
        match (self, other) {
            (D::Null, D::Null) => Ordering::Equal,
            (D::Null, _) => Ordering::Greater,
            (_, D::Null) => Ordering::Less,
            (D::Bool(a), D::Bool(b)) => a.cmp(b),
            (D::Text(a), D::Text(b)) | (D::Json(a), D::Json(b)) => a.as_bytes().cmp(b.as_bytes()),
            (D::Bytea(a), D::Bytea(b)) => a.cmp(b),
            (D::Uuid(a), D::Uuid(b)) => a.cmp(b),
            (D::Time(a), D::Time(b)) => a.cmp(b),
            (
                D::Interval {
                    months: m1,
                    days: d1,
                    micros: u1,
                },
                D::Interval {
                    months: m2,
                    days: d2,
                    micros: u2,
                },
            ) => interval_span(*m1, *d1, *u1)
                .cmp(&interval_span(*m2, *d2, *u2))
                .then((m1, d1, u1).cmp(&(m2, d2, u2))),
            _ => {
                if let (Some(a), Some(b)) = (self.time_line(), other.time_line()) {
                    return a.cmp(&b);
                }
                if let Some(ord) = cmp_numbers(self, other) {
                    return ord;
                }
                self.type_rank().cmp(&other.type_rank())
            }
        }
    }

    /// Position on the shared date/timestamp/timestamptz time line, in µs.
    fn time_line(&self) -> Option<i64> {
        match self {
            Datum::Timestamp(us) | Datum::TimestampTz(us) => Some(*us),
            Datum::Date(d) => Some(match *d {
                i32::MIN => i64::MIN,
                i32::MAX => i64::MAX,
                d => i64::from(d) * USECS_PER_DAY,
            }),
            _ => None,
        }
    }

    fn type_rank(&self) -> u8 {
        match self {
            Datum::Bool(_) => 0,
            Datum::Int2(_)
            | Datum::Int4(_)
            | Datum::Int8(_)
            | Datum::Float4(_)
            | Datum::Float8(_)
            | Datum::Numeric(_) => 1,
            Datum::Text(_) => 2,
            Datum::Bytea(_) => 3,
            Datum::Date(_) | Datum::Timestamp(_) | Datum::TimestampTz(_) => 4,
            Datum::Time(_) => 5,
            Datum::Interval { .. } => 6,
            Datum::Uuid(_) => 7,
            Datum::Json(_) => 8,
            Datum::Null => 9,
        }
    }
}

/// Numeric comparison across integer, float and numeric datums; None if either side
/// is not a number.
fn cmp_numbers(a: &Datum, b: &Datum) -> Option<Ordering> {
    use Datum as D;
    let is_float = |d: &Datum| matches!(d, D::Float4(_) | D::Float8(_));
    if is_float(a) || is_float(b) {
        let (x, y) = (a.as_f64()?, b.as_f64()?);
        return Some(cmp_f64(x, y));
    }
    if let (Some(x), Some(y)) = (a.as_i64(), b.as_i64()) {
        return Some(x.cmp(&y));
    }
    let to_dec = |d: &Datum| match d {
        D::Numeric(v) => Some(*v),
        other => other.as_i64().map(Decimal::from),
    };
    Some(to_dec(a)?.cmp(&to_dec(b)?))
}

/// PostgreSQL float order: `-0 = 0`, NaN equal to NaN and above everything.
pub(crate) fn cmp_f64(x: f64, y: f64) -> Ordering {
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        (false, false) => x.partial_cmp(&y).expect("no NaN"),
    }
}

/// f64 to f32 with PG's float4 overflow/underflow errors (22003).
pub(crate) fn float4_from_f64(v: f64) -> Result<f32, TypeError> {
    let f = v as f32;
    if f.is_infinite() && v.is_finite() {
        return Err(TypeError::OutOfRange("value out of range: overflow".into()));
    }
    if f == 0.0 && v != 0.0 {
        return Err(TypeError::OutOfRange(
            "value out of range: underflow".into(),
        ));
    }
    Ok(f)
}

/// Fits a string to text/varchar(n)/char(n): 22001 when longer than n unless only
/// spaces are cut; char(n) is blank-padded to n.
pub(crate) fn fit_string(s: String, ty: &SqlType) -> Result<String, TypeError> {
    let (limit, pad) = match ty {
        SqlType::Varchar(Some(n)) => (*n as usize, false),
        SqlType::Char(Some(n)) => (*n as usize, true),
        _ => return Ok(s),
    };
    let len = s.chars().count();
    if len > limit {
        let cut = s
            .char_indices()
            .nth(limit)
            .map(|(i, _)| i)
            .expect("longer than limit");
        if !s[cut..].bytes().all(|b| b == b' ') {
            return Err(TypeError::StringTooLong { ty: ty.pg_name() });
        }
        let mut s = s;
        s.truncate(cut);
        return Ok(s);
    }
    if pad && len < limit {
        let mut s = s;
        s.extend(std::iter::repeat_n(' ', limit - len));
        return Ok(s);
    }
    Ok(s)
}

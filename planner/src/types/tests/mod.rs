//! Tests of the type system. Expected strings were checked against PostgreSQL 15
//! (`DateStyle ISO`, `IntervalStyle postgres`, `TimeZone UTC`).
//!
//! Random tests use a seeded xorshift generator: a failure names its seed and replays.

mod arrow;
mod binary;
mod coerce;
mod key;
mod row;
mod sqltype;
mod text;

use rust_decimal::Decimal;

use super::datetime::{DATE_END, DATE_MIN, TIMESTAMP_END, TIMESTAMP_MIN, USECS_PER_DAY};
use super::{Datum, SqlType};

/// Deterministic xorshift64 generator.
pub(super) struct Rng(u64);

impl Rng {
    pub(super) fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub(super) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// Uniform in `[lo, hi)`.
    pub(super) fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi as i128 - lo as i128) as u128;
        (lo as i128 + (u128::from(self.next()) % span) as i128) as i64
    }

    pub(super) fn chance(&mut self, one_in: u64) -> bool {
        self.next().is_multiple_of(one_in)
    }

    /// An i64 biased towards small magnitudes and the extremes.
    fn int(&mut self, min: i64, max: i64) -> i64 {
        match self.next() % 8 {
            0 => min,
            1 => max,
            2 | 3 => self.range(-100.max(min), 100.min(max) + 1),
            _ => self.range(min, max).max(min),
        }
    }

    fn string(&mut self) -> String {
        const ALPHABET: [&str; 9] = ["a", "b", "ab", " ", "é", "\0", "\"", "\\", "Z"];
        let len = self.next() % 6;
        (0..len)
            .map(|_| ALPHABET[(self.next() % ALPHABET.len() as u64) as usize])
            .collect()
    }
}

/// All column types, with modifiers worth testing.
pub(super) fn all_types() -> Vec<SqlType> {
    vec![
        SqlType::Int2,
        SqlType::Int4,
        SqlType::Int8,
        SqlType::Float4,
        SqlType::Float8,
        SqlType::Numeric {
            precision: None,
            scale: None,
        },
        SqlType::Numeric {
            precision: Some(12),
            scale: Some(2),
        },
        SqlType::Text,
        SqlType::Varchar(Some(5)),
        SqlType::Char(Some(3)),
        SqlType::Bool,
        SqlType::Date,
        SqlType::Time,
        SqlType::Timestamp,
        SqlType::TimestampTz,
        SqlType::Interval,
        SqlType::Bytea,
        SqlType::Uuid,
        SqlType::Json,
        SqlType::Jsonb,
    ]
}

/// A random non-NULL datum of column type `ty`, already coerced to it.
pub(super) fn random_datum(rng: &mut Rng, ty: &SqlType) -> Datum {
    let d = match ty {
        SqlType::Int2 => Datum::Int2(rng.int(i16::MIN.into(), i16::MAX.into()) as i16),
        SqlType::Int4 => Datum::Int4(rng.int(i32::MIN.into(), i32::MAX.into()) as i32),
        SqlType::Int8 => Datum::Int8(rng.int(i64::MIN, i64::MAX)),
        SqlType::Float4 => Datum::Float4(random_f64(rng) as f32),
        SqlType::Float8 => Datum::Float8(random_f64(rng)),
        SqlType::Numeric {
            precision: None, ..
        } => {
            let mantissa = ((u128::from(rng.next()) << 32) | u128::from(rng.next() >> 32))
                >> (rng.next() % 97);
            let scale = (rng.next() % 29) as u32;
            let mut d = Decimal::from_i128_with_scale(mantissa as i128, scale);
            d.set_sign_negative(rng.chance(2) && !d.is_zero());
            Datum::Numeric(d)
        }
        SqlType::Numeric {
            precision: Some(_), ..
        } => {
            let cents = rng.range(-99_999_999_999, 100_000_000_000);
            Datum::Numeric(Decimal::new(cents, 2))
        }
        SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_) => {
            let mut s = rng.string();
            if !matches!(ty, SqlType::Text) {
                s = s.chars().take(3).collect::<String>().trim_end().to_string();
            }
            Datum::Text(s)
        }
        SqlType::Bool => Datum::Bool(rng.chance(2)),
        SqlType::Date => Datum::Date(match rng.next() % 10 {
            0 => i32::MIN,
            1 => i32::MAX,
            2 => DATE_MIN,
            3 => DATE_END - 1,
            _ => rng.range(-800_000, 3_000_000) as i32,
        }),
        SqlType::Time => Datum::Time(rng.range(0, USECS_PER_DAY + 1)),
        SqlType::Timestamp | SqlType::TimestampTz => {
            let us = match rng.next() % 10 {
                0 => i64::MIN,
                1 => i64::MAX,
                2 => TIMESTAMP_MIN,
                3 => TIMESTAMP_END - 1,
                4 => rng.range(TIMESTAMP_MIN, TIMESTAMP_END),
                _ => rng.range(-100_000 * USECS_PER_DAY, 100_000 * USECS_PER_DAY),
            };
            if *ty == SqlType::Timestamp {
                Datum::Timestamp(us)
            } else {
                Datum::TimestampTz(us)
            }
        }
        SqlType::Interval => Datum::Interval {
            months: rng.int(i32::MIN.into(), i32::MAX.into()) as i32,
            days: rng.int(i32::MIN.into(), i32::MAX.into()) as i32,
            micros: if rng.chance(5) {
                rng.int(i64::MIN, i64::MAX)
            } else {
                rng.range(-10 * USECS_PER_DAY, 10 * USECS_PER_DAY)
            },
        },
        SqlType::Bytea => Datum::Bytea(rng.string().into_bytes()),
        SqlType::Uuid => {
            let mut u = [0u8; 16];
            u[..8].copy_from_slice(&rng.next().to_be_bytes());
            u[8..].copy_from_slice(&rng.next().to_be_bytes());
            Datum::Uuid(u)
        }
        SqlType::Json | SqlType::Jsonb => {
            // jsonb rejects \u0000.
            let s = serde_json::to_string(&rng.string().replace('\0', "")).expect("string to json");
            let n = rng.range(-1000, 1000);
            let text = match rng.next() % 4 {
                0 => format!("{{\"k{n}\": {s}, \"a\": [1, 2.50, null]}}"),
                1 => format!("[{n}, {s}, true]"),
                2 => s,
                _ => format!("{n}"),
            };
            Datum::Json(text)
        }
    };
    d.coerce(ty).expect("random datum fits its type")
}

fn random_f64(rng: &mut Rng) -> f64 {
    match rng.next() % 12 {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        3 => 0.0,
        4 => -0.0,
        5 | 6 => rng.range(-1000, 1000) as f64 / 8.0,
        _ => loop {
            let v = f64::from_bits(rng.next());
            if v.is_finite() {
                break v;
            }
        },
    }
}

/// Equality for tests: floats by bits (NaN = NaN, `-0` ≠ `0`), numerics by value.
pub(super) fn same(a: &Datum, b: &Datum) -> bool {
    match (a, b) {
        (Datum::Float4(x), Datum::Float4(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        (Datum::Float8(x), Datum::Float8(y)) => {
            x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan())
        }
        _ => a == b,
    }
}

pub(super) fn text(s: &str, ty: &SqlType) -> Datum {
    Datum::parse_text(s, ty).unwrap_or_else(|e| panic!("parse {s:?} as {ty}: {e}"))
}

pub(super) fn numeric(p: u8, s: u8) -> SqlType {
    SqlType::Numeric {
        precision: Some(p),
        scale: Some(s),
    }
}

pub(super) const NUMERIC: SqlType = SqlType::Numeric {
    precision: None,
    scale: None,
};

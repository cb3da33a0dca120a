//! Row value encoding: how a table row's column values are stored in a KV value.
//!
//! ```text
//! row    = version(0x01) datum*
//! datum  = tag payload
//! ```
//!
//! | tag | datum       | payload                                              |
//! |-----|-------------|------------------------------------------------------|
//! | 0   | NULL        | —                                                    |
//! | 1/2 | false/true  | —                                                    |
//! | 3   | int2        | zigzag varint                                        |
//! | 4   | int4        | zigzag varint                                        |
//! | 5   | int8        | zigzag varint                                        |
//! | 6   | float4      | 4 bytes little-endian IEEE                           |
//! | 7   | float8      | 8 bytes little-endian IEEE                           |
//! | 8   | numeric     | byte: scale, 0x80 set if negative; varint mantissa   |
//! | 9   | text        | varint length, UTF-8                                 |
//! | 10  | bytea       | varint length, bytes                                 |
//! | 11  | date        | zigzag varint days                                   |
//! | 12  | time        | zigzag varint µs                                     |
//! | 13  | timestamp   | zigzag varint µs                                     |
//! | 14  | timestamptz | zigzag varint µs                                     |
//! | 15  | interval    | zigzag varints months, days, µs                      |
//! | 16  | uuid        | 16 bytes                                             |
//! | 17  | json        | varint length, UTF-8                                 |
//!
//! Design: the encoding is self-describing (a tag per value), so a row decodes without
//! the schema, and it is positional, so `ALTER TABLE ADD COLUMN` needs no rewrite: a row
//! written before the column existed simply decodes to fewer datums and the caller fills
//! the missing trailing columns with their defaults. Small integers and timestamps near
//! the epoch take few bytes thanks to zigzag varints. The leading version byte lets the
//! format evolve; decoding rejects unknown versions and tags (XX001).
//!
//! Caveat: dropping or reordering columns is the catalog's job (it must keep stored
//! positions stable); nothing here knows column names.

use rust_decimal::Decimal;

use super::{Datum, TypeError};

/// The current row format version (first byte of every encoded row).
pub const ROW_FORMAT_VERSION: u8 = 1;

const TAG_NULL: u8 = 0;
const TAG_FALSE: u8 = 1;
const TAG_TRUE: u8 = 2;
const TAG_INT2: u8 = 3;
const TAG_INT4: u8 = 4;
const TAG_INT8: u8 = 5;
const TAG_FLOAT4: u8 = 6;
const TAG_FLOAT8: u8 = 7;
const TAG_NUMERIC: u8 = 8;
const TAG_TEXT: u8 = 9;
const TAG_BYTEA: u8 = 10;
const TAG_DATE: u8 = 11;
const TAG_TIME: u8 = 12;
const TAG_TIMESTAMP: u8 = 13;
const TAG_TIMESTAMPTZ: u8 = 14;
const TAG_INTERVAL: u8 = 15;
const TAG_UUID: u8 = 16;
const TAG_JSON: u8 = 17;

/// Sign bit in the numeric scale byte.
const NUMERIC_NEGATIVE: u8 = 0x80;

/// Encodes a row's values in column order.
pub fn encode_row(values: &[Datum]) -> Vec<u8> {
    let mut out = Vec::with_capacity(1 + values.len() * 4);
    out.push(ROW_FORMAT_VERSION);
    for v in values {
        encode_datum(&mut out, v);
    }
    out
}

fn encode_datum(out: &mut Vec<u8>, v: &Datum) {
    match v {
        Datum::Null => out.push(TAG_NULL),
        Datum::Bool(false) => out.push(TAG_FALSE),
        Datum::Bool(true) => out.push(TAG_TRUE),
        Datum::Int2(i) => tagged_signed(out, TAG_INT2, i64::from(*i)),
        Datum::Int4(i) => tagged_signed(out, TAG_INT4, i64::from(*i)),
        Datum::Int8(i) => tagged_signed(out, TAG_INT8, *i),
        Datum::Float4(f) => {
            out.push(TAG_FLOAT4);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Datum::Float8(f) => {
            out.push(TAG_FLOAT8);
            out.extend_from_slice(&f.to_le_bytes());
        }
        Datum::Numeric(d) => {
            out.push(TAG_NUMERIC);
            let sign = if d.is_sign_negative() {
                NUMERIC_NEGATIVE
            } else {
                0
            };
            out.push(d.scale() as u8 | sign);
            put_varint(out, d.mantissa().unsigned_abs());
        }
        Datum::Text(s) => tagged_bytes(out, TAG_TEXT, s.as_bytes()),
        Datum::Bytea(b) => tagged_bytes(out, TAG_BYTEA, b),
        Datum::Date(d) => tagged_signed(out, TAG_DATE, i64::from(*d)),
        Datum::Time(t) => tagged_signed(out, TAG_TIME, *t),
        Datum::Timestamp(t) => tagged_signed(out, TAG_TIMESTAMP, *t),
        Datum::TimestampTz(t) => tagged_signed(out, TAG_TIMESTAMPTZ, *t),
        Datum::Interval {
            months,
            days,
            micros,
        } => {
            out.push(TAG_INTERVAL);
            put_varint(out, zigzag(i64::from(*months)).into());
            put_varint(out, zigzag(i64::from(*days)).into());
            put_varint(out, zigzag(*micros).into());
        }
        Datum::Uuid(u) => {
            out.push(TAG_UUID);
            out.extend_from_slice(u);
        }
        Datum::Json(s) => tagged_bytes(out, TAG_JSON, s.as_bytes()),
    }
}

fn tagged_signed(out: &mut Vec<u8>, tag: u8, v: i64) {
    out.push(tag);
    put_varint(out, zigzag(v).into());
}

fn tagged_bytes(out: &mut Vec<u8>, tag: u8, b: &[u8]) {
    out.push(tag);
    put_varint(out, b.len() as u128);
    out.extend_from_slice(b);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// LEB128: 7 bits per byte, least significant first, high bit = more follows.
fn put_varint(out: &mut Vec<u8>, mut v: u128) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes a row written by [`encode_row`]; the datums come back in stored order.
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Datum>, TypeError> {
    let (&version, body) = bytes
        .split_first()
        .ok_or_else(|| TypeError::corrupt("empty row"))?;
    if version != ROW_FORMAT_VERSION {
        return Err(TypeError::corrupt(format!(
            "unknown row format version {version}"
        )));
    }
    let mut r = Reader { b: body, i: 0 };
    let mut out = Vec::new();
    while r.i < r.b.len() {
        out.push(r.datum()?);
    }
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TypeError> {
        let end = self
            .i
            .checked_add(n)
            .filter(|&e| e <= self.b.len())
            .ok_or_else(|| TypeError::corrupt("truncated row"))?;
        let s = &self.b[self.i..end];
        self.i = end;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, TypeError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self, max_bits: u32) -> Result<u128, TypeError> {
        let mut v: u128 = 0;
        let mut shift = 0;
        loop {
            let b = self.byte()?;
            if shift >= max_bits || (shift > 0 && u128::from(b & 0x7F) >> (max_bits - shift) != 0) {
                return Err(TypeError::corrupt("varint too long"));
            }
            v |= u128::from(b & 0x7F) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
            shift += 7;
        }
    }

    fn signed(&mut self) -> Result<i64, TypeError> {
        Ok(unzigzag(self.varint(64)? as u64))
    }

    fn narrow<T: TryFrom<i64>>(&mut self) -> Result<T, TypeError> {
        T::try_from(self.signed()?).map_err(|_| TypeError::corrupt("integer out of range"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], TypeError> {
        let len = usize::try_from(self.varint(64)?).map_err(|_| TypeError::corrupt("length"))?;
        self.take(len)
    }

    fn string(&mut self) -> Result<String, TypeError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| TypeError::corrupt("invalid UTF-8 in row"))
    }

    fn datum(&mut self) -> Result<Datum, TypeError> {
        let tag = self.byte()?;
        Ok(match tag {
            TAG_NULL => Datum::Null,
            TAG_FALSE => Datum::Bool(false),
            TAG_TRUE => Datum::Bool(true),
            TAG_INT2 => Datum::Int2(self.narrow()?),
            TAG_INT4 => Datum::Int4(self.narrow()?),
            TAG_INT8 => Datum::Int8(self.signed()?),
            TAG_FLOAT4 => Datum::Float4(f32::from_le_bytes(
                self.take(4)?.try_into().expect("4 bytes"),
            )),
            TAG_FLOAT8 => Datum::Float8(f64::from_le_bytes(
                self.take(8)?.try_into().expect("8 bytes"),
            )),
            TAG_NUMERIC => {
                let head = self.byte()?;
                let scale = u32::from(head & !NUMERIC_NEGATIVE);
                let mantissa = self.varint(96)?;
                let signed = if head & NUMERIC_NEGATIVE != 0 {
                    -(mantissa as i128)
                } else {
                    mantissa as i128
                };
                let d = Decimal::try_from_i128_with_scale(signed, scale)
                    .map_err(|_| TypeError::corrupt("numeric out of range"))?;
                Datum::Numeric(d)
            }
            TAG_TEXT => Datum::Text(self.string()?),
            TAG_BYTEA => Datum::Bytea(self.bytes()?.to_vec()),
            TAG_DATE => Datum::Date(self.narrow()?),
            TAG_TIME => Datum::Time(self.signed()?),
            TAG_TIMESTAMP => Datum::Timestamp(self.signed()?),
            TAG_TIMESTAMPTZ => Datum::TimestampTz(self.signed()?),
            TAG_INTERVAL => Datum::Interval {
                months: self.narrow()?,
                days: self.narrow()?,
                micros: self.signed()?,
            },
            TAG_UUID => Datum::Uuid(self.take(16)?.try_into().expect("16 bytes")),
            TAG_JSON => Datum::Json(self.string()?),
            other => return Err(TypeError::corrupt(format!("unknown datum tag {other}"))),
        })
    }
}

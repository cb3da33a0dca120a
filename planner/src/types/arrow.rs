//! Arrow conversion for DataFusion: datums to arrays of a column's
//! [`SqlType::arrow_type`], and any Arrow value DataFusion returns back to a datum.
//!
//! Writing ([`datums_to_array`], [`datum_to_scalar`]) produces exactly
//! `ty.arrow_type()`: uuid, json and jsonb travel as their canonical text, intervals as
//! MonthDayNano, numerics as `Decimal128(p, s)` (unconstrained: `(38, 10)`).
//!
//! Reading ([`array_datum`], [`scalar_to_datum`]) accepts every type DataFusion commonly
//! produces and returns the datum variant of [`SqlType::from_arrow`] of the array's
//! type, so `array_datum(a, i)?.to_pg_text(&SqlType::from_arrow(a.data_type()))` is the
//! PostgreSQL text of the value:
//!
//! | Arrow                                   | Datum                              |
//! |-----------------------------------------|------------------------------------|
//! | Int8, Int16, UInt8 / Int32, UInt16 / Int64, UInt32 | Int2 / Int4 / Int8      |
//! | UInt64                                  | Numeric                            |
//! | Float16, Float32 / Float64              | Float4 / Float8                    |
//! | Decimal32/64/128/256                    | Numeric                            |
//! | Utf8, LargeUtf8, Utf8View               | Text                               |
//! | Binary, LargeBinary, BinaryView, FixedSizeBinary | Bytea                     |
//! | Boolean                                 | Bool                               |
//! | Date32, Date64                          | Date                               |
//! | Time32, Time64 (any unit)               | Time (µs)                          |
//! | Timestamp (any unit), no tz / with tz   | Timestamp / TimestampTz (µs, UTC)  |
//! | Interval (any), Duration (any)          | Interval                           |
//! | Null                                    | Null                               |
//! | Dictionary, RunEndEncoded               | the value's datum                  |
//! | List, LargeList, FixedSizeList, ListView| Text in PG array syntax `{1,2,NULL}` |
//! | anything else (Struct, Map, ...)        | Text from Arrow's display          |
//!
//! Caveats:
//! - Numerics beyond rust_decimal (28 fractional digits, 96-bit mantissa) lose
//!   fractional digits (rounded) and fail with 22003 if the integer part does not fit.
//!   An unconstrained numeric keeps only 10 fractional digits inside DataFusion.
//! - `Decimal128(38, 10)` reads back as unconstrained `numeric` (it is how unconstrained
//!   numerics travel), so a declared `numeric(38,10)` result prints normalized.
//! - Nanosecond precision is truncated to µs.

use std::borrow::Cow;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Date32Array, Decimal128Array,
    Float32Array, Float64Array, Int16Array, Int32Array, Int64Array, IntervalMonthDayNanoArray,
    StringArray, Time64MicrosecondArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::*;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::scalar::ScalarValue;
use rust_decimal::{Decimal, RoundingStrategy};

use super::binary::variant_fits;
use super::datetime::USECS_PER_DAY;
use super::numeric::NUMERIC_MAX_PRECISION;
use super::numeric::{fix_zero, NUMERIC_MAX_SCALE};
use super::sqltype::UNCONSTRAINED_ARROW_SCALE;
use super::{Datum, SqlType, TypeError};

/// Largest mantissa a `Decimal` can hold, 2^96 - 1.
const MAX_MANTISSA: u128 = (1u128 << 96) - 1;
const ARROW_UTC: &str = "+00:00";

/// One array of `ty.arrow_type()` from datums of column type `ty` (datums of another
/// variant are [`Datum::coerce`]d first).
pub fn datums_to_array(values: &[Datum], ty: &SqlType) -> Result<ArrayRef, TypeError> {
    let fitted: Vec<Cow<'_, Datum>> = values
        .iter()
        .map(|d| {
            if d.is_null() || variant_fits(d, ty) {
                Ok(Cow::Borrowed(d))
            } else {
                d.clone().coerce(ty).map(Cow::Owned)
            }
        })
        .collect::<Result<_, _>>()?;
    let iter = fitted.iter().map(|d| d.as_ref());
    let array: ArrayRef = match ty {
        SqlType::Int2 => Arc::new(Int16Array::from_iter(iter.map(|d| match d {
            Datum::Int2(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Int4 => Arc::new(Int32Array::from_iter(iter.map(|d| match d {
            Datum::Int4(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Int8 => Arc::new(Int64Array::from_iter(iter.map(|d| match d {
            Datum::Int8(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Float4 => Arc::new(Float32Array::from_iter(iter.map(|d| match d {
            Datum::Float4(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Float8 => Arc::new(Float64Array::from_iter(iter.map(|d| match d {
            Datum::Float8(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Numeric { .. } => {
            let (p, s) = ty.arrow_decimal_params();
            let values: Vec<Option<i128>> = iter
                .map(|d| match d {
                    Datum::Numeric(n) => decimal_to_arrow(n, p, s).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<_, _>>()?;
            let array = Decimal128Array::from(values)
                .with_precision_and_scale(p, s)
                .map_err(|e| TypeError::Unsupported(e.to_string()))?;
            Arc::new(array)
        }
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::Char(_)
        | SqlType::Json
        | SqlType::Jsonb
        | SqlType::Uuid => Arc::new(StringArray::from_iter(iter.map(|d| match d {
            Datum::Text(s) | Datum::Json(s) => Some(Cow::Borrowed(s.as_str())),
            Datum::Uuid(_) => Some(Cow::Owned(d.to_pg_text(ty))),
            _ => None,
        }))),
        SqlType::Bool => Arc::new(BooleanArray::from_iter(iter.map(|d| match d {
            Datum::Bool(b) => Some(*b),
            _ => None,
        }))),
        SqlType::Date => Arc::new(Date32Array::from_iter(iter.map(|d| match d {
            Datum::Date(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Time => Arc::new(Time64MicrosecondArray::from_iter(iter.map(|d| match d {
            Datum::Time(v) => Some(*v),
            _ => None,
        }))),
        SqlType::Timestamp | SqlType::TimestampTz => {
            let array = TimestampMicrosecondArray::from_iter(iter.map(|d| match d {
                Datum::Timestamp(v) | Datum::TimestampTz(v) => Some(*v),
                _ => None,
            }));
            if *ty == SqlType::TimestampTz {
                Arc::new(array.with_timezone(ARROW_UTC))
            } else {
                Arc::new(array)
            }
        }
        SqlType::Interval => {
            let values: Vec<Option<IntervalMonthDayNano>> = iter
                .map(|d| match d {
                    Datum::Interval {
                        months,
                        days,
                        micros,
                    } => interval_to_arrow(*months, *days, *micros).map(Some),
                    _ => Ok(None),
                })
                .collect::<Result<_, _>>()?;
            Arc::new(IntervalMonthDayNanoArray::from(values))
        }
        SqlType::Bytea => Arc::new(BinaryArray::from_iter(iter.map(|d| match d {
            Datum::Bytea(b) => Some(b.as_slice()),
            _ => None,
        }))),
    };
    Ok(array)
}

/// A numeric as the i128 of an Arrow `Decimal128(p, s)`: rounded half away from zero
/// to `s` digits; 22003 if it needs more than `p` digits.
fn decimal_to_arrow(d: &Decimal, p: u8, s: i8) -> Result<i128, TypeError> {
    let overflow = || TypeError::OutOfRange("numeric field overflow".into());
    let s = u32::try_from(s).map_err(|_| overflow())?;
    let r = d.round_dp_with_strategy(
        s.min(NUMERIC_MAX_SCALE),
        RoundingStrategy::MidpointAwayFromZero,
    );
    let shift = s.checked_sub(r.scale()).ok_or_else(overflow)?;
    let v = 10i128
        .checked_pow(shift)
        .and_then(|f| r.mantissa().checked_mul(f))
        .ok_or_else(overflow)?;
    let limit = 10u128.checked_pow(u32::from(p)).unwrap_or(u128::MAX);
    if v.unsigned_abs() >= limit {
        return Err(overflow());
    }
    Ok(v)
}

fn interval_to_arrow(
    months: i32,
    days: i32,
    micros: i64,
) -> Result<IntervalMonthDayNano, TypeError> {
    let nanos = micros
        .checked_mul(1000)
        .ok_or_else(|| TypeError::OutOfRange("interval out of range".into()))?;
    Ok(IntervalMonthDayNano::new(months, days, nanos))
}

/// The datum at `row` of any Arrow array (see the table in the module doc).
pub fn array_datum(array: &ArrayRef, row: usize) -> Result<Datum, TypeError> {
    if row >= array.len() {
        return Err(TypeError::Unsupported(format!(
            "row {row} out of bounds of an array of {} values",
            array.len()
        )));
    }
    if *array.data_type() == DataType::Null || array.is_null(row) {
        return Ok(Datum::Null);
    }
    let a = array.as_ref();
    let ts = |v: i64, unit: &TimeUnit| -> Result<i64, TypeError> {
        to_micros(v, unit).ok_or_else(|| TypeError::datetime_overflow("timestamp out of range"))
    };
    Ok(match array.data_type() {
        DataType::Boolean => Datum::Bool(a.as_boolean().value(row)),
        DataType::Int8 => Datum::Int2(i16::from(a.as_primitive::<Int8Type>().value(row))),
        DataType::Int16 => Datum::Int2(a.as_primitive::<Int16Type>().value(row)),
        DataType::Int32 => Datum::Int4(a.as_primitive::<Int32Type>().value(row)),
        DataType::Int64 => Datum::Int8(a.as_primitive::<Int64Type>().value(row)),
        DataType::UInt8 => Datum::Int2(i16::from(a.as_primitive::<UInt8Type>().value(row))),
        DataType::UInt16 => Datum::Int4(i32::from(a.as_primitive::<UInt16Type>().value(row))),
        DataType::UInt32 => Datum::Int8(i64::from(a.as_primitive::<UInt32Type>().value(row))),
        DataType::UInt64 => {
            Datum::Numeric(Decimal::from(a.as_primitive::<UInt64Type>().value(row)))
        }
        DataType::Float16 => Datum::Float4(a.as_primitive::<Float16Type>().value(row).to_f32()),
        DataType::Float32 => Datum::Float4(a.as_primitive::<Float32Type>().value(row)),
        DataType::Float64 => Datum::Float8(a.as_primitive::<Float64Type>().value(row)),
        DataType::Decimal32(_, s) => {
            decimal_datum(i128::from(a.as_primitive::<Decimal32Type>().value(row)), *s)?
        }
        DataType::Decimal64(_, s) => {
            decimal_datum(i128::from(a.as_primitive::<Decimal64Type>().value(row)), *s)?
        }
        // How unconstrained numerics travel: their scale is lost, print them normalized.
        DataType::Decimal128(NUMERIC_MAX_PRECISION, UNCONSTRAINED_ARROW_SCALE) => {
            match decimal_datum(
                a.as_primitive::<Decimal128Type>().value(row),
                UNCONSTRAINED_ARROW_SCALE,
            )? {
                Datum::Numeric(d) => Datum::Numeric(d.normalize()),
                other => other,
            }
        }
        DataType::Decimal128(_, s) => {
            decimal_datum(a.as_primitive::<Decimal128Type>().value(row), *s)?
        }
        DataType::Decimal256(_, s) => {
            decimal256_datum(a.as_primitive::<Decimal256Type>().value(row), *s)?
        }
        DataType::Utf8 => Datum::Text(a.as_string::<i32>().value(row).to_string()),
        DataType::LargeUtf8 => Datum::Text(a.as_string::<i64>().value(row).to_string()),
        DataType::Utf8View => Datum::Text(a.as_string_view().value(row).to_string()),
        DataType::Binary => Datum::Bytea(a.as_binary::<i32>().value(row).to_vec()),
        DataType::LargeBinary => Datum::Bytea(a.as_binary::<i64>().value(row).to_vec()),
        DataType::BinaryView => Datum::Bytea(a.as_binary_view().value(row).to_vec()),
        DataType::FixedSizeBinary(_) => Datum::Bytea(a.as_fixed_size_binary().value(row).to_vec()),
        DataType::Date32 => Datum::Date(a.as_primitive::<Date32Type>().value(row)),
        DataType::Date64 => {
            let ms = a.as_primitive::<Date64Type>().value(row);
            let days = ms.div_euclid(USECS_PER_DAY / 1000);
            Datum::Date(
                i32::try_from(days)
                    .map_err(|_| TypeError::datetime_overflow("date out of range"))?,
            )
        }
        DataType::Time32(TimeUnit::Second) => {
            Datum::Time(i64::from(a.as_primitive::<Time32SecondType>().value(row)) * 1_000_000)
        }
        DataType::Time32(_) => {
            Datum::Time(i64::from(a.as_primitive::<Time32MillisecondType>().value(row)) * 1000)
        }
        DataType::Time64(TimeUnit::Nanosecond) => Datum::Time(
            a.as_primitive::<Time64NanosecondType>()
                .value(row)
                .div_euclid(1000),
        ),
        DataType::Time64(_) => Datum::Time(a.as_primitive::<Time64MicrosecondType>().value(row)),
        DataType::Timestamp(unit, tz) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<TimestampSecondType>().value(row),
                TimeUnit::Millisecond => a.as_primitive::<TimestampMillisecondType>().value(row),
                TimeUnit::Microsecond => a.as_primitive::<TimestampMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<TimestampNanosecondType>().value(row),
            };
            let us = ts(v, unit)?;
            if tz.is_some() {
                Datum::TimestampTz(us)
            } else {
                Datum::Timestamp(us)
            }
        }
        DataType::Duration(unit) => {
            let v = match unit {
                TimeUnit::Second => a.as_primitive::<DurationSecondType>().value(row),
                TimeUnit::Millisecond => a.as_primitive::<DurationMillisecondType>().value(row),
                TimeUnit::Microsecond => a.as_primitive::<DurationMicrosecondType>().value(row),
                TimeUnit::Nanosecond => a.as_primitive::<DurationNanosecondType>().value(row),
            };
            Datum::Interval {
                months: 0,
                days: 0,
                micros: to_micros(v, unit)
                    .ok_or_else(|| TypeError::datetime_overflow("interval out of range"))?,
            }
        }
        DataType::Interval(IntervalUnit::YearMonth) => Datum::Interval {
            months: a.as_primitive::<IntervalYearMonthType>().value(row),
            days: 0,
            micros: 0,
        },
        DataType::Interval(IntervalUnit::DayTime) => {
            let v = a.as_primitive::<IntervalDayTimeType>().value(row);
            Datum::Interval {
                months: 0,
                days: v.days,
                micros: i64::from(v.milliseconds) * 1000,
            }
        }
        DataType::Interval(IntervalUnit::MonthDayNano) => {
            let v = a.as_primitive::<IntervalMonthDayNanoType>().value(row);
            Datum::Interval {
                months: v.months,
                days: v.days,
                micros: v.nanoseconds / 1000,
            }
        }
        DataType::Dictionary(..) => return dictionary_datum(a, row),
        DataType::RunEndEncoded(..) => return run_end_datum(a, row),
        DataType::List(_)
        | DataType::LargeList(_)
        | DataType::FixedSizeList(..)
        | DataType::ListView(_)
        | DataType::LargeListView(_) => {
            let items = list_items(a, row).expect("a list type");
            Datum::Text(pg_array_text(&items)?)
        }
        _ => {
            let formatter = ArrayFormatter::try_new(a, &FormatOptions::default())
                .map_err(|e| TypeError::Unsupported(e.to_string()))?;
            Datum::Text(formatter.value(row).to_string())
        }
    })
}

/// `v` in `unit` as µs (None on overflow); nanoseconds are floored.
fn to_micros(v: i64, unit: &TimeUnit) -> Option<i64> {
    match unit {
        TimeUnit::Second => v.checked_mul(1_000_000),
        TimeUnit::Millisecond => v.checked_mul(1000),
        TimeUnit::Microsecond => Some(v),
        TimeUnit::Nanosecond => Some(v.div_euclid(1000)),
    }
}

/// A decimal with unscaled value `v` and scale `s` as a numeric datum, rounding away
/// (once, half away from zero) the fractional digits that do not fit.
fn decimal_datum(v: i128, s: i8) -> Result<Datum, TypeError> {
    let overflow = || TypeError::OutOfRange("value overflows numeric format".into());
    let (v, s) = if s < 0 {
        let f = 10i128
            .checked_pow(u32::from(s.unsigned_abs()))
            .ok_or_else(overflow)?;
        (v.checked_mul(f).ok_or_else(overflow)?, 0u32)
    } else {
        (v, s as u32)
    };
    // Digits to drop: enough for the scale limit and the 96-bit mantissa.
    let mut drop = s.saturating_sub(NUMERIC_MAX_SCALE);
    while 10u128
        .checked_pow(drop)
        .is_some_and(|f| v.unsigned_abs() / f > MAX_MANTISSA)
    {
        drop += 1;
    }
    if drop > s {
        return Err(overflow());
    }
    let (mut v, mut s) = (round_div_pow10(v, drop), s - drop);
    if v.unsigned_abs() > MAX_MANTISSA {
        // Rounding carried past 2^96 - 1.
        if s == 0 {
            return Err(overflow());
        }
        v = round_div_pow10(v, 1);
        s -= 1;
    }
    Ok(Datum::Numeric(fix_zero(Decimal::from_i128_with_scale(
        v, s,
    ))))
}

/// `v / 10^k` rounded half away from zero.
fn round_div_pow10(v: i128, k: u32) -> i128 {
    if k == 0 {
        return v;
    }
    let Some(f) = 10i128.checked_pow(k) else {
        return 0; // |v| < 10^39 / 2
    };
    let (q, r) = (v / f, v % f);
    if r.unsigned_abs() * 2 >= f.unsigned_abs() {
        q + v.signum()
    } else {
        q
    }
}

fn decimal256_datum(v: i256, s: i8) -> Result<Datum, TypeError> {
    let mut v = v;
    let mut s = s;
    let ten = i256::from_i128(10);
    loop {
        if let Some(small) = v.to_i128() {
            return decimal_datum(small, s);
        }
        if s <= 0 {
            return Err(TypeError::OutOfRange(
                "value overflows numeric format".into(),
            ));
        }
        v = v.wrapping_div(ten);
        s -= 1;
    }
}

fn dictionary_datum(a: &dyn Array, row: usize) -> Result<Datum, TypeError> {
    macro_rules! by_key {
        ($($k:ty),*) => {
            $(if let Some(d) = a.as_dictionary_opt::<$k>() {
                if d.keys().is_null(row) {
                    return Ok(Datum::Null);
                }
                let key = d.keys().value(row).as_usize();
                return array_datum(d.values(), key);
            })*
        };
    }
    by_key!(
        Int8Type, Int16Type, Int32Type, Int64Type, UInt8Type, UInt16Type, UInt32Type, UInt64Type
    );
    Err(TypeError::Unsupported(format!(
        "unsupported dictionary type {}",
        a.data_type()
    )))
}

fn run_end_datum(a: &dyn Array, row: usize) -> Result<Datum, TypeError> {
    macro_rules! by_run_end {
        ($($k:ty),*) => {
            $(if let Some(r) = a.as_run_opt::<$k>() {
                let physical = r.get_physical_index(row);
                return array_datum(r.values(), physical);
            })*
        };
    }
    by_run_end!(Int16Type, Int32Type, Int64Type);
    Err(TypeError::Unsupported(format!(
        "unsupported run-end encoded type {}",
        a.data_type()
    )))
}

/// The items of the list value at `row`, for any list type.
fn list_items(a: &dyn Array, row: usize) -> Option<ArrayRef> {
    Some(match a.data_type() {
        DataType::List(_) => a.as_list::<i32>().value(row),
        DataType::LargeList(_) => a.as_list::<i64>().value(row),
        DataType::FixedSizeList(..) => a.as_fixed_size_list().value(row),
        DataType::ListView(_) => a.as_list_view::<i32>().value(row),
        DataType::LargeListView(_) => a.as_list_view::<i64>().value(row),
        _ => return None,
    })
}

/// PostgreSQL array text of a list's items: `{1,2,NULL}`, `{"a b","x\"y"}`, nested
/// lists as nested braces.
fn pg_array_text(items: &ArrayRef) -> Result<String, TypeError> {
    let ty = SqlType::from_arrow(items.data_type());
    let mut out = String::from("{");
    for i in 0..items.len() {
        if i > 0 {
            out.push(',');
        }
        if *items.data_type() == DataType::Null || items.is_null(i) {
            out.push_str("NULL");
            continue;
        }
        if let Some(inner) = list_items(items.as_ref(), i) {
            out.push_str(&pg_array_text(&inner)?);
            continue;
        }
        match array_datum(items, i)? {
            Datum::Null => out.push_str("NULL"),
            d => push_array_element(&mut out, &d.to_pg_text(&ty)),
        }
    }
    out.push('}');
    Ok(out)
}

/// Appends one element, quoted as PostgreSQL's `array_out` quotes it.
fn push_array_element(out: &mut String, text: &str) {
    let needs_quotes = text.is_empty()
        || text.eq_ignore_ascii_case("NULL")
        || text
            .chars()
            .any(|c| matches!(c, '{' | '}' | ',' | '"' | '\\') || c.is_ascii_whitespace());
    if !needs_quotes {
        out.push_str(text);
        return;
    }
    out.push('"');
    for c in text.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// The datum of a DataFusion scalar (see [`array_datum`]).
pub fn scalar_to_datum(v: &ScalarValue) -> Result<Datum, TypeError> {
    let array = v
        .to_array()
        .map_err(|e| TypeError::Unsupported(e.to_string()))?;
    array_datum(&array, 0)
}

/// A DataFusion scalar of `ty.arrow_type()` holding `d` (coerced to `ty` if needed).
/// If `d` cannot be coerced, the scalar has `d`'s own type instead; NULL is a typed
/// null of `ty`. An unconstrained numeric with more than 10 fractional digits keeps
/// them: its scalar is `Decimal128(38, its scale)`.
pub fn datum_to_scalar(d: &Datum, ty: &SqlType) -> ScalarValue {
    if d.is_null() {
        return ScalarValue::try_from(&ty.arrow_type()).unwrap_or(ScalarValue::Null);
    }
    if variant_fits(d, ty) {
        if let Some(s) = fitted_scalar(d, ty) {
            return s;
        }
    } else if let Ok(c) = d.clone().coerce(ty) {
        if let Some(s) = fitted_scalar(&c, ty) {
            return s;
        }
    }
    let natural = d.natural_type().expect("non-null datum");
    fitted_scalar(d, &natural).unwrap_or(ScalarValue::Null)
}

/// The scalar of a datum whose variant fits `ty`; None if a numeric or interval does
/// not fit Arrow.
fn fitted_scalar(d: &Datum, ty: &SqlType) -> Option<ScalarValue> {
    Some(match d {
        Datum::Null => return None,
        Datum::Bool(b) => ScalarValue::Boolean(Some(*b)),
        Datum::Int2(v) => ScalarValue::Int16(Some(*v)),
        Datum::Int4(v) => ScalarValue::Int32(Some(*v)),
        Datum::Int8(v) => ScalarValue::Int64(Some(*v)),
        Datum::Float4(v) => ScalarValue::Float32(Some(*v)),
        Datum::Float8(v) => ScalarValue::Float64(Some(*v)),
        Datum::Numeric(n) => {
            let (p, s) = ty.arrow_decimal_params();
            let unconstrained = matches!(ty, SqlType::Numeric { scale: None, .. });
            if unconstrained && n.scale() > UNCONSTRAINED_ARROW_SCALE as u32 {
                // Constants keep every digit; DataFusion coerces decimal scales itself.
                ScalarValue::Decimal128(Some(n.mantissa()), p, n.scale() as i8)
            } else {
                ScalarValue::Decimal128(Some(decimal_to_arrow(n, p, s).ok()?), p, s)
            }
        }
        Datum::Text(s) | Datum::Json(s) => ScalarValue::Utf8(Some(s.clone())),
        Datum::Uuid(_) => ScalarValue::Utf8(Some(d.to_pg_text(ty))),
        Datum::Bytea(b) => ScalarValue::Binary(Some(b.clone())),
        Datum::Date(v) => ScalarValue::Date32(Some(*v)),
        Datum::Time(v) => ScalarValue::Time64Microsecond(Some(*v)),
        Datum::Timestamp(v) => ScalarValue::TimestampMicrosecond(Some(*v), None),
        Datum::TimestampTz(v) => {
            ScalarValue::TimestampMicrosecond(Some(*v), Some(Arc::from(ARROW_UTC)))
        }
        Datum::Interval {
            months,
            days,
            micros,
        } => ScalarValue::IntervalMonthDayNano(Some(
            interval_to_arrow(*months, *days, *micros).ok()?,
        )),
    })
}

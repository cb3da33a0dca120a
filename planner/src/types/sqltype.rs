//! Declared column types: [`SqlType`], its PostgreSQL identity (OID, typmod, name) and
//! its Arrow counterpart.
//!
//! `SqlType` is what the catalog persists (serde) for every column, so variants are only
//! ever added, never renamed. Type modifiers are part of the type: `varchar(5)` and
//! `numeric(12,2)` are different `SqlType`s with the same OID and different typmods,
//! exactly as in `pg_attribute`.
//!
//! | SQL spelling (from_ast)                     | SqlType            | OID  | Arrow                      |
//! |---------------------------------------------|--------------------|------|----------------------------|
//! | smallint, int2, smallserial                 | Int2               | 21   | Int16                      |
//! | integer, int, int4, serial                  | Int4               | 23   | Int32                      |
//! | bigint, int8, bigserial                     | Int8               | 20   | Int64                      |
//! | real, float4, float(1..24)                  | Float4             | 700  | Float32                    |
//! | double precision, float8, float             | Float8             | 701  | Float64                    |
//! | numeric/decimal[(p[,s])]                    | Numeric            | 1700 | Decimal128(p or 38, s or 10) |
//! | text                                        | Text               | 25   | Utf8                       |
//! | varchar(n), character varying(n)            | Varchar            | 1043 | Utf8                       |
//! | char(n), character(n), bpchar               | Char               | 1042 | Utf8                       |
//! | boolean, bool                               | Bool               | 16   | Boolean                    |
//! | date                                        | Date               | 1082 | Date32                     |
//! | time [without time zone]                    | Time               | 1083 | Time64(µs)                 |
//! | timestamp [without time zone]               | Timestamp          | 1114 | Timestamp(µs, None)        |
//! | timestamptz, timestamp with time zone       | TimestampTz        | 1184 | Timestamp(µs, "+00:00")    |
//! | interval                                    | Interval           | 1186 | Interval(MonthDayNano)     |
//! | bytea                                       | Bytea              | 17   | Binary                     |
//! | uuid                                        | Uuid               | 2950 | Utf8 (canonical text)      |
//! | json / jsonb                                | Json / Jsonb       | 114 / 3802 | Utf8                 |
//!
//! Caveats:
//! - `char` without a length is `char(1)` (SQL standard); `bpchar` without a length is
//!   unbounded blank-padded text (`Char(None)`), as in PostgreSQL.
//! - `numeric(p)` is stored as `numeric(p,0)`. Precision is limited to 38 and scale to
//!   28 (see the module doc), negative scales are rejected.
//! - Time/timestamp precision (`timestamp(3)`) is accepted and ignored: values keep µs.
//! - Unconstrained `numeric` becomes Arrow `Decimal128(38,10)`: inside DataFusion such
//!   values keep at most 10 fractional digits.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::ast::{
    self, CharacterLength, ExactNumberInfo, ObjectName, TimezoneInfo,
};
use serde::{Deserialize, Serialize};

use super::numeric::{NUMERIC_MAX_PRECISION, NUMERIC_MAX_SCALE};
use super::TypeError;

/// Scale of Arrow decimals that carry an unconstrained `numeric`.
pub(crate) const UNCONSTRAINED_ARROW_SCALE: i8 = 10;
/// Longest `varchar(n)`/`char(n)` PostgreSQL accepts.
const MAX_CHAR_LENGTH: u64 = 10_485_760;
/// PostgreSQL adds this to every non-negative typmod (`VARHDRSZ`).
const VARHDRSZ: i32 = 4;

/// A column type as declared in SQL.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SqlType {
    Int2,
    Int4,
    Int8,
    Float4,
    Float8,
    /// `numeric(p,s)`; `numeric(p)` is `{Some(p), Some(0)}`; plain `numeric` is
    /// `{None, None}`.
    Numeric {
        precision: Option<u8>,
        scale: Option<u8>,
    },
    Text,
    /// `varchar(n)`; `None` is unbounded `character varying`.
    Varchar(Option<u32>),
    /// `char(n)`, stored blank-padded to `n`; `None` is unbounded `bpchar`.
    Char(Option<u32>),
    Bool,
    Date,
    Time,
    Timestamp,
    TimestampTz,
    Interval,
    Bytea,
    Uuid,
    Json,
    Jsonb,
}

impl fmt::Display for SqlType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.pg_name())
    }
}

impl SqlType {
    /// The type a SQL data type spelling denotes (see the table in the module doc).
    pub fn from_ast(dt: &ast::DataType) -> Result<SqlType, TypeError> {
        use ast::DataType as D;
        let ty = match dt {
            D::SmallInt(_) | D::Int2(_) => SqlType::Int2,
            D::Int(_) | D::Integer(_) | D::Int4(_) => SqlType::Int4,
            D::BigInt(_) | D::Int8(_) => SqlType::Int8,
            D::Real | D::Float4 => SqlType::Float4,
            D::DoublePrecision | D::Float8 | D::Double(ExactNumberInfo::None) => SqlType::Float8,
            D::Float(info) => float_with_precision(info)?,
            D::Numeric(info) | D::Decimal(info) | D::Dec(info) => numeric_from_info(info)?,
            D::Text | D::String(None) => SqlType::Text,
            D::Varchar(len) | D::CharacterVarying(len) | D::CharVarying(len) => {
                SqlType::Varchar(char_length(len, "varchar")?)
            }
            D::Char(len) | D::Character(len) => {
                SqlType::Char(Some(char_length(len, "char")?.unwrap_or(1)))
            }
            D::Bool | D::Boolean => SqlType::Bool,
            D::Date => SqlType::Date,
            D::Time(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => SqlType::Time,
            D::Timestamp(_, TimezoneInfo::None | TimezoneInfo::WithoutTimeZone) => {
                SqlType::Timestamp
            }
            D::Timestamp(_, TimezoneInfo::WithTimeZone | TimezoneInfo::Tz) => SqlType::TimestampTz,
            D::Interval { .. } => SqlType::Interval,
            D::Bytea => SqlType::Bytea,
            D::Uuid => SqlType::Uuid,
            D::JSON => SqlType::Json,
            D::JSONB => SqlType::Jsonb,
            D::Custom(name, modifiers) => custom_type(name, modifiers)?,
            other => {
                return Err(TypeError::Unsupported(format!(
                    "type {other} is not supported"
                )))
            }
        };
        Ok(ty)
    }

    /// The PostgreSQL type OID.
    pub fn oid(&self) -> u32 {
        match self {
            SqlType::Int2 => 21,
            SqlType::Int4 => 23,
            SqlType::Int8 => 20,
            SqlType::Float4 => 700,
            SqlType::Float8 => 701,
            SqlType::Numeric { .. } => 1700,
            SqlType::Text => 25,
            SqlType::Varchar(_) => 1043,
            SqlType::Char(_) => 1042,
            SqlType::Bool => 16,
            SqlType::Date => 1082,
            SqlType::Time => 1083,
            SqlType::Timestamp => 1114,
            SqlType::TimestampTz => 1184,
            SqlType::Interval => 1186,
            SqlType::Bytea => 17,
            SqlType::Uuid => 2950,
            SqlType::Json => 114,
            SqlType::Jsonb => 3802,
        }
    }

    /// The type with this OID, without modifiers (`varchar` unbounded, plain `numeric`).
    pub fn from_oid(oid: u32) -> Option<SqlType> {
        SqlType::from_oid_typmod(oid, -1)
    }

    /// The type with this OID and PostgreSQL typmod (-1 for none), the inverse of
    /// [`SqlType::oid`] and [`SqlType::typmod`].
    pub fn from_oid_typmod(oid: u32, typmod: i32) -> Option<SqlType> {
        let modifier = (typmod >= VARHDRSZ).then(|| typmod - VARHDRSZ);
        let ty = match oid {
            21 => SqlType::Int2,
            23 => SqlType::Int4,
            20 => SqlType::Int8,
            700 => SqlType::Float4,
            701 => SqlType::Float8,
            1700 => match modifier {
                Some(m) => SqlType::Numeric {
                    precision: u8::try_from((m >> 16) & 0xFFFF).ok(),
                    scale: u8::try_from(m & 0xFFFF).ok(),
                },
                None => SqlType::Numeric {
                    precision: None,
                    scale: None,
                },
            },
            25 => SqlType::Text,
            1043 => SqlType::Varchar(modifier.map(|m| m as u32)),
            1042 => SqlType::Char(modifier.map(|m| m as u32)),
            16 => SqlType::Bool,
            1082 => SqlType::Date,
            1083 => SqlType::Time,
            1114 => SqlType::Timestamp,
            1184 => SqlType::TimestampTz,
            1186 => SqlType::Interval,
            17 => SqlType::Bytea,
            2950 => SqlType::Uuid,
            114 => SqlType::Json,
            3802 => SqlType::Jsonb,
            _ => return None,
        };
        Some(ty)
    }

    /// The name PostgreSQL prints for the type (`format_type`, error messages).
    pub fn pg_name(&self) -> String {
        let name = match self {
            SqlType::Int2 => "smallint",
            SqlType::Int4 => "integer",
            SqlType::Int8 => "bigint",
            SqlType::Float4 => "real",
            SqlType::Float8 => "double precision",
            SqlType::Numeric {
                precision: Some(p),
                scale,
            } => return format!("numeric({p},{})", scale.unwrap_or(0)),
            SqlType::Numeric { .. } => "numeric",
            SqlType::Text => "text",
            SqlType::Varchar(Some(n)) => return format!("character varying({n})"),
            SqlType::Varchar(None) => "character varying",
            SqlType::Char(Some(n)) => return format!("character({n})"),
            SqlType::Char(None) => "bpchar",
            SqlType::Bool => "boolean",
            SqlType::Date => "date",
            SqlType::Time => "time without time zone",
            SqlType::Timestamp => "timestamp without time zone",
            SqlType::TimestampTz => "timestamp with time zone",
            SqlType::Interval => "interval",
            SqlType::Bytea => "bytea",
            SqlType::Uuid => "uuid",
            SqlType::Json => "json",
            SqlType::Jsonb => "jsonb",
        };
        name.to_string()
    }

    /// `pg_type.typlen`: the fixed width in bytes, or -1 for variable-length types.
    pub fn typlen(&self) -> i16 {
        match self {
            SqlType::Bool => 1,
            SqlType::Int2 => 2,
            SqlType::Int4 | SqlType::Float4 | SqlType::Date => 4,
            SqlType::Int8
            | SqlType::Float8
            | SqlType::Time
            | SqlType::Timestamp
            | SqlType::TimestampTz => 8,
            SqlType::Interval | SqlType::Uuid => 16,
            SqlType::Numeric { .. }
            | SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Bytea
            | SqlType::Json
            | SqlType::Jsonb => -1,
        }
    }

    /// `pg_attribute.atttypmod`: -1, or PostgreSQL's encoding of the modifiers
    /// (`varchar(n)`/`char(n)`: n+4; `numeric(p,s)`: `((p << 16) | s) + 4`).
    pub fn typmod(&self) -> i32 {
        match self {
            SqlType::Varchar(Some(n)) | SqlType::Char(Some(n)) => *n as i32 + VARHDRSZ,
            SqlType::Numeric {
                precision: Some(p),
                scale,
            } => ((i32::from(*p) << 16) | i32::from(scale.unwrap_or(0))) + VARHDRSZ,
            _ => -1,
        }
    }

    /// The Arrow type DataFusion sees for columns of this type.
    pub fn arrow_type(&self) -> DataType {
        match self {
            SqlType::Int2 => DataType::Int16,
            SqlType::Int4 => DataType::Int32,
            SqlType::Int8 => DataType::Int64,
            SqlType::Float4 => DataType::Float32,
            SqlType::Float8 => DataType::Float64,
            SqlType::Numeric { .. } => {
                let (p, s) = self.arrow_decimal_params();
                DataType::Decimal128(p, s)
            }
            SqlType::Text
            | SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb => DataType::Utf8,
            SqlType::Bool => DataType::Boolean,
            SqlType::Date => DataType::Date32,
            SqlType::Time => DataType::Time64(TimeUnit::Microsecond),
            SqlType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
            SqlType::TimestampTz => {
                DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
            }
            SqlType::Interval => DataType::Interval(IntervalUnit::MonthDayNano),
            SqlType::Bytea => DataType::Binary,
        }
    }

    /// (precision, scale) of the Arrow decimal for a numeric type.
    pub(crate) fn arrow_decimal_params(&self) -> (u8, i8) {
        match self {
            SqlType::Numeric {
                precision: Some(p),
                scale,
            } => (*p, scale.unwrap_or(0) as i8),
            _ => (NUMERIC_MAX_PRECISION, UNCONSTRAINED_ARROW_SCALE),
        }
    }

    /// The SQL type of a DataFusion result column of Arrow type `dt`. `Decimal128(38,10)`
    /// is unconstrained `numeric`, the inverse of [`SqlType::arrow_type`].
    pub fn from_arrow(dt: &DataType) -> SqlType {
        match dt {
            DataType::Int8 | DataType::UInt8 | DataType::Int16 => SqlType::Int2,
            DataType::UInt16 | DataType::Int32 => SqlType::Int4,
            DataType::UInt32 | DataType::Int64 => SqlType::Int8,
            DataType::UInt64 => SqlType::Numeric {
                precision: Some(20),
                scale: Some(0),
            },
            DataType::Float16 | DataType::Float32 => SqlType::Float4,
            DataType::Float64 => SqlType::Float8,
            // How unconstrained numerics travel (see `arrow_type`).
            DataType::Decimal128(NUMERIC_MAX_PRECISION, UNCONSTRAINED_ARROW_SCALE) => {
                SqlType::Numeric {
                    precision: None,
                    scale: None,
                }
            }
            DataType::Decimal32(p, s)
            | DataType::Decimal64(p, s)
            | DataType::Decimal128(p, s)
            | DataType::Decimal256(p, s) => {
                if *s >= 0 && (*s as u32) <= NUMERIC_MAX_SCALE && *p <= NUMERIC_MAX_PRECISION {
                    SqlType::Numeric {
                        precision: Some(*p),
                        scale: Some(*s as u8),
                    }
                } else {
                    SqlType::Numeric {
                        precision: None,
                        scale: None,
                    }
                }
            }
            DataType::Boolean => SqlType::Bool,
            DataType::Date32 | DataType::Date64 => SqlType::Date,
            DataType::Time32(_) | DataType::Time64(_) => SqlType::Time,
            DataType::Timestamp(_, None) => SqlType::Timestamp,
            DataType::Timestamp(_, Some(_)) => SqlType::TimestampTz,
            DataType::Interval(_) | DataType::Duration(_) => SqlType::Interval,
            DataType::Binary
            | DataType::LargeBinary
            | DataType::BinaryView
            | DataType::FixedSizeBinary(_) => SqlType::Bytea,
            DataType::Dictionary(_, value) => SqlType::from_arrow(value),
            DataType::RunEndEncoded(_, values) => SqlType::from_arrow(values.data_type()),
            // Utf8 variants, Null, lists (rendered as PG array text) and anything else.
            _ => SqlType::Text,
        }
    }

    /// smallint, integer, bigint.
    pub fn is_integer(&self) -> bool {
        matches!(self, SqlType::Int2 | SqlType::Int4 | SqlType::Int8)
    }

    /// Integers, floats and numeric.
    pub fn is_numeric(&self) -> bool {
        self.is_integer() || self.is_float() || matches!(self, SqlType::Numeric { .. })
    }

    /// real, double precision.
    pub fn is_float(&self) -> bool {
        matches!(self, SqlType::Float4 | SqlType::Float8)
    }

    /// text, varchar, char.
    pub fn is_string(&self) -> bool {
        matches!(self, SqlType::Text | SqlType::Varchar(_) | SqlType::Char(_))
    }

    /// date, time, timestamp, timestamptz, interval.
    pub fn is_temporal(&self) -> bool {
        matches!(
            self,
            SqlType::Date
                | SqlType::Time
                | SqlType::Timestamp
                | SqlType::TimestampTz
                | SqlType::Interval
        )
    }

    /// json, jsonb.
    pub fn is_json(&self) -> bool {
        matches!(self, SqlType::Json | SqlType::Jsonb)
    }
}

/// `float(p)`: 1..=24 bits is real, 25..=53 double precision.
fn float_with_precision(info: &ExactNumberInfo) -> Result<SqlType, TypeError> {
    match info {
        ExactNumberInfo::None => Ok(SqlType::Float8),
        ExactNumberInfo::Precision(0) => Err(TypeError::InvalidParameter(
            "precision for type float must be at least 1 bit".into(),
        )),
        ExactNumberInfo::Precision(1..=24) => Ok(SqlType::Float4),
        ExactNumberInfo::Precision(25..=53) => Ok(SqlType::Float8),
        ExactNumberInfo::Precision(_) => Err(TypeError::InvalidParameter(
            "precision for type float must be less than 54 bits".into(),
        )),
        ExactNumberInfo::PrecisionAndScale(..) => Err(TypeError::InvalidParameter(
            "type float takes at most one modifier".into(),
        )),
    }
}

fn numeric_from_info(info: &ExactNumberInfo) -> Result<SqlType, TypeError> {
    match info {
        ExactNumberInfo::None => Ok(SqlType::Numeric {
            precision: None,
            scale: None,
        }),
        ExactNumberInfo::Precision(p) => numeric_type(*p as i64, 0),
        ExactNumberInfo::PrecisionAndScale(p, s) => numeric_type(*p as i64, *s),
    }
}

/// `numeric(p,s)` with PostgreSQL's checks, then Meridian's narrower limits.
pub(crate) fn numeric_type(p: i64, s: i64) -> Result<SqlType, TypeError> {
    if !(1..=1000).contains(&p) {
        return Err(TypeError::InvalidParameter(format!(
            "NUMERIC precision {p} must be between 1 and 1000"
        )));
    }
    if s < 0 || s > p {
        return Err(TypeError::InvalidParameter(format!(
            "NUMERIC scale {s} must be between 0 and precision {p}"
        )));
    }
    if p > i64::from(NUMERIC_MAX_PRECISION) {
        return Err(TypeError::Unsupported(format!(
            "NUMERIC precision {p} exceeds the supported maximum of {NUMERIC_MAX_PRECISION}"
        )));
    }
    if s > i64::from(NUMERIC_MAX_SCALE) {
        return Err(TypeError::Unsupported(format!(
            "NUMERIC scale {s} exceeds the supported maximum of {NUMERIC_MAX_SCALE}"
        )));
    }
    Ok(SqlType::Numeric {
        precision: Some(p as u8),
        scale: Some(s as u8),
    })
}

fn char_length(len: &Option<CharacterLength>, ty: &str) -> Result<Option<u32>, TypeError> {
    match len {
        None => Ok(None),
        Some(CharacterLength::IntegerLength { length, .. }) => check_char_length(*length, ty),
        Some(CharacterLength::Max) => Err(TypeError::Unsupported(format!(
            "{ty}(max) is not supported"
        ))),
    }
}

fn check_char_length(n: u64, ty: &str) -> Result<Option<u32>, TypeError> {
    if n == 0 {
        return Err(TypeError::InvalidParameter(format!(
            "length for type {ty} must be at least 1"
        )));
    }
    if n > MAX_CHAR_LENGTH {
        return Err(TypeError::InvalidParameter(format!(
            "length for type {ty} cannot exceed {MAX_CHAR_LENGTH}"
        )));
    }
    Ok(Some(n as u32))
}

/// Types sqlparser does not know by keyword: serials, `bpchar`, `pg_catalog.` names.
fn custom_type(name: &ObjectName, modifiers: &[String]) -> Result<SqlType, TypeError> {
    let parts: Vec<String> = name
        .0
        .iter()
        .filter_map(|p| p.as_ident().map(|i| i.value.to_lowercase()))
        .collect();
    let base = match parts.as_slice() {
        [one] => one.as_str(),
        [schema, one] if schema == "pg_catalog" => one.as_str(),
        _ => "",
    };
    let mods: Vec<i64> = modifiers
        .iter()
        .map(|m| m.trim().parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| TypeError::Unsupported(format!("type {name} is not supported")))?;
    let no_mods = |ty: SqlType| {
        if mods.is_empty() {
            Ok(ty)
        } else {
            Err(TypeError::InvalidParameter(format!(
                "type modifier is not allowed for type \"{base}\""
            )))
        }
    };
    let length = |ty: &str| -> Result<Option<u32>, TypeError> {
        match mods.as_slice() {
            [] => Ok(None),
            [n] if *n >= 0 => check_char_length(*n as u64, ty),
            _ => Err(TypeError::InvalidParameter(format!(
                "invalid type modifier for type {ty}"
            ))),
        }
    };
    match base {
        "serial" | "serial4" | "int4" | "int" | "integer" => no_mods(SqlType::Int4),
        "bigserial" | "serial8" | "int8" | "bigint" => no_mods(SqlType::Int8),
        "smallserial" | "serial2" | "int2" | "smallint" => no_mods(SqlType::Int2),
        "float4" | "real" => no_mods(SqlType::Float4),
        "float8" => no_mods(SqlType::Float8),
        "text" => no_mods(SqlType::Text),
        "bool" | "boolean" => no_mods(SqlType::Bool),
        "bpchar" => Ok(SqlType::Char(length("bpchar")?)),
        "varchar" => Ok(SqlType::Varchar(length("varchar")?)),
        "timestamptz" => Ok(SqlType::TimestampTz),
        "timestamp" => Ok(SqlType::Timestamp),
        "time" => Ok(SqlType::Time),
        "date" => no_mods(SqlType::Date),
        "interval" => Ok(SqlType::Interval),
        "bytea" => no_mods(SqlType::Bytea),
        "uuid" => no_mods(SqlType::Uuid),
        "json" => no_mods(SqlType::Json),
        "jsonb" => no_mods(SqlType::Jsonb),
        "numeric" | "decimal" => match mods.as_slice() {
            [] => Ok(SqlType::Numeric {
                precision: None,
                scale: None,
            }),
            [p] => numeric_type(*p, 0),
            [p, s] => numeric_type(*p, *s),
            _ => Err(TypeError::InvalidParameter(
                "invalid NUMERIC type modifier".into(),
            )),
        },
        _ => Err(TypeError::Unsupported(format!(
            "type {name} is not supported"
        ))),
    }
}

//! SQL values and types: what a column holds and how it travels.
//!
//! Every SQL value in Meridian is a [`Datum`]; every declared column type is a
//! [`SqlType`]. A datum does not carry its full type (a `Datum::Text` may belong to a
//! `text`, `varchar(5)` or `char(3)` column; a `Datum::Json` to `json` or `jsonb`), so
//! every conversion that depends on the declared type takes the `SqlType` alongside.
//!
//! One value, six representations, one file each:
//!
//! ```text
//!                     parse_text / to_pg_text   (text.rs, datetime.rs, interval.rs, json.rs)
//!   PG text  ◀──────────────────────────────────────▶
//!   PG binary ◀─────── from_pg_binary / to_pg_binary ─▶   (binary.rs)
//!   stored row ◀────── decode_row / encode_row ───────▶   Datum   (row.rs)
//!   KV key   ◀──────── decode_key_datum / encode_key_datum ▶     (key.rs)
//!   Arrow    ◀──────── array_datum / datums_to_array ─▶          (arrow.rs)
//!   SQL AST  ───────── SqlType::from_ast ─────────────▶ SqlType  (sqltype.rs)
//! ```
//!
//! `datum.rs` holds the value itself, assignment casts ([`Datum::coerce`]) and the SQL
//! total order ([`Datum::cmp_sql`]); `numeric.rs` the decimal helpers shared by all of
//! the above.
//!
//! Invariants:
//! - A datum stored in a row or key has already been [`Datum::coerce`]d to its column
//!   type: numerics carry the column's scale, `char(n)` values are blank-padded, jsonb
//!   text is normalized.
//! - The key encoding of two datums of one column type compares like
//!   [`Datum::cmp_sql`] (NULLs last), and integer widths encode identically.
//! - Every error is a [`TypeError`] that knows its PostgreSQL SQLSTATE.
//!
//! Caveats (the whole module):
//! - `numeric` is `rust_decimal`: at most 28 digits after the point and a 96-bit
//!   mantissa (about 28-29 significant digits). PostgreSQL allows 1000 digits. Extra
//!   fractional digits are rounded away; integer parts beyond that fail with 22003
//!   `value overflows numeric format`. Declared precision is limited to 38 (Arrow
//!   Decimal128) and scale to 28. No numeric NaN or ±Infinity. Unconstrained numerics
//!   are stored normalized (`1.50` → `1.5`; PostgreSQL keeps `1.50`), see `numeric.rs`.
//! - The session time zone is always UTC and DateStyle is ISO; named time zones in input
//!   are rejected.
//! - Text comparisons are bytewise (the "C" collation).

mod arrow;
mod binary;
mod datetime;
mod datum;
mod interval;
mod json;
mod key;
mod numeric;
mod row;
mod sqltype;
mod text;

#[cfg(test)]
mod tests;

pub use self::arrow::{array_datum, datum_to_scalar, datums_to_array, scalar_to_datum};
pub use self::datum::Datum;
pub use self::key::{decode_key_datum, encode_key_datum};
pub use self::numeric::{NUMERIC_MAX_PRECISION, NUMERIC_MAX_SCALE};
pub use self::row::{decode_row, encode_row, ROW_FORMAT_VERSION};
pub use self::sqltype::SqlType;

/// A failure to parse, convert or store a SQL value. Each variant maps to one
/// PostgreSQL SQLSTATE ([`TypeError::sqlstate`]); the `Display` text is the message
/// PostgreSQL would print.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TypeError {
    /// 22P02: text that is not a value of the type.
    #[error("invalid input syntax for type {ty}: \"{input}\"")]
    InvalidText { ty: String, input: String },
    /// 22P02: malformed input, with PostgreSQL's whole message (used where PostgreSQL
    /// does not quote the input: `invalid input syntax for type json`).
    #[error("{0}")]
    InvalidSyntax(String),
    /// 22003: a value outside the range of its type. The string is the whole message
    /// (`integer out of range`, `numeric field overflow`, ...).
    #[error("{0}")]
    OutOfRange(String),
    /// 22001: a string longer than its `varchar(n)`/`char(n)`; `ty` is the PG name.
    #[error("value too long for type {ty}")]
    StringTooLong { ty: String },
    /// 22007 (bad format) or 22008 (`field_overflow`: a field or the whole value
    /// out of range) for date/time input.
    #[error("{message}")]
    DatetimeInvalid {
        message: String,
        field_overflow: bool,
    },
    /// 42804: a value of one type assigned to a column of another, with no
    /// assignment cast. `column` is filled in by the caller ([`TypeError::with_column`]).
    #[error("{}", mismatch_message(.column, .expected, .found))]
    Mismatch {
        column: Option<String>,
        expected: String,
        found: String,
    },
    /// 0A000: valid SQL that Meridian does not implement.
    #[error("{0}")]
    Unsupported(String),
    /// 22023: an invalid type modifier, e.g. `numeric(3,5)`.
    #[error("{0}")]
    InvalidParameter(String),
    /// 22P03: a binary-format value of the wrong length or shape.
    #[error("{0}")]
    InvalidBinary(String),
    /// 22021: bytes that are not valid UTF-8.
    #[error("{0}")]
    InvalidEncoding(String),
    /// 22004: NULL where a value is required (e.g. a binary encoding of NULL).
    #[error("{0}")]
    NullValue(String),
    /// XX001: stored row or key bytes that do not decode.
    #[error("data corrupted: {0}")]
    Corrupt(String),
}

fn mismatch_message(column: &Option<String>, expected: &str, found: &str) -> String {
    match column {
        Some(c) => {
            format!("column \"{c}\" is of type {expected} but expression is of type {found}")
        }
        None => format!("value of type {found} cannot be assigned to type {expected}"),
    }
}

impl TypeError {
    /// The PostgreSQL SQLSTATE of this error.
    pub fn sqlstate(&self) -> &'static str {
        match self {
            TypeError::InvalidText { .. } | TypeError::InvalidSyntax(_) => "22P02",
            TypeError::OutOfRange(_) => "22003",
            TypeError::StringTooLong { .. } => "22001",
            TypeError::DatetimeInvalid {
                field_overflow: false,
                ..
            } => "22007",
            TypeError::DatetimeInvalid {
                field_overflow: true,
                ..
            } => "22008",
            TypeError::Mismatch { .. } => "42804",
            TypeError::Unsupported(_) => "0A000",
            TypeError::InvalidParameter(_) => "22023",
            TypeError::InvalidBinary(_) => "22P03",
            TypeError::InvalidEncoding(_) => "22021",
            TypeError::NullValue(_) => "22004",
            TypeError::Corrupt(_) => "XX001",
        }
    }

    /// Names the target column of a [`TypeError::Mismatch`] (other errors unchanged),
    /// giving PG's `column "x" is of type integer but expression is of type text`.
    pub fn with_column(self, name: &str) -> TypeError {
        match self {
            TypeError::Mismatch {
                expected, found, ..
            } => TypeError::Mismatch {
                column: Some(name.to_string()),
                expected,
                found,
            },
            other => other,
        }
    }

    pub(crate) fn invalid_text(ty: &SqlType, input: &str) -> TypeError {
        TypeError::InvalidText {
            ty: ty.pg_name(),
            input: input.to_string(),
        }
    }

    pub(crate) fn mismatch(expected: &SqlType, found: &Datum) -> TypeError {
        TypeError::Mismatch {
            column: None,
            expected: expected.pg_name(),
            found: found.type_name().to_string(),
        }
    }

    pub(crate) fn corrupt(msg: impl Into<String>) -> TypeError {
        TypeError::Corrupt(msg.into())
    }

    /// 22007: `invalid input syntax for type timestamp: "x"` (PostgreSQL's date/time
    /// input functions name their type briefly).
    pub(crate) fn datetime_syntax(ty: &SqlType, input: &str) -> TypeError {
        let name = match ty {
            SqlType::Time => "time".to_string(),
            SqlType::Timestamp => "timestamp".to_string(),
            other => other.pg_name(),
        };
        TypeError::DatetimeInvalid {
            message: format!("invalid input syntax for type {name}: \"{input}\""),
            field_overflow: false,
        }
    }

    /// 22008 with the given message.
    pub(crate) fn datetime_overflow(message: impl Into<String>) -> TypeError {
        TypeError::DatetimeInvalid {
            message: message.into(),
            field_overflow: true,
        }
    }
}

impl From<kv::Error> for TypeError {
    fn from(err: kv::Error) -> TypeError {
        TypeError::Corrupt(err.to_string())
    }
}

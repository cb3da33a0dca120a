//! The planner's one error type, each error carrying its PostgreSQL SQLSTATE.
//!
//! Errors come from four places: our own analysis (unknown table, constraint violations …),
//! value conversion ([`TypeError`]), the transaction layer (wounds, conflicts) and
//! DataFusion. DataFusion's errors carry no SQLSTATE, so [`Error::from`] classifies them
//! by kind and message; the mapping is in one place, [`classify_datafusion`].

use datafusion::error::DataFusionError;

use crate::types::TypeError;

/// SQLSTATE codes used by the planner (PostgreSQL appendix A).
pub mod sqlstate {
    pub const SYNTAX_ERROR: &str = "42601";
    pub const UNDEFINED_TABLE: &str = "42P01";
    pub const UNDEFINED_COLUMN: &str = "42703";
    pub const UNDEFINED_OBJECT: &str = "42704";
    pub const UNDEFINED_FUNCTION: &str = "42883";
    pub const DUPLICATE_TABLE: &str = "42P07";
    pub const DUPLICATE_OBJECT: &str = "42710";
    pub const DUPLICATE_COLUMN: &str = "42701";
    pub const AMBIGUOUS_COLUMN: &str = "42702";
    pub const DATATYPE_MISMATCH: &str = "42804";
    pub const INVALID_TABLE_DEFINITION: &str = "42P16";
    pub const WRONG_OBJECT_TYPE: &str = "42809";
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
    pub const UNIQUE_VIOLATION: &str = "23505";
    pub const NOT_NULL_VIOLATION: &str = "23502";
    pub const CHECK_VIOLATION: &str = "23514";
    pub const DIVISION_BY_ZERO: &str = "22012";
    pub const NUMERIC_OUT_OF_RANGE: &str = "22003";
    pub const INVALID_TEXT_REPRESENTATION: &str = "22P02";
    pub const CARDINALITY_VIOLATION: &str = "21000";
    pub const SERIALIZATION_FAILURE: &str = "40001";
    pub const STATEMENT_COMPLETION_UNKNOWN: &str = "40003";
    pub const OUT_OF_MEMORY: &str = "53200";
    pub const PROGRAM_LIMIT_EXCEEDED: &str = "54000";
    pub const INTERNAL_ERROR: &str = "XX000";
    pub const IO_ERROR: &str = "58030";
    pub const SYSTEM_ERROR: &str = "58000";
    pub const INVALID_PARAMETER_VALUE: &str = "22023";
    pub const PROTOCOL_VIOLATION: &str = "08P01";
    pub const DEPENDENT_OBJECTS_STILL_EXIST: &str = "2BP01";
}

/// An error with the SQLSTATE the client will see.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    pub sqlstate: &'static str,
    pub message: String,
    pub detail: Option<String>,
}

impl Error {
    pub fn new(sqlstate: &'static str, message: impl Into<String>) -> Error {
        Error {
            sqlstate,
            message: message.into(),
            detail: None,
        }
    }

    pub fn with_detail(mut self, detail: impl Into<String>) -> Error {
        self.detail = Some(detail.into());
        self
    }

    /// A feature we do not support, named (SQLSTATE 0A000).
    pub fn unsupported(feature: impl std::fmt::Display) -> Error {
        Error::new(
            sqlstate::FEATURE_NOT_SUPPORTED,
            format!("{feature} is not supported"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(sqlstate::INTERNAL_ERROR, message)
    }

    /// Whether the client should retry the whole transaction.
    pub fn is_retryable(&self) -> bool {
        self.sqlstate == sqlstate::SERIALIZATION_FAILURE
    }
}

pub type Result<T> = std::result::Result<T, Error>;

impl From<TypeError> for Error {
    fn from(e: TypeError) -> Error {
        Error::new(e.sqlstate(), e.to_string())
    }
}

impl From<txn::Error> for Error {
    fn from(e: txn::Error) -> Error {
        match e {
            txn::Error::Wounded | txn::Error::Conflict => {
                Error::new(sqlstate::SERIALIZATION_FAILURE, e.to_string())
                    .with_detail("The transaction might succeed if retried.")
            }
            txn::Error::Aborted => Error::new(
                sqlstate::SERIALIZATION_FAILURE,
                "current transaction was aborted by a concurrent transaction",
            ),
            txn::Error::WriteSetTooLarge { .. } => {
                Error::new(sqlstate::OUT_OF_MEMORY, format!("out of memory: {e}"))
            }
            txn::Error::Rejoin(_) => Error::new(sqlstate::SYSTEM_ERROR, e.to_string()),
            txn::Error::ClockOffset(_) => Error::new(sqlstate::SYSTEM_ERROR, e.to_string())
                .with_detail("Nothing was written; retry once the clocks agree again."),
            txn::Error::OutcomeUnknown => {
                Error::new(sqlstate::STATEMENT_COMPLETION_UNKNOWN, e.to_string())
            }
            txn::Error::Storage(e) => Error::new(sqlstate::IO_ERROR, format!("storage error: {e}")),
        }
    }
}

impl From<kv::Error> for Error {
    fn from(e: kv::Error) -> Error {
        Error::from(txn::Error::Storage(e))
    }
}

impl From<DataFusionError> for Error {
    fn from(e: DataFusionError) -> Error {
        classify_datafusion(e)
    }
}

impl From<datafusion::arrow::error::ArrowError> for Error {
    fn from(e: datafusion::arrow::error::ArrowError) -> Error {
        classify_datafusion(DataFusionError::ArrowError(Box::new(e), None))
    }
}

/// Maps a DataFusion error to a SQLSTATE. Errors we raised ourselves inside DataFusion
/// callbacks travel as `External(Error)` and keep their own code.
pub fn classify_datafusion(e: DataFusionError) -> Error {
    let e = e.find_root().clone_for_classification();
    if let DataFusionError::External(inner) = &e {
        if let Some(ours) = inner.downcast_ref::<Error>() {
            return Error {
                sqlstate: ours.sqlstate,
                message: ours.message.clone(),
                detail: ours.detail.clone(),
            };
        }
    }
    let raw = strip_datafusion_prefixes(&e.to_string());
    let message = postgres_message(&raw);
    let lower = raw.to_lowercase();
    let code = match &e {
        _ if message == "window functions are not allowed in WHERE" => "42P20",
        DataFusionError::SQL(..) => sqlstate::SYNTAX_ERROR,
        DataFusionError::NotImplemented(_) => sqlstate::FEATURE_NOT_SUPPORTED,
        DataFusionError::ResourcesExhausted(_) => sqlstate::OUT_OF_MEMORY,
        _ if lower.contains("divide by zero") || lower.contains("division by zero") => {
            sqlstate::DIVISION_BY_ZERO
        }
        _ if lower.contains("table") && lower.contains("not found") => sqlstate::UNDEFINED_TABLE,
        _ if lower.contains("no field named")
            || lower.contains("column") && lower.contains("not found") =>
        {
            sqlstate::UNDEFINED_COLUMN
        }
        _ if lower.contains("ambiguous") => sqlstate::AMBIGUOUS_COLUMN,
        _ if lower.contains("invalid function") || lower.contains("no function matches") => {
            sqlstate::UNDEFINED_FUNCTION
        }
        _ if lower.contains("overflow") || message.ends_with("out of range") => {
            sqlstate::NUMERIC_OUT_OF_RANGE
        }
        _ if lower.contains("cannot cast") || lower.contains("cast error") => {
            sqlstate::INVALID_TEXT_REPRESENTATION
        }
        _ if lower.contains("more than one row") => sqlstate::CARDINALITY_VIOLATION,
        _ if lower.contains("unsupported") || lower.contains("not supported") => {
            sqlstate::FEATURE_NOT_SUPPORTED
        }
        DataFusionError::Plan(_) | DataFusionError::SchemaError(..) => {
            if lower.contains("type") || lower.contains("coercion") {
                sqlstate::UNDEFINED_FUNCTION
            } else {
                sqlstate::SYNTAX_ERROR
            }
        }
        _ => sqlstate::INTERNAL_ERROR,
    };
    Error::new(code, message)
}

/// Rewrites DataFusion's wording of common errors into PostgreSQL's.
fn postgres_message(m: &str) -> String {
    let lower = m.to_lowercase();
    if lower.contains("divide by zero") || lower.contains("division by zero") {
        return "division by zero".into();
    }
    // Arrow's integer overflow (e.g. `-2147483648 / -1`) and out-of-range casts.
    if lower.contains("arithmetic overflow") {
        return "integer out of range".into();
    }
    if lower.contains("can't cast value") {
        for (arrow, pg) in [
            ("int16", "smallint"),
            ("int32", "integer"),
            ("int64", "bigint"),
        ] {
            if lower.ends_with(&format!("to type {arrow}")) {
                return format!("{pg} out of range");
            }
        }
    }
    if lower.contains("does not support logical expression windowfunction") {
        return "window functions are not allowed in WHERE".into();
    }
    if lower.contains("scalar subquery returned more than one row") {
        return "more than one row returned by a subquery used as an expression".into();
    }
    if let Some(idx) = m.find("No field named ") {
        let rest = &m[idx + "No field named ".len()..];
        let first = rest.split_whitespace().next().unwrap_or("");
        let name = first.trim_end_matches('.').replace('"', "");
        return if name.contains('.') {
            format!("column {name} does not exist")
        } else {
            format!("column \"{name}\" does not exist")
        };
    }
    if let Some(idx) = m.find("Cannot cast string '") {
        let rest = &m[idx + "Cannot cast string '".len()..];
        if let Some(end) = rest.find("' to value of ") {
            let value = &rest[..end];
            let ty = rest[end + "' to value of ".len()..]
                .split_whitespace()
                .next()
                .unwrap_or("");
            let pg = match ty {
                "Int16" => "smallint",
                "Int32" => "integer",
                "Int64" => "bigint",
                "Float32" => "real",
                "Float64" => "double precision",
                "Boolean" => "boolean",
                "Date32" => "date",
                t if t.starts_with("Decimal") => "numeric",
                t if t.starts_with("Timestamp") => "timestamp",
                _ => "",
            };
            if !pg.is_empty() {
                return format!("invalid input syntax for type {pg}: \"{value}\"");
            }
        }
    }
    if let Some(rest) = m.strip_prefix("table '") {
        if let Some(name) = rest.strip_suffix("' not found") {
            let table = name.rsplit('.').next().unwrap_or(name);
            return format!("relation \"{table}\" does not exist");
        }
    }
    m.to_string()
}

/// DataFusion prefixes messages with its error kind ("Error during planning: …"); clients
/// want PostgreSQL-like text.
fn strip_datafusion_prefixes(s: &str) -> String {
    let mut s = s.trim();
    for prefix in [
        "Error during planning: ",
        "Schema error: ",
        "Arrow error: ",
        "Execution error: ",
        "This feature is not implemented: ",
        "SQL error: ",
        "Optimizer rule ",
        "Invalid argument error: ",
        "Compute error: ",
        "Divide by zero error",
        "Cast error: ",
    ] {
        if let Some(rest) = s.strip_prefix(prefix) {
            s = rest;
        }
    }
    if s.is_empty() {
        return "division by zero".to_string();
    }
    s.to_string()
}

trait CloneForClassification {
    fn clone_for_classification(&self) -> DataFusionError;
}

impl CloneForClassification for DataFusionError {
    /// DataFusionError is not Clone; rebuild the variants we classify on.
    fn clone_for_classification(&self) -> DataFusionError {
        match self {
            DataFusionError::External(inner) => {
                if let Some(ours) = inner.downcast_ref::<Error>() {
                    DataFusionError::External(Box::new(Error {
                        sqlstate: ours.sqlstate,
                        message: ours.message.clone(),
                        detail: ours.detail.clone(),
                    }))
                } else {
                    DataFusionError::Execution(inner.to_string())
                }
            }
            DataFusionError::NotImplemented(m) => DataFusionError::NotImplemented(m.clone()),
            DataFusionError::ResourcesExhausted(m) => {
                DataFusionError::ResourcesExhausted(m.clone())
            }
            DataFusionError::Plan(m) => DataFusionError::Plan(m.clone()),
            DataFusionError::SQL(e, _) => DataFusionError::Plan(format!("syntax error: {e}")),
            other => DataFusionError::Execution(other.to_string()),
        }
    }
}

//! PostgreSQL functions DataFusion does not have, registered in every session.
//!
//! * `pg_typeof(any) → text`: the PostgreSQL name of the argument's type, without type
//!   modifiers (`numeric`, `character varying`), as PostgreSQL's `regtype` output prints it.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ScalarValue;
use datafusion::error::Result as DfResult;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
};

use crate::types::SqlType;

/// Every function of this module.
pub fn all() -> Vec<Arc<ScalarUDF>> {
    vec![Arc::new(ScalarUDF::new_from_impl(PgTypeof {
        signature: Signature::any(1, Volatility::Immutable),
    }))]
}

#[derive(Debug, PartialEq, Eq, Hash)]
struct PgTypeof {
    signature: Signature,
}

/// A type's name without its modifiers.
fn regtype_name(ty: &SqlType) -> String {
    match ty {
        SqlType::Numeric { .. } => "numeric".into(),
        SqlType::Varchar(_) => "character varying".into(),
        SqlType::Char(_) => "character".into(),
        other => other.pg_name(),
    }
}

impl ScalarUDFImpl for PgTypeof {
    fn name(&self) -> &str {
        "pg_typeof"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> DfResult<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> DfResult<ColumnarValue> {
        let name = match args.arg_fields.first().map(|f| f.data_type()) {
            Some(DataType::Null) => "unknown".to_string(),
            Some(dt) => regtype_name(&SqlType::from_arrow(dt)),
            None => "unknown".to_string(),
        };
        Ok(ColumnarValue::Scalar(ScalarValue::Utf8(Some(name))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_type_modifiers() {
        assert_eq!(regtype_name(&SqlType::Int4), "integer");
        assert_eq!(
            regtype_name(&SqlType::Numeric {
                precision: Some(10),
                scale: Some(2)
            }),
            "numeric"
        );
        assert_eq!(
            regtype_name(&SqlType::Varchar(Some(5))),
            "character varying"
        );
        assert_eq!(
            regtype_name(&SqlType::TimestampTz),
            "timestamp with time zone"
        );
    }
}

//! Result encoding: result columns to RowDescription fields, datums to DataRows.
//!
//! Values are encoded from [`Datum`]s in the format the client asked for per column —
//! PostgreSQL's text output (`t`/`f`, `120.50`, `2024-01-02 12:00:00`) or its binary
//! form — by the planner's type module, so every path (fast path, DataFusion, RETURNING)
//! formats identically.

use std::sync::Arc;

use bytes::{BufMut, BytesMut};
use pgwire::api::portal::Format;
use pgwire::api::results::{FieldFormat, FieldInfo};
use pgwire::api::Type;
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::data::DataRow;
use planner::types::{Datum, SqlType};
use planner::OutputColumn;

/// The wire type of a column.
pub fn pg_type(ty: &SqlType) -> Type {
    Type::from_oid(ty.oid()).unwrap_or(Type::TEXT)
}

/// RowDescription fields for result columns in the requested formats.
pub fn fields(columns: &[OutputColumn], format: &Format) -> Arc<Vec<FieldInfo>> {
    Arc::new(
        columns
            .iter()
            .enumerate()
            .map(|(i, c)| {
                FieldInfo::new(
                    c.name.clone(),
                    None,
                    None,
                    pg_type(&c.ty),
                    format.format_for(i),
                )
            })
            .collect(),
    )
}

/// Encodes one row.
pub fn data_row(row: &[Datum], columns: &[OutputColumn], format: &Format) -> PgWireResult<DataRow> {
    let mut data = BytesMut::with_capacity(16 * row.len());
    for (i, (value, col)) in row.iter().zip(columns).enumerate() {
        if value.is_null() {
            data.put_i32(-1);
            continue;
        }
        match format.format_for(i) {
            FieldFormat::Text => {
                let text = value.to_pg_text(&col.ty);
                data.put_i32(text.len() as i32);
                data.put_slice(text.as_bytes());
            }
            FieldFormat::Binary => {
                let bytes = value
                    .to_pg_binary(&col.ty)
                    .map_err(|e| PgWireError::ApiError(Box::new(e)))?;
                data.put_i32(bytes.len() as i32);
                data.put_slice(&bytes);
            }
        }
    }
    Ok(DataRow::new(data, row.len() as i16))
}

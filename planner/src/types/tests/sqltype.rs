use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, IntervalUnit, TimeUnit};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

use super::{all_types, numeric, NUMERIC};
use crate::types::{SqlType, TypeError};

fn parse_type(sql: &str) -> Result<SqlType, TypeError> {
    let dialect = PostgreSqlDialect {};
    let dt = Parser::new(&dialect)
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_data_type())
        .unwrap_or_else(|e| panic!("sqlparser rejects {sql:?}: {e}"));
    SqlType::from_ast(&dt)
}

#[test]
fn from_ast_accepts_postgres_spellings() {
    let cases = [
        ("int", SqlType::Int4),
        ("integer", SqlType::Int4),
        ("int4", SqlType::Int4),
        ("serial", SqlType::Int4),
        ("serial4", SqlType::Int4),
        ("smallint", SqlType::Int2),
        ("int2", SqlType::Int2),
        ("smallserial", SqlType::Int2),
        ("bigint", SqlType::Int8),
        ("int8", SqlType::Int8),
        ("bigserial", SqlType::Int8),
        ("real", SqlType::Float4),
        ("float4", SqlType::Float4),
        ("float(24)", SqlType::Float4),
        ("double precision", SqlType::Float8),
        ("float8", SqlType::Float8),
        ("float", SqlType::Float8),
        ("float(25)", SqlType::Float8),
        ("numeric", NUMERIC),
        ("decimal", NUMERIC),
        ("numeric(12,2)", numeric(12, 2)),
        ("decimal(10, 3)", numeric(10, 3)),
        ("numeric(7)", numeric(7, 0)),
        ("text", SqlType::Text),
        ("varchar(5)", SqlType::Varchar(Some(5))),
        ("varchar", SqlType::Varchar(None)),
        ("character varying(20)", SqlType::Varchar(Some(20))),
        ("character varying", SqlType::Varchar(None)),
        ("char(3)", SqlType::Char(Some(3))),
        ("char", SqlType::Char(Some(1))),
        ("character(4)", SqlType::Char(Some(4))),
        ("character", SqlType::Char(Some(1))),
        ("bpchar", SqlType::Char(None)),
        ("boolean", SqlType::Bool),
        ("bool", SqlType::Bool),
        ("date", SqlType::Date),
        ("time", SqlType::Time),
        ("time without time zone", SqlType::Time),
        ("timestamp", SqlType::Timestamp),
        ("timestamp(3)", SqlType::Timestamp),
        ("timestamp without time zone", SqlType::Timestamp),
        ("timestamptz", SqlType::TimestampTz),
        ("timestamp with time zone", SqlType::TimestampTz),
        ("interval", SqlType::Interval),
        ("bytea", SqlType::Bytea),
        ("uuid", SqlType::Uuid),
        ("json", SqlType::Json),
        ("jsonb", SqlType::Jsonb),
        ("pg_catalog.int4", SqlType::Int4),
    ];
    for (sql, want) in cases {
        assert_eq!(
            parse_type(sql).unwrap_or_else(|e| panic!("{sql}: {e}")),
            want,
            "{sql}"
        );
    }
}

#[test]
fn from_ast_rejects_bad_and_unknown_types() {
    let cases = [
        (
            "numeric(3,5)",
            "22023",
            "NUMERIC scale 5 must be between 0 and precision 3",
        ),
        (
            "numeric(0)",
            "22023",
            "NUMERIC precision 0 must be between 1 and 1000",
        ),
        (
            "numeric(50,2)",
            "0A000",
            "NUMERIC precision 50 exceeds the supported maximum of 38",
        ),
        (
            "numeric(38,30)",
            "0A000",
            "NUMERIC scale 30 exceeds the supported maximum of 28",
        ),
        (
            "varchar(0)",
            "22023",
            "length for type varchar must be at least 1",
        ),
        (
            "float(60)",
            "22023",
            "precision for type float must be less than 54 bits",
        ),
        ("geometry", "0A000", "type geometry is not supported"),
        ("int[]", "0A000", "type INT[] is not supported"),
        (
            "time with time zone",
            "0A000",
            "type TIME WITH TIME ZONE is not supported",
        ),
    ];
    for (sql, state, msg) in cases {
        let err = parse_type(sql).expect_err(sql);
        assert_eq!(
            (err.sqlstate(), err.to_string().as_str()),
            (state, msg),
            "{sql}"
        );
    }
}

#[test]
fn pg_identity_of_every_type() {
    // (type, oid, pg_name, typlen, typmod), checked against pg_type / format_type.
    let cases = [
        (SqlType::Int2, 21, "smallint", 2, -1),
        (SqlType::Int4, 23, "integer", 4, -1),
        (SqlType::Int8, 20, "bigint", 8, -1),
        (SqlType::Float4, 700, "real", 4, -1),
        (SqlType::Float8, 701, "double precision", 8, -1),
        (NUMERIC, 1700, "numeric", -1, -1),
        (
            numeric(12, 2),
            1700,
            "numeric(12,2)",
            -1,
            ((12 << 16) | 2) + 4,
        ),
        (SqlType::Text, 25, "text", -1, -1),
        (
            SqlType::Varchar(Some(5)),
            1043,
            "character varying(5)",
            -1,
            9,
        ),
        (SqlType::Varchar(None), 1043, "character varying", -1, -1),
        (SqlType::Char(Some(3)), 1042, "character(3)", -1, 7),
        (SqlType::Char(None), 1042, "bpchar", -1, -1),
        (SqlType::Bool, 16, "boolean", 1, -1),
        (SqlType::Date, 1082, "date", 4, -1),
        (SqlType::Time, 1083, "time without time zone", 8, -1),
        (
            SqlType::Timestamp,
            1114,
            "timestamp without time zone",
            8,
            -1,
        ),
        (
            SqlType::TimestampTz,
            1184,
            "timestamp with time zone",
            8,
            -1,
        ),
        (SqlType::Interval, 1186, "interval", 16, -1),
        (SqlType::Bytea, 17, "bytea", -1, -1),
        (SqlType::Uuid, 2950, "uuid", 16, -1),
        (SqlType::Json, 114, "json", -1, -1),
        (SqlType::Jsonb, 3802, "jsonb", -1, -1),
    ];
    for (ty, oid, name, typlen, typmod) in cases {
        assert_eq!(ty.oid(), oid, "{ty:?}");
        assert_eq!(ty.pg_name(), name, "{ty:?}");
        assert_eq!(ty.to_string(), name, "{ty:?}");
        assert_eq!(ty.typlen(), typlen, "{ty:?}");
        assert_eq!(ty.typmod(), typmod, "{ty:?}");
        assert_eq!(
            SqlType::from_oid_typmod(oid, typmod),
            Some(ty.clone()),
            "{ty:?}"
        );
    }
    assert_eq!(SqlType::from_oid(1043), Some(SqlType::Varchar(None)));
    assert_eq!(SqlType::from_oid(1700), Some(NUMERIC));
    assert_eq!(SqlType::from_oid(0), None);
    assert_eq!(SqlType::from_oid(600), None); // point
}

#[test]
fn arrow_types_round_trip_through_from_arrow() {
    for ty in all_types() {
        let back = SqlType::from_arrow(&ty.arrow_type());
        let want = match &ty {
            SqlType::Varchar(_)
            | SqlType::Char(_)
            | SqlType::Uuid
            | SqlType::Json
            | SqlType::Jsonb => SqlType::Text,
            other => other.clone(),
        };
        assert_eq!(back, want, "{ty:?}");
    }
    assert_eq!(numeric(12, 2).arrow_type(), DataType::Decimal128(12, 2));
    assert_eq!(NUMERIC.arrow_type(), DataType::Decimal128(38, 10));
    assert_eq!(
        SqlType::TimestampTz.arrow_type(),
        DataType::Timestamp(TimeUnit::Microsecond, Some(Arc::from("+00:00")))
    );
    assert_eq!(
        SqlType::Interval.arrow_type(),
        DataType::Interval(IntervalUnit::MonthDayNano)
    );
}

#[test]
fn from_arrow_maps_datafusion_result_types() {
    let list = DataType::List(Arc::new(Field::new("item", DataType::Int32, true)));
    let cases = [
        (DataType::Int8, SqlType::Int2),
        (DataType::UInt8, SqlType::Int2),
        (DataType::UInt16, SqlType::Int4),
        (DataType::UInt32, SqlType::Int8),
        (DataType::UInt64, numeric(20, 0)),
        (DataType::Float16, SqlType::Float4),
        (DataType::Utf8View, SqlType::Text),
        (DataType::LargeUtf8, SqlType::Text),
        (DataType::Null, SqlType::Text),
        (DataType::Decimal128(10, 3), numeric(10, 3)),
        (DataType::Decimal256(50, 3), NUMERIC),
        (DataType::Decimal128(10, -2), NUMERIC),
        (DataType::Date64, SqlType::Date),
        (DataType::Time32(TimeUnit::Second), SqlType::Time),
        (
            DataType::Timestamp(TimeUnit::Nanosecond, None),
            SqlType::Timestamp,
        ),
        (
            DataType::Timestamp(TimeUnit::Second, Some(Arc::from("Europe/Paris"))),
            SqlType::TimestampTz,
        ),
        (DataType::Duration(TimeUnit::Millisecond), SqlType::Interval),
        (
            DataType::Interval(IntervalUnit::YearMonth),
            SqlType::Interval,
        ),
        (DataType::LargeBinary, SqlType::Bytea),
        (DataType::FixedSizeBinary(16), SqlType::Bytea),
        (
            DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
            SqlType::Text,
        ),
        (
            DataType::Dictionary(Box::new(DataType::Int8), Box::new(DataType::Int64)),
            SqlType::Int8,
        ),
        (list, SqlType::Text),
    ];
    for (dt, want) in cases {
        assert_eq!(SqlType::from_arrow(&dt), want, "{dt}");
    }
}

#[test]
fn type_predicates() {
    assert!(SqlType::Int2.is_integer() && SqlType::Int2.is_numeric());
    assert!(NUMERIC.is_numeric() && !NUMERIC.is_integer());
    assert!(SqlType::Float4.is_float() && SqlType::Float8.is_numeric());
    assert!(SqlType::Char(Some(1)).is_string() && !SqlType::Json.is_string());
    assert!(SqlType::Interval.is_temporal() && SqlType::Jsonb.is_json());
}

#[test]
fn serde_round_trip() {
    for ty in all_types() {
        let json = serde_json::to_string(&ty).unwrap();
        assert_eq!(serde_json::from_str::<SqlType>(&json).unwrap(), ty);
    }
}

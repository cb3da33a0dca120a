use rust_decimal::Decimal;

use super::{numeric, text, NUMERIC};
use crate::types::{Datum, SqlType, TypeError};

fn ok(d: Datum, ty: &SqlType) -> Datum {
    d.clone()
        .coerce(ty)
        .unwrap_or_else(|e| panic!("{d:?} as {ty}: {e}"))
}

fn err(d: Datum, ty: &SqlType) -> (String, String) {
    let e = d
        .clone()
        .coerce(ty)
        .expect_err(&format!("{d:?} as {ty} should fail"));
    (e.sqlstate().to_string(), e.to_string())
}

fn dec(s: &str) -> Datum {
    text(s, &NUMERIC)
}

#[test]
fn integers_widen_narrow_and_round() {
    assert_eq!(ok(Datum::Int2(5), &SqlType::Int8), Datum::Int8(5));
    assert_eq!(ok(Datum::Int8(-5), &SqlType::Int2), Datum::Int2(-5));
    assert_eq!(
        err(Datum::Int4(70000), &SqlType::Int2),
        ("22003".into(), "smallint out of range".into())
    );
    assert_eq!(
        err(Datum::Int8(1 << 40), &SqlType::Int4),
        ("22003".into(), "integer out of range".into())
    );
    // float -> int rounds half to even (PostgreSQL's rint).
    assert_eq!(ok(Datum::Float8(2.5), &SqlType::Int4), Datum::Int4(2));
    assert_eq!(ok(Datum::Float8(3.5), &SqlType::Int4), Datum::Int4(4));
    assert_eq!(ok(Datum::Float4(-2.5), &SqlType::Int4), Datum::Int4(-2));
    // numeric -> int rounds half away from zero.
    assert_eq!(ok(dec("2.5"), &SqlType::Int4), Datum::Int4(3));
    assert_eq!(ok(dec("-2.5"), &SqlType::Int4), Datum::Int4(-3));
    assert_eq!(
        ok(Datum::Float8(9.223372036854775e18), &SqlType::Int8),
        Datum::Int8(9_223_372_036_854_774_784)
    );
    for bad in [f64::NAN, f64::INFINITY, 9.3e18, -9.3e18] {
        assert_eq!(
            err(Datum::Float8(bad), &SqlType::Int8),
            ("22003".into(), "bigint out of range".into())
        );
    }
    assert_eq!(
        err(dec("99999999999"), &SqlType::Int4),
        ("22003".into(), "integer out of range".into())
    );
    assert_eq!(
        ok(Datum::Text(" 42 ".into()), &SqlType::Int8),
        Datum::Int8(42)
    );
    assert_eq!(
        err(Datum::Text("abc".into()), &SqlType::Int4),
        (
            "22P02".into(),
            "invalid input syntax for type integer: \"abc\"".into()
        )
    );
    assert_eq!(
        err(Datum::Bool(true), &SqlType::Int4),
        (
            "42804".into(),
            "value of type boolean cannot be assigned to type integer".into()
        )
    );
}

#[test]
fn numerics_round_to_scale_and_check_precision() {
    let n = numeric(5, 2);
    assert_eq!(ok(Datum::Int4(123), &n).to_pg_text(&n), "123.00");
    assert_eq!(ok(dec("1.005"), &n).to_pg_text(&n), "1.01");
    assert_eq!(ok(dec("-1.005"), &n).to_pg_text(&n), "-1.01");
    assert_eq!(ok(Datum::Float8(0.1), &n).to_pg_text(&n), "0.10");
    assert_eq!(
        ok(Datum::Float8(0.30000000000000004), &NUMERIC),
        Datum::Numeric(Decimal::new(3, 1))
    );
    assert_eq!(
        ok(Datum::Float4(0.1), &NUMERIC),
        Datum::Numeric(Decimal::new(1, 1))
    );
    assert_eq!(
        err(Datum::Int4(1000), &n),
        ("22003".into(), "numeric field overflow".into())
    );
    assert_eq!(
        err(dec("999.995"), &n),
        ("22003".into(), "numeric field overflow".into())
    );
    assert_eq!(ok(dec("999.994"), &n).to_pg_text(&n), "999.99");
    // numeric(3,3): only |x| < 1.
    assert_eq!(
        ok(dec("0.9994"), &numeric(3, 3)).to_pg_text(&numeric(3, 3)),
        "0.999"
    );
    assert_eq!(err(dec("0.9995"), &numeric(3, 3)).0, "22003");
    assert_eq!(
        err(Datum::Float8(1e30), &NUMERIC),
        ("22003".into(), "value overflows numeric format".into())
    );
    assert_eq!(err(Datum::Float8(f64::NAN), &NUMERIC).0, "0A000");
    assert_eq!(err(Datum::Float8(f64::INFINITY), &NUMERIC).0, "0A000");
    assert_eq!(ok(Datum::Text("1.239".into()), &numeric(4, 2)), dec("1.24"));
}

#[test]
fn floats_convert_with_range_checks() {
    assert_eq!(ok(Datum::Int8(3), &SqlType::Float8), Datum::Float8(3.0));
    assert_eq!(ok(dec("0.5"), &SqlType::Float4), Datum::Float4(0.5));
    assert_eq!(
        ok(Datum::Float4(0.1), &SqlType::Float8),
        Datum::Float8(f64::from(0.1f32))
    );
    assert_eq!(
        err(Datum::Float8(1e300), &SqlType::Float4),
        ("22003".into(), "value out of range: overflow".into())
    );
    assert_eq!(
        err(Datum::Float8(1e-300), &SqlType::Float4),
        ("22003".into(), "value out of range: underflow".into())
    );
    assert!(
        matches!(ok(Datum::Float8(f64::NAN), &SqlType::Float4), Datum::Float4(v) if v.is_nan())
    );
    assert_eq!(err(Datum::Bool(true), &SqlType::Float8).0, "42804");
}

#[test]
fn strings_fit_their_column() {
    let v5 = SqlType::Varchar(Some(5));
    let c3 = SqlType::Char(Some(3));
    assert_eq!(
        ok(Datum::Text("abc".into()), &v5),
        Datum::Text("abc".into())
    );
    assert_eq!(
        ok(Datum::Text("abc      ".into()), &v5),
        Datum::Text("abc  ".into())
    );
    assert_eq!(
        err(Datum::Text("abcdef".into()), &v5),
        (
            "22001".into(),
            "value too long for type character varying(5)".into()
        )
    );
    assert_eq!(ok(Datum::Text("a".into()), &c3), Datum::Text("a  ".into()));
    assert_eq!(
        err(Datum::Text("abcd".into()), &c3),
        (
            "22001".into(),
            "value too long for type character(3)".into()
        )
    );
    // Other values convert through their text output; booleans as true/false.
    assert_eq!(
        ok(Datum::Int4(12), &SqlType::Text),
        Datum::Text("12".into())
    );
    assert_eq!(
        ok(Datum::Bool(true), &SqlType::Text),
        Datum::Text("true".into())
    );
    assert_eq!(ok(dec("2.50"), &SqlType::Text), Datum::Text("2.5".into()));
    assert_eq!(
        ok(
            text("2024-01-02", &SqlType::Date),
            &SqlType::Varchar(Some(10))
        ),
        Datum::Text("2024-01-02".into())
    );
    assert_eq!(err(Datum::Int8(123456), &v5).0, "22001");
}

#[test]
fn temporal_conversions() {
    let day = text("2024-01-02", &SqlType::Date);
    let ts = text("2024-01-02 12:34:56", &SqlType::Timestamp);
    let tz = text("2024-01-02 12:34:56+00", &SqlType::TimestampTz);
    assert_eq!(
        ok(day.clone(), &SqlType::Timestamp),
        text("2024-01-02 00:00:00", &SqlType::Timestamp)
    );
    assert_eq!(
        ok(day.clone(), &SqlType::TimestampTz),
        text("2024-01-02 00:00:00+00", &SqlType::TimestampTz)
    );
    assert_eq!(ok(ts.clone(), &SqlType::TimestampTz), tz);
    assert_eq!(ok(tz.clone(), &SqlType::Timestamp), ts);
    assert_eq!(ok(ts.clone(), &SqlType::Date), day);
    assert_eq!(ok(tz, &SqlType::Time), text("12:34:56", &SqlType::Time));
    assert_eq!(
        ok(text("infinity", &SqlType::Date), &SqlType::Timestamp),
        Datum::Timestamp(i64::MAX)
    );
    assert_eq!(
        ok(text("-infinity", &SqlType::Timestamp), &SqlType::Date),
        Datum::Date(i32::MIN)
    );
    assert_eq!(
        ok(text("01:02:03", &SqlType::Time), &SqlType::Interval),
        text("01:02:03", &SqlType::Interval)
    );
    assert_eq!(
        ok(
            Datum::Text("2024-01-02 10:00:00+02".into()),
            &SqlType::TimestampTz
        ),
        text("2024-01-02 08:00:00+00", &SqlType::TimestampTz)
    );
    assert_eq!(err(Datum::Int4(1), &SqlType::Date).0, "42804");
    assert_eq!(err(day, &SqlType::Interval).0, "42804");
}

#[test]
fn other_types_accept_only_themselves_and_text() {
    assert_eq!(
        ok(Datum::Text("yes".into()), &SqlType::Bool),
        Datum::Bool(true)
    );
    assert_eq!(
        err(Datum::Int4(1), &SqlType::Bool),
        (
            "42804".into(),
            "value of type integer cannot be assigned to type boolean".into()
        )
    );
    assert_eq!(
        ok(Datum::Text("{\"b\":1,\"a\":2}".into()), &SqlType::Jsonb),
        Datum::Json("{\"a\": 2, \"b\": 1}".into())
    );
    assert_eq!(
        ok(Datum::Json("{\"b\":1,\"a\":2}".into()), &SqlType::Jsonb),
        Datum::Json("{\"a\": 2, \"b\": 1}".into())
    );
    assert_eq!(
        ok(Datum::Text("{\"b\":1}".into()), &SqlType::Json),
        Datum::Json("{\"b\":1}".into())
    );
    assert_eq!(err(Datum::Text("{".into()), &SqlType::Json).0, "22P02");
    assert_eq!(
        err(Datum::Int4(1), &SqlType::Json).1,
        "value of type integer cannot be assigned to type json"
    );
    assert_eq!(
        ok(Datum::Text("\\x00ff".into()), &SqlType::Bytea),
        Datum::Bytea(vec![0, 255])
    );
    assert_eq!(err(Datum::Int4(1), &SqlType::Uuid).0, "42804");
    assert_eq!(ok(Datum::Null, &SqlType::Int4), Datum::Null);
    assert_eq!(ok(Datum::Null, &SqlType::Jsonb), Datum::Null);
}

#[test]
fn mismatch_names_the_column() {
    let e = Datum::Text("x".into())
        .coerce(&SqlType::Bool)
        .unwrap_err()
        .with_column("b");
    // Text goes through boolin: a syntax error, not a mismatch.
    assert_eq!(e.sqlstate(), "22P02");
    let e = Datum::Bool(true)
        .coerce(&SqlType::Int4)
        .unwrap_err()
        .with_column("x");
    assert_eq!(
        e.to_string(),
        "column \"x\" is of type integer but expression is of type boolean"
    );
    assert_eq!(e.sqlstate(), "42804");
    assert!(matches!(e, TypeError::Mismatch { column: Some(ref c), .. } if c == "x"));
}

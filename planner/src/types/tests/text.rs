use rust_decimal::Decimal;

use super::{all_types, numeric, random_datum, same, text, Rng, NUMERIC};
use crate::types::{Datum, SqlType};

/// `SELECT '<input>'::<ty>` in PostgreSQL prints `want`.
fn pg(input: &str, ty: &SqlType, want: &str) {
    let d = text(input, ty);
    assert_eq!(d.to_pg_text(ty), want, "'{input}'::{ty}");
}

/// Parsing `input` as `ty` fails with `state` and message `msg`.
fn pg_err(input: &str, ty: &SqlType, state: &str, msg: &str) {
    let err = Datum::parse_text(input, ty).expect_err(input);
    assert_eq!(
        (err.sqlstate(), err.to_string().as_str()),
        (state, msg),
        "'{input}'::{ty}"
    );
}

#[test]
fn floats_print_like_postgres() {
    let f8 = SqlType::Float8;
    let f4 = SqlType::Float4;
    pg("1e20", &f8, "1e+20");
    pg("1.5e-7", &f8, "1.5e-07");
    pg("123456789012345678", &f8, "1.2345678901234568e+17");
    pg("1e15", &f8, "1e+15");
    pg("1e14", &f8, "100000000000000");
    pg("0.0001", &f8, "0.0001");
    pg("0.00001", &f8, "1e-05");
    pg("100", &f8, "100");
    pg("-0", &f8, "-0");
    pg("NaN", &f8, "NaN");
    pg("Infinity", &f8, "Infinity");
    pg("-inf", &f8, "-Infinity");
    pg("  2.5  ", &f8, "2.5");
    assert_eq!(
        Datum::Float8(1.0 / 3.0).to_pg_text(&f8),
        "0.3333333333333333"
    );
    pg("0.1", &f4, "0.1");
    pg("3.4e38", &f4, "3.4e+38");
    pg("1e-45", &f4, "1e-45");
    pg("1234567", &f4, "1.234567e+06");
    pg("100000", &f4, "100000");
    pg("12345.678", &f4, "12345.678");
    pg("2.5e-5", &f4, "2.5e-05");
    assert_eq!(Datum::Float4(1.0 / 3.0).to_pg_text(&f4), "0.33333334");
}

#[test]
fn numerics_print_with_declared_scale() {
    pg("120.5", &numeric(12, 2), "120.50");
    pg("120.505", &numeric(12, 2), "120.51");
    pg("-120.505", &numeric(12, 2), "-120.51");
    pg("0", &numeric(5, 3), "0.000");
    pg("-0.0001", &numeric(5, 3), "0.000");
    pg("1e3", &numeric(6, 1), "1000.0");
    pg("  42  ", &NUMERIC, "42");
    pg("1.50", &NUMERIC, "1.5"); // PostgreSQL: 1.50 (documented deviation)
    pg("-1.25e-3", &NUMERIC, "-0.00125");
    pg("+.5", &NUMERIC, "0.5");
    pg("5.", &NUMERIC, "5");
    pg(
        "12345678901234567890123456789",
        &NUMERIC,
        "12345678901234567890123456789",
    );
    pg(
        "0.1234567890123456789012345678",
        &NUMERIC,
        "0.1234567890123456789012345678",
    );
    // More fractional digits than fit are rounded away.
    pg(
        "0.12345678901234567890123456789",
        &NUMERIC,
        "0.1234567890123456789012345679",
    );
    pg("1e-40", &NUMERIC, "0");
    pg_err("1e30", &NUMERIC, "22003", "value overflows numeric format");
    pg_err(
        "123456.7",
        &numeric(5, 2),
        "22003",
        "numeric field overflow",
    );
    pg_err("999.995", &numeric(5, 2), "22003", "numeric field overflow");
    pg_err(
        "abc",
        &NUMERIC,
        "22P02",
        "invalid input syntax for type numeric: \"abc\"",
    );
    pg_err(
        "1e",
        &NUMERIC,
        "22P02",
        "invalid input syntax for type numeric: \"1e\"",
    );
    pg_err(
        ".",
        &NUMERIC,
        "22P02",
        "invalid input syntax for type numeric: \".\"",
    );
    pg_err("NaN", &NUMERIC, "0A000", "numeric NaN is not supported");
}

#[test]
fn integers_and_booleans_parse_like_postgres() {
    pg("  12  ", &SqlType::Int4, "12");
    pg("+7", &SqlType::Int2, "7");
    pg(
        "-9223372036854775808",
        &SqlType::Int8,
        "-9223372036854775808",
    );
    pg_err(
        "abc",
        &SqlType::Int4,
        "22P02",
        "invalid input syntax for type integer: \"abc\"",
    );
    pg_err(
        "",
        &SqlType::Int4,
        "22P02",
        "invalid input syntax for type integer: \"\"",
    );
    pg_err(
        "1.5",
        &SqlType::Int8,
        "22P02",
        "invalid input syntax for type bigint: \"1.5\"",
    );
    pg_err(
        "3000000000",
        &SqlType::Int4,
        "22003",
        "value \"3000000000\" is out of range for type integer",
    );
    pg_err(
        "40000",
        &SqlType::Int2,
        "22003",
        "value \"40000\" is out of range for type smallint",
    );
    pg_err(
        "9223372036854775808",
        &SqlType::Int8,
        "22003",
        "value \"9223372036854775808\" is out of range for type bigint",
    );
    pg_err(
        "1e400",
        &SqlType::Float8,
        "22003",
        "\"1e400\" is out of range for type double precision",
    );
    pg_err(
        "1e-400",
        &SqlType::Float8,
        "22003",
        "\"1e-400\" is out of range for type double precision",
    );
    pg_err(
        "1e39",
        &SqlType::Float4,
        "22003",
        "\"1e39\" is out of range for type real",
    );
    pg_err(
        "1.2.3",
        &SqlType::Float8,
        "22P02",
        "invalid input syntax for type double precision: \"1.2.3\"",
    );
    for (input, want) in [
        ("t", true),
        ("TRUE", true),
        ("tru", true),
        (" yes ", true),
        ("y", true),
        ("on", true),
        ("1", true),
        ("f", false),
        ("False", false),
        ("no", false),
        ("off", false),
        ("of", false),
        ("0", false),
    ] {
        assert_eq!(text(input, &SqlType::Bool), Datum::Bool(want), "{input}");
    }
    for bad in ["o", "x", "", "2", "truex", "onn"] {
        pg_err(
            bad,
            &SqlType::Bool,
            "22P02",
            &format!("invalid input syntax for type boolean: \"{bad}\""),
        );
    }
    assert_eq!(Datum::Bool(true).to_pg_text(&SqlType::Bool), "t");
    assert_eq!(Datum::Bool(false).to_pg_text(&SqlType::Bool), "f");
}

#[test]
fn strings_respect_length_limits() {
    let v5 = SqlType::Varchar(Some(5));
    let c3 = SqlType::Char(Some(3));
    pg("abc", &v5, "abc");
    pg("abc   ", &v5, "abc  ");
    pg("a", &c3, "a  ");
    pg("ab   ", &c3, "ab ");
    pg("héé", &c3, "héé");
    pg_err(
        "abcdef",
        &v5,
        "22001",
        "value too long for type character varying(5)",
    );
    pg_err("abcd", &c3, "22001", "value too long for type character(3)");
    pg("anything at all", &SqlType::Text, "anything at all");
}

#[test]
fn datetimes_print_like_postgres() {
    let ts = SqlType::Timestamp;
    let tz = SqlType::TimestampTz;
    pg("2024-01-02", &SqlType::Date, "2024-01-02");
    pg("2024-1-2", &SqlType::Date, "2024-01-02");
    pg("20240102", &SqlType::Date, "2024-01-02");
    pg("0044-03-15 BC", &SqlType::Date, "0044-03-15 BC");
    pg("4714-11-24 BC", &SqlType::Date, "4714-11-24 BC");
    pg("5874897-12-31", &SqlType::Date, "5874897-12-31");
    pg("10000-01-01", &SqlType::Date, "10000-01-01");
    pg("infinity", &SqlType::Date, "infinity");
    pg("-infinity", &SqlType::Date, "-infinity");
    pg("epoch", &SqlType::Date, "1970-01-01");
    pg("2024-01-02 12:34:56", &SqlType::Date, "2024-01-02");
    pg("12:00", &SqlType::Time, "12:00:00");
    pg("23:59:59.999999", &SqlType::Time, "23:59:59.999999");
    pg("24:00:00", &SqlType::Time, "24:00:00");
    pg("1:02:03.5 pm", &SqlType::Time, "13:02:03.5");
    pg("12:00 am", &SqlType::Time, "00:00:00");
    pg(
        "2024-01-02T03:04:05.123456789",
        &ts,
        "2024-01-02 03:04:05.123457",
    );
    pg("2024-01-02 03:04:05.5", &ts, "2024-01-02 03:04:05.5");
    pg("2024-01-02   03:04", &ts, "2024-01-02 03:04:00");
    pg("2024-01-02", &ts, "2024-01-02 00:00:00");
    pg("2024-01-02 12:00:00+05", &ts, "2024-01-02 12:00:00");
    pg("0001-01-01 00:00:00 BC", &ts, "0001-01-01 00:00:00 BC");
    pg(
        "294246-12-31 23:59:59.999999",
        &ts,
        "294246-12-31 23:59:59.999999",
    );
    pg("2024-01-02 12:00:00+02", &tz, "2024-01-02 10:00:00+00");
    pg("2024-01-02 03:04:05-08:30", &tz, "2024-01-02 11:34:05+00");
    pg("2024-01-02 03:04:05 -0830", &tz, "2024-01-02 11:34:05+00");
    pg("2024-01-02 03:04:05Z", &tz, "2024-01-02 03:04:05+00");
    pg("2024-01-02 03:04:05 UTC", &tz, "2024-01-02 03:04:05+00");
    pg(
        "2024-01-02T03:04:05.5+01:00",
        &tz,
        "2024-01-02 02:04:05.5+00",
    );
    pg("2024-01-01 00:30:00+01", &tz, "2023-12-31 23:30:00+00");
    pg(
        "0001-01-01 00:00:00+00 BC",
        &tz,
        "0001-01-01 00:00:00+00 BC",
    );
    pg("infinity", &tz, "infinity");
    pg("2024-02-29", &SqlType::Date, "2024-02-29");
    pg("2000-02-29", &SqlType::Date, "2000-02-29");
}

#[test]
fn bad_datetimes_fail_with_postgres_codes() {
    let date = SqlType::Date;
    pg_err(
        "2024-13-01",
        &date,
        "22008",
        "date/time field value out of range: \"2024-13-01\"",
    );
    pg_err(
        "2023-02-29",
        &date,
        "22008",
        "date/time field value out of range: \"2023-02-29\"",
    );
    pg_err(
        "1900-02-29",
        &date,
        "22008",
        "date/time field value out of range: \"1900-02-29\"",
    );
    pg_err(
        "0000-01-01",
        &date,
        "22008",
        "date/time field value out of range: \"0000-01-01\"",
    );
    pg_err(
        "4714-11-23 BC",
        &date,
        "22008",
        "date out of range: \"4714-11-23 BC\"",
    );
    pg_err(
        "foo",
        &date,
        "22007",
        "invalid input syntax for type date: \"foo\"",
    );
    pg_err(
        "12:00",
        &date,
        "22007",
        "invalid input syntax for type date: \"12:00\"",
    );
    pg_err(
        "2024-01-02 25:00",
        &SqlType::Timestamp,
        "22008",
        "date/time field value out of range: \"2024-01-02 25:00\"",
    );
    pg_err(
        "2024-01-02 12:60",
        &SqlType::Timestamp,
        "22008",
        "date/time field value out of range: \"2024-01-02 12:60\"",
    );
    pg_err(
        "2024-01-02 12",
        &SqlType::Timestamp,
        "22007",
        "invalid input syntax for type timestamp: \"2024-01-02 12\"",
    );
    pg_err(
        "300000-01-01",
        &SqlType::Timestamp,
        "22008",
        "timestamp out of range: \"300000-01-01\"",
    );
    pg_err(
        "24:00:01",
        &SqlType::Time,
        "22008",
        "date/time field value out of range: \"24:00:01\"",
    );
    pg_err(
        "2024-01-02 12:00 Foo/Bar",
        &SqlType::TimestampTz,
        "22023",
        "time zone \"foo/bar\" not recognized",
    );
}

#[test]
fn intervals_print_in_postgres_style() {
    let iv = SqlType::Interval;
    pg(
        "1 year 2 months 3 days 04:05:06",
        &iv,
        "1 year 2 mons 3 days 04:05:06",
    );
    pg("1 year 2 mons", &iv, "1 year 2 mons");
    pg("2 hours 3 minutes", &iv, "02:03:00");
    pg("-1 days", &iv, "-1 days");
    pg("0", &iv, "00:00:00");
    pg(
        "-1 year -2 mons +3 days -04:05:06",
        &iv,
        "-1 years -2 mons +3 days -04:05:06",
    );
    pg("1.5 years", &iv, "1 year 6 mons");
    pg("1.5 months", &iv, "1 mon 15 days");
    pg("1.5 days", &iv, "1 day 12:00:00");
    pg("1.5 weeks", &iv, "10 days 12:00:00");
    pg("@ 1 day ago", &iv, "-1 days");
    pg("10", &iv, "00:00:10");
    pg("P1Y2M3DT4H5M6.5S", &iv, "1 year 2 mons 3 days 04:05:06.5");
    pg("PT1H", &iv, "01:00:00");
    pg("P2W", &iv, "14 days");
    pg("-01:02:03.25", &iv, "-01:02:03.25");
    pg("1 day -02:00", &iv, "1 day -02:00:00");
    pg("100 hours", &iv, "100:00:00");
    pg("1 mon -1 day", &iv, "1 mon -1 days");
    pg("1 day 2 hours ago", &iv, "-1 days -02:00:00");
    pg("3 millisecond", &iv, "00:00:00.003");
    pg("1 century 1 decade", &iv, "110 years");
    pg("1d 2h 3m 4s", &iv, "1 day 02:03:04");
    pg("-1 day +02:03:04", &iv, "-1 days +02:03:04");
    pg_err(
        "1 fortnight",
        &iv,
        "22007",
        "invalid input syntax for type interval: \"1 fortnight\"",
    );
    pg_err(
        "",
        &iv,
        "22007",
        "invalid input syntax for type interval: \"\"",
    );
    pg_err(
        "3000000000 days",
        &iv,
        "22008",
        "interval field value out of range: \"3000000000 days\"",
    );
}

#[test]
fn bytea_uuid_json_like_postgres() {
    let b = SqlType::Bytea;
    pg("\\x4a4B", &b, "\\x4a4b");
    pg("\\x 4a 4b", &b, "\\x4a4b");
    pg("a\\\\b\\001", &b, "\\x615c6201");
    pg("", &b, "\\x");
    pg("abc", &b, "\\x616263");
    pg_err(
        "\\x4",
        &b,
        "22023",
        "invalid hexadecimal data: odd number of digits",
    );
    pg_err("\\xzz", &b, "22023", "invalid hexadecimal digit: \"z\"");
    pg_err("a\\9", &b, "22P02", "invalid input syntax for type bytea");
    pg_err("\\X0A", &b, "22P02", "invalid input syntax for type bytea");
    let u = SqlType::Uuid;
    let canonical = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11";
    pg("{A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11}", &u, canonical);
    pg("a0eebc999c0b4ef8bb6d6bb9bd380a11", &u, canonical);
    pg("a0eebc999c0b-4ef8-bb6d6bb9-bd380a11", &u, canonical);
    for bad in [
        "a0eebc99",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
        "a0eebc9-99c0b-4ef8-bb6d-6bb9bd380a11",
        "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11-",
        " a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "urn:uuid:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    ] {
        let msg = format!("invalid input syntax for type uuid: \"{bad}\"");
        pg_err(bad, &u, "22P02", &msg);
    }
    pg("{\"b\":1}", &SqlType::Json, "{\"b\":1}");
    pg(
        "{\"b\": 1, \"a\": [1.50, 1e2, \"x\\\\ny\"], \"aa\": null, \"b\": 2}",
        &SqlType::Jsonb,
        "{\"a\": [1.50, 100, \"x\\\\ny\"], \"b\": 2, \"aa\": null}",
    );
    pg(" [ ] ", &SqlType::Jsonb, "[]");
    pg("{\"\\u00e9\\n\": -0}", &SqlType::Jsonb, "{\"é\\n\": 0}");
    pg("\"\\ud83d\\ude00\"", &SqlType::Jsonb, "\"😀\"");
    pg("{\"a\":1,\"a\":2,\"a\":3}", &SqlType::Jsonb, "{\"a\": 3}");
    for (bad, ty) in [
        ("{", SqlType::Json),
        ("[1,2", SqlType::Json),
        ("[1,]", SqlType::Jsonb),
        ("01", SqlType::Jsonb),
        ("", SqlType::Jsonb),
        ("\"tab\there\"", SqlType::Jsonb),
        ("\"\\u0000\"", SqlType::Jsonb),
    ] {
        pg_err(bad, &ty, "22P02", "invalid input syntax for type json");
    }
}

#[test]
fn intervals_reject_what_postgres_rejects() {
    let iv = SqlType::Interval;
    pg("- 1 day", &iv, "-1 days");
    pg("1 day 10", &iv, "1 day 00:00:10");
    pg("1:00 1 day", &iv, "1 day 01:00:00");
    pg("1 week 1 day", &iv, "8 days");
    pg("1 day ago ago", &iv, "-1 days");
    pg("P1Y1Y", &iv, "2 years");
    pg(
        "1 day 2562047788:00:54.775807",
        &iv,
        "1 day 2562047788:00:54.775807",
    );
    pg("-178956970 years -8 mons", &iv, "-178956970 years -8 mons");
    for bad in [
        "1 day 1 day",
        "1 mon 1 month",
        "1 2",
        "10 1 day",
        "1 hour 1:00",
        "ago",
        "1 ago",
        "1 ago day",
        "1e2 seconds",
        "1 day +",
        "1:2:3:4",
        "P1y",
        "p1Y",
        "P",
    ] {
        let msg = format!("invalid input syntax for type interval: \"{bad}\"");
        pg_err(bad, &iv, "22007", &msg);
    }
}

#[test]
fn more_datetime_edges() {
    let ts = SqlType::Timestamp;
    pg("1:2:3", &SqlType::Time, "01:02:03");
    pg("23:59:59.9999999", &SqlType::Time, "24:00:00");
    pg("2024-12-31 23:59:59.9999999", &ts, "2025-01-01 00:00:00");
    pg("1000-01-01 00:00:00 BC", &ts, "1000-01-01 00:00:00 BC");
    pg("  2024-01-02 12:00  ", &ts, "2024-01-02 12:00:00");
    pg(
        "2024-01-02 12:00:00+1",
        &SqlType::TimestampTz,
        "2024-01-02 11:00:00+00",
    );
    pg(
        "2024-03-10 02:30:00 +01:00:30",
        &SqlType::TimestampTz,
        "2024-03-10 01:29:30+00",
    );
    pg_err(
        "2024-01-02 12:00 +16",
        &SqlType::TimestampTz,
        "22008",
        "time zone displacement out of range: \"2024-01-02 12:00 +16\"",
    );
    pg_err(
        "2000-02-29 BC",
        &SqlType::Date,
        "22008",
        "date/time field value out of range: \"2000-02-29 BC\"",
    );
}

#[test]
fn integer_overflow_is_reported_before_trailing_garbage() {
    // PostgreSQL scans the digits first.
    pg_err(
        "-2954337810.3278",
        &SqlType::Int4,
        "22003",
        "value \"-2954337810.3278\" is out of range for type integer",
    );
    pg_err(
        "12 3",
        &SqlType::Int4,
        "22P02",
        "invalid input syntax for type integer: \"12 3\"",
    );
    pg_err(
        "99999999999999999999999999999999",
        &numeric(5, 5),
        "22003",
        "numeric field overflow",
    );
}

#[test]
fn text_round_trips_for_every_type() {
    let mut rng = Rng::new(0x5EED_0001);
    for ty in all_types() {
        for _ in 0..300 {
            let d = random_datum(&mut rng, &ty);
            let s = d.to_pg_text(&ty);
            let back = Datum::parse_text(&s, &ty)
                .unwrap_or_else(|e| panic!("{ty}: {d:?} printed {s:?} does not parse: {e}"));
            assert!(same(&back, &d), "{ty}: {d:?} -> {s:?} -> {back:?}");
        }
    }
}

#[test]
fn numeric_text_is_normalized_for_unconstrained_and_scaled_for_typmod() {
    // Unconstrained values are normalized on input (see numeric.rs's caveats).
    let Datum::Numeric(d) = text("1.50", &NUMERIC) else {
        panic!("not numeric")
    };
    assert_eq!(d, Decimal::new(15, 1));
    assert_eq!(d.scale(), 1);
    let Datum::Numeric(d) = text("1.5", &numeric(6, 3)) else {
        panic!("not numeric")
    };
    assert_eq!(d.scale(), 3);
}

use std::cmp::Ordering;

use kv::keycode::Decoder;
use rust_decimal::Decimal;

use super::{all_types, numeric, random_datum, same, text, Rng, NUMERIC};
use crate::types::{decode_key_datum, encode_key_datum, Datum, SqlType};

fn key(d: &Datum) -> Vec<u8> {
    let mut buf = Vec::new();
    encode_key_datum(&mut buf, d);
    buf
}

fn decode_one(bytes: &[u8], ty: &SqlType) -> Datum {
    let mut dec = Decoder::new(bytes);
    let d = decode_key_datum(&mut dec, ty).unwrap();
    assert!(dec.is_empty(), "trailing bytes after {d:?}");
    d
}

/// Canonical form the key keeps: `-0` is `0`, any NaN is NaN.
fn key_same(decoded: &Datum, original: &Datum) -> bool {
    match (decoded, original) {
        (Datum::Float4(a), Datum::Float4(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Datum::Float8(a), Datum::Float8(b)) => a == b || (a.is_nan() && b.is_nan()),
        _ => same(decoded, original),
    }
}

#[test]
fn key_order_matches_cmp_sql_for_every_type() {
    let mut rng = Rng::new(0x5EED_0003);
    for ty in all_types() {
        let mut values: Vec<Datum> = (0..150).map(|_| random_datum(&mut rng, &ty)).collect();
        values.push(Datum::Null);
        let keys: Vec<Vec<u8>> = values.iter().map(key).collect();
        for (a, ka) in values.iter().zip(&keys) {
            assert!(key_same(&decode_one(ka, &ty), a), "{ty}: {a:?} round trip");
            for (b, kb) in values.iter().zip(&keys) {
                assert_eq!(
                    ka.cmp(kb),
                    a.cmp_sql(b),
                    "{ty}: key order of {a:?} vs {b:?}"
                );
            }
        }
    }
}

#[test]
fn numeric_keys_order_across_magnitudes_and_ignore_scale() {
    let mut rng = Rng::new(0x5EED_0004);
    let mut values: Vec<Decimal> = [
        "0",
        "1",
        "-1",
        "0.5",
        "-0.5",
        "10",
        "9.99",
        "-10",
        "-9.99",
        "1e-28",
        "-1e-28",
        "79228162514264337593543950335",
        "-79228162514264337593543950335",
        "7922816251426433759354395033.5",
        "0.0000000000000000000000000001",
        "100",
        "1.00",
        "123.456",
        "123.4567",
        "-123.456",
        "-123.4567",
    ]
    .iter()
    .map(|s| match text(s, &NUMERIC) {
        Datum::Numeric(d) => d,
        _ => unreachable!(),
    })
    .collect();
    for _ in 0..300 {
        let mantissa = (rng.next() >> (rng.next() % 64)) as i64;
        let scale = (rng.next() % 29) as u32;
        values.push(Decimal::new(mantissa, scale));
        values.push(-Decimal::new(mantissa, scale));
    }
    for a in &values {
        let ka = key(&Datum::Numeric(*a));
        let back = decode_one(&ka, &NUMERIC);
        assert_eq!(back, Datum::Numeric(*a), "{a}");
        for b in &values {
            let kb = key(&Datum::Numeric(*b));
            assert_eq!(ka.cmp(&kb), a.cmp(b), "{a} vs {b}");
        }
    }
    assert_eq!(
        key(&Datum::Numeric(Decimal::new(150, 2))),
        key(&Datum::Numeric(Decimal::new(15, 1)))
    );
    assert_eq!(
        key(&Datum::Numeric(Decimal::new(-0, 3))),
        key(&Datum::Numeric(Decimal::ZERO))
    );
    // Decoding restores the declared scale.
    let k = key(&Datum::Numeric(Decimal::new(12050, 2)));
    assert_eq!(
        decode_one(&k, &numeric(12, 2)).to_pg_text(&numeric(12, 2)),
        "120.50"
    );
}

#[test]
fn integer_widths_encode_identically() {
    assert_eq!(key(&Datum::Int2(5)), key(&Datum::Int8(5)));
    assert_eq!(key(&Datum::Int4(-7)), key(&Datum::Int8(-7)));
    assert_eq!(
        decode_one(&key(&Datum::Int8(5)), &SqlType::Int2),
        Datum::Int2(5)
    );
    let mut dec = Decoder::new(&[0]);
    assert!(decode_key_datum(&mut dec, &SqlType::Int4).is_err());
    let big = key(&Datum::Int8(1 << 40));
    let err = decode_key_datum(&mut Decoder::new(&big), &SqlType::Int4).unwrap_err();
    assert_eq!(err.sqlstate(), "XX001");
}

#[test]
fn nulls_sort_last_and_keys_compose_like_tuples() {
    assert!(key(&Datum::Int4(i32::MAX)) < key(&Datum::Null));
    assert!(key(&Datum::Text("\u{10FFFF}".into())) < key(&Datum::Null));
    let tuple = |s: &str, n: i64| {
        let mut buf = Vec::new();
        encode_key_datum(&mut buf, &Datum::Text(s.into()));
        encode_key_datum(&mut buf, &Datum::Int8(n));
        buf
    };
    assert!(tuple("a", 9) < tuple("ab", -9));
    assert!(tuple("ab", -9) < tuple("ab", 0));
    assert!(tuple("a\0", 0) > tuple("a", 100));
    let k = tuple("x\0y", -3);
    let mut dec = Decoder::new(&k);
    assert_eq!(
        decode_key_datum(&mut dec, &SqlType::Varchar(Some(3))).unwrap(),
        Datum::Text("x\0y".into())
    );
    assert_eq!(
        decode_key_datum(&mut dec, &SqlType::Int8).unwrap(),
        Datum::Int8(-3)
    );
    assert!(dec.is_empty());
}

#[test]
fn float_keys_follow_postgres_order() {
    let ordered = [
        f64::NEG_INFINITY,
        -1e300,
        -1.0,
        0.0,
        1e-300,
        1.0,
        f64::INFINITY,
        f64::NAN,
    ];
    for w in ordered.windows(2) {
        let (a, b) = (Datum::Float8(w[0]), Datum::Float8(w[1]));
        assert!(key(&a) < key(&b), "{a:?} < {b:?}");
        assert_eq!(a.cmp_sql(&b), Ordering::Less);
    }
    assert_eq!(key(&Datum::Float8(-0.0)), key(&Datum::Float8(0.0)));
    assert_eq!(
        Datum::Float8(-0.0).cmp_sql(&Datum::Float8(0.0)),
        Ordering::Equal
    );
    assert_eq!(
        Datum::Float8(f64::NAN).cmp_sql(&Datum::Float8(f64::NAN)),
        Ordering::Equal
    );
}

#[test]
fn interval_keys_order_by_span_then_fields() {
    let iv = |s: &str| text(s, &SqlType::Interval);
    let month = iv("1 mon");
    let days30 = iv("30 days");
    let hours = iv("719 hours");
    assert!(key(&hours) < key(&days30));
    assert!(key(&days30) < key(&month));
    assert_eq!(hours.cmp_sql(&days30), Ordering::Less);
    assert_eq!(days30.cmp_sql(&month), Ordering::Less);
    assert!(key(&iv("-1 year")) < key(&iv("-11 mons")));
}

#[test]
fn cmp_sql_compares_numbers_across_types() {
    let cases = [
        (Datum::Int2(5), Datum::Int8(5), Ordering::Equal),
        (Datum::Int4(5), Datum::Float8(5.5), Ordering::Less),
        (
            Datum::Numeric(Decimal::new(55, 1)),
            Datum::Float4(5.5),
            Ordering::Equal,
        ),
        (
            Datum::Numeric(Decimal::new(51, 1)),
            Datum::Int8(5),
            Ordering::Greater,
        ),
        (
            Datum::Float8(f64::NAN),
            Datum::Int8(i64::MAX),
            Ordering::Greater,
        ),
        (Datum::Int8(-1), Datum::Null, Ordering::Less),
        (Datum::Null, Datum::Null, Ordering::Equal),
        (
            text("2024-01-02", &SqlType::Date),
            text("2024-01-01 23:59:59", &SqlType::Timestamp),
            Ordering::Greater,
        ),
        (
            text("2024-01-02", &SqlType::Date),
            text("2024-01-02 00:00:00+00", &SqlType::TimestampTz),
            Ordering::Equal,
        ),
        (
            Datum::Text("a".into()),
            Datum::Text("B".into()),
            Ordering::Greater,
        ),
        (Datum::Bool(false), Datum::Bool(true), Ordering::Less),
    ];
    for (a, b, want) in cases {
        assert_eq!(a.cmp_sql(&b), want, "{a:?} vs {b:?}");
        assert_eq!(b.cmp_sql(&a), want.reverse(), "{b:?} vs {a:?}");
    }
}

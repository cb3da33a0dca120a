use super::{all_types, numeric, random_datum, same, text, Rng, NUMERIC};
use crate::types::{Datum, SqlType};

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// `SELECT <type>_send('<input>'::<ty>)` in PostgreSQL returns `want` (hex).
fn send(input: &str, ty: &SqlType, want: &str) {
    let d = text(input, ty);
    let bytes = d.to_pg_binary(ty).unwrap();
    assert_eq!(hex(&bytes), want, "{input}::{ty}");
    let back = Datum::from_pg_binary(&unhex(want), ty).unwrap();
    assert!(same(&back, &d), "{input}::{ty}: {back:?} != {d:?}");
}

#[test]
fn binary_matches_postgres_send_functions() {
    send("120.50", &numeric(12, 2), "000200000000000200781388");
    send("0", &NUMERIC, "0000000000000000");
    send("-1234567.891", &NUMERIC, "0003000140000003007b11d722ce");
    send("0.0001", &NUMERIC, "0001ffff000000040001");
    send("100000000", &NUMERIC, "00010002000000000001");
    send("1e-28", &NUMERIC, "0001fff90000001c0001");
    send("2024-01-02", &SqlType::Date, "0000223f");
    send("infinity", &SqlType::Date, "7fffffff");
    send(
        "2024-01-02 03:04:05.5",
        &SqlType::Timestamp,
        "0002b0ec851d9460",
    );
    send("-infinity", &SqlType::Timestamp, "8000000000000000");
    send(
        "1 year 2 mons 3 days 04:05:06",
        &SqlType::Interval,
        "000000036c8bc080000000030000000e",
    );
    send("{\"a\":1}", &SqlType::Jsonb, "017b2261223a20317d");
    send("0.1", &SqlType::Float4, "3dcccccd");
    send("t", &SqlType::Bool, "01");
    send("-2", &SqlType::Int2, "fffe");
    send("258", &SqlType::Int4, "00000102");
    send("abc", &SqlType::Text, "616263");
    send(
        "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        &SqlType::Uuid,
        "a0eebc999c0b4ef8bb6d6bb9bd380a11",
    );
}

#[test]
fn binary_round_trips_for_every_type() {
    let mut rng = Rng::new(0x5EED_0002);
    for ty in all_types() {
        for _ in 0..300 {
            let d = random_datum(&mut rng, &ty);
            let b = d
                .to_pg_binary(&ty)
                .unwrap_or_else(|e| panic!("{ty}: {d:?}: {e}"));
            let back = Datum::from_pg_binary(&b, &ty)
                .unwrap_or_else(|e| panic!("{ty}: {d:?} -> {b:?}: {e}"));
            assert!(same(&back, &d), "{ty}: {d:?} -> {back:?}");
        }
    }
}

#[test]
fn binary_numeric_reads_display_scale() {
    // dscale 2 with digits [1, 5000]: 1.50, normalized for an unconstrained column.
    let bytes = unhex("000200000000000200011388");
    let Datum::Numeric(d) = Datum::from_pg_binary(&bytes, &NUMERIC).unwrap() else {
        panic!("not numeric")
    };
    assert_eq!(d.to_string(), "1.5");
    let Datum::Numeric(d) = Datum::from_pg_binary(&bytes, &numeric(5, 3)).unwrap() else {
        panic!("not numeric")
    };
    assert_eq!(d.to_string(), "1.500");
    // Zero with dscale 2.
    let zero = unhex("0000000000000002");
    let Datum::Numeric(z) = Datum::from_pg_binary(&zero, &numeric(4, 2)).unwrap() else {
        panic!("not numeric")
    };
    assert_eq!(z.to_string(), "0.00");
}

#[test]
fn binary_converts_mismatched_datums_and_rejects_bad_input() {
    assert_eq!(
        Datum::Int2(7).to_pg_binary(&SqlType::Int8).unwrap(),
        7i64.to_be_bytes()
    );
    assert_eq!(
        Datum::Text("42".into())
            .to_pg_binary(&SqlType::Int4)
            .unwrap(),
        42i32.to_be_bytes()
    );
    let null = Datum::Null.to_pg_binary(&SqlType::Int4).unwrap_err();
    assert_eq!(null.sqlstate(), "22004");
    let cases: [(&[u8], SqlType, &str); 8] = [
        (&[0, 1, 2], SqlType::Int4, "22P03"),
        (&[0; 9], SqlType::Int8, "22P03"),
        (&[0xff, 0xfe], SqlType::Text, "22021"),
        (&[2, b'{', b'}'], SqlType::Jsonb, "22P03"),
        (&[1, b'{'], SqlType::Jsonb, "22P02"),
        (&[0, 1, 0, 0, 0, 0, 0, 0], NUMERIC, "22P03"),
        (&[0, 0, 0, 0, 0xc0, 0, 0, 0], NUMERIC, "0A000"),
        (b"abcdef", SqlType::Varchar(Some(3)), "22001"),
    ];
    for (bytes, ty, state) in cases {
        let err = Datum::from_pg_binary(bytes, &ty).unwrap_err();
        assert_eq!(err.sqlstate(), state, "{bytes:?} as {ty}: {err}");
    }
    assert_eq!(
        Datum::from_pg_binary(&[0xff, 0xfe], &SqlType::Text)
            .unwrap_err()
            .to_string(),
        "invalid byte sequence for encoding \"UTF8\": 0xff"
    );
    // Past Meridian's last timestamp (294247-01-01), though valid in PostgreSQL.
    let late = (i64::MAX - 1).to_be_bytes();
    assert_eq!(
        Datum::from_pg_binary(&late, &SqlType::Timestamp)
            .unwrap_err()
            .sqlstate(),
        "22008"
    );
}

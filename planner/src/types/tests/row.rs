use rust_decimal::Decimal;

use super::{all_types, random_datum, same, Rng};
use crate::types::{decode_row, encode_row, Datum};

#[test]
fn rows_round_trip() {
    let mut rng = Rng::new(0x5EED_0005);
    let types = all_types();
    for _ in 0..500 {
        let n = (rng.next() % 12) as usize;
        let row: Vec<Datum> = (0..n)
            .map(|_| {
                let ty = &types[(rng.next() % types.len() as u64) as usize];
                if rng.chance(6) {
                    Datum::Null
                } else {
                    random_datum(&mut rng, ty)
                }
            })
            .collect();
        let bytes = encode_row(&row);
        let back = decode_row(&bytes).unwrap();
        assert_eq!(back.len(), row.len());
        for (a, b) in back.iter().zip(&row) {
            assert!(same(a, b), "{a:?} != {b:?}");
        }
    }
}

#[test]
fn rows_keep_numeric_scale_and_variant() {
    let row = vec![
        Datum::Numeric(Decimal::new(12050, 2)),
        Datum::Numeric(Decimal::new(-1, 28)),
        Datum::Numeric(Decimal::MAX),
        Datum::Numeric(Decimal::MIN),
        Datum::Int2(i16::MIN),
        Datum::Int4(i32::MIN),
        Datum::Int8(i64::MIN),
        Datum::Float8(-0.0),
        Datum::Json("{\"a\": 1}".into()),
        Datum::Text("{\"a\": 1}".into()),
    ];
    let back = decode_row(&encode_row(&row)).unwrap();
    assert_eq!(back, row);
    let Datum::Numeric(d) = &back[0] else {
        panic!("numeric")
    };
    assert_eq!(d.scale(), 2);
    assert!(matches!(back[7], Datum::Float8(v) if v.is_sign_negative()));
}

#[test]
fn rows_are_compact() {
    // version + (tag + 1-byte varint) * 3
    assert_eq!(
        encode_row(&[Datum::Int4(1), Datum::Int8(-1), Datum::Null]).len(),
        1 + 2 + 2 + 1
    );
    assert_eq!(encode_row(&[]), vec![1]);
    assert_eq!(decode_row(&[1]).unwrap(), vec![]);
}

#[test]
fn short_rows_decode_to_their_prefix() {
    // A row written before ALTER TABLE ADD COLUMN: the caller pads the tail.
    let old = encode_row(&[Datum::Int4(1), Datum::Text("x".into())]);
    assert_eq!(decode_row(&old).unwrap().len(), 2);
}

#[test]
fn corrupt_rows_are_rejected() {
    let good = encode_row(&[Datum::Text("hello".into()), Datum::Int8(300)]);
    for cut in 1..good.len() {
        // Cutting between datums leaves a valid shorter row.
        let whole_datums = [1, 8].contains(&cut);
        assert_eq!(
            decode_row(&good[..cut]).is_ok(),
            whole_datums,
            "cut at {cut}"
        );
    }
    let cases: [&[u8]; 6] = [
        &[],
        &[2, 0],
        &[1, 99],
        &[1, 9, 2, 0xff, 0xfe],
        &[1, 3, 0xff, 0xff, 0x07],
        &[
            1, 5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f,
        ],
    ];
    for bytes in cases {
        let err = decode_row(bytes).expect_err(&format!("{bytes:?}"));
        assert_eq!(err.sqlstate(), "XX001", "{bytes:?}");
    }
}

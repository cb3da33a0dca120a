use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, BinaryViewArray, Date64Array, Decimal128Array, Decimal256Array,
    DictionaryArray, DurationMillisecondArray, FixedSizeBinaryArray, Float32Array, Int32Array,
    IntervalDayTimeArray, IntervalYearMonthArray, LargeStringArray, ListArray, NullArray,
    StringArray, StringViewArray, StructArray, Time32MillisecondArray, Time32SecondArray,
    Time64NanosecondArray, TimestampNanosecondArray, UInt64Array, UInt8Array,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{i256, DataType, Field, Int32Type, Int8Type, IntervalDayTime};
use datafusion::scalar::ScalarValue;
use rust_decimal::Decimal;

use super::{all_types, numeric, random_datum, same, text, Rng, NUMERIC};
use crate::types::{
    array_datum, datum_to_scalar, datums_to_array, scalar_to_datum, Datum, SqlType,
};

/// What a datum of `ty` reads back as after a trip through Arrow.
fn after_arrow(d: &Datum, ty: &SqlType) -> Datum {
    match (d, ty) {
        (Datum::Uuid(_), _) => Datum::Text(d.to_pg_text(ty)),
        (Datum::Json(s), _) => Datum::Text(s.clone()),
        // Unconstrained numerics keep 10 fractional digits inside DataFusion.
        (Datum::Numeric(n), SqlType::Numeric { scale: None, .. }) => Datum::Numeric(
            n.round_dp_with_strategy(10, rust_decimal::RoundingStrategy::MidpointAwayFromZero),
        ),
        _ => d.clone(),
    }
}

#[test]
fn arrays_round_trip_for_every_type() {
    let mut rng = Rng::new(0x5EED_0006);
    for ty in all_types() {
        let mut values: Vec<Datum> = (0..200)
            .map(|_| random_datum(&mut rng, &ty))
            .filter(|d| {
                // Unconstrained numerics read back exactly (after rounding to 10
                // fractional digits) while integer + 10 fractional digits fit in 28.
                !matches!((d, &ty), (Datum::Numeric(n), SqlType::Numeric { scale: None, .. })
                    if n.abs() >= Decimal::from_i128_with_scale(10i128.pow(18), 0))
            })
            .filter(|d| !matches!(d, Datum::Interval { micros, .. } if micros.checked_mul(1000).is_none()))
            .collect();
        values.push(Datum::Null);
        let array = datums_to_array(&values, &ty).unwrap_or_else(|e| panic!("{ty}: {e}"));
        assert_eq!(array.data_type(), &ty.arrow_type(), "{ty}");
        assert_eq!(array.len(), values.len());
        let read_ty = SqlType::from_arrow(array.data_type());
        for (i, d) in values.iter().enumerate() {
            let back = array_datum(&array, i).unwrap();
            let want = after_arrow(d, &ty);
            assert!(same(&back, &want), "{ty}: {d:?} -> {back:?}");
            // The text a client sees is the same either way.
            if !matches!(ty, SqlType::Numeric { scale: None, .. }) {
                assert_eq!(back.to_pg_text(&read_ty), d.to_pg_text(&ty), "{ty}: {d:?}");
            }
            // Scalars keep unconstrained numerics exact (their own scale if > 10).
            let scalar = datum_to_scalar(d, &ty);
            let unconstrained = matches!(ty, SqlType::Numeric { scale: None, .. });
            if !unconstrained {
                assert_eq!(scalar.data_type(), ty.arrow_type(), "{ty}: {d:?}");
            }
            let scalar_want = if unconstrained { d } else { &want };
            let scalar_back = scalar_to_datum(&scalar).unwrap();
            assert!(
                same(&scalar_back, scalar_want),
                "{ty}: {d:?} -> {scalar_back:?}"
            );
        }
    }
}

#[test]
fn numeric_arrays_check_precision() {
    let n = numeric(5, 2);
    let err = datums_to_array(&[Datum::Numeric(Decimal::new(123456, 1))], &n).unwrap_err();
    assert_eq!(err.sqlstate(), "22003");
    let array = datums_to_array(&[Datum::Int4(12)], &n).unwrap();
    assert_eq!(array_datum(&array, 0).unwrap().to_pg_text(&n), "12.00");
    let d = Datum::Numeric(Decimal::new(15, 1));
    let unconstrained = datums_to_array(std::slice::from_ref(&d), &NUMERIC).unwrap();
    let back = array_datum(&unconstrained, 0).unwrap();
    assert_eq!(
        back.to_pg_text(&SqlType::from_arrow(unconstrained.data_type())),
        "1.5"
    );
}

#[test]
fn reads_every_common_datafusion_type() {
    let list = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
        Some(vec![Some(1), Some(2), None]),
        None,
        Some(vec![]),
    ]);
    let nested = {
        let inner = Arc::new(Field::new("item", DataType::Int32, true));
        let values = ListArray::from_iter_primitive::<Int32Type, _, _>(vec![
            Some(vec![Some(1), Some(2)]),
            Some(vec![Some(3)]),
        ]);
        ListArray::try_new(
            Arc::new(Field::new("item", DataType::List(inner), true)),
            datafusion::arrow::buffer::OffsetBuffer::new(vec![0, 2].into()),
            Arc::new(values),
            None,
        )
        .unwrap()
    };
    let strings = {
        let values = StringArray::from(vec![
            Some("a b"),
            Some("x\"y"),
            Some(""),
            Some("NULL"),
            Some("plain"),
            None,
        ]);
        ListArray::try_new(
            Arc::new(Field::new("item", DataType::Utf8, true)),
            datafusion::arrow::buffer::OffsetBuffer::new(vec![0, 6].into()),
            Arc::new(values),
            None,
        )
        .unwrap()
    };
    let dict: DictionaryArray<Int8Type> = vec![Some("x"), None, Some("y"), Some("x")]
        .into_iter()
        .collect();
    let structs = StructArray::from(vec![(
        Arc::new(Field::new("a", DataType::Int32, false)),
        Arc::new(Int32Array::from(vec![7])) as ArrayRef,
    )]);
    let cases: Vec<(ArrayRef, usize, Datum)> = vec![
        (Arc::new(UInt8Array::from(vec![255])), 0, Datum::Int2(255)),
        (
            Arc::new(UInt64Array::from(vec![u64::MAX])),
            0,
            Datum::Numeric(Decimal::from(u64::MAX)),
        ),
        (
            cast(&Float32Array::from(vec![1.5f32]), &DataType::Float16).unwrap(),
            0,
            Datum::Float4(1.5),
        ),
        (
            Arc::new(
                Decimal128Array::from(vec![12345])
                    .with_precision_and_scale(10, 3)
                    .unwrap(),
            ),
            0,
            Datum::Numeric(Decimal::new(12345, 3)),
        ),
        (
            Arc::new(
                Decimal128Array::from(vec![12])
                    .with_precision_and_scale(10, -2)
                    .unwrap(),
            ),
            0,
            Datum::Numeric(Decimal::from(1200)),
        ),
        (
            Arc::new(
                Decimal128Array::from(vec![10i128.pow(37) + 5])
                    .with_precision_and_scale(38, 10)
                    .unwrap(),
            ),
            0,
            // 10^27 + 5e-10: fractional digits beyond rust_decimal are rounded away.
            Datum::Numeric(Decimal::from_i128_with_scale(10i128.pow(28), 1)),
        ),
        (
            Arc::new(
                Decimal256Array::from(vec![i256::from_i128(-25)])
                    .with_precision_and_scale(50, 1)
                    .unwrap(),
            ),
            0,
            Datum::Numeric(Decimal::new(-25, 1)),
        ),
        (
            Arc::new(LargeStringArray::from(vec!["big"])),
            0,
            Datum::Text("big".into()),
        ),
        (
            Arc::new(StringViewArray::from(vec!["view"])),
            0,
            Datum::Text("view".into()),
        ),
        (
            Arc::new(BinaryViewArray::from(vec![b"\x00\x01".as_slice()])),
            0,
            Datum::Bytea(vec![0, 1]),
        ),
        (
            Arc::new(FixedSizeBinaryArray::try_from(vec![b"ab".as_slice()]).unwrap()),
            0,
            Datum::Bytea(b"ab".to_vec()),
        ),
        (
            Arc::new(Date64Array::from(vec![-1])),
            0,
            text("1969-12-31", &SqlType::Date),
        ),
        (
            Arc::new(Time32SecondArray::from(vec![3661])),
            0,
            text("01:01:01", &SqlType::Time),
        ),
        (
            Arc::new(Time32MillisecondArray::from(vec![1500])),
            0,
            text("00:00:01.5", &SqlType::Time),
        ),
        (
            Arc::new(Time64NanosecondArray::from(vec![1_000_999])),
            0,
            text("00:00:00.001", &SqlType::Time),
        ),
        (
            Arc::new(TimestampNanosecondArray::from(vec![-1]).with_timezone("Europe/Paris")),
            0,
            text("1969-12-31 23:59:59.999999+00", &SqlType::TimestampTz),
        ),
        (
            Arc::new(IntervalYearMonthArray::from(vec![14])),
            0,
            text("1 year 2 mons", &SqlType::Interval),
        ),
        (
            Arc::new(IntervalDayTimeArray::from(vec![IntervalDayTime::new(
                3, 1500,
            )])),
            0,
            text("3 days 00:00:01.5", &SqlType::Interval),
        ),
        (
            Arc::new(DurationMillisecondArray::from(vec![90_000])),
            0,
            text("00:01:30", &SqlType::Interval),
        ),
        (Arc::new(NullArray::new(2)), 1, Datum::Null),
        (Arc::new(dict.clone()), 2, Datum::Text("y".into())),
        (Arc::new(dict), 1, Datum::Null),
        (Arc::new(list.clone()), 0, Datum::Text("{1,2,NULL}".into())),
        (Arc::new(list.clone()), 1, Datum::Null),
        (Arc::new(list), 2, Datum::Text("{}".into())),
        (Arc::new(nested), 0, Datum::Text("{{1,2},{3}}".into())),
        (
            Arc::new(strings),
            0,
            Datum::Text("{\"a b\",\"x\\\"y\",\"\",\"NULL\",plain,NULL}".into()),
        ),
        (Arc::new(structs), 0, Datum::Text("{a: 7}".into())),
    ];
    for (array, row, want) in cases {
        let got = array_datum(&array, row).unwrap_or_else(|e| panic!("{}: {e}", array.data_type()));
        assert!(
            same(&got, &want),
            "{}: {got:?} != {want:?}",
            array.data_type()
        );
    }
    let out_of_bounds = array_datum(&(Arc::new(Int32Array::from(vec![1])) as ArrayRef), 1);
    assert!(out_of_bounds.is_err());
}

#[test]
fn scalars_convert_both_ways() {
    assert_eq!(
        scalar_to_datum(&ScalarValue::Int64(Some(7))).unwrap(),
        Datum::Int8(7)
    );
    assert_eq!(
        scalar_to_datum(&ScalarValue::Utf8(None)).unwrap(),
        Datum::Null
    );
    assert_eq!(
        scalar_to_datum(&ScalarValue::Decimal128(Some(1205), 10, 1)).unwrap(),
        Datum::Numeric(Decimal::new(1205, 1))
    );
    assert_eq!(
        datum_to_scalar(&Datum::Null, &SqlType::Int4),
        ScalarValue::Int32(None)
    );
    assert_eq!(
        datum_to_scalar(&Datum::Int2(3), &SqlType::Int8),
        ScalarValue::Int64(Some(3))
    );
    assert_eq!(
        datum_to_scalar(&Datum::Numeric(Decimal::new(5, 1)), &numeric(5, 2)),
        ScalarValue::Decimal128(Some(50), 5, 2)
    );
    // Uncoercible values keep their own type.
    assert_eq!(
        datum_to_scalar(&Datum::Bool(true), &SqlType::Int4),
        ScalarValue::Boolean(Some(true))
    );
    // Unconstrained numerics with many fractional digits stay exact.
    let fine = Decimal::new(1, 20);
    assert_eq!(
        datum_to_scalar(&Datum::Numeric(fine), &NUMERIC),
        ScalarValue::Decimal128(Some(1), 38, 20)
    );
}

//! Golden vectors *(jar)*: rows written by `BinaryRowWriter` of the Flink 2.3.0 and 1.15.4 jars
//! (identical bytes), their `hashCode()` and `KeyGroupRangeAssignment.assignToKeyGroup` for max
//! parallelism 128 and 256.

use super::binary::{self, FieldSerializers, Section};
use super::*;
use crate::model::value::{RowKind, Value};
use crate::readers::serializers::key_group_for_hash;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap()).collect()
}

fn ty(kind: TypeKind) -> LogicalType {
    LogicalType { nullable: true, kind }
}

/// (name, row bytes, hashCode, key group of 128, key group of 256)
const ROWS: &[(&str, &str, i32, u32, u32)] = &[
    ("empty", "0000000000000000", -1670924195, 11, 11),
    ("alice", "0000000000000000616c696365000085", -2099467358, 45, 173),
    ("long", "00000000000000000d00000010000000612d6c6f6e6765722d6e616d65000000", -1942132599, 57, 185),
    ("long-null", "00020000000000002a000000000000000000000000000000", -1327665715, 75, 203),
    (
        "int-dec30-ts9",
        "0000000000000000f9ffffff00000000090000002000000055f806003000000042ed123b0bd8203a17000000000000007bf451c28c010000",
        706112024,
        41,
        41,
    ),
];

#[test]
fn binary_row_hash_and_key_groups() {
    for (name, bytes, hash, kg128, kg256) in ROWS {
        let h = binary_row_hash_code(&hex(bytes));
        assert_eq!(h, *hash, "{name}");
        assert_eq!(key_group_for_hash(h, 128), *kg128, "{name}");
        assert_eq!(key_group_for_hash(h, 256), *kg256, "{name}");
    }
}

fn decode(bytes: &str, types: &[LogicalType]) -> Value {
    let b = hex(bytes);
    binary::row(Section::new(&b, 0), types, None, FieldSerializers::default(), 0).unwrap()
}

fn row(fields: Vec<Value>) -> Value {
    Value::Row { kind: RowKind::Insert, fields: fields.into_iter().enumerate().map(|(i, v)| (format!("f{i}"), v)).collect() }
}

#[test]
fn binary_rows_decode() {
    assert_eq!(decode(ROWS[0].1, &[]), row(vec![]));
    let string = ty(TypeKind::VarChar(i32::MAX as u32));
    // five bytes inline in the slot (mark bit, length 5 in the top byte)
    assert_eq!(decode(ROWS[1].1, std::slice::from_ref(&string)), row(vec![Value::String("alice".into())]));
    // thirteen bytes in the variable part
    assert_eq!(decode(ROWS[2].1, &[string]), row(vec![Value::String("a-longer-name".into())]));
    assert_eq!(decode(ROWS[3].1, &[ty(TypeKind::BigInt), ty(TypeKind::Integer)]), row(vec![Value::Int(42), Value::Null]));
    let v = decode(
        ROWS[4].1,
        &[
            ty(TypeKind::Integer),
            ty(TypeKind::Decimal { precision: 30, scale: 1 }),
            ty(TypeKind::Timestamp { precision: 9, kind: TimestampKind::Regular }),
        ],
    );
    assert_eq!(
        v.to_json(),
        serde_json::json!({"f0": -7, "f1": "123456789012345678901.5", "f2": "2024-01-01T00:00:00.123456789"})
    );
    let ltz = decode(ROWS[4].1, &[ty(TypeKind::Integer), ty(TypeKind::Decimal { precision: 30, scale: 1 }), ty(TypeKind::TimestampLtz { precision: 9, kind: TimestampKind::Regular })]);
    assert_eq!(ltz.to_json()["f2"], serde_json::json!("2024-01-01T00:00:00.123456789Z"));
}

#[test]
fn truncated_rows_are_errors_not_panics() {
    let b = hex(ROWS[4].1);
    let types = [ty(TypeKind::Integer), ty(TypeKind::Decimal { precision: 30, scale: 1 }), ty(TypeKind::Timestamp { precision: 9, kind: TimestampKind::Regular })];
    for n in 0..b.len() {
        let r = binary::row(Section::new(&b[..n], 100), &types, None, FieldSerializers::default(), 0);
        assert!(r.is_err(), "{n} bytes decoded");
    }
}

#[test]
fn decimal_text() {
    assert_eq!(decimal_text_i128(-685, 2), "-6.85");
    assert_eq!(decimal_text_i128(5, 3), "0.005");
    assert_eq!(decimal_text_i128(0, 2), "0.00");
    assert_eq!(decimal_text_i128(-5, 0), "-5");
    assert_eq!(decimal_text_bytes(&hex("42ed123b0bd8203a17"), 1), "123456789012345678901.5");
    assert_eq!(decimal_text_bytes(&hex("ff"), 2), "-0.01");
    // more than 16 bytes: through BigInteger text
    assert_eq!(decimal_text_bytes(&hex("0100000000000000000000000000000000"), 0), "340282366920938463463374607431768211456");
}

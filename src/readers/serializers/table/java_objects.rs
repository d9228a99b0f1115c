//! Serializer *objects* in Java serialization streams (not snapshots): what a `RawType` or an
//! `ArrayDataSerializerSnapshot` stores. Only Flink's base serializers are recognised; they are
//! enough to decode the raw values of nested positions, whose snapshots are not stored.

use crate::readers::serializers::SimpleType;

/// The simple type of a serializer class of `org.apache.flink.api.common.typeutils.base`, or
/// `None`.
pub fn simple_serializer(class: &str) -> Option<SimpleType> {
    use SimpleType as S;
    Some(match class.strip_prefix("org.apache.flink.api.common.typeutils.base.")? {
        "BooleanSerializer" => S::Boolean,
        "ByteSerializer" => S::Byte,
        "ShortSerializer" => S::Short,
        "IntSerializer" => S::Int,
        "LongSerializer" => S::Long,
        "FloatSerializer" => S::Float,
        "DoubleSerializer" => S::Double,
        "CharSerializer" => S::Char,
        "StringSerializer" => S::String,
        "BigIntSerializer" => S::BigInteger,
        "BigDecSerializer" => S::BigDecimal,
        "InstantSerializer" => S::Instant,
        "LocalDateSerializer" => S::LocalDate,
        "LocalTimeSerializer" => S::LocalTime,
        "LocalDateTimeSerializer" => S::LocalDateTime,
        "DateSerializer" => S::Date,
        "SqlDateSerializer" => S::SqlDate,
        "SqlTimeSerializer" => S::SqlTime,
        "SqlTimestampSerializer" => S::SqlTimestamp,
        "VoidSerializer" => S::Void,
        _ => return None,
    })
}

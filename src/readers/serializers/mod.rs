//! Flink's serializer snapshots and value encodings (spec: `formats/serializers.md`).

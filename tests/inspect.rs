//! `flinksnap inspect` on every real-Flink fixture.

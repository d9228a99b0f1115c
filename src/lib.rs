//! flinksnap

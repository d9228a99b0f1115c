//! Decoded state values.

//! Fuzz targets for async-rdp; see `README.md`. The targets' bodies live in [`harness`] so
//! that `tests/fuzz.rs` runs the very same checks on the stable toolchain, with the bounded
//! fuzzing [`engine`] that it includes by path as well.

pub mod engine;
pub mod harness;

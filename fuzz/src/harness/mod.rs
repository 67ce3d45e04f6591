//! The fuzz targets' bodies and their in-memory streams, shared by the libFuzzer binaries
//! (`fuzz/fuzz_targets/`) and the bounded stable-toolchain runs in `tests/fuzz.rs`, which
//! includes this module by path.

pub mod framing;
pub mod session;
pub mod stream;

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| async_rdp_fuzz::harness::framing::check(data));

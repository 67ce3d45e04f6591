#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    // Connect to the demo server once, before the first input.
    init: async_rdp_fuzz::harness::session::init(),
    |data: &[u8]| async_rdp_fuzz::harness::session::check(data)
);

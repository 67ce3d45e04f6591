#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(
    init: {
        // Connect to the demo server once, before the first input.
        async_rdp_fuzz::harness::session::init();
        // libfuzzer-sys aborts on every panic, also one that `Session` catches (it contains
        // IronRDP's decoder panics). With this variable set, only panics that escape count:
        // they still abort, in libfuzzer-sys's wrapper, so libFuzzer keeps the input.
        if std::env::var_os("ASYNC_RDP_FUZZ_ALLOW_CONTAINED_PANICS").is_some() {
            std::panic::set_hook(Box::new(|_| {}));
        }
    },
    |data: &[u8]| async_rdp_fuzz::harness::session::check(data)
);

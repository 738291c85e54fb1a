#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stubvirt_tests::fuzz::net_backpressure::run(data));

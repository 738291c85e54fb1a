#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stubvirt_tests::fuzz::blk_request::run(data));

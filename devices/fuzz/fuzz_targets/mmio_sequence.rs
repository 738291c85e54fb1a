#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| stubvirt_tests::fuzz::mmio_sequence::run(data));

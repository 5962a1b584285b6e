#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| entente_fuzz::entry_bundle(data));

#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| entente_fuzz::federation_batch(data));

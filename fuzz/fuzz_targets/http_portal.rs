#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petitiond::fuzzing::http_portal(data));

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| petitiond::fuzzing::routing_rules(data));

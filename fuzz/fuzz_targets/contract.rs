#![no_main]
// Outside bytes into smollama::fuzzing::contract (what it feeds them to is documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| smollama::fuzzing::contract(data));

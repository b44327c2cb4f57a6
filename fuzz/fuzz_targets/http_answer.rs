#![no_main]
// Outside bytes into smollama::fuzzing::http_answer (what it feeds them to is documented there).

libfuzzer_sys::fuzz_target!(|data: &[u8]| smollama::fuzzing::http_answer(data));

//! Hostile rank files: loading returns Ok or a typed error, never panics or hangs.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = ferrotok::Vocab::from_tiktoken_bytes(data, "fuzz", &[]);
    let _ = ferrotok::Vocab::from_blob(data);
});

//! The hand-written splitters must produce exactly the regex's pieces, and encoding must
//! round-trip, on any UTF-8 input.
#![no_main]

use ferrotok::pretokenize::PreTokenizer;
use libfuzzer_sys::fuzz_target;

const PATTERNS: [&str; 4] = [
    ferrotok::pretokenize::GPT2_PATTERN,
    ferrotok::pretokenize::CL100K_PATTERN,
    ferrotok::pretokenize::LLAMA3_PATTERN,
    ferrotok::pretokenize::O200K_PATTERN,
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    for pat in PATTERNS {
        let fast = PreTokenizer::new(pat).unwrap();
        let reference = PreTokenizer::regex(pat).unwrap();
        assert_eq!(fast.pieces(text).unwrap(), reference.pieces(text).unwrap());
    }
    let enc = ferrotok::registry::get("o200k_base").unwrap();
    let ids = enc.encode_ordinary(text).unwrap();
    assert_eq!(enc.decode_bytes(&ids).unwrap(), text.as_bytes());
});

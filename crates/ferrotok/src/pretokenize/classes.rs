//! Per-code-point character classes for the hand-written pre-tokenizers.
//!
//! Exactness: the classes are not typed in by hand. They are computed, once, from the same
//! Unicode tables that the regex reference path uses (`regex-syntax`, which `fancy-regex`
//! compiles with), so the fast splitters and the regex agree on every code point, whatever
//! Unicode version the regex crates ship.

use std::sync::OnceLock;

use regex_syntax::hir::{Class, HirKind};

/// `\p{L}`
pub const L: u8 = 1;
/// `\p{N}`
pub const N: u8 = 2;
/// `\s` (Unicode White_Space)
pub const WS: u8 = 4;
/// `[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]` (o200k's "upper" class)
pub const UP: u8 = 8;
/// `[\p{Ll}\p{Lm}\p{Lo}\p{M}]` (o200k's "lower" class)
pub const LO: u8 = 16;
/// `\r` or `\n`
pub const NL: u8 = 32;

const CLASSES: [(u8, &str); 6] = [
    (L, r"\p{L}"),
    (N, r"\p{N}"),
    (WS, r"\s"),
    (UP, r"[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]"),
    (LO, r"[\p{Ll}\p{Lm}\p{Lo}\p{M}]"),
    (NL, r"[\r\n]"),
];

/// One byte of class bits per code point (1.1 MB, built on first use in about a millisecond).
static TABLE: OnceLock<Box<[u8]>> = OnceLock::new();

fn class_ranges(pattern: &str) -> Vec<(u32, u32)> {
    let hir = regex_syntax::Parser::new().parse(pattern);
    match hir.as_ref().map(|h| h.kind()) {
        Ok(HirKind::Class(Class::Unicode(c))) => {
            c.ranges().iter().map(|r| (r.start() as u32, r.end() as u32)).collect()
        }
        // The patterns above are constants that always parse to a Unicode class.
        _ => Vec::new(),
    }
}

/// The characters that `(?i:c)` matches for an ASCII letter `c`, as the regex engine folds case.
pub fn case_insensitive(c: char) -> Vec<char> {
    class_ranges(&format!("(?i:[{c}])")).into_iter().flat_map(|(a, b)| a..=b).filter_map(char::from_u32).collect()
}

/// The class table, built on first use.
#[inline]
pub fn table() -> &'static [u8] {
    TABLE.get_or_init(|| {
        let mut t = vec![0u8; 0x11_0000];
        for (bit, pat) in CLASSES {
            for (a, b) in class_ranges(pat) {
                for v in &mut t[a as usize..=b as usize] {
                    *v |= bit;
                }
            }
        }
        t.into_boxed_slice()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_come_from_the_regex_tables() {
        let t = table();
        assert_eq!(t['a' as usize], L | LO);
        assert_eq!(t['A' as usize], L | UP);
        assert_eq!(t['7' as usize], N);
        assert_eq!(t[' ' as usize], WS);
        assert_eq!(t['\n' as usize], WS | NL);
        assert_eq!(t['!' as usize], 0);
        assert_eq!(t[0x3000], WS); // ideographic space
        assert_eq!(t[0x0301], UP | LO); // combining acute: \p{M}, not \p{L}
        assert_eq!(t['中' as usize], L | UP | LO); // Lo
        assert_eq!(case_insensitive('s'), vec!['S', 's', 'ſ']);
    }
}

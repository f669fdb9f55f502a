//! Hand-written splitters, one per pattern family, each equal to its regex.
//!
//! Each `next_*` function returns the end of the match that the regex would find at `i`
//! (every position matches something non-empty in these patterns, so the pieces tile the
//! text). The comments quote the alternative being emulated; alternatives are tried in the
//! pattern's order, as a backtracking engine does. Possessive quantifiers (`++`, `?+`) give
//! the same matches as greedy ones here because nothing after them can make the greedy match
//! give back a character; the one look-ahead, `\s+(?!\S)`, becomes "the whitespace run minus
//! its last character when a non-space follows".

use std::sync::OnceLock;

use super::classes::{case_insensitive, table, L, LO, N, NL, UP, WS};
use crate::error::Result;

/// The pattern families with a hand-written splitter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// GPT-2, r50k_base, p50k_base, p50k_edit.
    Gpt2,
    /// cl100k_base.
    Cl100k,
    /// Llama 3 (and cl100k_base as tiktoken spelled it before 0.8): like cl100k but a
    /// whitespace run that ends the text still splits after its last newline.
    Llama3,
    /// o200k_base and o200k_harmony.
    O200k,
    /// Qwen 2 and 3: Llama 3's pattern with single digits (`\p{N}` instead of `\p{N}{1,3}`).
    Qwen,
}

/// tiktoken's current spelling of the GPT-2 pattern.
pub const GPT2_PATTERN: &str = r"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s";
/// The GPT-2 pattern as older tiktoken releases and GPT-2's encoder spell it.
pub const GPT2_PATTERN_OLD: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";
/// tiktoken's current cl100k_base pattern.
pub const CL100K_PATTERN: &str = r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s";
/// Llama 3's pattern, which older tiktoken releases also used for cl100k_base.
pub const LLAMA3_PATTERN: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen 2/3's pattern (in their `tokenizer.json` files).
pub const QWEN_PATTERN: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// o200k_base and o200k_harmony.
pub const O200K_PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    r"|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

impl Family {
    /// The family whose splitter equals `pattern`, if any.
    pub fn for_pattern(pattern: &str) -> Option<Self> {
        match pattern {
            GPT2_PATTERN | GPT2_PATTERN_OLD => Some(Self::Gpt2),
            CL100K_PATTERN => Some(Self::Cl100k),
            LLAMA3_PATTERN => Some(Self::Llama3),
            O200K_PATTERN => Some(Self::O200k),
            QWEN_PATTERN => Some(Self::Qwen),
            _ => None,
        }
    }

    /// Calls `f(start, end)` for each piece; the pieces tile `text`.
    #[inline]
    pub fn split(self, text: &str, mut f: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
        self.split_from(text, 0, |s, e| f(s, e).map(|()| true))
    }

    /// Calls `f(start, end)` for each piece of the scan that starts at byte `start` (a char
    /// boundary), until the text ends or `f` returns `Ok(false)`.
    ///
    /// The scan is memoryless: the next piece depends only on where the current one ends. So
    /// two scans that ever share a piece start coincide from there on — what makes cutting a
    /// long text between threads exact (`Encoding::encode_ordinary_parallel`).
    #[inline]
    pub fn split_from(self, text: &str, start: usize, mut f: impl FnMut(usize, usize) -> Result<bool>) -> Result<()> {
        let s = Scanner { t: text.as_bytes(), tab: table() };
        let mut i = start;
        macro_rules! drive {
            ($next:ident) => {
                while i < s.t.len() {
                    let e = s.$next(i);
                    if !f(i, e)? {
                        break;
                    }
                    i = e;
                }
            };
        }
        match self {
            Self::Gpt2 => drive!(next_gpt2),
            Self::Cl100k => drive!(next_cl100k),
            Self::Llama3 => drive!(next_llama3),
            Self::O200k => drive!(next_o200k),
            Self::Qwen => drive!(next_qwen),
        }
        Ok(())
    }
}

const PUNCT_MASK: u8 = WS | L | N;

#[inline(always)]
fn is_punct(c: u8) -> bool {
    c & PUNCT_MASK == 0
}

const HI: u64 = 0x8080_8080_8080_8080;

/// How many of the 8 bytes of `x` (little-endian: the first byte is the lowest) are in
/// `[a-z]`, after OR-ing each byte with `fold`, before the first one that is not. Per byte,
/// without carries between bytes (every sum stays below 0x100): test `>= 0x61` and `>= 0x7B`
/// through the high bit of a sum, and require the original high bit clear (ASCII).
#[inline(always)]
fn ascii_lower_after(x: u64, fold: u64) -> usize {
    let y = (x | fold) & !HI;
    let ge_a = y.wrapping_add(0x1F1F_1F1F_1F1F_1F1F);
    let ge_brace = y.wrapping_add(0x0505_0505_0505_0505);
    let hits = ge_a & !ge_brace & !x & HI;
    ((!hits & HI).trailing_zeros() / 8) as usize
}

/// Leading ASCII letters of `x`: setting bit 5 folds case, and only `A-Z` and `a-z` then land
/// in `0x61..=0x7A`.
#[inline(always)]
fn ascii_letters(x: u64) -> usize {
    ascii_lower_after(x, 0x2020_2020_2020_2020)
}

/// Leading `[a-z]` bytes of `x`.
#[inline(always)]
fn ascii_lower(x: u64) -> usize {
    ascii_lower_after(x, 0)
}

/// Non-ASCII characters that `(?i:…)` folds onto the contraction letters (e.g. `ſ` for `s`).
fn folded_letters() -> &'static [(u8, char)] {
    static F: OnceLock<Vec<(u8, char)>> = OnceLock::new();
    F.get_or_init(|| {
        "sdmtlvre"
            .chars()
            .flat_map(|c| case_insensitive(c).into_iter().filter(|x| !x.is_ascii()).map(move |x| (c as u8, x)))
            .collect()
    })
}

struct Scanner<'a> {
    /// Valid UTF-8 (it comes from a `&str`), so a lead byte is always followed by its tail.
    t: &'a [u8],
    tab: &'a [u8],
}

impl Scanner<'_> {
    /// Class bits and byte length of the character at `i` (`i < len`).
    #[inline(always)]
    fn at(&self, i: usize) -> (u8, usize) {
        let t = self.t;
        let b = t[i];
        if b < 0x80 {
            return (self.tab[b as usize], 1);
        }
        let (cp, len) = if b < 0xE0 {
            ((u32::from(b & 0x1F) << 6) | u32::from(t[i + 1] & 0x3F), 2)
        } else if b < 0xF0 {
            ((u32::from(b & 0x0F) << 12) | (u32::from(t[i + 1] & 0x3F) << 6) | u32::from(t[i + 2] & 0x3F), 3)
        } else {
            (
                (u32::from(b & 0x07) << 18)
                    | (u32::from(t[i + 1] & 0x3F) << 12)
                    | (u32::from(t[i + 2] & 0x3F) << 6)
                    | u32::from(t[i + 3] & 0x3F),
                4,
            )
        };
        (self.tab[cp as usize], len)
    }

    /// End of the longest run from `i` of characters whose class satisfies `pred`.
    #[inline(always)]
    fn run(&self, mut i: usize, pred: impl Fn(u8) -> bool) -> usize {
        while i < self.t.len() {
            let (c, l) = self.at(i);
            if !pred(c) {
                break;
            }
            i += l;
        }
        i
    }

    /// `self.run(i, |c| c & L != 0)`, eight ASCII bytes at a time: the ASCII letters are
    /// exactly `[A-Za-z]` in `\p{L}`, so a word of them is measured with one load and a few
    /// word operations (`ascii_letters`); the run goes on through the general loop only when
    /// a non-ASCII character (which may be a letter) ends the ASCII part.
    #[inline(always)]
    fn run_letters(&self, i: usize) -> usize {
        self.run_ascii(i, ascii_letters, L)
    }

    /// `self.run(i, |c| c & LO != 0)` the same way: the ASCII members of o200k's lower class
    /// (`\p{Ll}\p{Lm}\p{Lo}\p{M}`) are exactly `[a-z]`.
    #[inline(always)]
    fn run_lower(&self, i: usize) -> usize {
        self.run_ascii(i, ascii_lower, LO)
    }

    /// The run from `i` of characters in `class`, whose ASCII members are exactly the bytes
    /// `count` counts (the test `ascii_classes_are_what_the_word_counts_assume` checks it
    /// against the class table).
    #[inline(always)]
    fn run_ascii(&self, mut i: usize, count: impl Fn(u64) -> usize, class: u8) -> usize {
        let t = self.t;
        while let Some(w) = t.get(i..).and_then(|r| r.first_chunk::<8>()) {
            let k = count(u64::from_le_bytes(*w));
            i += k;
            if k < 8 {
                return if t[i] < 0x80 { i } else { self.run(i, |c| c & class != 0) };
            }
        }
        self.run(i, |c| c & class != 0)
    }

    /// `\p{N}{1,3}` once the first digit ends at `e`: up to two more digits.
    #[inline(always)]
    fn up_to_three_digits(&self, mut e: usize) -> usize {
        for _ in 0..2 {
            if e < self.t.len() {
                let (c, l) = self.at(e);
                if c & N != 0 {
                    e += l;
                    continue;
                }
            }
            break;
        }
        e
    }

    /// Where ` ?[^\s\p{L}\p{N}]+` starts its punctuation run at `i` (class `c`), if it matches:
    /// after an optional space, or at `i` itself.
    #[inline(always)]
    fn punct_start(&self, i: usize, c: u8) -> Option<usize> {
        if self.t[i] == b' ' && i + 1 < self.t.len() && is_punct(self.at(i + 1).0) {
            Some(i + 1)
        } else if is_punct(c) {
            Some(i)
        } else {
            None
        }
    }

    /// The whitespace run from `i`: (end, start of its last character, end of its last `\r`/`\n`).
    #[inline(always)]
    fn ws_run(&self, mut i: usize) -> (usize, usize, Option<usize>) {
        let mut last = i;
        let mut nl = None;
        while i < self.t.len() {
            let (c, l) = self.at(i);
            if c & WS == 0 {
                break;
            }
            if c & NL != 0 {
                nl = Some(i + l);
            }
            last = i;
            i += l;
        }
        (i, last, nl)
    }

    /// Length of the character at `i` if it is `letter` under the regex's case folding.
    #[inline]
    fn ci_letter(&self, i: usize, letter: u8) -> Option<usize> {
        let b = *self.t.get(i)?;
        if b < 0x80 {
            return (b | 0x20 == letter).then_some(1);
        }
        let c = std::str::from_utf8(&self.t[i..(i + 4).min(self.t.len())])
            .ok()
            .or_else(|| std::str::from_utf8(&self.t[i..(i + 3).min(self.t.len())]).ok())
            .or_else(|| std::str::from_utf8(&self.t[i..(i + 2).min(self.t.len())]).ok())?
            .chars()
            .next()?;
        folded_letters().iter().any(|&(l, x)| l == letter && x == c).then(|| c.len_utf8())
    }

    /// `'(?i:[sdmt]|ll|ve|re)` at `i` (which holds `'`).
    #[inline]
    fn contraction_ci(&self, i: usize) -> Option<usize> {
        let j = i + 1;
        for one in [b's', b'd', b'm', b't'] {
            if let Some(l) = self.ci_letter(j, one) {
                return Some(j + l);
            }
        }
        for [a, b] in [[b'l', b'l'], [b'v', b'e'], [b'r', b'e']] {
            if let Some(l1) = self.ci_letter(j, a) {
                if let Some(l2) = self.ci_letter(j + l1, b) {
                    return Some(j + l1 + l2);
                }
            }
        }
        None
    }

    /// `'(?:[sdmt]|ll|ve|re)` at `i` (which holds `'`), case-sensitive.
    #[inline]
    fn contraction_cs(&self, i: usize) -> Option<usize> {
        let rest = &self.t[i + 1..];
        match rest {
            [b's' | b'd' | b'm' | b't', ..] => Some(i + 2),
            [b'l', b'l', ..] | [b'v', b'e', ..] | [b'r', b'e', ..] => Some(i + 3),
            _ => None,
        }
    }

    /// `'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s`
    #[inline]
    fn next_gpt2(&self, i: usize) -> usize {
        let n = self.t.len();
        let b = self.t[i];
        if b == b'\'' {
            if let Some(e) = self.contraction_cs(i) {
                return e;
            }
        }
        let (c, l) = self.at(i);
        // ` ?X++`: with the optional space when a space is followed by something.
        let (j, cj) = if b == b' ' && i + 1 < n { (i + 1, self.at(i + 1).0) } else { (i, c) };
        if cj & L != 0 {
            return self.run_letters(j);
        }
        if cj & N != 0 {
            return self.run(j, |c| c & N != 0);
        }
        if is_punct(cj) {
            return self.run(j, is_punct);
        }
        // Whitespace at i.
        let (k, last, _) = self.ws_run(i);
        if k == n {
            return n; // \s++$
        }
        if last > i {
            return last; // \s+(?!\S)
        }
        i + l // \s
    }

    /// `'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s`
    #[inline]
    fn next_cl100k(&self, i: usize) -> usize {
        self.next_cl100k_like::<false, 3>(i)
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    #[inline]
    fn next_llama3(&self, i: usize) -> usize {
        self.next_cl100k_like::<true, 3>(i)
    }

    /// Llama 3's with `\p{N}` for `\p{N}{1,3}`.
    #[inline]
    fn next_qwen(&self, i: usize) -> usize {
        self.next_cl100k_like::<true, 1>(i)
    }

    /// The cl100k and Llama 3 shapes differ only in whether `\s*[\r\n]` comes before the
    /// end-of-text rule; Qwen's also in taking one digit at a time.
    #[inline(always)]
    fn next_cl100k_like<const NEWLINE_FIRST: bool, const DIGITS: usize>(&self, i: usize) -> usize {
        let n = self.t.len();
        let b = self.t[i];
        if b == b'\'' {
            if let Some(e) = self.contraction_ci(i) {
                return e;
            }
        }
        let (c, l) = self.at(i);
        if c & L != 0 {
            return self.run_letters(i + l);
        }
        if c & (NL | N) == 0 && i + l < n && self.at(i + l).0 & L != 0 {
            return self.run_letters(i + l);
        }
        if c & N != 0 {
            return if DIGITS == 1 { i + l } else { self.up_to_three_digits(i + l) };
        }
        let p = self.punct_start(i, c);
        if let Some(p) = p {
            let e = self.run(p, is_punct);
            return self.run(e, |c| c & NL != 0);
        }
        let (k, last, nl) = self.ws_run(i);
        if let (true, Some(e)) = (NEWLINE_FIRST, nl) {
            return e; // \s*[\r\n]+
        }
        if k == n {
            return n; // \s++$
        }
        if let Some(e) = nl {
            return e; // \s*[\r\n]
        }
        if last > i {
            return last; // \s+(?!\S)
        }
        i + l // \s
    }

    /// `[UP]*[LO]+` at `j`, o200k's first letter alternative (without the optional prefix).
    #[inline]
    fn o200k_upper_lower(&self, j: usize) -> Option<usize> {
        let n = self.t.len();
        // U* greedy: remember the last character of the U-run that is also in LO, for
        // backtracking.
        let mut i = j;
        let mut last_lo_end = None;
        while i < n {
            let (c, l) = self.at(i);
            if c & UP == 0 {
                break;
            }
            if c & LO != 0 {
                last_lo_end = Some(i + l);
            }
            i += l;
        }
        if i < n {
            let (c, _) = self.at(i);
            if c & LO != 0 {
                return Some(self.run_lower(i));
            }
        }
        // Give back U characters until one in LO starts the [LO]+ run; the characters after
        // it are U-only, so that run is one character long.
        last_lo_end
    }

    /// `[UP]+[LO]*` at `j`, o200k's second letter alternative.
    #[inline]
    fn o200k_upper_then_lower(&self, j: usize) -> Option<usize> {
        let e = self.run(j, |c| c & UP != 0);
        (e > j).then(|| self.run_lower(e))
    }

    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)?` at `e`.
    #[inline]
    fn o200k_suffix(&self, e: usize) -> usize {
        if self.t.get(e) == Some(&b'\'') {
            if let Some(x) = self.contraction_ci(e) {
                return x;
            }
        }
        e
    }

    /// The o200k pattern (see `O200K_PATTERN`).
    #[inline]
    fn next_o200k(&self, i: usize) -> usize {
        let n = self.t.len();
        let (c, l) = self.at(i);
        // [^\r\n\p{L}\p{N}]? — greedy, so first with the prefix, then without.
        let prefix = c & (NL | L | N) == 0 && i + l < n;
        if prefix {
            if let Some(e) = self.o200k_upper_lower(i + l) {
                return self.o200k_suffix(e);
            }
        }
        if c & (UP | LO) != 0 {
            if let Some(e) = self.o200k_upper_lower(i) {
                return self.o200k_suffix(e);
            }
        }
        if prefix {
            if let Some(e) = self.o200k_upper_then_lower(i + l) {
                return self.o200k_suffix(e);
            }
        }
        if let Some(e) = self.o200k_upper_then_lower(i) {
            return self.o200k_suffix(e);
        }
        if c & N != 0 {
            return self.up_to_three_digits(i + l);
        }
        // ` ?[^\s\p{L}\p{N}]+[\r\n/]*`
        let p = self.punct_start(i, c);
        if let Some(p) = p {
            let e = self.run(p, is_punct);
            let mut k = e;
            while k < n && matches!(self.t[k], b'\r' | b'\n' | b'/') {
                k += 1;
            }
            return k;
        }
        let (k, last, nl) = self.ws_run(i);
        if let Some(e) = nl {
            return e; // \s*[\r\n]+
        }
        if k == n {
            return n; // \s+(?!\S) at the end
        }
        if last > i {
            return last; // \s+(?!\S)
        }
        k // \s+
    }
}

#[cfg(test)]
mod tests {
    use super::super::PreTokenizer;
    use super::*;
    use proptest::prelude::*;

    const ALL: [&str; 6] =
        [GPT2_PATTERN, GPT2_PATTERN_OLD, CL100K_PATTERN, LLAMA3_PATTERN, O200K_PATTERN, QWEN_PATTERN];

    fn check(text: &str) {
        for pat in ALL {
            let fast = PreTokenizer::new(pat).unwrap();
            assert!(matches!(fast, PreTokenizer::Fast(_)));
            let reference = PreTokenizer::regex(pat).unwrap();
            assert_eq!(fast.pieces(text).unwrap(), reference.pieces(text).unwrap(), "pattern {pat} on {text:?}");
        }
    }

    #[test]
    fn matches_the_regex_on_tricky_text() {
        for text in [
            "",
            "Hello world",
            "  Hello,   world!!  \n\n  foo\r\n\tbar  ",
            "I'm here, you're there, it's 'quoted' and 'S 'LL 'ſ DON'T",
            "12345678 x1234 ١٢٣٤",
            "HTTPServer getURL McDonald's NASA's",
            "e\u{301}te\u{301} \u{301}\u{301}A\u{301}b ǅungla ʰello",
            "中文字符 日本語のテキスト 한국어",
            "a\u{3000}\u{3000}b\u{2028}c\u{a0}\u{a0}d",
            "x = y/z;\n// comment\n\n\n",
            "   ",
            " \n ",
            "!!!\n\n",
            " !!!/\n/",
            "😀😀 emoji 👍🏽",
            // Letter runs across the 8-byte words, ending in each kind of character and at the end.
            "abcdefgh abcdefghijklmnopq ABCDEFGHIJKLMNOPQRSTUVWXYZ@[`{ zzzzzzzzé zzzzzzzzzé1 Qwertyuiop'",
            "Straße naïveté Überall ThisIsALongIdentifierName_withUnderscore x1234567 abcdefg",
            "abcdefghijklmnop",
            "abcdefghijklmno\u{301}",
            "lowercaseonly UPPERCASEONLY MixedCaseWordsHere camelCaseIdentifierName abcdefghé ABCDEFGHé's",
        ] {
            check(text);
        }
    }

    /// `ascii_letters` and `ascii_lower` against their definitions, for every byte value in
    /// every position.
    #[test]
    fn ascii_letters_counts_the_leading_letters() {
        for pos in 0..8 {
            for b in 0..=255u8 {
                let mut w = *b"abcdefgh";
                w[pos] = b;
                let want = w.iter().take_while(|c| c.is_ascii_alphabetic()).count();
                assert_eq!(ascii_letters(u64::from_le_bytes(w)), want, "byte {b:#x} at {pos}");
                let want = w.iter().take_while(|c| c.is_ascii_lowercase()).count();
                assert_eq!(ascii_lower(u64::from_le_bytes(w)), want, "byte {b:#x} at {pos}");
            }
        }
    }

    /// The word-at-a-time runs assume that the ASCII members of `\p{L}` are `[A-Za-z]` and
    /// those of o200k's lower class `[a-z]`; the class table (from the regex's own Unicode
    /// tables) must say so.
    #[test]
    fn ascii_classes_are_what_the_word_counts_assume() {
        let tab = table();
        for b in 0..0x80u8 {
            assert_eq!(tab[b as usize] & L != 0, b.is_ascii_alphabetic(), "{b:#x} in \\p{{L}}");
            assert_eq!(tab[b as usize] & LO != 0, b.is_ascii_lowercase(), "{b:#x} in o200k's lower class");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn fast_equals_regex_on_mixed_classes(text in r"[ a-zA-Z0-9'\r\n\t!/.,ſé\u{301}\u{3000}\u{a0}中ǅʰ١😀sStT]{0,40}") {
            check(&text);
        }

        #[test]
        fn fast_equals_regex_on_any_text(text in any::<String>()) {
            check(&text);
        }
    }
}

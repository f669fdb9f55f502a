//! Pre-tokenization: splitting text into the pieces that BPE encodes one by one.
//!
//! Two paths that give the same pieces:
//! - the reference: the encoding's split pattern run by `fancy-regex` (what tiktoken runs);
//! - hand-written splitters for the three pattern families of the OpenAI encodings (and the
//!   equivalent spellings used by Llama 3 and older tiktoken releases), chosen when the
//!   pattern string is one of them. They scan once, left to right, with no backtracking, so
//!   they are linear in the text whatever it holds, and several times faster than the regex.
//!
//! `fast == reference` is checked by property tests here and by the fuzz target.

mod automata;
mod classes;
mod fast;

use crate::error::{Error, Result};

pub use fast::{Family, CL100K_PATTERN, GPT2_PATTERN, GPT2_PATTERN_OLD, LLAMA3_PATTERN, O200K_PATTERN, QWEN_PATTERN};

/// Backtracking limit for user patterns: a pattern that needs more than this many steps on
/// one text fails with `Error::PatternLimit` instead of hanging.
const BACKTRACK_LIMIT: usize = 10_000_000;

/// Splits text into pieces.
#[derive(Debug, Clone)]
pub enum PreTokenizer {
    /// A hand-written splitter for a known pattern family.
    Fast(Family),
    /// Another pattern that a lazy DFA runs exactly (see `automata`).
    Automaton(Box<automata::Automaton>),
    /// Any other pattern, run by the regex engine.
    Regex(Box<fancy_regex::Regex>),
}

impl PreTokenizer {
    /// Chooses the hand-written splitter when `pattern` is one it implements, else the lazy
    /// DFA when the pattern's rewrite for it is provably exact, else the regex engine.
    pub fn new(pattern: &str) -> Result<Self> {
        if let Some(f) = Family::for_pattern(pattern) {
            return Ok(Self::Fast(f));
        }
        // Compiled by the reference engine first, so that an invalid pattern fails with its
        // error whatever the DFA makes of it.
        let reference = Self::regex(pattern)?;
        Ok(automata::Automaton::new(pattern).map_or(reference, |a| Self::Automaton(Box::new(a))))
    }

    /// Always the lazy DFA (tests compare it with the reference); `None` when the pattern is
    /// outside its rewrite.
    pub fn automaton(pattern: &str) -> Option<Self> {
        automata::Automaton::new(pattern).map(|a| Self::Automaton(Box::new(a)))
    }

    /// Always the regex engine (the reference path).
    pub fn regex(pattern: &str) -> Result<Self> {
        let re = fancy_regex::RegexBuilder::new(pattern)
            .backtrack_limit(BACKTRACK_LIMIT)
            .build()
            .map_err(|e| Error::Pattern { pattern: pattern.to_owned(), message: e.to_string() })?;
        Ok(Self::Regex(Box::new(re)))
    }

    /// Calls `f(start, end)` for each piece, in order. Empty matches are skipped; text that the
    /// pattern does not match is skipped too (as tiktoken does).
    #[inline]
    pub fn split(&self, text: &str, mut f: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
        match self {
            Self::Fast(family) => family.split(text, f),
            Self::Automaton(a) => a.split(text, f),
            Self::Regex(_) => self.for_each_match(text, |s, e| if s < e { f(s, e) } else { Ok(()) }),
        }
    }

    /// `split`, with `f` called from a loop of its own: the splitter collects up to 64 pieces,
    /// then `f` runs on each. Each loop then inlines its body; the splitter calling an encoder
    /// from its callback paid a call with six saved registers a piece (callgrind: a tenth of
    /// the instructions of a warm cl100k encode of English).
    #[inline]
    pub fn split_batched(&self, text: &str, mut f: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
        const BATCH: usize = 64;
        let mut pieces = [(0usize, 0usize); BATCH];
        let mut n = 0;
        // `f` has one call site, in `flush`, so that it is inlined there.
        let mut flush = |batch: &[(usize, usize)]| batch.iter().try_for_each(|&(s, e)| f(s, e));
        self.split(text, |s, e| {
            pieces[n] = (s, e);
            n += 1;
            if n == BATCH {
                n = 0;
                flush(&pieces)?;
            }
            Ok(())
        })?;
        flush(&pieces[..n])
    }

    /// Calls `f(start, end)` for each match, in order, empty matches included (as a regex
    /// engine's `find_iter` reports them; the hand-written splitters and the DFA's patterns
    /// never match empty text).
    pub fn for_each_match(&self, text: &str, mut f: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
        match self {
            Self::Fast(family) => family.split(text, f),
            Self::Automaton(a) => a.split(text, f),
            Self::Regex(re) => {
                let mut searched_to = 0;
                for m in re.find_iter(text) {
                    let m = m.map_err(|e| Error::PatternLimit { offset: searched_to, message: e.to_string() })?;
                    searched_to = m.end();
                    f(m.start(), m.end())?;
                }
                Ok(())
            }
        }
    }

    /// The pieces as string slices (for tests and debugging).
    pub fn pieces<'t>(&self, text: &'t str) -> Result<Vec<&'t str>> {
        let mut out = Vec::new();
        self.split(text, |s, e| {
            out.push(&text[s..e]);
            Ok(())
        })?;
        Ok(out)
    }
}

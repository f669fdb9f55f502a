//! Split patterns that no hand-written splitter knows, run on a lazy DFA instead of
//! `fancy-regex`'s backtracking VM, when the rewrite below is provably exact; other patterns
//! stay on `fancy-regex`.
//!
//! The two constructs that send the usual split patterns to the backtracking VM are the
//! look-ahead branch `\s+(?!\S)` and possessive quantifiers (`?+`, `++`). Both go away:
//!
//! - The pattern's top-level branches become the patterns of one multi-pattern DFA, searched
//!   leftmost-first: at any position the first branch (pattern) that matches wins, with its
//!   greedy match, exactly as a backtracking engine tries the alternatives of `A|B|…`.
//! - `\s+(?!\S)` becomes two branches, `\s+\z` and `\s+\s`, the second reported one character
//!   short. At a position where the run of white space is `i..j`: the look-ahead branch
//!   matches `i..j` when `j` is the end of the text, `i..j-1` (one character back) when a
//!   non-space follows and the run has two characters or more, and fails otherwise; `\s+\z`
//!   matches `i..j` in exactly the first case, `\s+\s` matches `i..j` (cut to `i..j-1`)
//!   whenever the run has two characters or more. So the two branches, in this order, match
//!   where the original matches, and report the same end.
//! - A possessive quantifier on a character class `C` (at the top level of its branch) becomes
//!   greedy when the rest of the branch `R` either matches the empty string anywhere (it has no
//!   assertions) or cannot start with a character of `C`. Greedy and possessive differ only
//!   when `R` fails after the greedy run and the engine gives characters back; if `R` matches
//!   the empty string it never fails, and after giving back, `R` would start on a character of
//!   `C`, which it cannot.
//!
//! Anything else the rewrite does not cover (look-around elsewhere, back-references, atomic
//! groups, global inline flags, verbose mode, a branch that matches the empty string, a
//! possessive quantifier in a group) keeps the pattern on `fancy-regex`.
//!
//! Searching: each piece is an anchored forward search at the end of the previous one (the
//! DFA reports the end; the start is known), and only where no branch matches there does an
//! unanchored search find the next match, as `find_iter` would. The branches must not match
//! the empty string (checked), so `find_iter`'s empty-match rule never applies.

use regex_automata::hybrid::dfa::{Cache, DFA};
use regex_automata::util::pool::Pool;
use regex_automata::util::syntax;
use regex_automata::{meta, Anchored, Input, MatchKind};
use regex_syntax::hir::{Class, ClassUnicode, Hir, HirKind};

use crate::error::{Error, Result};

/// The look-ahead branch the rewrite understands.
const LOOKAHEAD_BRANCH: &str = r"\s+(?!\S)";
/// Lazy DFA cache per thread: about 2 MiB, so that patterns over Unicode classes on varied
/// text keep their states (the library's default is 2 MiB too; set so it stays so).
const CACHE_CAPACITY: usize = 2 << 20;

type CachePool = Pool<Cache, Box<dyn Fn() -> Cache + Send + Sync + std::panic::RefUnwindSafe + std::panic::UnwindSafe>>;

/// A split pattern compiled for the lazy DFA.
pub struct Automaton {
    dfa: DFA,
    caches: CachePool,
    /// The same patterns for the unanchored searches (and for any anchored search the lazy
    /// DFA gives up on), built on first use: patterns whose pieces tile the text never need it,
    /// and compiling it costs about as much as the DFA's own NFA.
    meta: std::sync::OnceLock<Option<meta::Regex>>,
    patterns: Vec<String>,
    /// Per pattern: its match ends with one character of pseudo look-ahead to drop.
    trim: Vec<bool>,
}

impl std::fmt::Debug for Automaton {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Automaton").field("patterns", &self.trim.len()).finish()
    }
}

impl Clone for Automaton {
    fn clone(&self) -> Self {
        let (dfa, meta, trim, patterns) =
            (self.dfa.clone(), self.meta.clone(), self.trim.clone(), self.patterns.clone());
        Self { caches: new_pool(&dfa), dfa, meta, trim, patterns }
    }
}

fn new_pool(dfa: &DFA) -> CachePool {
    let dfa = dfa.clone();
    Pool::new(Box::new(move || dfa.create_cache()))
}

impl Automaton {
    /// The automaton for `pattern`, or `None` when the rewrite cannot prove it exact.
    pub fn new(pattern: &str) -> Option<Self> {
        let (patterns, trim) = rewrite(pattern)?;
        let syntax = syntax::Config::new();
        let dfa = DFA::builder()
            .configure(
                DFA::config()
                    .match_kind(MatchKind::LeftmostFirst)
                    .cache_capacity(CACHE_CAPACITY)
                    // Unicode `\b`: the DFA quits on non-ASCII text, and `split` then asks the
                    // meta engine.
                    .unicode_word_boundary(true),
            )
            .syntax(syntax)
            .build_many(&patterns)
            .ok()?;
        Some(Self { caches: new_pool(&dfa), dfa, meta: std::sync::OnceLock::new(), trim, patterns })
    }

    /// The meta engine over the same patterns (the DFA's build succeeded on them, so this one
    /// does too; if it did not, `split` reports it rather than skipping text).
    fn meta(&self) -> Result<&meta::Regex> {
        self.meta
            .get_or_init(|| {
                meta::Regex::builder()
                    .configure(meta::Config::new().match_kind(MatchKind::LeftmostFirst))
                    .syntax(syntax::Config::new())
                    .build_many(&self.patterns)
                    .ok()
            })
            .as_ref()
            .ok_or_else(|| Error::Pattern {
                pattern: self.patterns.join("|"),
                message: "the meta engine cannot compile the rewritten pattern".into(),
            })
    }

    /// Calls `f(start, end)` for each match of the original pattern, in order.
    pub fn split(&self, text: &str, mut f: impl FnMut(usize, usize) -> Result<()>) -> Result<()> {
        let mut cache = self.caches.get();
        let mut at = 0;
        while at < text.len() {
            let input = Input::new(text).range(at..).anchored(Anchored::Yes);
            let here = match self.walk(&mut cache, &input, at) {
                Ok(found) => found,
                // The lazy DFA quit (Unicode `\b`) or gave up (its cache thrashed): this
                // search on the meta engine.
                Err(()) => self.meta()?.search(&input).map(|m| (m.end(), m.pattern().as_usize())),
            };
            let (start, end, pattern) = match here {
                Some((end, pattern)) => (at, end, pattern),
                // No branch matches here: the next match starts further on, if anywhere.
                None => match self.meta()?.search(&Input::new(text).range(at..)) {
                    Some(m) => (m.start(), m.end(), m.pattern().as_usize()),
                    None => return Ok(()),
                },
            };
            let end = if self.trim.get(pattern).copied().unwrap_or(false) {
                // The dropped character is white space, matched by `\s`: one whole character.
                text[..end].char_indices().next_back().map_or(end, |(i, _)| i)
            } else {
                end
            };
            if end <= start {
                // Never: every branch matches at least one character and a trimmed one two.
                return Err(Error::PatternLimit { offset: start, message: "empty match in the DFA splitter".into() });
            }
            f(start, end)?;
            at = end;
        }
        Ok(())
    }

    /// The anchored leftmost-first match at `at` (its end and pattern), walking the lazy DFA
    /// byte by byte: one search per piece, where `try_search_fwd`'s set-up per call cost more
    /// than the walk over a short piece. Errors where the DFA quits or gives up.
    #[inline]
    fn walk(&self, cache: &mut Cache, input: &Input<'_>, at: usize) -> std::result::Result<Option<(usize, usize)>, ()> {
        let dfa = &self.dfa;
        let bytes = input.haystack();
        let mut sid = dfa.start_state_forward(cache, input).map_err(|_| ())?;
        // The last match state seen and where its match ended; its pattern is read once, at
        // the end (most bytes of a piece lead to match states).
        let mut last = None;
        let mut i = at;
        while let Some(&b) = bytes.get(i) {
            sid = dfa.next_state(cache, sid, b).map_err(|_| ())?;
            if sid.is_tagged() {
                if sid.is_match() {
                    // Match states lag one byte: the match ended before `b`.
                    last = Some((i, sid));
                } else if sid.is_dead() {
                    break;
                } else if sid.is_quit() {
                    return Err(());
                }
            }
            i += 1;
        }
        if i == bytes.len() {
            let eoi = dfa.next_eoi_state(cache, sid).map_err(|_| ())?;
            if eoi.is_match() {
                last = Some((i, eoi));
            }
        }
        Ok(last.map(|(end, sid)| (end, dfa.match_pattern(cache, sid, 0).as_usize())))
    }
}

/// The DFA's patterns for `pattern` and, per pattern, whether its match is reported one
/// character short. `None` when the pattern is outside the rewrite.
fn rewrite(pattern: &str) -> Option<(Vec<String>, Vec<bool>)> {
    let mut patterns = Vec::new();
    let mut trim = Vec::new();
    let mut branches = top_level_branches(pattern)?;
    // `(?:X)` around the whole pattern is `X`.
    while let [one] = branches[..] {
        let Some(inner) = one.strip_prefix("(?:").and_then(|b| b.strip_suffix(')')) else { break };
        // Balanced only if the last `)` closes the group that `(?:` opened.
        let Some(b) = top_level_branches(inner) else { break };
        branches = b;
    }
    for branch in branches {
        if branch == LOOKAHEAD_BRANCH {
            patterns.extend([r"\s+\z".to_owned(), r"\s+\s".to_owned()]);
            trim.extend([false, true]);
        } else {
            patterns.push(greedy(branch)?);
            trim.push(false);
        }
    }
    for p in &patterns {
        let hir = regex_syntax::ParserBuilder::new().build().parse(p).ok()?;
        // A branch that can match the empty string would bring in `find_iter`'s rule for
        // empty matches.
        if hir.properties().minimum_len().is_none_or(|n| n == 0) {
            return None;
        }
    }
    Some((patterns, trim))
}

/// Splits `pattern` at its top-level `|`s. `None` for what this scanner does not follow:
/// `\Q…\E`, verbose mode (`x`), and inline flags that apply to the rest of the pattern.
fn top_level_branches(pattern: &str) -> Option<Vec<&str>> {
    let mut branches = Vec::new();
    let mut from = 0;
    let mut depth = 0usize;
    let mut tokens = Tokens::new(pattern);
    while let Some(t) = tokens.next()? {
        match t {
            Token::Open(flags) => {
                if flags.contains('x') || (flags.starts_with('?') && flags.ends_with(')')) {
                    return None;
                }
                depth += 1;
            }
            Token::Close => depth = depth.checked_sub(1)?,
            Token::Bar(at) if depth == 0 => {
                branches.push(&pattern[from..at]);
                from = at + 1;
            }
            _ => {}
        }
    }
    (depth == 0).then_some(())?;
    branches.push(&pattern[from..]);
    Some(branches)
}

/// `branch` with its possessive quantifiers made greedy, when each is on a character class at
/// the top level of the branch and provably the same as greedy (see the module doc).
fn greedy(branch: &str) -> Option<String> {
    let mut out = String::with_capacity(branch.len());
    let mut depth = 0usize;
    // Start of the last top-level atom, and where the output had got to before it.
    let mut atom: Option<usize> = None;
    let mut copied = 0;
    let mut tokens = Tokens::new(branch);
    while let Some(t) = tokens.next()? {
        match t {
            Token::Open(_) => {
                if depth == 0 {
                    atom = Some(tokens.last_start);
                }
                depth += 1;
            }
            Token::Close => depth = depth.checked_sub(1)?,
            Token::Atom(start) if depth == 0 => atom = Some(start),
            Token::Possessive(marker) => {
                if depth != 0 {
                    return None;
                }
                let class = single_class(&branch[atom?..tokens.quantifier_start])?;
                let rest = &branch[marker + 1..];
                let rest_hir = regex_syntax::ParserBuilder::new().build().parse(rest).ok()?;
                if !gives_nothing_back(&class, &rest_hir) {
                    return None;
                }
                out.push_str(&branch[copied..marker]);
                copied = marker + 1;
            }
            _ => {}
        }
    }
    out.push_str(&branch[copied..]);
    Some(out)
}

/// The class an atom matches, if it is one character class (or one character).
fn single_class(atom: &str) -> Option<ClassUnicode> {
    let hir = regex_syntax::ParserBuilder::new().build().parse(atom).ok()?;
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => Some(c.clone()),
        HirKind::Literal(lit) => {
            let c = std::str::from_utf8(&lit.0).ok()?.chars().next()?;
            (c.len_utf8() == lit.0.len()).then(|| ClassUnicode::new([regex_syntax::hir::ClassUnicodeRange::new(c, c)]))
        }
        _ => None,
    }
}

/// Whether a greedy run of `class` followed by `rest` never needs to give characters back:
/// `rest` matches the empty string everywhere, or cannot start with a character of `class`,
/// or is `$`.
fn gives_nothing_back(class: &ClassUnicode, rest: &Hir) -> bool {
    // `$` (end of text, not multi-line): it fails after the greedy run only when a character
    // follows, and after giving some back, characters of the run follow.
    if matches!(rest.kind(), HirKind::Look(regex_syntax::hir::Look::End)) {
        return true;
    }
    let props = rest.properties();
    if !props.look_set().is_empty() {
        return false;
    }
    if props.minimum_len() == Some(0) {
        return true;
    }
    let Some(mut first) = first_chars(rest) else { return false };
    first.intersect(class);
    first.ranges().is_empty()
}

/// The characters a match of `hir` can start with, when `hir` cannot match the empty string
/// and has no assertions; `None` when this is not worked out (or not sure).
fn first_chars(hir: &Hir) -> Option<ClassUnicode> {
    match hir.kind() {
        HirKind::Class(Class::Unicode(c)) => Some(c.clone()),
        HirKind::Literal(lit) => {
            let c = std::str::from_utf8(&lit.0).ok()?.chars().next()?;
            Some(ClassUnicode::new([regex_syntax::hir::ClassUnicodeRange::new(c, c)]))
        }
        HirKind::Capture(c) => first_chars(&c.sub),
        HirKind::Repetition(r) if r.min > 0 => first_chars(&r.sub),
        HirKind::Alternation(alts) => {
            let mut all = ClassUnicode::empty();
            for a in alts {
                if a.properties().minimum_len() == Some(0) {
                    return None;
                }
                all.union(&first_chars(a)?);
            }
            Some(all)
        }
        HirKind::Concat(parts) => {
            let mut all = ClassUnicode::empty();
            for p in parts {
                if !p.properties().look_set().is_empty() {
                    return None;
                }
                if p.properties().minimum_len() == Some(0) {
                    // Optional: its first characters count, and so do the next part's.
                    all.union(&optional_first_chars(p)?);
                    continue;
                }
                all.union(&first_chars(p)?);
                return Some(all);
            }
            None
        }
        _ => None,
    }
}

/// `first_chars` of a part that may match the empty string (its non-empty matches' first
/// characters).
fn optional_first_chars(hir: &Hir) -> Option<ClassUnicode> {
    match hir.kind() {
        HirKind::Empty => Some(ClassUnicode::empty()),
        HirKind::Repetition(r) => {
            if r.sub.properties().minimum_len() == Some(0) {
                optional_first_chars(&r.sub)
            } else {
                first_chars(&r.sub)
            }
        }
        HirKind::Capture(c) => optional_first_chars(&c.sub),
        _ => None,
    }
}

/// What the scanner sees in a pattern.
enum Token {
    /// `(`, with the text after it up to `:` or `)` when it starts with `?` (flags).
    Open(String),
    Close,
    /// A top-level-capable `|` at this byte.
    Bar(usize),
    /// An atom (character, escape or class) starting at this byte.
    Atom(usize),
    /// A quantifier's possessive `+`, at this byte.
    Possessive(usize),
    /// Any other quantifier.
    Quantifier,
}

/// A tokenizer over a pattern: escapes, classes (nested), groups, quantifiers.
struct Tokens<'a> {
    s: &'a str,
    at: usize,
    /// Start of the token returned last.
    last_start: usize,
    /// Start of the quantifier whose possessive marker was returned last.
    quantifier_start: usize,
    /// The last token was an atom or a group's end (a quantifier may follow).
    quantifiable: bool,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Self {
        Self { s, at: 0, last_start: 0, quantifier_start: 0, quantifiable: false }
    }

    fn peek(&self) -> Option<char> {
        self.s[self.at..].chars().next()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.at += c.len_utf8();
        Some(c)
    }

    /// Skips an escape after its `\`; `None` for `\Q`.
    fn escape(&mut self) -> Option<()> {
        let c = self.bump()?;
        if c == 'Q' {
            return None;
        }
        if matches!(c, 'p' | 'P' | 'x' | 'u' | 'U') && self.peek() == Some('{') {
            while self.bump()? != '}' {}
        } else {
            // The fixed-length forms: `\pL`, `\x41`, `\u0041`, `\U00000041`.
            let digits = match c {
                'p' | 'P' => 1,
                'x' => 2,
                'u' => 4,
                'U' => 8,
                _ => 0,
            };
            for _ in 0..digits {
                self.bump()?;
            }
        }
        Some(())
    }

    /// Skips a class after its `[`, nested classes included.
    fn class(&mut self) -> Option<()> {
        let mut depth = 1;
        // A `]` right after `[` or `[^` is a literal.
        if self.peek() == Some('^') {
            self.bump();
        }
        if self.peek() == Some(']') {
            self.bump();
        }
        while depth > 0 {
            match self.bump()? {
                '\\' => self.escape()?,
                '[' => {
                    depth += 1;
                    if self.peek() == Some('^') {
                        self.bump();
                    }
                    if self.peek() == Some(']') {
                        self.bump();
                    }
                }
                ']' => depth -= 1,
                _ => {}
            }
        }
        Some(())
    }

    /// The next token; `Some(None)` at the end, `None` for what the scanner refuses.
    fn next(&mut self) -> Option<Option<Token>> {
        let start = self.at;
        self.last_start = start;
        let Some(c) = self.bump() else { return Some(None) };
        let quantifiable = std::mem::replace(&mut self.quantifiable, false);
        let token = match c {
            '\\' => {
                self.escape()?;
                self.quantifiable = true;
                Token::Atom(start)
            }
            '[' => {
                self.class()?;
                self.quantifiable = true;
                Token::Atom(start)
            }
            '(' => {
                let mut flags = String::new();
                if self.peek() == Some('?') {
                    flags.push('?');
                    self.bump();
                    // Flags up to `:` or `)`, or the one character of `(?=`, `(?<`, ….
                    while let Some(d) = self.bump() {
                        flags.push(d);
                        if !(d.is_ascii_alphabetic() || d == '-') {
                            break;
                        }
                    }
                }
                Token::Open(flags)
            }
            ')' => {
                self.quantifiable = true;
                Token::Close
            }
            '|' => Token::Bar(start),
            '?' | '*' | '+' | '{' if quantifiable => {
                if c == '{' {
                    while self.bump()? != '}' {}
                }
                match self.peek() {
                    Some('+') => {
                        self.quantifier_start = start;
                        let marker = self.at;
                        self.bump();
                        Token::Possessive(marker)
                    }
                    Some('?') => {
                        self.bump();
                        Token::Quantifier
                    }
                    _ => Token::Quantifier,
                }
            }
            _ => {
                self.quantifiable = true;
                Token::Atom(start)
            }
        };
        Some(Some(token))
    }
}

#[cfg(test)]
mod tests {
    use super::super::{PreTokenizer, CL100K_PATTERN, GPT2_PATTERN, LLAMA3_PATTERN, O200K_PATTERN, QWEN_PATTERN};
    use super::*;
    use proptest::prelude::*;

    /// Patterns of released tokenizers that have no hand-written splitter, respellings of
    /// the built-in ones, and patterns that leave gaps or make the lazy DFA quit.
    const USER: [&str; 9] = [
        // Falcon (llama.cpp's list).
        r"[\p{P}\$\+<=>\^~\|`]+|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+|[0-9][0-9][0-9]",
        // cl100k with four-digit numbers.
        r"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,4}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+",
        // DeepSeek-style: digits and CJK runs first.
        r"\p{N}{1,3}|[一-龥\u{3040}-ゟ゠-ヿ]+|[!-/:-~！-／：-～‘-‟　-。]+|\s?\p{L}+|\s?\p{P}+|\s+(?!\S)|\s+",
        // Letters and numbers only: the rest is gaps, found by unanchored searches.
        r"\p{L}+|\p{N}+",
        // Unicode word boundaries make the lazy DFA quit on non-ASCII text.
        r"\b\w+\b|\s+|[^\w\s]",
        // Case-insensitive suffixes inside a branch, as o200k has.
        r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+",
        // Possessive on an escape class, and a counted possessive.
        r"\s++\S|\d{1,2}+[^\d]|.",
        // Multi-line anchors.
        r"(?m:^\p{L}+)|\p{L}+|\s+(?!\S)|\s+|.",
        // Trailing white space before a newline, as GPT-2's look-ahead sees it.
        r"\s+(?!\S)|\S+|\s+",
    ];

    fn same(pattern: &str, text: &str) -> std::result::Result<(), TestCaseError> {
        let dfa = PreTokenizer::automaton(pattern).expect("the rewrite covers this pattern");
        let reference = PreTokenizer::regex(pattern).unwrap();
        prop_assert_eq!(
            dfa.pieces(text).unwrap(),
            reference.pieces(text).unwrap(),
            "pattern {} on {:?}",
            pattern,
            text
        );
        Ok(())
    }

    fn every_pattern() -> Vec<String> {
        let builtin = [GPT2_PATTERN, CL100K_PATTERN, LLAMA3_PATTERN, O200K_PATTERN, QWEN_PATTERN];
        let mut all: Vec<String> = USER.iter().chain(&builtin).map(|p| p.to_string()).collect();
        // A respelling that the hand-written splitters do not recognise.
        all.extend(builtin.iter().map(|p| format!("(?:{p})")));
        all
    }

    #[test]
    fn the_dfa_equals_the_regex_on_tricky_text() {
        for pattern in every_pattern() {
            for text in [
                "",
                "  \n\n  x",
                "Hello world  \t\n  foo's BAR'S 12345 ...!!! \r\n",
                "a  b   \u{a0}c\u{3000} 中文字  日本語のテキスト",
                "x   ",
                "   ",
                "don't  WE'LL 1234567 ſ ǅungla  é\u{301}  😀😀 ١٢٣٤",
            ] {
                same(&pattern, text).unwrap();
            }
        }
    }

    proptest! {
        #[test]
        fn the_dfa_equals_the_regex_on_mixed_classes(text in r"[ a-zA-Z0-9'\r\n\t!/.,ſé\u{301}\u{3000}\u{a0}中ǅʰ١😀sStT]{0,40}") {
            for pattern in every_pattern() {
                same(&pattern, &text)?;
            }
        }

        #[test]
        fn the_dfa_equals_the_regex_on_any_text(text in any::<String>()) {
            for pattern in every_pattern() {
                same(&pattern, &text)?;
            }
        }
    }

    #[test]
    fn branches_and_rewrites() {
        assert_eq!(top_level_branches(r"a|(b|c)|[|]|\|").unwrap(), ["a", "(b|c)", "[|]", r"\|"]);
        assert!(top_level_branches(r"(?i)a|b").is_none(), "global flags");
        assert!(top_level_branches(r"(?x: a )|b").is_none(), "verbose mode");
        assert_eq!(top_level_branches(r"(?i:a|b)|c").unwrap(), ["(?i:a|b)", "c"]);
        // `?+` on a class the rest cannot start with: greedy.
        assert_eq!(greedy(r"[^\r\n\p{L}\p{N}]?+\p{L}+").unwrap(), r"[^\r\n\p{L}\p{N}]?\p{L}+");
        // The rest matches the empty string: greedy.
        assert_eq!(greedy(r" ?[^\s\p{L}\p{N}]++[\r\n]*").unwrap(), r" ?[^\s\p{L}\p{N}]+[\r\n]*");
        // The rest can start with a character of the class: not provably the same.
        assert!(greedy(r"[a-z]++[a-c]").is_none());
        assert!(greedy(r"(?:ab)++c").is_none(), "possessive group");
        // `$` after a possessive run: greedy; multi-line `$` may hold before a newline.
        assert_eq!(greedy(r"\s++$").unwrap(), r"\s+$");
        assert!(greedy(r"(?m:\s++$)").is_none());
        assert!(greedy(r"\s++(?m:$)").is_none());
        // The atom is the whole escape: `\x61` is `a`, which the rest can start with.
        assert!(greedy(r"\x61++[a-c]").is_none());
        assert_eq!(greedy(r"\x61++[b-c]").unwrap(), r"\x61+[b-c]");
        assert!(rewrite(r"a*").is_none(), "a branch that matches the empty string");
        assert!(rewrite(r"(?:a)(?:\s+(?!\S))").is_none(), "not one group around the whole");
        assert!(rewrite(r"a(?=b)").is_none(), "look-ahead elsewhere");
        assert!(rewrite(r"(a)\1").is_none(), "back-reference");
        let (patterns, trim) = rewrite(r"(?:(?:\p{L}+|\s+(?!\S)|\s+))").unwrap();
        assert_eq!(patterns, [r"\p{L}+", r"\s+\z", r"\s+\s", r"\s+"]);
        assert_eq!(trim, [false, false, true, false]);
    }
}

//! Offsets: the characters of the input each token comes from, exactly as `tokenizers` reports
//! them. `tokenizers` keeps, for every byte of the normalized text, the range of input bytes it
//! derives from, and updates that alignment in each normalizer and pre-tokenizer by one rule
//! (its `NormalizedString::transform`). [`Aligned`] is that text and alignment; every
//! component's alignment effect is written here as that rule's input, with `tokenizers`' own
//! quirks (a deletion at the very start that `Precompiled` does not record, `rstrip`'s byte
//! count). This path runs only when offsets are asked for, so plain encoding pays nothing; it
//! gives ids too, which must equal the plain path's (checked on every call).

use std::ops::Range;

use unicode_normalization_alignments::UnicodeNormalization;

use super::general::Pattern;
use super::{byte_to_char, is_chinese_char, nmt, Norm, Precompiled};
use crate::error::Result;

/// Normalized text with, for each of its bytes, the input bytes it derives from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Aligned {
    pub(crate) text: String,
    /// For each byte of `text`: the range of input bytes (absolute in the input sequence).
    pub(crate) align: Vec<(usize, usize)>,
    /// Where this text starts in the input (`tokenizers`' `original_shift`): what an inserted
    /// character at the very start is aligned to, and what Metaspace's "first" scheme tests.
    pub(crate) shift: usize,
}

impl Aligned {
    /// `s`, which starts at byte `base` of the input, unchanged: each byte aligned to its
    /// character.
    pub(crate) fn new(s: &str, base: usize) -> Self {
        let mut align = Vec::with_capacity(s.len());
        for (i, c) in s.char_indices() {
            let n = c.len_utf8();
            align.extend(std::iter::repeat_n((base + i, base + i + n), n));
        }
        Self { text: s.to_owned(), align, shift: base }
    }

    /// The input range that bytes `start..end` of the text come from.
    pub(crate) fn original(&self, start: usize, end: usize) -> (usize, usize) {
        if start >= end || end > self.align.len() {
            // `tokenizers` gives an empty range back as it is, from this text's start.
            return (self.shift + start, self.shift + end);
        }
        (self.align[start].0, self.align[end - 1].1)
    }

    /// Bytes `start..end` as a text of their own.
    pub(crate) fn slice(&self, start: usize, end: usize) -> Self {
        Self {
            text: self.text[start..end].to_owned(),
            align: self.align[start..end].to_vec(),
            shift: if start < end { self.align[start].0 } else { self.shift + start },
        }
    }

    /// `tokenizers`' `transform_range`: the characters of `range` become `dest`, where each
    /// new character comes with a change: 0 replaces the next old character (and takes its
    /// alignment), a positive change is inserted (with the alignment of the byte before), and
    /// −n replaces the next old character and deletes the n after it. `initial` old characters
    /// are deleted before the first new one.
    pub(crate) fn transform_range(
        &mut self,
        range: Range<usize>,
        dest: impl IntoIterator<Item = (char, isize)>,
        initial: usize,
    ) {
        let mut old = self.text[range.clone()].chars();
        let mut at = range.start + old.by_ref().take(initial).map(char::len_utf8).sum::<usize>();
        let fallback = (self.shift, self.shift);
        let mut text = String::with_capacity(range.len());
        let mut align = Vec::with_capacity(range.len());
        for (c, change) in dest {
            let a = if change > 0 {
                if at == 0 {
                    fallback
                } else {
                    self.align.get(at - 1).copied().unwrap_or(fallback)
                }
            } else {
                // Past the end (a transformation that replaces more than there is): the last
                // byte's alignment, where `tokenizers` would index out of bounds.
                self.align.get(at).or(self.align.last()).copied().unwrap_or(fallback)
            };
            if change <= 0 {
                at += old.next().map_or(0, char::len_utf8);
            }
            if change < 0 {
                at += old.by_ref().take(change.unsigned_abs()).map(char::len_utf8).sum::<usize>();
            }
            text.push(c);
            align.extend(std::iter::repeat_n(a, c.len_utf8()));
        }
        if range.start == 0 && range.end == self.text.len() {
            self.text = text;
            self.align = align;
        } else {
            self.text.replace_range(range.clone(), &text);
            self.align.splice(range, align);
        }
    }

    pub(crate) fn transform(&mut self, dest: impl IntoIterator<Item = (char, isize)>, initial: usize) {
        self.transform_range(0..self.text.len(), dest, initial);
    }

    /// Keeps the characters `keep` accepts; a deletion is recorded on the kept character
    /// before it (or as deleted at the start).
    pub(crate) fn filter(&mut self, keep: impl Fn(char) -> bool) {
        let mut removed = 0usize;
        let mut removed_start = 0usize;
        let mut dest = Vec::with_capacity(self.text.len());
        let mut last = None;
        for c in self.text.chars() {
            if keep(c) {
                match last {
                    Some(l) => dest.push((l, -(removed as isize))),
                    None => removed_start = removed,
                }
                last = Some(c);
                removed = 0;
            } else {
                removed += 1;
            }
        }
        if let Some(l) = last {
            dest.push((l, -(removed as isize)));
        }
        self.transform(dest, removed_start);
    }

    /// Each character through `f` (one for one).
    pub(crate) fn map(&mut self, f: impl Fn(char) -> char) {
        let dest: Vec<(char, isize)> = self.text.chars().map(|c| (f(c), 0)).collect();
        self.transform(dest, 0);
    }

    /// Each character by several: the first replaces it, the others are inserted after it.
    fn expand<I: IntoIterator<Item = char>>(&mut self, f: impl Fn(char) -> I) {
        let mut dest = Vec::with_capacity(self.text.len());
        for c in self.text.chars() {
            dest.extend(f(c).into_iter().enumerate().map(|(i, d)| (d, isize::from(i > 0))));
        }
        self.transform(dest, 0);
    }

    /// `s` before the text; the text's first character gives its alignment to all of `s`.
    /// Nothing happens to empty text.
    pub(crate) fn prepend(&mut self, s: &str) {
        let Some(first) = self.text.chars().next() else { return };
        let dest: Vec<(char, isize)> =
            s.chars().enumerate().map(|(i, c)| (c, isize::from(i > 0))).chain([(first, 1)]).collect();
        self.transform_range(0..first.len_utf8(), dest, 0);
    }

    /// Every match of `pattern` replaced by `content`, which takes the alignment of the
    /// match's last byte (of the byte before, for an empty match).
    pub(crate) fn replace(&mut self, pattern: &Pattern, content: &str) -> Result<()> {
        let mut ranges = Vec::new();
        pattern.find_matches(&self.text, &mut ranges)?;
        if !ranges.iter().any(|r| r.2) {
            return Ok(());
        }
        let mut text = String::with_capacity(self.text.len());
        let mut align = Vec::with_capacity(self.align.len());
        for &(s, e, matched) in &ranges {
            if !matched {
                text.push_str(&self.text[s..e]);
                align.extend_from_slice(&self.align[s..e]);
                continue;
            }
            let a = if e == 0 { (self.shift, self.shift) } else { self.align[e - 1] };
            text.push_str(content);
            align.extend(std::iter::repeat_n(a, content.len()));
        }
        self.text = text;
        self.align = align;
        Ok(())
    }

    /// Leading and/or trailing whitespace removed. `tokenizers` records the trailing deletion
    /// on the character whose index is the text's length in bytes less the count less one,
    /// which is the right character only for ASCII text; kept as is, though no alignment can
    /// tell (nothing follows a trailing deletion).
    pub(crate) fn strip(&mut self, left: bool, right: bool) {
        let leading = if left { self.text.chars().take_while(|c| c.is_whitespace()).count() } else { 0 };
        let trailing = if right { self.text.chars().rev().take_while(|c| c.is_whitespace()).count() } else { 0 };
        if leading == 0 && trailing == 0 {
            return;
        }
        let count = self.text.chars().count();
        let marked = self.text.len().wrapping_sub(trailing).wrapping_sub(1);
        let dest: Vec<(char, isize)> = self
            .text
            .chars()
            .enumerate()
            .filter_map(|(i, c)| {
                if i < leading || i >= count - trailing {
                    None
                } else if i == marked {
                    Some((c, -(trailing as isize)))
                } else {
                    Some((c, 0))
                }
            })
            .collect();
        self.transform(dest, leading);
    }

    /// Each byte as its GPT-2 byte-level character (the ByteLevel normalizer and
    /// pre-tokenizer): a character's first byte replaces it, the others are inserted.
    pub(crate) fn byte_level(&mut self) {
        let table = byte_to_char();
        let mut text = String::with_capacity(self.text.len() * 2);
        let mut align = Vec::with_capacity(self.text.len() * 2);
        for (i, c) in self.text.char_indices() {
            let n = c.len_utf8();
            for (k, &b) in self.text.as_bytes()[i..i + n].iter().enumerate() {
                let a = if k == 0 { self.align[i] } else { self.align[i + n - 1] };
                let d = table[b as usize];
                text.push(d);
                align.extend(std::iter::repeat_n(a, d.len_utf8()));
            }
        }
        self.text = text;
        self.align = align;
    }

    /// One normalizer.
    pub(crate) fn normalize(&mut self, n: &Norm) -> Result<()> {
        if self.text.is_ascii() {
            // Shortcuts where every change would be 0 and every character keeps its length:
            // the alignment stays, only the text may change.
            let controls = self.text.bytes().any(|b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0x7f);
            match n {
                Norm::Nfc | Norm::Nfd | Norm::Nfkc | Norm::Nfkd | Norm::StripAccents => return Ok(()),
                Norm::Lowercase => {
                    self.text.make_ascii_lowercase();
                    return Ok(());
                }
                &Norm::Bert { clean_text, lowercase, .. } if !controls => {
                    if clean_text {
                        self.text = self.text.replace(['\t', '\n', '\r'], " ");
                    }
                    if lowercase {
                        self.text.make_ascii_lowercase();
                    }
                    return Ok(());
                }
                _ => {}
            }
        }
        match n {
            Norm::Nfc => self.unicode(|s| s.nfc().collect()),
            Norm::Nfd => self.unicode(|s| s.nfd().collect()),
            Norm::Nfkc => self.unicode(|s| s.nfkc().collect()),
            Norm::Nfkd => self.unicode(|s| s.nfkd().collect()),
            Norm::Lowercase => self.expand(char::to_lowercase),
            Norm::StripAccents => {
                self.filter(|c| !unicode_normalization_alignments::char::is_combining_mark(c));
            }
            &Norm::Bert { clean_text, chinese, strip_accents, lowercase } => {
                use unicode_categories::UnicodeCategories;
                if clean_text {
                    self.filter(|c| {
                        !(c == '\0' || c == '\u{fffd}' || (!matches!(c, '\t' | '\n' | '\r') && c.is_other()))
                    });
                    self.map(|c| if matches!(c, '\t' | '\n' | '\r') || c.is_whitespace() { ' ' } else { c });
                }
                if chinese {
                    let mut dest = Vec::with_capacity(self.text.len());
                    for c in self.text.chars() {
                        if is_chinese_char(c) {
                            dest.extend([(' ', 0), (c, 1), (' ', 1)]);
                        } else {
                            dest.push((c, 0));
                        }
                    }
                    self.transform(dest, 0);
                }
                if strip_accents {
                    self.unicode(|s| s.nfd().collect());
                    self.filter(|c| !c.is_mark_nonspacing());
                }
                if lowercase {
                    self.expand(char::to_lowercase);
                }
            }
            &Norm::Strip { left, right } => match (left, right) {
                (true, true) => self.strip(true, true),
                _ => {
                    if left {
                        self.strip(true, false);
                    }
                    if right {
                        self.strip(false, true);
                    }
                }
            },
            Norm::Replace(r) => self.replace(&r.0, &r.1)?,
            Norm::Prepend(p) => self.prepend(p),
            Norm::Precompiled(p) => {
                if let Some(dest) = p.transformations(&self.text) {
                    self.transform(dest, 0);
                }
            }
            Norm::ByteLevel => self.byte_level(),
            Norm::Nmt => {
                self.filter(|c| nmt(c).is_some());
                self.map(|c| nmt(c).unwrap_or(c));
            }
        }
        Ok(())
    }

    /// A Unicode normalization form (`unicode-normalization-alignments`, which gives each
    /// character's change as `tokenizers` uses it).
    fn unicode(&mut self, f: impl Fn(&str) -> Vec<(char, isize)>) {
        let dest = f(&self.text);
        self.transform(dest, 0);
    }
}

impl Precompiled {
    /// `tokenizers`' changes for this normalizer (`None`: no rule applies).
    fn transformations(&self, text: &str) -> Option<Vec<(char, isize)>> {
        use unicode_segmentation::UnicodeSegmentation;
        // A replacement of `old` by `new`: new characters replace old ones; extra new ones are
        // inserted; missing ones are deleted after the last change made so far (nowhere, when
        // nothing came before: `tokenizers` records no deletion at the very start).
        fn replace(dest: &mut Vec<(char, isize)>, old: &str, new: &[u8]) {
            let new = String::from_utf8_lossy(new);
            let diff = new.chars().count() as isize - old.chars().count() as isize;
            dest.extend(new.chars().map(|c| (c, 0)));
            if diff > 0 {
                dest.iter_mut().rev().take(diff as usize).for_each(|(_, ch)| *ch = 1);
            } else if diff < 0 {
                if let Some((_, ch)) = dest.last_mut() {
                    *ch += diff;
                }
            }
        }
        let mut dest = Vec::with_capacity(text.len());
        let mut modified = false;
        for g in text.graphemes(true) {
            if g.len() < 6 {
                if let Some(r) = self.map.shortest(g.as_bytes()) {
                    modified = true;
                    replace(&mut dest, g, r);
                    continue;
                }
            }
            for (k, c) in g.char_indices() {
                let part = &g[k..k + c.len_utf8()];
                match self.map.shortest(part.as_bytes()) {
                    Some(r) => {
                        modified = true;
                        replace(&mut dest, part, r);
                    }
                    None => dest.push((c, 0)),
                }
            }
        }
        modified.then_some(dest)
    }
}

/// Byte offsets in `text` as character offsets, by `tokenizers`' rule: a start or end at a
/// byte inside a character counts as that character's index; an end at the text's end is
/// the character count; a range starting at or past the end stays in bytes.
pub(crate) fn to_char_offsets(text: &str, offsets: &mut [(usize, usize)]) {
    if text.is_ascii() {
        return;
    }
    let mut char_at = vec![0usize; text.len()];
    for (i, (b, c)) in text.char_indices().enumerate() {
        char_at[b..b + c.len_utf8()].fill(i);
    }
    for o in offsets {
        let Some(&start) = char_at.get(o.0) else { continue };
        let end = match char_at.get(o.1) {
            Some(&e) => e,
            None => o.1.checked_sub(1).and_then(|k| char_at.get(k)).map_or(start + 1, |&l| l + 1),
        };
        *o = (start, end);
    }
}

/// The ByteLevel post-processor's `trim_offsets`: a token's leading and trailing spaces
/// (`Ġ` or whitespace) are left out of its offsets; with `add_prefix_space`, one leading
/// space of the first token (or of one starting at 0) is kept.
pub(crate) fn trim_offsets(tokens: &[&str], offsets: &mut [(usize, usize)], add_prefix_space: bool) {
    let space = byte_to_char()[b' ' as usize];
    let is_space = |c: &char| *c == space || c.is_whitespace();
    for (i, (token, o)) in tokens.iter().zip(offsets.iter_mut()).enumerate() {
        let mut leading = token.chars().take_while(is_space).count();
        let trailing = token.chars().rev().take_while(is_space).count();
        if leading > 0 {
            if (i == 0 || o.0 == 0) && add_prefix_space && leading == 1 {
                leading = 0;
            }
            o.0 = (o.0 + leading).min(o.1);
        }
        if trailing > 0 && o.1 >= trailing {
            o.1 = (o.1 - trailing).max(o.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepend_and_replace_align_as_tokenizers_documents() {
        // `tokenizers`' Metaspace example: "Hey friend!" → "▁Hey" (0, 3), "▁friend!" (3, 11).
        let mut a = Aligned::new("Hey friend!", 0);
        a.replace(&Pattern::Char(' '), "▁").unwrap();
        a.prepend("▁");
        assert_eq!(a.text, "▁Hey▁friend!");
        let hey = "▁Hey".len();
        assert_eq!(a.original(0, hey), (0, 3));
        assert_eq!(a.original(hey, a.text.len()), (3, 11));
    }

    #[test]
    fn byte_level_aligns_every_byte_to_its_character() {
        // `tokenizers`' example "i⭢j": the arrow's three byte characters all map to (1, 4).
        let mut a = Aligned::new("i⭢j", 0);
        a.byte_level();
        assert_eq!(a.text, "iâŃ¢j");
        assert_eq!(a.original(1, 7), (1, 4));
        assert_eq!(a.original(7, 8), (4, 5));
    }

    #[test]
    fn filter_records_deletions_at_the_start_and_after_kept_characters() {
        let mut a = Aligned::new("\u{1}ab\u{1}\u{1}c", 10);
        a.filter(|c| c != '\u{1}');
        assert_eq!(a.text, "abc");
        assert_eq!(a.align, vec![(11, 12), (12, 13), (15, 16)]);
    }

    #[test]
    fn char_offsets_follow_tokenizers_rule() {
        let text = "aé😁b";
        let mut o = vec![(0, 1), (1, 3), (3, 7), (7, 8), (2, 3), (8, 8)];
        to_char_offsets(text, &mut o);
        assert_eq!(o, vec![(0, 1), (1, 2), (2, 3), (3, 4), (1, 2), (8, 8)]);
    }

    #[test]
    fn trim_keeps_the_added_prefix_space_of_the_first_token_only() {
        let mut o = vec![(0, 3), (3, 7), (7, 9)];
        trim_offsets(&["Ġab", "Ġcde", "ĠĠ"], &mut o, true);
        assert_eq!(o, vec![(0, 3), (4, 7), (9, 9)]);
    }
}

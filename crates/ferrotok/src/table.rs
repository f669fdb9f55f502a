//! `TokenTable`: token bytes → rank, specialised for the lookups BPE makes millions of times.
//!
//! Why not a `HashMap<Box<[u8]>, Rank>`: profiles showed two thirds of encoding time in its
//! `get` and the `memcmp` it calls. Most tokens are at most 8 bytes, so each slot keeps the
//! token's first 8 bytes (`head`) and its length: a lookup hashes the piece from those same
//! words and compares two integers, with no call and no pointer chase; only longer tokens
//! compare their tail against the vocabulary's byte buffer.
//!
//! Open addressing with linear probing at load factor ≤ 1/2. Probe lengths depend only on
//! the (fixed) vocabulary, never on the text, so lookups stay O(1) on any input.

/// One slot; `len == 0` marks an empty slot (tokens are never empty).
#[derive(Clone, Copy, Default)]
struct Slot {
    head: u64,
    len: u32,
    rank: u32,
}

#[derive(Clone, Default)]
pub struct TokenTable {
    slots: Vec<Slot>,
    /// `slots.len() - 1`; `slots.len()` is a power of two.
    mask: usize,
    /// One bit per (high bits of a) hash, set for every token: a lookup whose bit is clear
    /// is a miss without touching `slots`. Most of BPE's pair lookups miss, and this bitmap
    /// (16 bits per token) stays in cache where the slots (16 bytes per token) do not.
    filter: Vec<u64>,
    /// `64 - log2(filter bits)`.
    filter_shift: u32,
}

impl std::fmt::Debug for TokenTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenTable").field("slots", &self.slots.len()).finish()
    }
}

/// The first (up to) 8 bytes, little-endian, zero-padded.
///
/// Shorter strings are read with two overlapping loads (the first and the last 4 or 2
/// bytes) instead of a loop over the bytes; the overlap holds the same bytes in both, so the
/// OR is exact.
#[inline(always)]
pub fn head(b: &[u8]) -> u64 {
    if let Some(first) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*first);
    }
    let n = b.len();
    if let (Some(lo), Some(hi)) = (b.first_chunk::<4>(), b.last_chunk::<4>()) {
        return u64::from(u32::from_le_bytes(*lo)) | (u64::from(u32::from_le_bytes(*hi)) << (8 * (n - 4)));
    }
    if let (Some(lo), Some(hi)) = (b.first_chunk::<2>(), b.last_chunk::<2>()) {
        return u64::from(u16::from_le_bytes(*lo)) | (u64::from(u16::from_le_bytes(*hi)) << (8 * (n - 2)));
    }
    b.first().map_or(0, |&x| u64::from(x))
}

/// Bytes 8..16 of `b` (`b.len() <= 16`), little-endian, zero-padded: the second word of a
/// short string, as `hash` reads it.
#[inline(always)]
pub fn second(b: &[u8]) -> u64 {
    match b.len() {
        16 => b.last_chunk::<8>().map_or(0, |c| u64::from_le_bytes(*c)),
        // The last 8 bytes, shifted so that byte 8 comes first.
        n @ 9..=15 => b.last_chunk::<8>().map_or(0, |c| u64::from_le_bytes(*c) >> (8 * (16 - n))),
        _ => 0,
    }
}

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// A fast hash of short byte strings (also used by the piece cache).
///
/// A product's bit k depends only on the input's bits 0..=k, so the low bits (the tables'
/// indices) get the top bits folded in (`h >> 49`: every input bit reaches them); the top bits
/// (the miss filter's index) are the product's own. Folding bits 31.. instead left the low 15
/// bits blind to the input's bits above 46: on 1 MB of English, sets of the short table that
/// three or more distinct pieces shared held 1 503 pieces beyond two, against 898 for a random
/// hash, and 898 with this fold.
#[inline(always)]
pub fn hash(head: u64, b: &[u8]) -> u64 {
    let mut h = (head ^ (b.len() as u64).rotate_left(56)).wrapping_mul(K);
    if b.len() > 8 {
        for chunk in b[8..].chunks(8) {
            h = (h.rotate_left(23) ^ self::head(chunk)).wrapping_mul(K);
        }
    }
    h ^ (h >> 49)
}

/// `hash` of a string of `len <= 16` bytes whose two words are `w0 = head(b)` and
/// `w1 = second(b)`: the same value, without touching the bytes again.
#[inline(always)]
pub fn hash16(w0: u64, w1: u64, len: usize) -> u64 {
    let mut h = (w0 ^ (len as u64).rotate_left(56)).wrapping_mul(K);
    if len > 8 {
        h = (h.rotate_left(23) ^ w1).wrapping_mul(K);
    }
    h ^ (h >> 49)
}

impl TokenTable {
    /// An empty table sized for `n` tokens.
    pub fn with_capacity(n: usize) -> Self {
        let size = (n.max(8) * 2).next_power_of_two();
        let bits = (n.max(64) * 16).next_power_of_two();
        Self {
            slots: vec![Slot::default(); size],
            mask: size - 1,
            filter: vec![0; bits / 64],
            filter_shift: 64 - bits.trailing_zeros(),
        }
    }

    #[inline(always)]
    fn filter_bit(&self, h: u64) -> (usize, u64) {
        let bit = (h >> self.filter_shift) as usize;
        (bit / 64, 1u64 << (bit % 64))
    }

    /// Inserts `token` (whose bytes `bytes_of` can produce for any rank already inserted).
    /// Returns the rank already stored for these bytes, if any (and then inserts nothing).
    pub fn insert<'a>(&mut self, token: &[u8], rank: u32, bytes_of: impl Fn(u32) -> &'a [u8]) -> Option<u32> {
        let h = head(token);
        let hv = hash(h, token);
        let mut i = hv as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s.len == 0 {
                self.slots[i] = Slot { head: h, len: token.len() as u32, rank };
                let (w, b) = self.filter_bit(hv);
                self.filter[w] |= b;
                return None;
            }
            if s.len as usize == token.len() && s.head == h && (token.len() <= 8 || bytes_of(s.rank) == token) {
                return Some(s.rank);
            }
            i = (i + 1) & self.mask;
        }
    }

    /// The rank of `token`. `bytes_of(rank)` gives a stored token's bytes, for tokens longer
    /// than 8 bytes.
    #[inline(always)]
    pub fn get<'a>(&self, token: &[u8], bytes_of: impl Fn(u32) -> &'a [u8]) -> Option<u32> {
        let h = head(token);
        self.get_hashed(token, h, hash(h, token), bytes_of)
    }

    /// `get` with `h = head(token)` and `hv = hash(h, token)` already computed.
    #[inline(always)]
    pub fn get_hashed<'a>(&self, token: &[u8], h: u64, hv: u64, bytes_of: impl Fn(u32) -> &'a [u8]) -> Option<u32> {
        let (w, b) = self.filter_bit(hv);
        if self.filter[w] & b == 0 {
            return None;
        }
        let mut i = hv as usize & self.mask;
        loop {
            let s = self.slots[i];
            if s.len == 0 {
                return None;
            }
            if s.len as usize == token.len() && s.head == h && (token.len() <= 8 || bytes_of(s.rank)[8..] == token[8..])
            {
                return Some(s.rank);
            }
            i = (i + 1) & self.mask;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Tokens of every length from 1 to 20 bytes, so that the
    /// tail comparison and probing past collisions are exercised.
    #[test]
    fn lookups_agree_with_a_hash_map() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut tokens: Vec<Vec<u8>> = Vec::new();
        let mut seen = HashMap::new();
        while tokens.len() < 20_000 {
            let len = 1 + (next() % 20) as usize;
            // A small alphabet makes tokens share heads and hashes collide in the filter.
            let t: Vec<u8> = (0..len).map(|_| b'a' + (next() % 3) as u8).collect();
            if !seen.contains_key(&t) {
                seen.insert(t.clone(), tokens.len() as u32);
                tokens.push(t);
            }
        }
        let mut table = TokenTable::with_capacity(tokens.len());
        for (r, t) in tokens.iter().enumerate() {
            assert_eq!(table.insert(t, r as u32, |r| &tokens[r as usize]), None);
        }
        assert_eq!(table.insert(&tokens[5], 99, |r| &tokens[r as usize]), Some(5), "duplicate");
        let bytes_of = |r: u32| &tokens[r as usize][..];
        for (r, t) in tokens.iter().enumerate() {
            assert_eq!(table.get(t, bytes_of), Some(r as u32));
        }
        for _ in 0..20_000 {
            let len = 1 + (next() % 24) as usize;
            let probe: Vec<u8> = (0..len).map(|_| b'a' + (next() % 4) as u8).collect();
            let want = seen.get(&probe).copied();
            assert_eq!(table.get(&probe, bytes_of), want, "{probe:?}");
        }
    }

    /// The two-load `head`, `second` and `hash16` equal the byte-at-a-time definitions on
    /// every length they serve.
    #[test]
    fn short_string_words_match_the_byte_loop() {
        let naive = |b: &[u8]| b.iter().take(8).enumerate().fold(0u64, |v, (i, &x)| v | (u64::from(x) << (8 * i)));
        let data: Vec<u8> = (0..40u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8 | 1).collect();
        for start in 0..8 {
            for len in 0..=16 {
                let b = &data[start..start + len];
                assert_eq!(head(b), naive(b), "head of {len} bytes");
                let w1 = if len > 8 { naive(&b[8..]) } else { 0 };
                assert_eq!(second(b), w1, "second word of {len} bytes");
                assert_eq!(hash16(head(b), second(b), len), hash(head(b), b), "hash of {len} bytes");
            }
        }
    }
}

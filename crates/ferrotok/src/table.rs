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
#[inline(always)]
pub fn head(b: &[u8]) -> u64 {
    if let Some(first) = b.first_chunk::<8>() {
        return u64::from_le_bytes(*first);
    }
    let mut v = 0u64;
    for (i, &x) in b.iter().enumerate() {
        v |= u64::from(x) << (8 * i);
    }
    v
}

/// A fast hash of short byte strings (also used by the piece cache).
#[inline(always)]
pub fn hash(head: u64, b: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h = (head ^ (b.len() as u64).rotate_left(56)).wrapping_mul(K);
    if b.len() > 8 {
        for chunk in b[8..].chunks(8) {
            h = (h.rotate_left(23) ^ self::head(chunk)).wrapping_mul(K);
        }
    }
    h ^ (h >> 31)
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
        let hv = hash(h, token);
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
}

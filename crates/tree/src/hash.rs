//! A small, fast, deterministic hasher for the tree's internal maps.
//!
//! The tree must not depend on randomness (std's `RandomState` seeds from the OS), so every
//! map uses this hasher: iteration orders are then a pure function of the operations
//! applied. It is a word-at-a-time multiply-rotate hash (the `rustc-hash` construction)
//! with a murmur3 finalizer so that the top bits, which hashbrown uses as tags, are well
//! mixed. It is not DoS-resistant; ZooKeeper's own `String.hashCode` maps are not either.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};

/// Multiplier from rustc-hash 2.
const SEED: u64 = 0xf135_7aea_2e62_a9c5;

#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct FastHasher {
    hash: u64,
}

impl FastHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(26) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for FastHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length keeps "a" and "a\0" apart.
        self.add(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.add(i);
    }

    #[inline]
    fn write_i64(&mut self, i: i64) {
        self.add(i as u64);
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        // murmur3 fmix64
        let mut h = self.hash;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^= h >> 33;
        h
    }
}

pub(crate) type FastBuild = BuildHasherDefault<FastHasher>;
pub(crate) type FastMap<K, V> = HashMap<K, V, FastBuild>;
pub(crate) type FastSet<K> = HashSet<K, FastBuild>;

/// The hash of a child link `(parent node id, child name)` in the name index.
#[inline]
pub(crate) fn child_hash(parent: u32, name: &[u8]) -> u64 {
    let mut h = FastHasher::default();
    h.write_u32(parent);
    h.write(name);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_inputs_hash_apart() {
        assert_ne!(child_hash(0, b"a"), child_hash(1, b"a"));
        assert_ne!(child_hash(0, b"a"), child_hash(0, b"a\0"));
        assert_ne!(child_hash(0, b""), child_hash(0, b"\0"));
        assert_eq!(
            child_hash(7, b"lock-0000000001"),
            child_hash(7, b"lock-0000000001")
        );
    }

    #[test]
    fn top_bits_vary_for_sequential_names() {
        let mut tags = std::collections::BTreeSet::new();
        for i in 0..1000 {
            tags.insert(child_hash(1, format!("n{i:010}").as_bytes()) >> 57);
        }
        assert!(tags.len() > 100, "poor tag spread: {}", tags.len());
    }
}

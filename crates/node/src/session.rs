//! Session expiry, ids and passwords (ZooKeeper's `SessionTrackerImpl`).
//!
//! Owns: for every live session, its negotiated timeout and its expiry time, kept in
//! buckets one tick wide so that expiry is a cheap scan of the oldest buckets.
//!
//! Invariants: a session is in exactly one bucket, the one keyed by its `expires_at_ms`;
//! bucket keys are multiples of `tick_ms`. Time is passed in (monotonic milliseconds); this
//! module never reads a clock.

use std::collections::{BTreeMap, HashMap, HashSet};

/// The salt ZooKeeper mixes into the session id to seed the password generator.
const PASSWORD_SALT: i64 = 0xB341_5C00;
/// Length of a session password.
pub const PASSWORD_BYTES: usize = 16;

#[derive(Debug, Clone)]
struct Tracked {
    timeout_ms: i32,
    expires_at_ms: i64,
    /// Set once a closeSession txn has been issued, so it is not issued twice.
    closing: bool,
}

/// Expiry buckets of width `tick_ms`.
#[derive(Debug)]
pub struct SessionTracker {
    tick_ms: i64,
    sessions: HashMap<i64, Tracked>,
    buckets: BTreeMap<i64, HashSet<i64>>,
    next_session_id: i64,
}

impl SessionTracker {
    /// `server_id` goes into the top byte of every id; `start_ms` (a millisecond clock
    /// reading at start-up) makes ids differ across restarts.
    pub fn new(tick_ms: i64, server_id: u8, start_ms: i64) -> SessionTracker {
        SessionTracker {
            tick_ms: tick_ms.max(1),
            sessions: HashMap::new(),
            buckets: BTreeMap::new(),
            next_session_id: initial_session_id(server_id, start_ms),
        }
    }

    /// A fresh session id (never 0, never i64::MIN, which marks containers).
    pub fn next_id(&mut self) -> i64 {
        loop {
            let id = self.next_session_id;
            self.next_session_id = self.next_session_id.wrapping_add(1);
            if id != 0 && id != i64::MIN && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    fn expiry_for(&self, now_ms: i64, timeout_ms: i32) -> i64 {
        // Round up to the next tick boundary, as ZooKeeper's ExpiryQueue does.
        ((now_ms + timeout_ms as i64) / self.tick_ms + 1) * self.tick_ms
    }

    /// Starts tracking `id` (new session, or one recovered from a snapshot).
    pub fn add(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        self.remove(id);
        let expires_at_ms = self.expiry_for(now_ms, timeout_ms);
        self.sessions.insert(
            id,
            Tracked {
                timeout_ms,
                expires_at_ms,
                closing: false,
            },
        );
        self.buckets.entry(expires_at_ms).or_default().insert(id);
    }

    pub fn remove(&mut self, id: i64) {
        if let Some(t) = self.sessions.remove(&id) {
            self.unbucket(id, t.expires_at_ms);
        }
    }

    fn unbucket(&mut self, id: i64, at: i64) {
        if let Some(b) = self.buckets.get_mut(&at) {
            b.remove(&id);
            if b.is_empty() {
                self.buckets.remove(&at);
            }
        }
    }

    /// Refreshes a session on any packet from its client. Returns false for an unknown or
    /// closing session.
    pub fn touch(&mut self, id: i64, now_ms: i64) -> bool {
        let Some(t) = self.sessions.get(&id) else {
            return false;
        };
        if t.closing {
            return false;
        }
        let (old, new) = (t.expires_at_ms, self.expiry_for(now_ms, t.timeout_ms));
        if new <= old {
            return true;
        }
        self.unbucket(id, old);
        self.buckets.entry(new).or_default().insert(id);
        if let Some(t) = self.sessions.get_mut(&id) {
            t.expires_at_ms = new;
        }
        true
    }

    /// Updates the timeout of a live session (a reconnect negotiates anew) and touches it.
    pub fn set_timeout(&mut self, id: i64, timeout_ms: i32, now_ms: i64) {
        if let Some(t) = self.sessions.get_mut(&id) {
            t.timeout_ms = timeout_ms;
        }
        self.touch(id, now_ms);
    }

    pub fn is_live(&self, id: i64) -> bool {
        self.sessions.get(&id).is_some_and(|t| !t.closing)
    }

    pub fn timeout_ms(&self, id: i64) -> Option<i32> {
        self.sessions.get(&id).map(|t| t.timeout_ms)
    }

    /// Marks a session as closing; returns false if it was unknown or already closing.
    pub fn set_closing(&mut self, id: i64) -> bool {
        match self.sessions.get_mut(&id) {
            Some(t) if !t.closing => {
                t.closing = true;
                true
            }
            _ => false,
        }
    }

    /// Sessions whose bucket time has passed, marked closing. At most `max` per call.
    pub fn take_expired(&mut self, now_ms: i64, max: usize) -> Vec<i64> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((&at, _)) = self.buckets.first_key_value() else {
                break;
            };
            if at > now_ms {
                break;
            }
            // Sorted: the expiry txns must come in the same order on every run.
            let mut ids: Vec<i64> = self
                .buckets
                .remove(&at)
                .unwrap_or_default()
                .into_iter()
                .collect();
            ids.sort_unstable();
            for id in ids {
                if let Some(t) = self.sessions.get_mut(&id) {
                    t.closing = true;
                    out.push(id);
                }
            }
        }
        out
    }

    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// (expiry time, session ids) per bucket, oldest first (for `dump`).
    pub fn buckets(&self) -> impl Iterator<Item = (i64, Vec<i64>)> + '_ {
        self.buckets.iter().map(|(at, ids)| {
            let mut v: Vec<i64> = ids.iter().copied().collect();
            v.sort_unstable();
            (*at, v)
        })
    }

    pub fn check_invariants(&self) {
        for (id, t) in &self.sessions {
            // take_expired removes a whole bucket and marks its sessions closing, so only
            // sessions still open must be found in their bucket.
            let bucketed = self
                .buckets
                .get(&t.expires_at_ms)
                .is_some_and(|b| b.contains(id));
            assert!(
                bucketed || t.closing,
                "open session {id:#x} missing from its bucket {}",
                t.expires_at_ms
            );
            assert_eq!(
                t.expires_at_ms % self.tick_ms,
                0,
                "bucket of {id:#x} not on a tick boundary"
            );
        }
        for (at, ids) in &self.buckets {
            for id in ids {
                let t = self
                    .sessions
                    .get(id)
                    .unwrap_or_else(|| panic!("bucket {at} holds unknown session {id:#x}"));
                assert_eq!(t.expires_at_ms, *at, "session {id:#x} in the wrong bucket");
            }
        }
    }
}

/// `(serverId << 56) | ((ms << 24) >>> 8)`: byte 7 is the server id, bits 16..55 the low
/// 40 bits of a millisecond clock, bits 0..15 a counter.
pub fn initial_session_id(server_id: u8, now_ms: i64) -> i64 {
    let time_part = ((now_ms as u64) << 24) >> 8;
    ((server_id as i64) << 56) | time_part as i64
}

/// The password ZooKeeper derives for a session: `new Random(id ^ SALT).nextBytes(16)`.
/// Being a function of the id, any server can check it without shared state.
pub fn session_password(session_id: i64) -> [u8; PASSWORD_BYTES] {
    let mut rng = JavaRandom::new(session_id ^ PASSWORD_SALT);
    let mut out = [0u8; PASSWORD_BYTES];
    for chunk in out.chunks_mut(4) {
        let mut v = rng.next_int();
        for b in chunk {
            *b = v as u8;
            v >>= 8;
        }
    }
    out
}

/// `java.util.Random`'s linear congruential generator.
struct JavaRandom {
    seed: i64,
}

impl JavaRandom {
    const MULTIPLIER: i64 = 0x5_DEEC_E66D;
    const MASK: i64 = (1 << 48) - 1;

    fn new(seed: i64) -> JavaRandom {
        JavaRandom {
            seed: (seed ^ Self::MULTIPLIER) & Self::MASK,
        }
    }

    fn next_int(&mut self) -> i32 {
        self.seed = (self.seed.wrapping_mul(Self::MULTIPLIER).wrapping_add(0xB)) & Self::MASK;
        (self.seed >> 16) as i32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_matches_real_zookeeper() {
        // Observed on ZooKeeper 3.8.0: session 0x01000006c8f80000.
        let pw = session_password(0x0100_0006_c8f8_0000);
        let hex: String = pw.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "7acdebae7f4a0f5ae89d858c60f44438");
    }

    #[test]
    fn session_id_layout() {
        let id = initial_session_id(1, 0x0000_0006_c8f8);
        assert_eq!(id >> 56, 1);
        assert_eq!(id & 0xffff, 0);
    }

    #[test]
    fn expiry_in_buckets() {
        let mut t = SessionTracker::new(2000, 1, 0);
        t.add(7, 4000, 0);
        assert!(t.take_expired(5999, 10).is_empty());
        t.touch(7, 1000); // expiry moves to 6000
        assert!(t.take_expired(5999, 10).is_empty());
        assert_eq!(t.take_expired(6000, 10), vec![7]);
        assert!(!t.is_live(7));
        t.check_invariants();
    }
}

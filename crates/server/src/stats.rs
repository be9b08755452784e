//! Counters shared between connection tasks and the four-letter words.
//!
//! Owns: per-connection and server-wide packet counts and request latencies. Connection
//! tasks update their own [`ConnStats`] with relaxed atomics; readers take approximate
//! snapshots, which is all `srvr`, `cons` and `mntr` promise.
//!
//! Also owns the server's [`Role`] as the four-letter words report it, and the leader's
//! learner counts and proposal sizes, which the server core sets and `srvr`/`mntr` read.
//! All of it is lock-free (atomics), so a 4lw never waits on the core.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicU8, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

/// What this server is doing, as `srvr`/`stat` (`Mode: ...`) and `mntr`
/// (`zk_server_state`) report it.
///
/// The core sets `Leader`/`Follower`/`Observer` only once it serves clients (ZooKeeper's
/// `zkServer.isRunning()`: the leader after a quorum acknowledged NEWLEADER, a learner after
/// UPTODATE); until then, and while electing, it is `Looking`, and most four-letter words
/// answer "This ZooKeeper instance is not currently serving requests".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Standalone,
    Looking,
    Leader,
    Follower,
    Observer,
}

impl Role {
    /// The word ZooKeeper prints (`QuorumStats.Provider`'s states; `standalone` for a
    /// standalone server).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Standalone => "standalone",
            Role::Looking => "leaderelection",
            Role::Leader => "leader",
            Role::Follower => "follower",
            Role::Observer => "observer",
        }
    }

    /// `QuorumPeer.ServerState` in lower case, as `zk_peer_state` starts; `None` standalone.
    pub fn peer_state(self) -> Option<&'static str> {
        match self {
            Role::Standalone => None,
            Role::Looking => Some("looking"),
            Role::Leader => Some("leading"),
            Role::Follower => Some("following"),
            Role::Observer => Some("observing"),
        }
    }

    /// Whether client requests (and the 4lw that read server state) are served.
    pub fn is_serving(self) -> bool {
        self != Role::Looking
    }

    fn code(self) -> u8 {
        match self {
            Role::Standalone => 0,
            Role::Looking => 1,
            Role::Leader => 2,
            Role::Follower => 3,
            Role::Observer => 4,
        }
    }

    fn from_code(code: u8) -> Role {
        match code {
            1 => Role::Looking,
            2 => Role::Leader,
            3 => Role::Follower,
            4 => Role::Observer,
            _ => Role::Standalone,
        }
    }
}

/// The leader's view of its learners, for `mntr` (ZooKeeper's leader gauges). The core
/// sets them whenever they change; they are printed only while the role is `Leader`
/// (`synced_observers` also on a follower, which may serve observers as observer master).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LearnerCounts {
    /// Learner connections (followers and observers, synced or not): `zk_learners`.
    pub learners: u64,
    /// Followers past UPTODATE that receive proposals: `zk_synced_followers`.
    pub synced_followers: u64,
    /// Synced followers that are not voters (mid-reconfig): `zk_synced_non_voting_followers`.
    pub synced_non_voting_followers: u64,
    /// Synced observers: `zk_synced_observers`.
    pub synced_observers: u64,
    /// `sync` requests waiting for a quorum: `zk_pending_syncs`.
    pub pending_syncs: u64,
}

/// Sizes in bytes of the leader's proposals (ZooKeeper's `BufferStats`): last/min/max, each
/// -1 until the first proposal.
#[derive(Debug)]
pub struct ProposalSizes {
    last: AtomicI64,
    min: AtomicI64,
    max: AtomicI64,
}

impl ProposalSizes {
    fn new() -> ProposalSizes {
        ProposalSizes {
            last: AtomicI64::new(-1),
            min: AtomicI64::new(-1),
            max: AtomicI64::new(-1),
        }
    }

    fn record(&self, bytes: i64) {
        self.last.store(bytes, Relaxed);
        let _ = self
            .min
            .fetch_update(Relaxed, Relaxed, |m| (m < 0 || bytes < m).then_some(bytes));
        self.max.fetch_max(bytes, Relaxed);
    }

    fn reset(&self) {
        self.last.store(-1, Relaxed);
        self.min.store(-1, Relaxed);
        self.max.store(-1, Relaxed);
    }

    /// (last, min, max).
    pub fn snapshot(&self) -> (i64, i64, i64) {
        (
            self.last.load(Relaxed),
            self.min.load(Relaxed),
            self.max.load(Relaxed),
        )
    }
}

/// Latency summary in milliseconds (min/avg/max), as ZooKeeper's `srvr` prints it.
#[derive(Debug, Default)]
pub struct Latency {
    count: AtomicU64,
    total_ms: AtomicU64,
    min_ms: AtomicU64,
    max_ms: AtomicU64,
}

impl Latency {
    pub fn new() -> Latency {
        Latency {
            min_ms: AtomicU64::new(u64::MAX),
            ..Latency::default()
        }
    }

    pub fn record(&self, ms: u64) {
        self.record_n(ms, 1);
    }

    /// Records `n` requests that each took `ms` (a batch that arrived together).
    pub fn record_n(&self, ms: u64, n: u64) {
        self.count.fetch_add(n, Relaxed);
        self.total_ms.fetch_add(ms.saturating_mul(n), Relaxed);
        self.min_ms.fetch_min(ms, Relaxed);
        self.max_ms.fetch_max(ms, Relaxed);
    }

    pub fn reset(&self) {
        self.count.store(0, Relaxed);
        self.total_ms.store(0, Relaxed);
        self.min_ms.store(u64::MAX, Relaxed);
        self.max_ms.store(0, Relaxed);
    }

    /// (min, avg, max, count); min is 0 when nothing was recorded.
    pub fn snapshot(&self) -> (u64, f64, u64, u64) {
        let count = self.count.load(Relaxed);
        let min = self.min_ms.load(Relaxed);
        let avg = if count == 0 {
            0.0
        } else {
            self.total_ms.load(Relaxed) as f64 / count as f64
        };
        (
            if min == u64::MAX { 0 } else { min },
            avg,
            self.max_ms.load(Relaxed),
            count,
        )
    }
}

/// One connection's counters (`cons`).
#[derive(Debug)]
pub struct ConnStats {
    pub peer: SocketAddr,
    pub established_ms: i64,
    pub received: AtomicU64,
    pub sent: AtomicU64,
    /// Requests read but not yet answered.
    pub queued: AtomicI64,
    pub session_id: AtomicI64,
    pub timeout_ms: AtomicI64,
    pub last_cxid: AtomicI64,
    pub last_zxid: AtomicI64,
    pub last_op: Mutex<&'static str>,
    pub last_response_ms: AtomicI64,
    pub last_latency_ms: AtomicU64,
    pub latency: Latency,
}

impl ConnStats {
    pub fn new(peer: SocketAddr, now_ms: i64) -> ConnStats {
        ConnStats {
            peer,
            established_ms: now_ms,
            received: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            queued: AtomicI64::new(0),
            session_id: AtomicI64::new(0),
            timeout_ms: AtomicI64::new(0),
            last_cxid: AtomicI64::new(-1),
            last_zxid: AtomicI64::new(-1),
            last_op: Mutex::new("NA"),
            last_response_ms: AtomicI64::new(0),
            last_latency_ms: AtomicU64::new(0),
            latency: Latency::new(),
        }
    }

    pub fn reset(&self) {
        self.received.store(0, Relaxed);
        self.sent.store(0, Relaxed);
        self.latency.reset();
    }
}

/// Server-wide counters and the registry of live connections.
#[derive(Debug)]
pub struct ServerStats {
    pub started_ms: i64,
    pub packets_received: AtomicU64,
    pub packets_sent: AtomicU64,
    pub outstanding: AtomicI64,
    pub latency: Latency,
    pub connections: Mutex<HashMap<u64, Arc<ConnStats>>>,
    pub max_response_bytes: AtomicU64,
    pub last_response_bytes: AtomicU64,
    role: AtomicU8,
    learners: AtomicU64,
    synced_followers: AtomicU64,
    synced_non_voting_followers: AtomicU64,
    synced_observers: AtomicU64,
    pending_syncs: AtomicU64,
    /// The sid of the server this learner follows (`zk_observer_master_id`); -1 = none.
    leader_sid: AtomicI64,
    pub proposal_sizes: ProposalSizes,
}

impl ServerStats {
    pub fn new(now_ms: i64) -> ServerStats {
        ServerStats {
            started_ms: now_ms,
            packets_received: AtomicU64::new(0),
            packets_sent: AtomicU64::new(0),
            outstanding: AtomicI64::new(0),
            latency: Latency::new(),
            connections: Mutex::new(HashMap::new()),
            max_response_bytes: AtomicU64::new(0),
            last_response_bytes: AtomicU64::new(0),
            role: AtomicU8::new(Role::Standalone.code()),
            learners: AtomicU64::new(0),
            synced_followers: AtomicU64::new(0),
            synced_non_voting_followers: AtomicU64::new(0),
            synced_observers: AtomicU64::new(0),
            pending_syncs: AtomicU64::new(0),
            leader_sid: AtomicI64::new(-1),
            proposal_sizes: ProposalSizes::new(),
        }
    }

    /// `srst`: the packet and latency counters, and on the leader its proposal sizes.
    pub fn reset(&self) {
        self.packets_received.store(0, Relaxed);
        self.packets_sent.store(0, Relaxed);
        self.latency.reset();
        self.max_response_bytes.store(0, Relaxed);
        if self.role() == Role::Leader {
            self.proposal_sizes.reset();
        }
    }

    /// Sets the role the four-letter words report. Starts as [`Role::Standalone`]; a quorum
    /// member sets `Looking` before it opens its client port.
    pub fn set_role(&self, role: Role) {
        self.role.store(role.code(), Relaxed);
    }

    pub fn role(&self) -> Role {
        Role::from_code(self.role.load(Relaxed))
    }

    /// The leader's learner counts (see [`LearnerCounts`]).
    pub fn set_learner_counts(&self, counts: LearnerCounts) {
        self.learners.store(counts.learners, Relaxed);
        self.synced_followers
            .store(counts.synced_followers, Relaxed);
        self.synced_non_voting_followers
            .store(counts.synced_non_voting_followers, Relaxed);
        self.synced_observers
            .store(counts.synced_observers, Relaxed);
        self.pending_syncs.store(counts.pending_syncs, Relaxed);
    }

    pub fn learner_counts(&self) -> LearnerCounts {
        LearnerCounts {
            learners: self.learners.load(Relaxed),
            synced_followers: self.synced_followers.load(Relaxed),
            synced_non_voting_followers: self.synced_non_voting_followers.load(Relaxed),
            synced_observers: self.synced_observers.load(Relaxed),
            pending_syncs: self.pending_syncs.load(Relaxed),
        }
    }

    /// The leader (or observer master) this learner syncs from; `None` to clear.
    pub fn set_leader_sid(&self, sid: Option<i64>) {
        self.leader_sid.store(sid.unwrap_or(-1), Relaxed);
    }

    pub fn leader_sid(&self) -> Option<i64> {
        Some(self.leader_sid.load(Relaxed)).filter(|s| *s >= 0)
    }

    /// The leader records the serialized size of every proposal it sends.
    pub fn record_proposal_size(&self, bytes: usize) {
        self.proposal_sizes
            .record(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// Live connections sorted by id (stable output for `cons`).
    pub fn connection_list(&self) -> Vec<(u64, Arc<ConnStats>)> {
        let map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<_> = map.iter().map(|(k, v)| (*k, v.clone())).collect();
        v.sort_by_key(|(k, _)| *k);
        v
    }

    /// Connections from one IP address (for `maxClientCnxns`).
    pub fn connections_from(&self, ip: std::net::IpAddr) -> usize {
        let map = self.connections.lock().unwrap_or_else(|e| e.into_inner());
        map.values().filter(|c| c.peer.ip() == ip).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_round_trips_and_starts_standalone() {
        let st = ServerStats::new(0);
        assert_eq!(st.role(), Role::Standalone);
        for r in [
            Role::Looking,
            Role::Leader,
            Role::Follower,
            Role::Observer,
            Role::Standalone,
        ] {
            st.set_role(r);
            assert_eq!(st.role(), r);
        }
        assert!(!Role::Looking.is_serving());
        assert!(Role::Observer.is_serving());
    }

    #[test]
    fn proposal_sizes_are_buffer_stats() {
        let st = ServerStats::new(0);
        assert_eq!(st.proposal_sizes.snapshot(), (-1, -1, -1));
        st.record_proposal_size(40);
        st.record_proposal_size(10);
        st.record_proposal_size(25);
        assert_eq!(st.proposal_sizes.snapshot(), (25, 10, 40));
        // srst resets them only on the leader.
        st.reset();
        assert_eq!(st.proposal_sizes.snapshot(), (25, 10, 40));
        st.set_role(Role::Leader);
        st.reset();
        assert_eq!(st.proposal_sizes.snapshot(), (-1, -1, -1));
    }

    #[test]
    fn learner_counts_round_trip() {
        let st = ServerStats::new(0);
        let c = LearnerCounts {
            learners: 3,
            synced_followers: 2,
            synced_non_voting_followers: 0,
            synced_observers: 1,
            pending_syncs: 4,
        };
        st.set_learner_counts(c);
        assert_eq!(st.learner_counts(), c);
        assert_eq!(st.leader_sid(), None);
        st.set_leader_sid(Some(3));
        assert_eq!(st.leader_sid(), Some(3));
    }
}

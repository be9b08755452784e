//! Counters shared between connection tasks and the four-letter words.
//!
//! Owns: per-connection and server-wide packet counts and request latencies. Connection
//! tasks update their own [`ConnStats`] with relaxed atomics; readers take approximate
//! snapshots, which is all `srvr`, `cons` and `mntr` promise.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

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
        self.count.fetch_add(1, Relaxed);
        self.total_ms.fetch_add(ms, Relaxed);
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
        }
    }

    pub fn reset(&self) {
        self.packets_received.store(0, Relaxed);
        self.packets_sent.store(0, Relaxed);
        self.latency.reset();
        self.max_response_bytes.store(0, Relaxed);
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

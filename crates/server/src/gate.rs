//! The release gate of a standalone server: client output that waits for the disk, shared
//! by the core task (which holds output) and whoever synced the log (which releases it
//! after each sync): the log thread, so a durable reply goes from it straight to its
//! connection's writer without another hop through the core, or the core itself after an
//! inline sync.
//!
//! Owns the held items, each a frame or close for one connection with its *need*: the zxid
//! that must be durable before it may go. Two watermarks are published:
//! * `durable`: the highest zxid synced to the log. Stored *before* the items it
//!   frees are handed over. The core stamps reads with at most this zxid (see
//!   `corral_node::Node::set_durable_zxid`), so a client never sees a zxid a crash could
//!   take back.
//! * `released`: every item whose need is at most this has been handed to its
//!   connection. Stored *after* the hand-over. The core may therefore send an item whose
//!   need is at most `released` directly, without overtaking anything held before it.
//!
//! Invariants (under the mutex): unless a hand-over is in progress (`draining`), every
//! held item's need is above `Held::durable`; the queue is sorted by need and items of
//! equal need keep their insertion order; `released <= durable`. The core gives one
//! connection's items non-decreasing needs (it raises each to the connection's previous
//! need), so handing items over in need order keeps each connection's FIFO order.
//!
//! Threading: [`ReleaseGate::hold`] is called by the core, [`ReleaseGate::advance`] by
//! the log thread after its syncs, or by the core after an inline sync; calls to `advance`
//! never overlap (`durable` explains how the two take turns), since two concurrent
//! hand-overs could interleave one connection's items. The advancer takes the freed
//! items out under the mutex and sends them outside it (a watch fan-out frees thousands;
//! the core must not wait on the lock meanwhile), marking the hand-over as `draining`.
//! While it is, `hold` queues even an item that is already durable, so it cannot overtake
//! an earlier item of its connection still being sent; the advancer takes such items in
//! its next pass and stores `released` only once a pass finds nothing more to send. The
//! core's fast path is one atomic load ([`ReleaseGate::released`]).

use crate::core::{ConnOut, ConnSender};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

/// One held frame or close.
struct Item {
    need: i64,
    to: ConnSender,
    out: ConnOut,
}

struct Held {
    durable: i64,
    queue: VecDeque<Item>,
    /// The log thread is sending items outside the lock.
    draining: bool,
}

pub struct ReleaseGate {
    durable: AtomicI64,
    released: AtomicI64,
    held_len: AtomicUsize,
    inner: Mutex<Held>,
}

impl ReleaseGate {
    /// A gate whose log is durable up to `durable_zxid` (what recovery found on disk).
    pub fn new(durable_zxid: i64) -> ReleaseGate {
        ReleaseGate {
            durable: AtomicI64::new(durable_zxid),
            released: AtomicI64::new(durable_zxid),
            held_len: AtomicUsize::new(0),
            inner: Mutex::new(Held {
                durable: durable_zxid,
                queue: VecDeque::new(),
                draining: false,
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Held> {
        // A panic while holding the lock leaves the queue consistent (pushes and pops are
        // whole), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Highest zxid synced to the log.
    pub fn durable(&self) -> i64 {
        self.durable.load(Ordering::Acquire)
    }

    /// Every item needing at most this zxid has been handed over.
    pub fn released(&self) -> i64 {
        self.released.load(Ordering::Acquire)
    }

    /// Items waiting (for backpressure and `srvr`-style reports).
    pub fn held_len(&self) -> usize {
        self.held_len.load(Ordering::Relaxed)
    }

    /// Holds `out` for `to` until `need` is durable, or sends it now if it already is.
    /// The caller gives one connection's items non-decreasing needs.
    pub fn hold(&self, need: i64, to: &ConnSender, out: ConnOut) {
        let mut h = self.lock();
        if need <= h.durable && !h.draining {
            // The log thread synced past `need` since the caller looked at `released`,
            // and no hand-over is in progress: nothing of this connection is still queued
            // (it would need at most `need`, and the queue holds only needs above
            // `durable`).
            let _ = to.send(out);
            return;
        }
        // Almost always at the back (needs mostly grow); a read of an older zxid goes
        // before later needs, after those equal to its own.
        let at = if h.queue.back().is_none_or(|b| b.need <= need) {
            h.queue.len()
        } else {
            h.queue.partition_point(|i| i.need <= need)
        };
        h.queue.insert(
            at,
            Item {
                need,
                to: to.clone(),
                out,
            },
        );
        self.held_len.store(h.queue.len(), Ordering::Relaxed);
    }

    /// The log is durable up to `zxid`: hands over every item that needed at most that.
    /// Returns how many items were held before (the caller wakes the core if it stopped
    /// taking requests because too many were).
    pub fn advance(&self, zxid: i64) -> usize {
        let mut h = self.lock();
        let before = h.queue.len();
        if zxid <= h.durable {
            return before;
        }
        h.durable = zxid;
        self.durable.store(zxid, Ordering::Release);
        let mut batch = Vec::new();
        loop {
            while h.queue.front().is_some_and(|i| i.need <= zxid) {
                if let Some(i) = h.queue.pop_front() {
                    batch.push(i);
                }
            }
            self.held_len.store(h.queue.len(), Ordering::Relaxed);
            if batch.is_empty() {
                h.draining = false;
                self.released.store(zxid, Ordering::Release);
                return before;
            }
            h.draining = true;
            drop(h);
            for i in batch.drain(..) {
                // A closed connection's writer is gone; its output is simply dropped.
                let _ = i.to.send(i.out);
            }
            h = self.lock();
        }
    }

    /// Drops everything held (the log failed: none of it may ever go out).
    pub fn clear(&self) {
        let mut h = self.lock();
        h.queue.clear();
        self.held_len.store(0, Ordering::Relaxed);
    }

    /// Checks the invariants stated in the module docs.
    pub fn check_invariants(&self) {
        let h = self.lock();
        let released = self.released.load(Ordering::Acquire);
        assert!(
            released <= h.durable,
            "released {released} above durable {}",
            h.durable
        );
        let mut prev = i64::MIN;
        for i in &h.queue {
            assert!(
                h.draining || i.need > h.durable,
                "held item needs {} <= durable",
                i.need
            );
            assert!(i.need >= prev, "held items out of need order");
            prev = i.need;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tokio::sync::mpsc;

    fn frame(n: u8) -> ConnOut {
        ConnOut::Frame(Bytes::from(vec![n]))
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<ConnOut>) -> Vec<u8> {
        let mut v = Vec::new();
        while let Ok(o) = rx.try_recv() {
            match o {
                ConnOut::Frame(f) => v.push(f[0]),
                ConnOut::Close => v.push(0),
            }
        }
        v
    }

    #[test]
    fn items_go_in_need_order_and_keep_each_connections_order() {
        let gate = ReleaseGate::new(10);
        let (a, mut ra) = mpsc::unbounded_channel();
        let (b, mut rb) = mpsc::unbounded_channel();
        gate.hold(12, &a, frame(1));
        gate.hold(12, &a, frame(2));
        // b's read of an older zxid goes before a's later needs.
        gate.hold(11, &b, frame(3));
        gate.hold(13, &a, frame(4));
        gate.hold(13, &b, frame(5));
        gate.check_invariants();
        assert_eq!(gate.held_len(), 5);
        gate.advance(11);
        assert_eq!(drain(&mut rb), vec![3]);
        assert!(drain(&mut ra).is_empty());
        assert_eq!(gate.released(), 11);
        gate.advance(12);
        assert_eq!(drain(&mut ra), vec![1, 2]);
        gate.check_invariants();
        gate.advance(20);
        assert_eq!(drain(&mut ra), vec![4]);
        assert_eq!(drain(&mut rb), vec![5]);
        assert_eq!(gate.held_len(), 0);
        assert_eq!(gate.durable(), 20);
        gate.check_invariants();
    }

    #[test]
    fn an_item_already_durable_goes_at_once() {
        let gate = ReleaseGate::new(5);
        let (a, mut ra) = mpsc::unbounded_channel();
        gate.hold(5, &a, frame(1));
        assert_eq!(drain(&mut ra), vec![1]);
        // Advancing backwards changes nothing.
        gate.hold(7, &a, frame(2));
        gate.advance(4);
        assert!(drain(&mut ra).is_empty());
        gate.advance(7);
        assert_eq!(drain(&mut ra), vec![2]);
    }

    #[test]
    fn an_item_held_during_a_hand_over_waits_for_it() {
        let gate = ReleaseGate::new(0);
        let (a, mut ra) = mpsc::unbounded_channel();
        gate.hold(1, &a, frame(1));
        // As if the log thread were between taking item 1 out and sending it.
        gate.lock().draining = true;
        gate.lock().durable = 1;
        gate.hold(1, &a, frame(2));
        assert!(drain(&mut ra).is_empty(), "queued behind the hand-over");
        gate.lock().draining = false;
        gate.lock().durable = 0;
        gate.advance(1);
        assert_eq!(drain(&mut ra), vec![1, 2]);
        assert_eq!(gate.released(), 1);
        gate.check_invariants();
    }

    #[test]
    fn clear_drops_everything_held() {
        let gate = ReleaseGate::new(0);
        let (a, mut ra) = mpsc::unbounded_channel();
        gate.hold(1, &a, frame(1));
        gate.hold(2, &a, ConnOut::Close);
        gate.clear();
        gate.advance(5);
        assert!(drain(&mut ra).is_empty());
        assert_eq!(gate.held_len(), 0);
    }
}

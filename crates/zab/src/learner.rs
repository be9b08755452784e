//! A follower's or observer's side of Zab after an election (ZooKeeper's `Learner`,
//! `Follower`, `Observer`), as a pure state machine.
//!
//! **Owns**: the stage of the conversation with the leader (info sent, epoch acked, sync,
//! serving), the epochs it must persist, proposals logged but not yet committed, ACKs that
//! may only leave once the log is durable, and the leader's liveness deadline. It does not
//! own the data: the replica applies what [`Action::Commit`] hands it, and serialises or
//! loads snapshots.
//!
//! **Order of effects**: [`Action::Log`] comes before the ACK of the same zxid, and that
//! ACK is only released by [`Learner::logged`] (Zab: a follower acknowledges only what is
//! on its disk). `currentEpoch` is persisted only once every txn received in the sync is
//! durable, and NEWLEADER is acknowledged after that.
//!
//! **Invariants** ([`Learner::check_invariants`]): pending proposals are in zxid order and
//! above the last committed zxid; ACKs wait in zxid order.
//!
//! **Time** is ticks of half a `tickTime`; the leader must be heard from within
//! `syncLimit` (`initLimit` while syncing), else the learner gives up.
//!
//! Threading: none.

use bytes::Bytes;
use corral_proto::quorum::{
    encode_ping_touches, epoch_of, make_zxid, AckEpoch, LearnerInfo, PacketType, QuorumPacket,
    RevalidateReply, SessionTouch, Sid, ACK_EPOCH_ALREADY_ACCEPTED,
};
use std::collections::VecDeque;

/// Settings of one attempt to follow (or observe) a leader.
#[derive(Debug, Clone)]
pub struct LearnerConfig {
    pub my_sid: Sid,
    pub observer: bool,
    pub init_limit_half_ticks: u32,
    pub sync_limit_half_ticks: u32,
}

/// Where the learner's history stands when it starts following.
#[derive(Debug, Clone, Copy)]
pub struct LearnerStart {
    pub accepted_epoch: i64,
    pub current_epoch: i64,
    /// Last zxid in its log (and, by the replica's rule, applied to its tree).
    pub last_zxid: i64,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(QuorumPacket),
    PersistAcceptedEpoch(i64),
    PersistCurrentEpoch(i64),
    /// Forget every txn after `zxid` (log, snapshots, and the tree if it is beyond).
    Truncate(i64),
    /// Append this txn (log-entry bytes) to the log; report [`Learner::logged`].
    Log {
        zxid: i64,
        data: Bytes,
    },
    /// Apply the txn logged (by [`Action::Log`]) with this zxid to the tree.
    Commit {
        zxid: i64,
    },
    /// Synced: start serving clients.
    UpToDate,
    /// The leader answered a forwarded `sync`: complete the oldest pending one.
    SyncDone,
    /// The leader answered a REVALIDATE.
    Revalidated(RevalidateReply),
    /// The leader pinged: answer with [`Learner::ping_reply`] carrying session touches.
    Pinged,
    /// Stop following: go back to election.
    Lost(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Connecting,
    AwaitLeaderInfo,
    Syncing,
    /// NEWLEADER seen; waiting for UPTODATE.
    AwaitUpToDate,
    Serving,
    Lost,
}

/// One attempt to follow a leader.
#[derive(Debug)]
pub struct Learner {
    cfg: LearnerConfig,
    start: LearnerStart,
    stage: Stage,
    now: u64,
    deadline: u64,
    new_epoch: i64,
    /// Last zxid handed to the log.
    last_logged: i64,
    /// Highest zxid the log reports durable.
    durable: i64,
    last_committed: i64,
    /// Proposals logged, not committed (zxid order).
    pending: VecDeque<i64>,
    /// Actions (ACKs, `currentEpoch`) to release once the log is durable through the zxid.
    after_durable: VecDeque<(i64, Action)>,
    /// A SNAP packet was seen; the snapshot body comes next.
    snapshot_expected: bool,
}

impl Learner {
    pub fn new(cfg: LearnerConfig, start: LearnerStart) -> Learner {
        Learner {
            deadline: cfg.init_limit_half_ticks as u64,
            cfg,
            start,
            stage: Stage::Connecting,
            now: 0,
            new_epoch: -1,
            last_logged: start.last_zxid,
            durable: start.last_zxid,
            last_committed: start.last_zxid,
            pending: VecDeque::new(),
            after_durable: VecDeque::new(),
            snapshot_expected: false,
        }
    }

    pub fn is_serving(&self) -> bool {
        self.stage == Stage::Serving
    }

    pub fn last_logged(&self) -> i64 {
        self.last_logged
    }

    pub fn last_committed(&self) -> i64 {
        self.last_committed
    }

    /// The connection to the leader is up: introduce ourselves.
    pub fn connected(&mut self) -> Vec<Action> {
        if self.stage != Stage::Connecting {
            return Vec::new();
        }
        self.stage = Stage::AwaitLeaderInfo;
        self.deadline = self.now + self.cfg.init_limit_half_ticks as u64;
        let ptype = if self.cfg.observer {
            PacketType::ObserverInfo
        } else {
            PacketType::FollowerInfo
        };
        vec![Action::Send(QuorumPacket::new(
            ptype,
            make_zxid(self.start.accepted_epoch, 0),
            Some(LearnerInfo::new(self.cfg.my_sid, 0).to_bytes()),
        ))]
    }

    /// The connection failed or closed.
    pub fn disconnected(&mut self) -> Vec<Action> {
        self.lose("connection to the leader closed")
    }

    fn lose(&mut self, why: &str) -> Vec<Action> {
        if self.stage == Stage::Lost {
            return Vec::new();
        }
        self.stage = Stage::Lost;
        vec![Action::Lost(why.to_owned())]
    }

    /// The snapshot that followed SNAP has been installed at `zxid`.
    pub fn snapshot_installed(&mut self, zxid: i64) {
        self.snapshot_expected = false;
        self.last_logged = zxid;
        self.durable = zxid;
        self.last_committed = zxid;
        self.pending.clear();
    }

    /// The log is durable up to `zxid`: release ACKs waiting for it.
    pub fn logged(&mut self, zxid: i64) -> Vec<Action> {
        self.durable = self.durable.max(zxid);
        let mut out = Vec::new();
        if self.stage == Stage::Lost {
            return out;
        }
        while let Some((z, _)) = self.after_durable.front() {
            if *z > self.durable {
                break;
            }
            let (_, a) = self.after_durable.pop_front().expect("front exists");
            out.push(a);
        }
        out
    }

    fn send_after_durable(&mut self, zxid: i64, p: QuorumPacket, out: &mut Vec<Action>) {
        self.after_durable_do(zxid, Action::Send(p), out);
    }

    fn after_durable_do(&mut self, zxid: i64, a: Action, out: &mut Vec<Action>) {
        if zxid <= self.durable && self.after_durable.is_empty() {
            out.push(a);
        } else {
            self.after_durable.push_back((zxid, a));
        }
    }

    /// The answer to a PING: session touches since the last one (the replica collects them).
    pub fn ping_reply(&self, zxid: i64, touches: &[SessionTouch]) -> QuorumPacket {
        QuorumPacket::new(PacketType::Ping, zxid, Some(encode_ping_touches(touches)))
    }

    pub fn step(&mut self, p: QuorumPacket) -> Vec<Action> {
        let mut out = Vec::new();
        if self.stage == Stage::Lost {
            return out;
        }
        let limit = if self.stage == Stage::Serving {
            self.cfg.sync_limit_half_ticks
        } else {
            self.cfg.init_limit_half_ticks
        };
        self.deadline = self.now + limit as u64;
        match (self.stage, p.packet_type) {
            (Stage::AwaitLeaderInfo, PacketType::LeaderInfo) => {
                let epoch = epoch_of(p.zxid);
                let ack = if epoch > self.start.accepted_epoch {
                    out.push(Action::PersistAcceptedEpoch(epoch));
                    self.start.current_epoch as i32
                } else if epoch == self.start.accepted_epoch {
                    ACK_EPOCH_ALREADY_ACCEPTED
                } else {
                    return self.lose(&format!(
                        "leader proposed epoch {epoch}, below accepted epoch {}",
                        self.start.accepted_epoch
                    ));
                };
                self.new_epoch = epoch;
                self.stage = Stage::Syncing;
                out.push(Action::Send(QuorumPacket::new(
                    PacketType::AckEpoch,
                    self.last_logged,
                    Some(AckEpoch { current_epoch: ack }.to_bytes()),
                )));
            }
            (Stage::Syncing, PacketType::Diff) => {}
            (Stage::Syncing, PacketType::Trunc) => {
                out.push(Action::Truncate(p.zxid));
                self.last_logged = p.zxid;
                self.durable = self.durable.min(p.zxid);
                self.last_committed = self.last_committed.min(p.zxid);
            }
            (Stage::Syncing, PacketType::Snap) => {
                // The snapshot itself follows on the stream; the replica installs it and
                // reports [`Learner::snapshot_installed`].
                self.snapshot_expected = true;
            }
            (Stage::Syncing | Stage::AwaitUpToDate | Stage::Serving, PacketType::Proposal) => {
                // A DIFF sync sends PROPOSAL + COMMIT pairs to observers too (Java's
                // `queueCommittedProposals`); only the live stream uses INFORM.
                if self.cfg.observer && self.stage != Stage::Syncing {
                    return self.lose("an observer got a PROPOSAL");
                }
                if p.zxid <= self.last_logged {
                    // Already in the log (a snapshot covered it): ack again, nothing else.
                    self.send_after_durable(p.zxid, ack(p.zxid), &mut out);
                    return out;
                }
                let data = p.data.unwrap_or_default();
                self.last_logged = p.zxid;
                self.pending.push_back(p.zxid);
                out.push(Action::Log { zxid: p.zxid, data });
                if self.stage == Stage::Serving || self.stage == Stage::AwaitUpToDate {
                    self.send_after_durable(p.zxid, ack(p.zxid), &mut out);
                }
            }
            (Stage::Syncing | Stage::AwaitUpToDate | Stage::Serving, PacketType::Commit) => {
                if p.zxid <= self.last_committed {
                    return out;
                }
                match self.pending.front() {
                    Some(&zxid) if zxid == p.zxid => {
                        self.pending.pop_front();
                        self.last_committed = zxid;
                        out.push(Action::Commit { zxid });
                    }
                    other => {
                        let next = other.copied();
                        return self.lose(&format!(
                            "committing zxid {:#x} but next pending txn is {next:x?}",
                            p.zxid
                        ));
                    }
                }
            }
            (Stage::Syncing | Stage::AwaitUpToDate | Stage::Serving, PacketType::Inform) => {
                if !self.cfg.observer {
                    return self.lose("a follower got an INFORM");
                }
                if p.zxid <= self.last_committed {
                    return out;
                }
                let data = p.data.unwrap_or_default();
                self.last_logged = p.zxid;
                self.last_committed = p.zxid;
                out.push(Action::Log { zxid: p.zxid, data });
                out.push(Action::Commit { zxid: p.zxid });
            }
            (Stage::Syncing, PacketType::NewLeader) => {
                if epoch_of(p.zxid) != self.new_epoch {
                    return self.lose("NEWLEADER of another epoch");
                }
                self.stage = Stage::AwaitUpToDate;
                // Txns of the sync that are still pending were proposed, not committed: ack
                // them too, so the leader can commit them in this epoch.
                let pending: Vec<i64> = self.pending.iter().copied().collect();
                let last = self.last_logged;
                // `currentEpoch` only once every txn of the sync is on disk: a learner that
                // crashed in between would otherwise restart with the new epoch and an old
                // log, win an election on that epoch and truncate committed txns
                // (ZOOKEEPER-4643).
                self.after_durable_do(last, Action::PersistCurrentEpoch(self.new_epoch), &mut out);
                self.send_after_durable(last, ack(make_zxid(self.new_epoch, 0)), &mut out);
                if !self.cfg.observer {
                    for z in pending {
                        self.send_after_durable(z.max(last), ack(z), &mut out);
                    }
                }
            }
            (Stage::AwaitUpToDate, PacketType::UpToDate) => {
                self.stage = Stage::Serving;
                self.deadline = self.now + self.cfg.sync_limit_half_ticks as u64;
                let last = self.last_logged;
                self.send_after_durable(last, ack(make_zxid(self.new_epoch, 0)), &mut out);
                out.push(Action::UpToDate);
            }
            (Stage::Serving | Stage::AwaitUpToDate, PacketType::Ping) => out.push(Action::Pinged),
            (Stage::Serving, PacketType::Sync) => out.push(Action::SyncDone),
            (_, PacketType::Revalidate) => {
                if let Ok(r) = RevalidateReply::decode(p.data_bytes()) {
                    out.push(Action::Revalidated(r));
                }
            }
            (stage, t) => {
                return self.lose(&format!("unexpected {t:?} while {stage:?}"));
            }
        }
        out
    }

    /// Was a SNAP seen whose snapshot has not been installed yet?
    pub fn snapshot_expected(&self) -> bool {
        self.snapshot_expected
    }

    /// One half tick: the leader must have been heard from.
    pub fn tick(&mut self) -> Vec<Action> {
        self.now += 1;
        if self.stage != Stage::Lost && self.now > self.deadline {
            return self.lose("timed out waiting for the leader");
        }
        Vec::new()
    }

    pub fn check_invariants(&self) {
        assert!(
            self.pending
                .iter()
                .zip(self.pending.iter().skip(1))
                .all(|(a, b)| a < b),
            "pending proposals out of order"
        );
        if let Some(z) = self.pending.front() {
            assert!(*z > self.last_committed, "pending {z:#x} already committed");
        }
        assert!(
            self.after_durable
                .iter()
                .zip(self.after_durable.iter().skip(1))
                .all(|(a, b)| a.0 <= b.0),
            "acks out of order"
        );
    }
}

fn ack(zxid: i64) -> QuorumPacket {
    QuorumPacket::new(PacketType::Ack, zxid, None)
}

//! The leader's side of Zab after an election (ZooKeeper's `Leader` and `LearnerHandler`):
//! discovery, synchronisation and broadcast, as a pure state machine.
//!
//! **Owns**: the connected learners ([`PeerId`] handles chosen by the shell) and the stage
//! each is in; the new epoch and the tallies that decide it (FOLLOWERINFO, ACKEPOCH,
//! NEWLEADER acks); the outstanding proposals and their acks; the in-memory `committedLog`
//! used to sync learners by DIFF; pending learner `sync`s; liveness (pings, "is a quorum
//! still synced?"). It does **not** own the data: the replica above prepares and applies
//! txns, hands their bytes to [`Leader::propose`], and is told what committed.
//!
//! **Phases** (Zab paper, §9.5 of the reference):
//! 1. *Discovery*: learners send FOLLOWERINFO/OBSERVERINFO with their accepted epoch. When
//!    a quorum of voters (the leader included) has, the new epoch is one above every
//!    accepted epoch; it is persisted ([`Action::PersistAcceptedEpoch`]) and sent in
//!    LEADERINFO. A quorum of ACKEPOCHs follows; one from a learner with a more recent
//!    history than the leader aborts the attempt.
//! 2. *Synchronisation*, per learner: DIFF, TRUNC (then DIFF) or SNAP, chosen from the
//!    learner's last zxid as `LearnerHandler.syncFollower` chooses, then NEWLEADER. Once a
//!    quorum has acknowledged NEWLEADER the leader is [`Action::Established`]; learners get
//!    UPTODATE. A learner behind the committed log may still get a DIFF from the on-disk
//!    txn log: the leader asks the shell for it ([`Action::ReadTxnLog`]), keeps the learner
//!    in its sync stage until [`Leader::txn_log_read`] brings the answer, and decides then
//!    (see [`Leader::txn_log_read`] for the rules and where they come from).
//! 3. *Broadcast*: proposals go to followers in zxid order; a proposal commits when a
//!    quorum of voters (the leader's own fsync included, reported by [`Leader::logged`])
//!    has acked it, strictly in zxid order; followers get COMMIT, observers INFORM.
//!
//! **Invariants** ([`Leader::check_invariants`]): outstanding proposals are consecutive
//! zxids above `last_committed`; the committed log is in zxid order and ends at
//! `last_committed`; every zxid proposed is in the new epoch; no proposal before
//! establishment.
//!
//! **Time** is ticks of half a `tickTime` (the leader pings every half tick, as Java does);
//! the limits below are in those half ticks.
//!
//! Threading: none.

use bytes::Bytes;
use corral_proto::quorum::{
    counter_of, epoch_of, make_zxid, AckEpoch, LeaderInfo, LearnerInfo, LearnerRequest, PacketType,
    QuorumPacket, RevalidateRequest, SessionTouch, Sid, QUORUM_PROTOCOL_VERSION,
};
use corral_proto::Id;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// A learner connection, named by the shell.
pub type PeerId = u64;

/// Proposals kept after commit to sync learners by DIFF (`zookeeper.commitLogCount`).
pub const COMMIT_LOG_COUNT_DEFAULT: usize = 500;

/// Highest counter a zxid may reach before the leader must step down for a new epoch.
pub const ZXID_COUNTER_MAX: i64 = 0xffff_ffff;

/// The `sync` opcode (a forwarded client `sync` comes as a REQUEST of this type).
const OP_SYNC: i32 = 9;

/// Settings of one leadership.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    pub my_sid: Sid,
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
    /// `initLimit` in half ticks: discovery and sync must finish within it.
    pub init_limit_half_ticks: u32,
    /// `syncLimit` in half ticks: a learner silent for longer is no longer synced.
    pub sync_limit_half_ticks: u32,
    /// Quorum config text sent in NEWLEADER.
    pub config_text: Bytes,
    pub commit_log_count: usize,
    /// Sync learners behind the committed log from the on-disk txn log when it has their
    /// txns (ZooKeeper: `zookeeper.snapshotSizeFactor` >= 0); otherwise they get SNAP.
    pub txn_log_sync: bool,
}

/// Reads of the txn log one learner's sync may take: a second read covers the txns the
/// committed log dropped while the first was under way; after that the learner gets SNAP.
pub const TXN_LOG_READS_MAX: u32 = 2;

/// What the shell read from the on-disk txn log for [`Action::ReadTxnLog`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnLogRead {
    /// The zxid of the last record read before `after` (in the file ZooKeeper would open
    /// first), if there was one.
    pub prev: Option<i64>,
    /// The txns read with zxid >= `after` and <= `upto`, in file order: `(zxid, entry bytes)`.
    pub entries: Vec<(i64, Bytes)>,
}

/// What the leader's history looks like when it takes office.
#[derive(Debug, Clone, Copy)]
pub struct LeaderStart {
    pub accepted_epoch: i64,
    pub current_epoch: i64,
    /// Last zxid in its log (and applied to its tree).
    pub last_zxid: i64,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send {
        peer: PeerId,
        packet: QuorumPacket,
    },
    /// Send SNAP with `zxid`, then the snapshot of the data tree as it is *now* (its last
    /// applied zxid is `zxid`), on `peer`'s stream, before anything sent later.
    SendSnapshot {
        peer: PeerId,
        zxid: i64,
    },
    Close {
        peer: PeerId,
    },
    /// Write `acceptedEpoch` (durably) before anything after this action is sent.
    PersistAcceptedEpoch(i64),
    /// Write `currentEpoch` (durably).
    PersistCurrentEpoch(i64),
    /// A quorum acknowledged NEWLEADER: the leader serves clients in `epoch`.
    Established {
        epoch: i64,
    },
    /// Everything up to `zxid` is committed (replies held behind it may go).
    Committed(i64),
    /// A client request a learner forwarded: prepare it as one of this leader's writes.
    Request {
        peer: PeerId,
        request: LearnerRequest,
        authinfo: Vec<Id>,
    },
    /// A learner asks whether a session may reconnect there; answer with
    /// [`Leader::revalidated`].
    Revalidate {
        peer: PeerId,
        request: RevalidateRequest,
    },
    /// Session activity a learner saw since its last ping.
    Touch(Vec<SessionTouch>),
    /// Leadership is over (no quorum, or discovery failed); go back to election.
    Abdicate(String),
    /// The txn log was read for `peer`'s sync and it got `kind` with `txns` committed txns
    /// (`why_not`: why the log did not serve, when it got SNAP). For the operator's log.
    SyncedFromTxnLog {
        peer: PeerId,
        kind: SyncKind,
        txns: usize,
        why_not: Option<String>,
    },
    /// Read the txn log for `peer`'s sync: the records from the start of the file holding
    /// `after` (the newest log file whose name is below `after`, or the oldest) up to
    /// `upto`, unless the log files after that first one are larger than ZooKeeper's
    /// `snapshotSizeFactor` × the newest snapshot allows. Answer with
    /// [`Leader::txn_log_read`] and this `read`; any failure is answered as an error.
    ReadTxnLog {
        peer: PeerId,
        read: u64,
        after: i64,
        upto: i64,
    },
}

/// How a learner was synced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    Diff,
    Trunc,
    Snap,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Connected; waiting for FOLLOWERINFO/OBSERVERINFO.
    AwaitInfo,
    /// Told the epoch (or waiting for it); waiting for ACKEPOCH.
    AwaitAckEpoch,
    /// Got ACKEPOCH before a quorum did; sync waits for the quorum.
    AwaitEpochQuorum,
    /// Sync waits for a read of the on-disk txn log ([`Action::ReadTxnLog`]).
    AwaitTxnLog,
    /// Synced and sent NEWLEADER; waiting for its ACK.
    AwaitNewLeaderAck,
    /// Acked NEWLEADER before the leader was established; UPTODATE waits.
    AwaitEstablished,
    /// Sent UPTODATE: gets the live stream.
    Active,
}

#[derive(Debug)]
struct Handler {
    sid: Option<Sid>,
    observer: bool,
    stage: Stage,
    /// The learner's last zxid from ACKEPOCH.
    peer_last_zxid: i64,
    /// Half tick by which the learner must have been heard from.
    deadline: u64,
    /// Gets proposals/commits/informs (from the moment its sync was queued).
    forwarding: bool,
    /// UPTODATE is held until this zxid is committed (the learner was sent a snapshot that
    /// includes proposals not yet committed).
    uptodate_after: i64,
    /// The txn log reads asked for this learner, and the id of the last one.
    reads: u32,
    read_id: u64,
}

#[derive(Debug)]
struct Proposal {
    data: Bytes,
    acks: BTreeSet<Sid>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Discovery,
    /// Epoch chosen and LEADERINFO sent; waiting for a quorum of ACKEPOCH.
    EpochAck,
    /// Epoch acked by a quorum; waiting for a quorum of NEWLEADER acks.
    NewLeaderAck,
    Broadcast,
    Abdicated,
}

/// One leadership term.
#[derive(Debug)]
pub struct Leader {
    cfg: LeaderConfig,
    phase: Phase,
    now: u64,
    /// Half tick by which the current phase of establishment must complete.
    phase_deadline: u64,
    start: LeaderStart,
    /// Accepted epochs reported in FOLLOWERINFO, by voter sid (the leader's own included).
    connecting: BTreeMap<Sid, i64>,
    /// Voters whose ACKEPOCH came (the leader included).
    epoch_acked: BTreeSet<Sid>,
    /// Voters that acknowledged NEWLEADER (the leader included).
    new_leader_acked: BTreeSet<Sid>,
    new_epoch: Option<i64>,
    handlers: BTreeMap<PeerId, Handler>,
    outstanding: BTreeMap<i64, Proposal>,
    committed_log: VecDeque<(i64, Bytes)>,
    /// The history's zxid just before `committed_log`'s first entry.
    log_floor: i64,
    last_committed: i64,
    last_proposed: i64,
    /// Learner syncs waiting for a zxid to commit: (zxid, peer).
    pending_syncs: VecDeque<(i64, PeerId)>,
    /// Ids of txn log reads ([`Action::ReadTxnLog`]); the last one given out.
    last_read_id: u64,
}

impl Leader {
    /// Takes office after winning an election. The history up to `start.last_zxid` is
    /// the leader's log; it is treated as committed once established (Zab's rule for a
    /// new leader's history), and it is what learners are synced to.
    pub fn new(cfg: LeaderConfig, start: LeaderStart) -> (Leader, Vec<Action>) {
        assert!(
            cfg.voters.contains(&cfg.my_sid),
            "sid {} leads but is not a voter",
            cfg.my_sid
        );
        let mut l = Leader {
            phase_deadline: cfg.init_limit_half_ticks as u64,
            cfg,
            phase: Phase::Discovery,
            now: 0,
            start,
            connecting: BTreeMap::new(),
            epoch_acked: BTreeSet::new(),
            new_leader_acked: BTreeSet::new(),
            new_epoch: None,
            handlers: BTreeMap::new(),
            outstanding: BTreeMap::new(),
            committed_log: VecDeque::new(),
            log_floor: start.last_zxid,
            last_committed: start.last_zxid,
            last_proposed: start.last_zxid,
            pending_syncs: VecDeque::new(),
            last_read_id: 0,
        };
        l.connecting.insert(l.cfg.my_sid, start.accepted_epoch);
        let mut out = Vec::new();
        l.maybe_choose_epoch(&mut out);
        (l, out)
    }

    /// Seeds the committed log with the tail of the leader's history: `entries` are every
    /// txn after `floor` up to the leader's last zxid, in order. Learners at or after
    /// `floor` then get DIFF rather than SNAP. Without a seed only a learner exactly at the
    /// leader's last zxid gets DIFF.
    pub fn seed_committed_log(
        &mut self,
        floor: i64,
        entries: impl IntoIterator<Item = (i64, Bytes)>,
    ) {
        self.committed_log.clear();
        self.log_floor = floor;
        for (zxid, data) in entries {
            assert!(
                zxid > floor && zxid <= self.last_committed,
                "seed {zxid:#x} outside history"
            );
            self.push_committed(zxid, data);
        }
    }

    pub fn is_established(&self) -> bool {
        self.phase == Phase::Broadcast
    }

    pub fn epoch(&self) -> Option<i64> {
        self.new_epoch
    }

    pub fn last_committed(&self) -> i64 {
        self.last_committed
    }

    pub fn last_proposed(&self) -> i64 {
        self.last_proposed
    }

    /// Learners connected (any stage), and those past sync, for `mntr`.
    pub fn learner_counts(&self) -> (usize, usize, usize) {
        let active = |obs: bool| {
            self.handlers
                .values()
                .filter(|h| h.stage == Stage::Active && h.observer == obs)
                .count()
        };
        (self.handlers.len(), active(false), active(true))
    }

    pub fn pending_sync_count(&self) -> usize {
        self.pending_syncs.len()
    }

    fn quorum(&self, set: impl Iterator<Item = Sid>) -> bool {
        let n = set.filter(|s| self.cfg.voters.contains(s)).count();
        n > self.cfg.voters.len() / 2
    }

    /// The zxid the next proposal must carry.
    pub fn next_zxid(&self) -> i64 {
        self.last_proposed + 1
    }

    /// Can the leader take another write (established, counter not exhausted)?
    pub fn can_propose(&self) -> bool {
        self.phase == Phase::Broadcast && counter_of(self.last_proposed) < ZXID_COUNTER_MAX
    }

    /// A new txn with zxid [`Leader::next_zxid`]: `data` is its log-entry bytes (TxnHeader,
    /// txn, digest). The caller logs it too and reports [`Leader::logged`].
    pub fn propose(&mut self, zxid: i64, data: Bytes) -> Vec<Action> {
        assert!(self.can_propose(), "proposal {zxid:#x} while not able to");
        assert_eq!(zxid, self.next_zxid(), "proposals must be consecutive");
        self.last_proposed = zxid;
        let mut out = Vec::new();
        for (&peer, h) in &self.handlers {
            if h.forwarding && !h.observer {
                out.push(send(
                    peer,
                    QuorumPacket::new(PacketType::Proposal, zxid, Some(data.clone())),
                ));
            }
        }
        self.outstanding.insert(
            zxid,
            Proposal {
                data,
                acks: BTreeSet::new(),
            },
        );
        if counter_of(zxid) >= ZXID_COUNTER_MAX {
            // Java forces a new epoch rather than wrap the counter.
            out.push(Action::Abdicate("zxid counter exhausted".into()));
            self.phase = Phase::Abdicated;
        }
        out
    }

    /// The leader's own log is durable up to `zxid`: that is its ack.
    pub fn logged(&mut self, zxid: i64) -> Vec<Action> {
        let mut out = Vec::new();
        let me = self.cfg.my_sid;
        for (_, p) in self.outstanding.range_mut(..=zxid) {
            p.acks.insert(me);
        }
        self.try_commit(&mut out);
        out
    }

    /// The answer to a learner's REVALIDATE.
    pub fn revalidated(&self, peer: PeerId, session_id: i64, valid: bool) -> Vec<Action> {
        let reply = corral_proto::quorum::RevalidateReply { session_id, valid };
        vec![send(
            peer,
            QuorumPacket::new(PacketType::Revalidate, -1, Some(reply.to_bytes())),
        )]
    }

    pub fn connected(&mut self, peer: PeerId) -> Vec<Action> {
        let deadline = self.now + self.cfg.init_limit_half_ticks as u64;
        self.handlers.insert(
            peer,
            Handler {
                sid: None,
                observer: false,
                stage: Stage::AwaitInfo,
                peer_last_zxid: -1,
                deadline,
                forwarding: false,
                uptodate_after: 0,
                reads: 0,
                read_id: 0,
            },
        );
        Vec::new()
    }

    pub fn disconnected(&mut self, peer: PeerId) -> Vec<Action> {
        let mut out = Vec::new();
        if self.handlers.remove(&peer).is_some() {
            self.pending_syncs.retain(|(_, p)| *p != peer);
            // Do not wait for the next tick: a leader that lost its quorum must stop now.
            self.check_synced_quorum(&mut out);
        }
        out
    }

    pub fn step(&mut self, peer: PeerId, packet: QuorumPacket) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Abdicated {
            return out;
        }
        let now = self.now;
        let sync_limit = self.cfg.sync_limit_half_ticks as u64;
        let Some(h) = self.handlers.get_mut(&peer) else {
            return out;
        };
        let active = h.stage == Stage::Active;
        if active {
            h.deadline = now + sync_limit;
        }
        if !active
            && matches!(
                packet.packet_type,
                PacketType::Ping | PacketType::Request | PacketType::Revalidate
            )
        {
            // Session traffic belongs to a learner past UPTODATE: before that this leader
            // may not even be established, and could not propose what it asks for.
            self.drop_peer(peer, &mut out);
            return out;
        }
        match packet.packet_type {
            PacketType::FollowerInfo | PacketType::ObserverInfo => {
                self.on_learner_info(peer, &packet, &mut out)
            }
            PacketType::AckEpoch => self.on_ack_epoch(peer, &packet, &mut out),
            PacketType::Ack => self.on_ack(peer, packet.zxid, &mut out),
            PacketType::Ping => {
                if let Ok(touches) = corral_proto::quorum::decode_ping_touches(packet.data_bytes())
                {
                    if !touches.is_empty() {
                        out.push(Action::Touch(touches));
                    }
                }
            }
            PacketType::Request => match LearnerRequest::decode(packet.data_bytes()) {
                Ok(req) if req.op == OP_SYNC => self.on_sync_request(peer, &mut out),
                Ok(request) => out.push(Action::Request {
                    peer,
                    request,
                    authinfo: packet.authinfo.unwrap_or_default(),
                }),
                Err(_) => self.drop_peer(peer, &mut out),
            },
            PacketType::Revalidate => match RevalidateRequest::decode(packet.data_bytes()) {
                Ok(request) => out.push(Action::Revalidate { peer, request }),
                Err(_) => self.drop_peer(peer, &mut out),
            },
            _ => {
                // Java logs unexpected packets and carries on.
            }
        }
        out
    }

    fn on_learner_info(&mut self, peer: PeerId, packet: &QuorumPacket, out: &mut Vec<Action>) {
        let observer = packet.packet_type == PacketType::ObserverInfo;
        let info = match LearnerInfo::decode(packet.data_bytes()) {
            Ok(i) => i,
            Err(_) => {
                self.drop_peer(peer, out);
                return;
            }
        };
        let sid = info.server_id;
        let known = if observer {
            self.cfg.observers.contains(&sid)
        } else {
            self.cfg.voters.contains(&sid)
        };
        let stage_ok = self.handlers.get(&peer).map(|h| h.stage) == Some(Stage::AwaitInfo);
        if !known || sid == self.cfg.my_sid || !stage_ok {
            self.drop_peer(peer, out);
            return;
        }
        // A learner reconnecting replaces its old connection (Java removes the old handler).
        let stale: Vec<PeerId> = self
            .handlers
            .iter()
            .filter(|(p, h)| **p != peer && h.sid == Some(sid))
            .map(|(p, _)| *p)
            .collect();
        for p in stale {
            self.drop_peer(p, out);
        }
        if let Some(h) = self.handlers.get_mut(&peer) {
            h.sid = Some(sid);
            h.observer = observer;
            h.stage = Stage::AwaitAckEpoch;
        }
        if !observer && self.new_epoch.is_none() {
            let accepted = epoch_of(packet.zxid);
            self.connecting.insert(sid, accepted);
            self.maybe_choose_epoch(out);
        } else if let Some(epoch) = self.new_epoch {
            out.push(send(peer, leader_info(epoch)));
        }
    }

    fn maybe_choose_epoch(&mut self, out: &mut Vec<Action>) {
        if self.new_epoch.is_some() || !self.quorum(self.connecting.keys().copied()) {
            return;
        }
        let epoch = self.connecting.values().copied().max().unwrap_or(0) + 1;
        self.new_epoch = Some(epoch);
        self.phase = Phase::EpochAck;
        self.phase_deadline = self.now + self.cfg.init_limit_half_ticks as u64;
        self.last_proposed = self.last_proposed.max(make_zxid(epoch, 0));
        out.push(Action::PersistAcceptedEpoch(epoch));
        self.epoch_acked.insert(self.cfg.my_sid);
        for p in self.peers_in(Stage::AwaitAckEpoch) {
            out.push(send(p, leader_info(epoch)));
        }
        self.maybe_epoch_quorum(out);
    }

    fn on_ack_epoch(&mut self, peer: PeerId, packet: &QuorumPacket, out: &mut Vec<Action>) {
        let Some(epoch) = self.new_epoch else {
            self.drop_peer(peer, out);
            return;
        };
        let Ok(ack) = AckEpoch::decode(packet.data_bytes()) else {
            self.drop_peer(peer, out);
            return;
        };
        let Some(h) = self.handlers.get_mut(&peer) else {
            return;
        };
        if h.stage != Stage::AwaitAckEpoch {
            self.drop_peer(peer, out);
            return;
        }
        h.peer_last_zxid = packet.zxid;
        let sid = h.sid.expect("a learner past FOLLOWERINFO has a sid");
        let observer = h.observer;
        if self.phase == Phase::EpochAck && !observer {
            // waitForEpochAck: a learner with a more recent history must not be synced
            // down to this leader's; the election picked the wrong leader.
            let theirs = (ack.current_epoch as i64, packet.zxid);
            let mine = (self.start.current_epoch, self.start.last_zxid);
            if ack.current_epoch != corral_proto::quorum::ACK_EPOCH_ALREADY_ACCEPTED
                && theirs > mine
            {
                out.push(Action::Abdicate(format!(
                    "follower {sid} is ahead of the leader: epoch {} zxid {:#x} > epoch {} zxid {:#x}",
                    theirs.0, theirs.1, mine.0, mine.1
                )));
                self.phase = Phase::Abdicated;
                return;
            }
            self.epoch_acked.insert(sid);
        }
        debug_assert!(epoch > 0);
        if let Some(h) = self.handlers.get_mut(&peer) {
            h.stage = Stage::AwaitEpochQuorum;
        }
        self.maybe_epoch_quorum(out);
        let still_waiting =
            self.handlers.get(&peer).map(|h| h.stage) == Some(Stage::AwaitEpochQuorum);
        if still_waiting && matches!(self.phase, Phase::NewLeaderAck | Phase::Broadcast) {
            self.sync_learner(peer, out);
        }
    }

    /// The learners in `stage`.
    fn peers_in(&self, stage: Stage) -> Vec<PeerId> {
        self.handlers
            .iter()
            .filter(|(_, h)| h.stage == stage)
            .map(|(p, _)| *p)
            .collect()
    }

    fn maybe_epoch_quorum(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::EpochAck || !self.quorum(self.epoch_acked.iter().copied()) {
            return;
        }
        let epoch = self.new_epoch.expect("epoch chosen");
        self.phase = Phase::NewLeaderAck;
        self.phase_deadline = self.now + self.cfg.init_limit_half_ticks as u64;
        for p in self.peers_in(Stage::AwaitEpochQuorum) {
            self.sync_learner(p, out);
        }
        // The syncs go out before our own currentEpoch is written, so the learners' fsyncs
        // overlap ours (Java's LearnerHandlers likewise send NEWLEADER while the leader's
        // main thread writes currentEpoch). Our own NEWLEADER ack counts from here: the
        // shell carries out this write before it handles any later input, so no learner's
        // ack can establish the epoch before it is durable here.
        out.push(Action::PersistCurrentEpoch(epoch));
        self.new_leader_acked.insert(self.cfg.my_sid);
        self.maybe_established(out);
    }

    /// `LearnerHandler.syncFollower` + `startForwarding`: DIFF, TRUNC or SNAP, then the
    /// outstanding proposals, then NEWLEADER. From here on the learner gets the live stream,
    /// so nothing proposed later can be missed. A learner behind the committed log waits
    /// for a read of the txn log first (it gets nothing until then, so the same holds).
    fn sync_learner(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        let Some(h) = self.handlers.get(&peer) else {
            return;
        };
        let plan = self.plan_sync(h.peer_last_zxid);
        if plan == SyncPlan::FromTxnLog {
            self.ask_txn_log(peer, out);
            return;
        }
        self.send_sync(peer, plan, &[], out);
    }

    fn ask_txn_log(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        self.last_read_id += 1;
        let read = self.last_read_id;
        // Everything committed so far: the committed log may drop more of it while the
        // read is under way, and a read that reaches its new floor still serves.
        let upto = self.last_committed;
        let Some(h) = self.handlers.get_mut(&peer) else {
            return;
        };
        h.stage = Stage::AwaitTxnLog;
        h.reads += 1;
        h.read_id = read;
        out.push(Action::ReadTxnLog {
            peer,
            read,
            after: h.peer_last_zxid,
            upto,
        });
    }

    /// The answer to [`Action::ReadTxnLog`] `read` for `peer` (`Err` says why the log could
    /// not be read: a purged or corrupt file, a gap, a size over the limit). Stale answers
    /// (the learner left or was synced otherwise) are ignored. The choice follows ZooKeeper
    /// 3.8's `ZKDatabase.getProposalsFromTxnLog` + `LearnerHandler.queueCommittedProposals`:
    /// * the read starts at the first record of the newest file named below the learner's
    ///   zxid; if that record is already past the zxid (no such file: the log was purged
    ///   or never had it), SNAP;
    /// * the first txn at or after the learner's zxid decides: equal, or the learner's zxid
    ///   is an epoch's first (counter 0): DIFF; of another epoch: SNAP (a TRUNC may not
    ///   cross an epoch); otherwise TRUNC to the txn before it, then DIFF;
    /// * the txns from disk go up to the committed log's floor (Java: `minCommittedLog`),
    ///   then the committed log's, then the outstanding proposals. Unlike Java, which holds
    ///   the committed log's lock over the read, the committed log may have moved on; a
    ///   read that does not reach its floor is repeated ([`TXN_LOG_READS_MAX`]) and then
    ///   the learner gets SNAP, as it does when the txns from disk have a hole.
    pub fn txn_log_read(
        &mut self,
        peer: PeerId,
        read: u64,
        result: Result<TxnLogRead, String>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if self.phase == Phase::Abdicated {
            return out;
        }
        let Some(h) = self.handlers.get(&peer) else {
            return out;
        };
        if h.stage != Stage::AwaitTxnLog || h.read_id != read {
            return out;
        }
        let (after, reads) = (h.peer_last_zxid, h.reads);
        let decided = result.map_err(TxnLogMiss::Unusable).and_then(|r| {
            let plan = self.plan_from_txn_log(after, &r)?;
            Ok((plan, r.entries))
        });
        let (plan, entries, why_not) = match decided {
            Ok((plan, entries)) => (plan, entries, None),
            Err(TxnLogMiss::Behind(_)) if reads < TXN_LOG_READS_MAX => {
                self.ask_txn_log(peer, &mut out);
                return out;
            }
            Err(TxnLogMiss::Behind(why) | TxnLogMiss::Unusable(why)) => {
                (SyncPlan::Snap, Vec::new(), Some(why))
            }
        };
        if let Some((kind, txns)) = self.send_sync(peer, plan, &entries, &mut out) {
            out.push(Action::SyncedFromTxnLog {
                peer,
                kind,
                txns,
                why_not,
            });
        }
        out
    }

    /// Where the learner at `after` stands in what was read from disk (see
    /// [`Leader::txn_log_read`]).
    fn plan_from_txn_log(&self, after: i64, r: &TxnLogRead) -> Result<SyncPlan, TxnLogMiss> {
        let miss = |s: String| Err(TxnLogMiss::Unusable(s));
        let Some(&(first, _)) = r.entries.first() else {
            return miss(format!("the txn log has no txn at or after 0x{after:x}"));
        };
        if r.prev.is_none() && first > after {
            return miss(format!(
                "the txn log starts at 0x{first:x}, after the learner's 0x{after:x}"
            ));
        }
        let (plan, from) = if first == after || counter_of(after) == 0 {
            (SyncPlan::Diff { from: after }, after)
        } else if epoch_of(first) != epoch_of(after) {
            return miss(format!(
                "the learner's 0x{after:x} is not in the txn log and the next txn 0x{first:x} \
                 is of another epoch (no TRUNC across epochs)"
            ));
        } else if let Some(to) = r.prev {
            (SyncPlan::TruncDiff { to, from: to }, to)
        } else {
            // Only a read that broke its contract (a first txn below `after`) gets here.
            return miss(format!(
                "the txn log read has no record before 0x{first:x} to truncate to"
            ));
        };
        let floor = self.log_floor;
        let mut last = from;
        for &(z, _) in r.entries.iter().filter(|(z, _)| *z > from && *z <= floor) {
            if !zxid_follows(last, z) {
                return miss(format!(
                    "the txn log has a hole between 0x{last:x} and 0x{z:x}"
                ));
            }
            last = z;
        }
        if last < floor {
            return Err(TxnLogMiss::Behind(format!(
                "the txn log read ends at 0x{last:x}, before the committed log's floor 0x{floor:x}"
            )));
        }
        Ok(plan)
    }

    /// Sends the sync `plan` (with `disk`, the txns read from the txn log, if any), then
    /// NEWLEADER; returns how the learner was synced and with how many committed txns.
    fn send_sync(
        &mut self,
        peer: PeerId,
        plan: SyncPlan,
        disk: &[(i64, Bytes)],
        out: &mut Vec<Action>,
    ) -> Option<(SyncKind, usize)> {
        let epoch = self.new_epoch.expect("epoch chosen before sync");
        let h = self.handlers.get(&peer)?;
        let observer = h.observer;
        let mut uptodate_after = 0;
        let mut txns = 0;
        let kind = match plan {
            SyncPlan::Diff { from } | SyncPlan::TruncDiff { from, .. } => {
                if let SyncPlan::TruncDiff { to, .. } = plan {
                    out.push(send(peer, QuorumPacket::new(PacketType::Trunc, to, None)));
                } else {
                    out.push(send(
                        peer,
                        QuorumPacket::new(PacketType::Diff, self.last_committed, None),
                    ));
                }
                // Disk up to the committed log's floor, then the committed log: checked
                // contiguous by `plan_from_txn_log`.
                let floor = self.log_floor;
                let from_disk = disk.iter().filter(|(z, _)| *z > from && *z <= floor);
                let from_memory = self.committed_log.iter().filter(|(z, _)| *z > from);
                for (zxid, data) in from_disk.chain(from_memory) {
                    txns += 1;
                    out.push(send(
                        peer,
                        QuorumPacket::new(PacketType::Proposal, *zxid, Some(data.clone())),
                    ));
                    out.push(send(
                        peer,
                        QuorumPacket::new(PacketType::Commit, *zxid, None),
                    ));
                }
                if !observer {
                    for (zxid, p) in self.outstanding.range(from + 1..) {
                        out.push(send(
                            peer,
                            QuorumPacket::new(PacketType::Proposal, *zxid, Some(p.data.clone())),
                        ));
                    }
                }
                if matches!(plan, SyncPlan::TruncDiff { .. }) {
                    SyncKind::Trunc
                } else {
                    SyncKind::Diff
                }
            }
            SyncPlan::Snap | SyncPlan::FromTxnLog => {
                // The tree includes every proposal applied so far, committed or not, so the
                // learner may not serve until those commit.
                let tree_zxid = self.last_proposed_txn();
                out.push(Action::SendSnapshot {
                    peer,
                    zxid: tree_zxid,
                });
                uptodate_after = tree_zxid;
                SyncKind::Snap
            }
        };
        out.push(send(
            peer,
            QuorumPacket::new(
                PacketType::NewLeader,
                make_zxid(epoch, 0),
                Some(self.cfg.config_text.clone()),
            ),
        ));
        if let Some(h) = self.handlers.get_mut(&peer) {
            h.stage = Stage::AwaitNewLeaderAck;
            h.forwarding = true;
            h.uptodate_after = uptodate_after;
        }
        Some((kind, txns))
    }

    /// The zxid of the last txn actually proposed (or logged before this term); the
    /// epoch mark `newEpoch << 32` is not a txn.
    fn last_proposed_txn(&self) -> i64 {
        if counter_of(self.last_proposed) == 0 {
            self.outstanding
                .keys()
                .next_back()
                .copied()
                .unwrap_or(self.last_committed)
        } else {
            self.last_proposed
        }
    }

    /// `syncFollower`'s choice, from what the leader holds in memory: the committed log
    /// (txns after `log_floor`) and the outstanding proposals.
    fn plan_sync(&self, peer_zxid: i64) -> SyncPlan {
        let history_last = self.last_proposed_txn();
        if peer_zxid == history_last {
            return SyncPlan::Diff { from: peer_zxid };
        }
        if peer_zxid > history_last {
            // The learner logged txns this leader never had (uncommitted ones of an older
            // epoch): cut them, as Java's TRUNC to maxCommittedLog.
            return SyncPlan::TruncDiff {
                to: history_last,
                from: history_last,
            };
        }
        if peer_zxid < self.log_floor {
            // Java: `peerLastZxid < minCommittedLog && txnLogSyncEnabled`.
            return if self.cfg.txn_log_sync {
                SyncPlan::FromTxnLog
            } else {
                SyncPlan::Snap
            };
        }
        if peer_zxid == self.log_floor || self.has_txn(peer_zxid) {
            return SyncPlan::Diff { from: peer_zxid };
        }
        // The learner has a txn this leader lacks. If the leader's previous txn is of the
        // same epoch, truncating to it leaves a common prefix; otherwise snapshot.
        let prev = self.prev_txn(peer_zxid).unwrap_or(self.log_floor);
        if epoch_of(prev) == epoch_of(peer_zxid) {
            SyncPlan::TruncDiff {
                to: prev,
                from: prev,
            }
        } else {
            SyncPlan::Snap
        }
    }

    fn has_txn(&self, zxid: i64) -> bool {
        self.outstanding.contains_key(&zxid)
            || self
                .committed_log
                .binary_search_by_key(&zxid, |(z, _)| *z)
                .is_ok()
    }

    fn prev_txn(&self, zxid: i64) -> Option<i64> {
        let in_out = self.outstanding.range(..zxid).next_back().map(|(z, _)| *z);
        let idx = self.committed_log.partition_point(|(z, _)| *z < zxid);
        let in_log = if idx > 0 {
            Some(self.committed_log[idx - 1].0)
        } else {
            None
        };
        in_out.max(in_log)
    }

    fn on_ack(&mut self, peer: PeerId, zxid: i64, out: &mut Vec<Action>) {
        let Some(h) = self.handlers.get_mut(&peer) else {
            return;
        };
        let Some(sid) = h.sid else {
            return;
        };
        if counter_of(zxid) == 0 && Some(epoch_of(zxid)) == self.new_epoch {
            // ACK of NEWLEADER (or of UPTODATE, which needs nothing).
            if h.stage == Stage::AwaitNewLeaderAck {
                h.stage = Stage::AwaitEstablished;
                h.deadline = self.now + self.cfg.sync_limit_half_ticks as u64;
                if !h.observer {
                    self.new_leader_acked.insert(sid);
                }
                self.maybe_established(out);
                self.maybe_uptodate(peer, out);
            }
            return;
        }
        if h.observer {
            return;
        }
        if let Some(p) = self.outstanding.get_mut(&zxid) {
            p.acks.insert(sid);
            self.try_commit(out);
        }
    }

    fn maybe_established(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::NewLeaderAck || !self.quorum(self.new_leader_acked.iter().copied())
        {
            return;
        }
        let epoch = self.new_epoch.expect("epoch chosen");
        self.phase = Phase::Broadcast;
        out.push(Action::Established { epoch });
        let waiting: Vec<PeerId> = self.handlers.keys().copied().collect();
        for p in waiting {
            self.maybe_uptodate(p, out);
        }
    }

    fn maybe_uptodate(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        if self.phase != Phase::Broadcast {
            return;
        }
        let now = self.now;
        let sync_limit = self.cfg.sync_limit_half_ticks as u64;
        let last_committed = self.last_committed;
        let Some(h) = self.handlers.get_mut(&peer) else {
            return;
        };
        if h.stage == Stage::AwaitEstablished && h.uptodate_after <= last_committed {
            h.stage = Stage::Active;
            h.deadline = now + sync_limit;
            out.push(send(
                peer,
                QuorumPacket::new(PacketType::UpToDate, -1, None),
            ));
        }
    }

    fn try_commit(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::Broadcast {
            return;
        }
        let mut committed_any = false;
        while let Some(entry) = self.outstanding.first_entry() {
            let n = entry
                .get()
                .acks
                .iter()
                .filter(|s| self.cfg.voters.contains(s))
                .count();
            if n <= self.cfg.voters.len() / 2 {
                break;
            }
            let (zxid, p) = entry.remove_entry();
            for (&peer, h) in &self.handlers {
                if !h.forwarding {
                    continue;
                }
                if h.observer {
                    out.push(send(
                        peer,
                        QuorumPacket::new(PacketType::Inform, zxid, Some(p.data.clone())),
                    ));
                } else {
                    out.push(send(
                        peer,
                        QuorumPacket::new(PacketType::Commit, zxid, None),
                    ));
                }
            }
            self.last_committed = zxid;
            self.push_committed(zxid, p.data);
            committed_any = true;
        }
        if committed_any {
            out.push(Action::Committed(self.last_committed));
            while let Some(&(z, peer)) = self.pending_syncs.front() {
                if z > self.last_committed {
                    break;
                }
                self.pending_syncs.pop_front();
                out.push(send(peer, QuorumPacket::new(PacketType::Sync, 0, None)));
            }
            let peers: Vec<PeerId> = self.handlers.keys().copied().collect();
            for p in peers {
                self.maybe_uptodate(p, out);
            }
        }
    }

    fn push_committed(&mut self, zxid: i64, data: Bytes) {
        if self.cfg.commit_log_count == 0 {
            self.log_floor = zxid;
            return;
        }
        if self.committed_log.len() == self.cfg.commit_log_count {
            if let Some((z, _)) = self.committed_log.pop_front() {
                self.log_floor = z;
            }
        }
        self.committed_log.push_back((zxid, data));
    }

    fn on_sync_request(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        if self.outstanding.is_empty() {
            out.push(send(peer, QuorumPacket::new(PacketType::Sync, 0, None)));
        } else {
            self.pending_syncs.push_back((self.last_proposed, peer));
        }
    }

    /// A `sync` of one of the leader's own clients: `Some(zxid)` to wait for, or `None`
    /// when nothing is outstanding.
    pub fn local_sync_point(&self) -> Option<i64> {
        if self.outstanding.is_empty() {
            None
        } else {
            Some(self.last_proposed)
        }
    }

    fn drop_peer(&mut self, peer: PeerId, out: &mut Vec<Action>) {
        if self.handlers.remove(&peer).is_some() {
            out.push(Action::Close { peer });
            self.pending_syncs.retain(|(_, p)| *p != peer);
        }
    }

    /// One half tick: pings, learner deadlines, establishment deadline, synced quorum.
    pub fn tick(&mut self) -> Vec<Action> {
        self.now += 1;
        let mut out = Vec::new();
        if self.phase == Phase::Abdicated {
            return out;
        }
        if self.phase != Phase::Broadcast && self.now > self.phase_deadline {
            out.push(Action::Abdicate(format!(
                "no quorum of learners within initLimit ({:?})",
                self.phase
            )));
            self.phase = Phase::Abdicated;
            return out;
        }
        let expired: Vec<PeerId> = self
            .handlers
            .iter()
            .filter(|(_, h)| self.now > h.deadline)
            .map(|(p, _)| *p)
            .collect();
        for p in expired {
            self.drop_peer(p, &mut out);
        }
        for (&peer, h) in &self.handlers {
            if h.stage == Stage::Active {
                out.push(send(
                    peer,
                    QuorumPacket::new(PacketType::Ping, self.last_proposed, None),
                ));
            }
        }
        self.check_synced_quorum(&mut out);
        out
    }

    fn check_synced_quorum(&mut self, out: &mut Vec<Action>) {
        if self.phase != Phase::Broadcast {
            return;
        }
        let mut synced: BTreeSet<Sid> = self
            .handlers
            .values()
            .filter(|h| h.stage == Stage::Active && !h.observer)
            .filter_map(|h| h.sid)
            .collect();
        synced.insert(self.cfg.my_sid);
        if !self.quorum(synced.iter().copied()) {
            out.push(Action::Abdicate(format!(
                "not sufficient followers synced, only synced with sids: [{}]",
                synced
                    .iter()
                    .map(|s| s.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
            self.phase = Phase::Abdicated;
        }
    }

    pub fn check_invariants(&self) {
        let mut prev = self.last_committed;
        for &z in self.outstanding.keys() {
            assert!(z > prev, "outstanding {z:#x} not above {prev:#x}");
            if counter_of(prev) != 0 && epoch_of(prev) == epoch_of(z) {
                assert_eq!(z, prev + 1, "outstanding proposals have a gap at {z:#x}");
            }
            let e = self
                .new_epoch
                .expect("proposals only after an epoch is chosen");
            assert_eq!(epoch_of(z), e, "proposal {z:#x} outside epoch {e}");
            prev = z;
        }
        assert!(
            self.committed_log
                .iter()
                .zip(self.committed_log.iter().skip(1))
                .all(|(a, b)| a.0 < b.0),
            "committed log out of order"
        );
        if let Some((z, _)) = self.committed_log.front() {
            assert!(
                *z > self.log_floor,
                "committed log starts at or below its floor"
            );
        }
        if let Some((z, _)) = self.committed_log.back() {
            assert!(
                *z <= self.last_committed,
                "committed log beyond last commit"
            );
        }
        assert!(self.last_committed <= self.last_proposed.max(self.last_committed));
        for h in self.handlers.values() {
            if h.stage == Stage::AwaitTxnLog {
                assert!(
                    !h.forwarding && h.read_id != 0 && h.reads <= TXN_LOG_READS_MAX,
                    "a learner waiting for the txn log gets nothing yet"
                );
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SyncPlan {
    Diff {
        from: i64,
    },
    TruncDiff {
        to: i64,
        from: i64,
    },
    Snap,
    /// Behind the committed log: read the txn log, then decide.
    FromTxnLog,
}

/// Why a txn log read did not serve a learner.
enum TxnLogMiss {
    /// It ended before the committed log's floor (worth another read).
    Behind(String),
    /// It cannot serve (read error, not there, a hole, another epoch).
    Unusable(String),
}

/// Whether `next` may directly follow `prev` in a complete history: the next counter of
/// the same epoch, or the first txn of a later epoch (a leader numbers its proposals from
/// `epoch << 32 | 1` on, consecutively).
fn zxid_follows(prev: i64, next: i64) -> bool {
    next == prev + 1 || (epoch_of(next) > epoch_of(prev) && counter_of(next) == 1)
}

fn leader_info(epoch: i64) -> QuorumPacket {
    QuorumPacket::new(
        PacketType::LeaderInfo,
        make_zxid(epoch, 0),
        Some(
            LeaderInfo {
                protocol_version: QUORUM_PROTOCOL_VERSION,
            }
            .to_bytes(),
        ),
    )
}

fn send(peer: PeerId, packet: QuorumPacket) -> Action {
    Action::Send { peer, packet }
}

#[cfg(test)]
mod tests {
    use super::*;
    use corral_proto::quorum::RevalidateRequest;

    fn leader() -> Leader {
        let cfg = LeaderConfig {
            my_sid: 3,
            voters: [1, 2, 3].into_iter().collect(),
            observers: BTreeSet::new(),
            init_limit_half_ticks: 20,
            sync_limit_half_ticks: 10,
            config_text: Bytes::new(),
            commit_log_count: COMMIT_LOG_COUNT_DEFAULT,
            txn_log_sync: true,
        };
        let start = LeaderStart {
            accepted_epoch: 0,
            current_epoch: 0,
            last_zxid: 0,
        };
        Leader::new(cfg, start).0
    }

    fn info(sid: Sid) -> QuorumPacket {
        QuorumPacket::new(
            PacketType::FollowerInfo,
            0,
            Some(LearnerInfo::new(sid, 0).to_bytes()),
        )
    }

    /// A learner that sends session traffic before it was told UPTODATE (a buggy or hostile
    /// peer) is dropped: nothing reaches the pipeline of a leader not yet established.
    #[test]
    fn session_traffic_before_uptodate_drops_the_learner() {
        let request = LearnerRequest {
            session_id: 1,
            cxid: 1,
            op: 2,
            body: Bytes::from_static(&[0, 0, 0, 1, b'/', 0, 0, 0, 0]),
        };
        let revalidate = RevalidateRequest {
            session_id: 1,
            timeout_ms: 4000,
        };
        let packets = [
            QuorumPacket::new(PacketType::Request, -1, Some(request.to_bytes())),
            QuorumPacket::new(PacketType::Revalidate, -1, Some(revalidate.to_bytes())),
            QuorumPacket::new(PacketType::Ping, 0, Some(Bytes::new())),
        ];
        for p in packets {
            let mut l = leader();
            l.connected(7);
            let a = l.step(7, info(1));
            assert!(
                a.iter().any(|a| matches!(a, Action::Send { peer: 7, .. })),
                "{a:?}"
            );
            let a = l.step(7, p.clone());
            assert_eq!(a, vec![Action::Close { peer: 7 }], "{:?}", p.packet_type);
            assert!(l.step(7, p).is_empty(), "a dropped learner is forgotten");
            l.check_invariants();
        }
    }

    /// A leader at 1:10 whose committed log holds 1:9..1:10, and learner 1 at `peer_zxid`
    /// past ACKEPOCH: what the leader does for its sync.
    fn behind(peer_zxid: i64) -> (Leader, Vec<Action>) {
        let mut l = leader();
        l.start.last_zxid = make_zxid(1, 10);
        l.start.current_epoch = 1;
        l.last_committed = make_zxid(1, 10);
        l.last_proposed = make_zxid(1, 10);
        l.seed_committed_log(
            make_zxid(1, 8),
            (9..=10).map(|c| (make_zxid(1, c), Bytes::from(vec![c as u8]))),
        );
        l.connected(7);
        l.step(7, info(1));
        let ack = QuorumPacket::new(
            PacketType::AckEpoch,
            peer_zxid,
            Some(Bytes::copy_from_slice(&1i32.to_be_bytes())),
        );
        let a = l.step(7, ack);
        (l, a)
    }

    fn disk(prev: Option<i64>, counters: std::ops::RangeInclusive<i64>) -> TxnLogRead {
        TxnLogRead {
            prev: prev.map(|c| make_zxid(1, c)),
            entries: counters
                .map(|c| (make_zxid(1, c), Bytes::from(vec![c as u8])))
                .collect(),
        }
    }

    fn packets(a: &[Action]) -> Vec<(PacketType, i64)> {
        a.iter()
            .filter_map(|a| match a {
                Action::Send { packet, .. } => Some((packet.packet_type, packet.zxid)),
                _ => None,
            })
            .collect()
    }

    /// Behind the committed log: the leader reads the txn log, the learner waits, and the
    /// answer gives DIFF with the disk's txns up to the floor, then the committed log's.
    #[test]
    fn a_learner_behind_the_committed_log_is_synced_from_the_txn_log() {
        let (mut l, a) = behind(make_zxid(1, 5));
        let read = a
            .iter()
            .find_map(|a| match a {
                Action::ReadTxnLog {
                    peer: 7,
                    read,
                    after,
                    upto,
                } => Some((*read, *after, *upto)),
                _ => None,
            })
            .expect("a txn log read");
        assert_eq!((read.1, read.2), (make_zxid(1, 5), make_zxid(1, 10)));
        assert!(!packets(&a).iter().any(|p| p.0 == PacketType::NewLeader));
        l.check_invariants();
        // A stale answer changes nothing.
        assert!(l
            .txn_log_read(7, read.0 + 1, Ok(disk(Some(4), 5..=10)))
            .is_empty());
        let a = l.txn_log_read(7, read.0, Ok(disk(Some(4), 5..=9)));
        let mut want = vec![(PacketType::Diff, make_zxid(1, 10))];
        for c in 6..=10 {
            want.push((PacketType::Proposal, make_zxid(1, c)));
            want.push((PacketType::Commit, make_zxid(1, c)));
        }
        want.push((
            PacketType::NewLeader,
            make_zxid(l.epoch().expect("chosen"), 0),
        ));
        assert_eq!(packets(&a), want);
        assert!(a.iter().any(|a| matches!(
            a,
            Action::SyncedFromTxnLog {
                kind: SyncKind::Diff,
                txns: 5,
                ..
            }
        )));
        l.check_invariants();
    }

    /// Java's rules: the log starts past the zxid (purged), the zxid is not in the log and
    /// the next txn is of another epoch, a hole, or a read error: SNAP. A read short of
    /// the floor is repeated once.
    #[test]
    fn a_txn_log_that_cannot_serve_means_snap() {
        let snap = |a: &[Action]| a.iter().any(|a| matches!(a, Action::SendSnapshot { .. }));
        let read_id = |a: &[Action]| {
            a.iter()
                .find_map(|a| match a {
                    Action::ReadTxnLog { read, .. } => Some(*read),
                    _ => None,
                })
                .expect("a read")
        };
        let bad: Vec<Result<TxnLogRead, String>> = vec![
            Ok(disk(None, 6..=10)),
            Ok(TxnLogRead {
                prev: Some(make_zxid(1, 4)),
                entries: vec![(make_zxid(2, 1), Bytes::new())],
            }),
            Ok(TxnLogRead {
                prev: Some(make_zxid(1, 4)),
                entries: disk(None, 5..=6)
                    .entries
                    .into_iter()
                    .chain(disk(None, 8..=9).entries)
                    .collect(),
            }),
            Err("corrupt".into()),
        ];
        for r in bad {
            let (mut l, a) = behind(make_zxid(1, 5));
            let a = l.txn_log_read(7, read_id(&a), r.clone());
            assert!(snap(&a), "{r:?}: {a:?}");
            l.check_invariants();
        }
        let (mut l, a) = behind(make_zxid(1, 5));
        let a = l.txn_log_read(7, read_id(&a), Ok(disk(Some(4), 5..=7)));
        let again = read_id(&a);
        let a = l.txn_log_read(7, again, Ok(disk(Some(4), 5..=7)));
        assert!(snap(&a), "{a:?}");
    }
}

//! One ensemble member as a pure state machine: the request pipeline ([`Node`]) joined to
//! Zab's leader or learner ([`corral_zab::leader`], [`corral_zab::learner`]).
//!
//! **Owns**: the member's role, its epochs, the recent history used to seed a new
//! leader's committed log, and the translation between the pipeline's outputs and the
//! quorum protocol. Election is not here: the shell (or the simulator) runs
//! [`corral_zab::Election`] when this replica asks for it ([`ReplicaOutput::Elect`]) with
//! [`Replica::vote`], and reports the decision through [`Replica::lead`] or
//! [`Replica::follow`].
//!
//! **Invariants**
//! * While LOOKING, the tree holds exactly the txns of the log (a learner applies the
//!   proposals it logged but never saw committed when it stops following; a leader applied
//!   everything it proposed). So the zxid it votes with describes its tree, and any sync
//!   the next leader picks (DIFF from that zxid, TRUNC, SNAP) leaves tree and log equal.
//! * Client-visible effects of a leader's write are emitted right after its
//!   [`Output::Append`]; the shell holds them until [`ReplicaOutput::Release`] names that
//!   zxid (committed by a quorum). A learner only applies committed txns, so its outputs
//!   need no hold.
//! * Clients are served only while a leader is established (leader) or after UPTODATE
//!   (learner); leaving that state closes every client connection.
//! * `/zookeeper/config` holds this member's own membership text, written locally (not a
//!   txn) as ZooKeeper 3.8 does: when the member starts, and whenever it syncs with a
//!   leader (after DIFF, after the tree a SNAP or TRUNC replaced), with mtime = the wall
//!   clock then. The tree digest skips it, so members may differ there.
//!
//! * A txn log read ([`ReplicaOutput::ReadTxnLog`]) is answered to the leadership that
//!   asked: its [`TxnLogReadId`] names the leadership, and answers to another are dropped.
//!
//! **Time**: [`Replica::tick`] takes the clock reading; Zab's machines count half ticks.

use crate::node::{ConnId, Mode, Node, Now, Output};
use bytes::Bytes;
use corral_proto::quorum::{PacketType, QuorumPacket, Sid};
use corral_proto::{ConnectRequest, Reader, Request, RequestError, TxnEntry};
use corral_tree::snapshot::TreeSnapshot;
use corral_tree::DataTree;
use corral_zab::leader::{self, Leader, LeaderConfig, LeaderStart, PeerId, SyncKind, TxnLogRead};
use corral_zab::learner::{self, Learner, LearnerConfig, LearnerStart};
use std::collections::{BTreeSet, VecDeque};

/// Learner connections kept while LOOKING, for a leadership that may be about to begin.
pub const EARLY_LEARNERS_MAX: usize = 64;
/// Packets kept per early learner connection (FOLLOWERINFO is the only one expected).
const EARLY_PACKETS_MAX: usize = 16;

/// Txns of recent history kept to seed a new leader's committed log.
pub const HISTORY_TXNS_MAX: usize = leader::COMMIT_LOG_COUNT_DEFAULT;

/// Settings of an ensemble member.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    pub my_sid: Sid,
    pub voters: BTreeSet<Sid>,
    pub observers: BTreeSet<Sid>,
    pub tick_ms: i64,
    pub init_limit_ticks: u32,
    pub sync_limit_ticks: u32,
    /// Quorum config text (NEWLEADER, notifications, and this member's
    /// `/zookeeper/config`).
    pub config_text: Bytes,
    /// The config's version: the mzxid of `/zookeeper/config`.
    pub config_version: i64,
}

impl ReplicaConfig {
    pub fn is_observer(&self) -> bool {
        self.observers.contains(&self.my_sid)
    }
}

/// What the member is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Looking,
    /// Elected; establishing (not serving yet) until a quorum acked NEWLEADER.
    Leading,
    Following,
    Observing,
}

/// Names one txn log read of one leadership, to answer with [`Replica::txn_log_read`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnLogReadId {
    leadership: u64,
    pub peer: PeerId,
    read: u64,
}

/// A copy-on-write view of the tree at a zxid, for a SNAP sync.
pub struct SnapshotView(pub Box<TreeSnapshot>);

impl std::fmt::Debug for SnapshotView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SnapshotView({} nodes)", self.0.node_count())
    }
}

/// What the shell must do, in order.
#[derive(Debug)]
pub enum ReplicaOutput {
    /// A frame or close for a client connection (never an [`Output::Append`]: the replica
    /// turns those into [`ReplicaOutput::Log`]).
    Client(Output),
    /// Append this txn (its log-entry bytes, encoded once for log and proposal alike). If
    /// `hold` (a leader's own write), every later client output waits until
    /// [`ReplicaOutput::Release`] reaches `zxid`; a learner's proposal holds nothing.
    Log {
        zxid: i64,
        bytes: Bytes,
        hold: bool,
    },
    /// Held client output up to this zxid may go.
    Release(i64),
    /// Drop every held client output (the connections are being closed).
    DiscardHeld,
    /// Leader: send on a learner connection.
    SendPeer {
        peer: PeerId,
        packet: QuorumPacket,
    },
    /// Leader: send SNAP then this snapshot on a learner connection.
    SendSnapshot {
        peer: PeerId,
        zxid: i64,
        snapshot: SnapshotView,
    },
    ClosePeer {
        peer: PeerId,
    },
    /// Leader: accept learner connections on the quorum port (stop when leadership ends).
    ListenForLearners(bool),
    /// Learner: connect to this leader's quorum port.
    ConnectLeader {
        sid: Sid,
    },
    SendLeader(QuorumPacket),
    CloseLeader,
    PersistAcceptedEpoch(i64),
    PersistCurrentEpoch(i64),
    /// Forget every txn after `zxid` in the log and snapshots. If `reload`, the tree is
    /// ahead of that: load it from disk and call [`Replica::reload`].
    Truncate {
        zxid: i64,
        reload: bool,
    },
    /// The tree was replaced by the leader's snapshot at `zxid`: forget logged txns after
    /// it and write a snapshot of [`Replica::tree`] before anything is logged after it.
    InstallSnapshot {
        zxid: i64,
    },
    RoleChanged(Role),
    /// Run an election with [`Replica::vote`] and report the decision.
    Elect,
    /// Leader: read the txn log for a learner's sync, off the core (see
    /// [`corral_zab::leader::Action::ReadTxnLog`]), and answer with
    /// [`Replica::txn_log_read`].
    ReadTxnLog {
        id: TxnLogReadId,
        after: i64,
        upto: i64,
    },
    /// Leader: how a learner for which the txn log was read was synced (for the log).
    SyncedFromTxnLog {
        peer: PeerId,
        kind: SyncKind,
        txns: usize,
        why_not: Option<String>,
    },
}

enum State {
    Looking,
    Leading(Box<Leader>),
    Learning(Box<Learner>),
}

/// One ensemble member.
pub struct Replica {
    cfg: ReplicaConfig,
    node: Node,
    state: State,
    accepted_epoch: i64,
    current_epoch: i64,
    /// Last zxid in the log (LOOKING: also the tree's).
    last_logged: i64,
    /// Recent history `(zxid, entry bytes)` after `history_floor`, contiguous.
    history: VecDeque<(i64, Bytes)>,
    history_floor: i64,
    next_half_tick_ms: i64,
    leader_sid: Option<Sid>,
    node_out: Vec<Output>,
    /// Learner: txns logged but not committed yet, decoded once (zxid order).
    pending: VecDeque<TxnEntry>,
    /// Learners that connected (and what they sent) while this member was still LOOKING:
    /// its election may end a moment after theirs, and they are handed to the leader then.
    early_learners: Vec<(PeerId, Vec<QuorumPacket>)>,
    /// `zookeeper.commitLogCount`: txns kept for DIFF (history and the committed log).
    commit_log_count: usize,
    /// Whether a leader syncs learners from the on-disk txn log.
    txn_log_sync: bool,
    /// Leaderships begun, to match txn log reads to the one that asked.
    leaderships: u64,
}

impl Replica {
    /// A member that recovered `node`'s tree from its data directory, where the log ends at
    /// `last_zxid`; `recent` are the last logged entries (any number, in order, ending at
    /// `last_zxid`) and `floor` the zxid just before the first of them. It starts LOOKING:
    /// the caller runs an election.
    pub fn new(
        cfg: ReplicaConfig,
        mut node: Node,
        accepted_epoch: i64,
        current_epoch: i64,
        floor: i64,
        recent: Vec<(i64, Bytes)>,
        now: Now,
    ) -> (Replica, Vec<ReplicaOutput>) {
        let mut discard = Vec::new();
        node.stop_serving(&mut discard);
        let last_logged = node.last_zxid();
        let mut r = Replica {
            cfg,
            node,
            state: State::Looking,
            accepted_epoch,
            current_epoch,
            last_logged,
            history: VecDeque::new(),
            history_floor: floor,
            next_half_tick_ms: now.mono_ms,
            leader_sid: None,
            node_out: Vec::new(),
            pending: VecDeque::new(),
            early_learners: Vec::new(),
            commit_log_count: leader::COMMIT_LOG_COUNT_DEFAULT,
            txn_log_sync: true,
            leaderships: 0,
        };
        for (z, b) in recent {
            r.push_history(z, b);
        }
        r.init_config_node(now);
        (
            r,
            vec![
                ReplicaOutput::RoleChanged(Role::Looking),
                ReplicaOutput::Elect,
            ],
        )
    }

    pub fn node(&self) -> &Node {
        &self.node
    }

    pub fn tree(&self) -> &DataTree {
        self.node.tree()
    }

    pub fn role(&self) -> Role {
        match self.state {
            State::Looking => Role::Looking,
            State::Leading(_) => Role::Leading,
            State::Learning(_) if self.cfg.is_observer() => Role::Observing,
            State::Learning(_) => Role::Following,
        }
    }

    pub fn leader_sid(&self) -> Option<Sid> {
        self.leader_sid
    }

    pub fn accepted_epoch(&self) -> i64 {
        self.accepted_epoch
    }

    pub fn current_epoch(&self) -> i64 {
        self.current_epoch
    }

    pub fn last_logged(&self) -> i64 {
        self.last_logged
    }

    /// Is the member serving clients?
    pub fn is_serving(&self) -> bool {
        self.node.is_serving()
    }

    /// What this member votes with: (last logged zxid, current epoch).
    pub fn vote(&self) -> (i64, i64) {
        (self.last_logged, self.current_epoch)
    }

    /// Leader: (learners connected, synced followers, synced observers), pending syncs.
    pub fn learner_counts(&self) -> Option<((usize, usize, usize), usize)> {
        match &self.state {
            State::Leading(l) => Some((l.learner_counts(), l.pending_sync_count())),
            _ => None,
        }
    }

    fn init_config_node(&mut self, now: Now) {
        self.node
            .init_config_node(&self.cfg.config_text, self.cfg.config_version, now.wall_ms);
    }

    fn half_tick_ms(&self) -> i64 {
        (self.cfg.tick_ms / 2).max(1)
    }

    /// Sets `zookeeper.commitLogCount` (at most [`HISTORY_TXNS_MAX`], what recovery keeps)
    /// and whether learners behind it are synced from the on-disk txn log (ZooKeeper:
    /// `snapshotSizeFactor` >= 0). Takes effect at the next leadership.
    pub fn set_sync_options(&mut self, commit_log_count: usize, txn_log_sync: bool) {
        self.commit_log_count = commit_log_count.min(HISTORY_TXNS_MAX);
        self.txn_log_sync = txn_log_sync;
        self.trim_history();
    }

    fn push_history(&mut self, zxid: i64, bytes: Bytes) {
        self.history.push_back((zxid, bytes));
        self.trim_history();
    }

    /// Keeps the newest `commit_log_count` txns; the floor is the newest one dropped.
    fn trim_history(&mut self) {
        while self.history.len() > self.commit_log_count {
            if let Some((z, _)) = self.history.pop_front() {
                self.history_floor = z;
            }
        }
    }

    fn truncate_history(&mut self, zxid: i64) {
        while self.history.back().is_some_and(|(z, _)| *z > zxid) {
            self.history.pop_back();
        }
        if zxid < self.history_floor {
            self.history.clear();
            self.history_floor = zxid;
        }
    }

    // ---- election results -----------------------------------------------------------

    /// The election chose this member to lead.
    pub fn lead(&mut self, now: Now, out: &mut Vec<ReplicaOutput>) {
        assert!(
            matches!(self.state, State::Looking),
            "lead while not looking"
        );
        let half = self.half_tick_ms();
        let cfg = LeaderConfig {
            my_sid: self.cfg.my_sid,
            voters: self.cfg.voters.clone(),
            observers: self.cfg.observers.clone(),
            init_limit_half_ticks: 2 * self.cfg.init_limit_ticks,
            sync_limit_half_ticks: 2 * self.cfg.sync_limit_ticks,
            config_text: self.cfg.config_text.clone(),
            commit_log_count: self.commit_log_count,
            txn_log_sync: self.txn_log_sync,
        };
        self.leaderships += 1;
        let start = LeaderStart {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.last_logged,
        };
        let (mut l, actions) = Leader::new(cfg, start);
        l.seed_committed_log(self.history_floor, self.history.iter().cloned());
        self.state = State::Leading(Box::new(l));
        self.leader_sid = Some(self.cfg.my_sid);
        self.next_half_tick_ms = now.mono_ms + half;
        out.push(ReplicaOutput::ListenForLearners(true));
        self.leader_actions(actions, now, out);
        for (peer, packets) in std::mem::take(&mut self.early_learners) {
            let State::Leading(l) = &mut self.state else {
                out.push(ReplicaOutput::ClosePeer { peer });
                continue;
            };
            let mut a = l.connected(peer);
            for p in packets {
                a.extend(l.step(peer, p));
            }
            self.leader_actions(a, now, out);
        }
    }

    /// The election chose `leader`: follow it (or observe, for an observer).
    pub fn follow(&mut self, leader: Sid, now: Now, out: &mut Vec<ReplicaOutput>) {
        assert!(
            matches!(self.state, State::Looking),
            "follow while not looking"
        );
        let cfg = LearnerConfig {
            my_sid: self.cfg.my_sid,
            observer: self.cfg.is_observer(),
            init_limit_half_ticks: 2 * self.cfg.init_limit_ticks,
            sync_limit_half_ticks: 2 * self.cfg.sync_limit_ticks,
        };
        let start = LearnerStart {
            accepted_epoch: self.accepted_epoch,
            current_epoch: self.current_epoch,
            last_zxid: self.last_logged,
        };
        self.state = State::Learning(Box::new(Learner::new(cfg, start)));
        self.leader_sid = Some(leader);
        // ZooKeeper writes it once the sync type is known; a SNAP or TRUNC that replaces
        // the tree writes it again.
        self.init_config_node(now);
        self.next_half_tick_ms = now.mono_ms + self.half_tick_ms();
        for (peer, _) in std::mem::take(&mut self.early_learners) {
            out.push(ReplicaOutput::ClosePeer { peer });
        }
        out.push(ReplicaOutput::ConnectLeader { sid: leader });
    }

    /// Back to LOOKING: stop serving, make the tree equal the log, ask for an election.
    fn look(&mut self, why: &str, now: Now, out: &mut Vec<ReplicaOutput>) {
        let _ = why;
        let prev = std::mem::replace(&mut self.state, State::Looking);
        self.node_out.clear();
        self.node.stop_serving(&mut self.node_out);
        out.push(ReplicaOutput::DiscardHeld);
        for o in self.node_out.drain(..) {
            out.push(ReplicaOutput::Client(o));
        }
        match prev {
            State::Leading(_) => {
                out.push(ReplicaOutput::ListenForLearners(false));
            }
            State::Learning(_) => {
                out.push(ReplicaOutput::CloseLeader);
                // Proposals logged but never committed here: apply them, so the tree is
                // the log again (the next leader's sync starts from the logged zxid).
                let mut sink = Vec::new();
                for entry in std::mem::take(&mut self.pending) {
                    self.node.apply_committed(&entry, now, &mut sink);
                }
            }
            State::Looking => {}
        }
        self.node
            .set_last_zxid(self.last_logged.max(self.node.last_zxid()));
        self.leader_sid = None;
        out.push(ReplicaOutput::RoleChanged(Role::Looking));
        out.push(ReplicaOutput::Elect);
    }

    // ---- the leader -----------------------------------------------------------------

    pub fn peer_connected(&mut self, peer: PeerId, now: Now, out: &mut Vec<ReplicaOutput>) {
        match &mut self.state {
            State::Leading(l) => {
                let a = l.connected(peer);
                self.leader_actions(a, now, out);
            }
            State::Looking if self.early_learners.len() < EARLY_LEARNERS_MAX => {
                self.early_learners.push((peer, Vec::new()));
            }
            _ => out.push(ReplicaOutput::ClosePeer { peer }),
        }
    }

    pub fn peer_packet(
        &mut self,
        peer: PeerId,
        packet: QuorumPacket,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        match &mut self.state {
            State::Leading(l) => {
                let a = l.step(peer, packet);
                self.leader_actions(a, now, out);
            }
            State::Looking => {
                if let Some((_, packets)) = self.early_learners.iter_mut().find(|(p, _)| *p == peer)
                {
                    if packets.len() < EARLY_PACKETS_MAX {
                        packets.push(packet);
                    }
                }
            }
            State::Learning(_) => {}
        }
    }

    pub fn peer_disconnected(&mut self, peer: PeerId, now: Now, out: &mut Vec<ReplicaOutput>) {
        self.early_learners.retain(|(p, _)| *p != peer);
        if let State::Leading(l) = &mut self.state {
            let a = l.disconnected(peer);
            self.leader_actions(a, now, out);
        }
    }

    fn leader_actions(
        &mut self,
        actions: Vec<leader::Action>,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        let mut queue: VecDeque<leader::Action> = actions.into();
        while let Some(a) = queue.pop_front() {
            match a {
                leader::Action::Send { peer, packet } => {
                    out.push(ReplicaOutput::SendPeer { peer, packet })
                }
                leader::Action::SendSnapshot { peer, zxid } => {
                    let snapshot = SnapshotView(Box::new(self.node.tree().snapshot_source(zxid)));
                    out.push(ReplicaOutput::SendSnapshot {
                        peer,
                        zxid,
                        snapshot,
                    });
                }
                leader::Action::Close { peer } => out.push(ReplicaOutput::ClosePeer { peer }),
                leader::Action::PersistAcceptedEpoch(e) => {
                    self.accepted_epoch = e;
                    out.push(ReplicaOutput::PersistAcceptedEpoch(e));
                }
                leader::Action::PersistCurrentEpoch(e) => {
                    self.current_epoch = e;
                    out.push(ReplicaOutput::PersistCurrentEpoch(e));
                }
                leader::Action::Established { epoch } => {
                    let mark = corral_proto::quorum::make_zxid(epoch, 0);
                    self.node.start_serving(Mode::Leader, mark, now);
                    out.push(ReplicaOutput::RoleChanged(Role::Leading));
                }
                leader::Action::Committed(z) => out.push(ReplicaOutput::Release(z)),
                leader::Action::Request {
                    peer: _,
                    request,
                    authinfo,
                } => {
                    self.node_out.clear();
                    self.node
                        .forwarded_request(&request, &authinfo, now, &mut self.node_out);
                    let more = self.leader_node_outputs(out);
                    queue.extend(more);
                }
                leader::Action::Revalidate { peer, request } => {
                    let valid = self
                        .node
                        .revalidate(request.session_id, request.timeout_ms, now);
                    if let State::Leading(l) = &self.state {
                        queue.extend(l.revalidated(peer, request.session_id, valid));
                    }
                }
                leader::Action::Touch(t) => self.node.touch_sessions(&t, now),
                leader::Action::ReadTxnLog {
                    peer,
                    read,
                    after,
                    upto,
                } => out.push(ReplicaOutput::ReadTxnLog {
                    id: TxnLogReadId {
                        leadership: self.leaderships,
                        peer,
                        read,
                    },
                    after,
                    upto,
                }),
                leader::Action::SyncedFromTxnLog {
                    peer,
                    kind,
                    txns,
                    why_not,
                } => out.push(ReplicaOutput::SyncedFromTxnLog {
                    peer,
                    kind,
                    txns,
                    why_not,
                }),
                leader::Action::Abdicate(why) => {
                    self.look(&why, now, out);
                    return;
                }
            }
        }
    }

    /// The answer to [`ReplicaOutput::ReadTxnLog`] `id`: the records read, or why they
    /// could not be. Answers to an earlier leadership are dropped.
    pub fn txn_log_read(
        &mut self,
        id: TxnLogReadId,
        result: Result<TxnLogRead, String>,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        if id.leadership != self.leaderships {
            return;
        }
        if let State::Leading(l) = &mut self.state {
            let a = l.txn_log_read(id.peer, id.read, result);
            self.leader_actions(a, now, out);
        }
    }

    /// Carries out the pipeline's outputs on a leader: each Append is proposed. Returns
    /// the Zab actions the proposals caused.
    fn leader_node_outputs(&mut self, out: &mut Vec<ReplicaOutput>) -> Vec<leader::Action> {
        let mut actions = Vec::new();
        let outputs = std::mem::take(&mut self.node_out);
        for o in outputs {
            if let Output::Append(entry) = &o {
                let zxid = entry.header.zxid;
                let bytes = entry.to_bytes();
                self.last_logged = zxid;
                self.push_history(zxid, bytes.clone());
                out.push(ReplicaOutput::Log {
                    zxid,
                    bytes: bytes.clone(),
                    hold: true,
                });
                if let State::Leading(l) = &mut self.state {
                    // After the zxid counter ran out the leader abdicates (queued in
                    // `actions`); txns of the same batch stay in log and tree only.
                    if l.can_propose() {
                        actions.extend(l.propose(zxid, bytes));
                    }
                }
                continue;
            }
            out.push(ReplicaOutput::Client(o));
        }
        actions
    }

    // ---- the learner ----------------------------------------------------------------

    pub fn leader_connected(&mut self, now: Now, out: &mut Vec<ReplicaOutput>) {
        if let State::Learning(l) = &mut self.state {
            let a = l.connected();
            self.learner_actions(a, now, out);
        }
    }

    pub fn leader_disconnected(&mut self, now: Now, out: &mut Vec<ReplicaOutput>) {
        if let State::Learning(l) = &mut self.state {
            let a = l.disconnected();
            self.learner_actions(a, now, out);
        }
    }

    pub fn leader_packet(&mut self, packet: QuorumPacket, now: Now, out: &mut Vec<ReplicaOutput>) {
        if let State::Learning(l) = &mut self.state {
            let is_ping = packet.packet_type == PacketType::Ping;
            let zxid = packet.zxid;
            let a = l.step(packet);
            if is_ping && a.contains(&learner::Action::Pinged) {
                let touches = self.node.take_touches();
                if let State::Learning(l) = &self.state {
                    out.push(ReplicaOutput::SendLeader(l.ping_reply(zxid, &touches)));
                }
            }
            self.learner_actions(a, now, out);
        }
    }

    /// The snapshot that followed SNAP, parsed by the shell into a tree.
    pub fn leader_snapshot(
        &mut self,
        zxid: i64,
        tree: DataTree,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        let State::Learning(l) = &mut self.state else {
            return;
        };
        if !l.snapshot_expected() {
            self.look("a snapshot nobody asked for", now, out);
            return;
        }
        l.snapshot_installed(zxid);
        self.pending.clear();
        self.node.reset_tree(tree, zxid);
        self.init_config_node(now);
        self.last_logged = zxid;
        self.history.clear();
        self.history_floor = zxid;
        out.push(ReplicaOutput::InstallSnapshot { zxid });
    }

    fn learner_actions(
        &mut self,
        actions: Vec<learner::Action>,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        for a in actions {
            match a {
                learner::Action::Send(p) => out.push(ReplicaOutput::SendLeader(p)),
                learner::Action::PersistAcceptedEpoch(e) => {
                    self.accepted_epoch = e;
                    out.push(ReplicaOutput::PersistAcceptedEpoch(e));
                }
                learner::Action::PersistCurrentEpoch(e) => {
                    self.current_epoch = e;
                    out.push(ReplicaOutput::PersistCurrentEpoch(e));
                }
                learner::Action::Truncate(z) => {
                    self.pending.retain(|e| e.header.zxid <= z);
                    let reload = self.node.last_zxid() > z;
                    self.last_logged = z;
                    self.truncate_history(z);
                    out.push(ReplicaOutput::Truncate { zxid: z, reload });
                }
                learner::Action::Log { zxid, data } => {
                    match TxnEntry::decode(&mut Reader::from_slice(&data)) {
                        Ok(entry) if entry.header.zxid == zxid => {
                            self.last_logged = zxid;
                            self.push_history(zxid, data.clone());
                            self.pending.push_back(entry);
                            out.push(ReplicaOutput::Log {
                                zxid,
                                bytes: data,
                                hold: false,
                            });
                        }
                        _ => {
                            self.look("undecodable proposal from the leader", now, out);
                            return;
                        }
                    }
                }
                learner::Action::Commit { zxid } => {
                    // The learner checked the commit names the oldest pending txn.
                    let Some(entry) = self.pending.pop_front() else {
                        self.look("a commit of a txn never logged", now, out);
                        return;
                    };
                    debug_assert_eq!(entry.header.zxid, zxid, "commit out of order");
                    self.node_out.clear();
                    self.node.apply_committed(&entry, now, &mut self.node_out);
                    for o in self.node_out.drain(..) {
                        out.push(ReplicaOutput::Client(o));
                    }
                }
                learner::Action::UpToDate => {
                    let z = self.node.last_zxid();
                    self.node.start_serving(Mode::Learner, z, now);
                    out.push(ReplicaOutput::RoleChanged(self.role()));
                }
                learner::Action::SyncDone => {
                    self.node_out.clear();
                    self.node.sync_done(now, &mut self.node_out);
                    for o in self.node_out.drain(..) {
                        out.push(ReplicaOutput::Client(o));
                    }
                }
                learner::Action::Revalidated(r) => {
                    self.node_out.clear();
                    self.node.revalidated(r, now, &mut self.node_out);
                    for o in self.node_out.drain(..) {
                        out.push(ReplicaOutput::Client(o));
                    }
                }
                learner::Action::Pinged => {}
                learner::Action::Lost(why) => {
                    self.look(&why, now, out);
                    return;
                }
            }
        }
    }

    /// Learner outputs of the pipeline: forwarded requests and revalidations go to the
    /// leader as packets.
    fn learner_node_outputs(&mut self, out: &mut Vec<ReplicaOutput>) {
        for o in self.node_out.drain(..) {
            match o {
                Output::Forward { request, auth } => {
                    let mut p =
                        QuorumPacket::new(PacketType::Request, -1, Some(request.to_bytes()));
                    p.authinfo = Some(auth);
                    out.push(ReplicaOutput::SendLeader(p));
                }
                Output::Revalidate {
                    session_id,
                    timeout_ms,
                } => {
                    let data = corral_proto::quorum::RevalidateRequest {
                        session_id,
                        timeout_ms,
                    }
                    .to_bytes();
                    out.push(ReplicaOutput::SendLeader(QuorumPacket::new(
                        PacketType::Revalidate,
                        -1,
                        Some(data),
                    )));
                }
                other => out.push(ReplicaOutput::Client(other)),
            }
        }
    }

    fn node_outputs(&mut self, now: Now, out: &mut Vec<ReplicaOutput>) {
        match self.state {
            State::Leading(_) => {
                let a = self.leader_node_outputs(out);
                self.leader_actions(a, now, out);
            }
            State::Learning(_) => self.learner_node_outputs(out),
            State::Looking => {
                for o in self.node_out.drain(..) {
                    out.push(ReplicaOutput::Client(o));
                }
            }
        }
    }

    // ---- storage ----------------------------------------------------------------------

    /// The log is durable up to `zxid`.
    pub fn durable(&mut self, zxid: i64, now: Now, out: &mut Vec<ReplicaOutput>) {
        match &mut self.state {
            State::Leading(l) => {
                let a = l.logged(zxid);
                self.leader_actions(a, now, out);
            }
            State::Learning(l) => {
                let a = l.logged(zxid);
                self.learner_actions(a, now, out);
            }
            State::Looking => {}
        }
    }

    /// After [`ReplicaOutput::Truncate`] with `reload`: the tree loaded from disk.
    pub fn reload(&mut self, tree: DataTree, zxid: i64, now: Now) {
        self.node.reset_tree(tree, zxid);
        self.init_config_node(now);
    }

    // ---- clients ----------------------------------------------------------------------

    pub fn connect(
        &mut self,
        conn: ConnId,
        peer_ip: &str,
        req: &ConnectRequest,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        self.node_out.clear();
        self.node
            .connect(conn, peer_ip, req, now, &mut self.node_out);
        self.node_outputs(now, out);
    }

    pub fn request(
        &mut self,
        conn: ConnId,
        xid: i32,
        op: i32,
        decoded: Result<Request, RequestError>,
        now: Now,
        out: &mut Vec<ReplicaOutput>,
    ) {
        self.node_out.clear();
        self.node
            .request(conn, xid, op, decoded, now, &mut self.node_out);
        self.node_outputs(now, out);
    }

    pub fn disconnected(&mut self, conn: ConnId) {
        self.node.disconnected(conn);
    }

    /// Time passes: session expiry and reaping (leader), Zab's half ticks.
    pub fn tick(&mut self, now: Now, out: &mut Vec<ReplicaOutput>) {
        self.node_out.clear();
        self.node.tick(now, &mut self.node_out);
        self.node_outputs(now, out);
        let half = self.half_tick_ms();
        while now.mono_ms >= self.next_half_tick_ms {
            self.next_half_tick_ms += half;
            match &mut self.state {
                State::Leading(l) => {
                    let a = l.tick();
                    self.leader_actions(a, now, out);
                }
                State::Learning(l) => {
                    let a = l.tick();
                    self.learner_actions(a, now, out);
                }
                State::Looking => {
                    self.next_half_tick_ms = now.mono_ms + half;
                    break;
                }
            }
        }
    }

    pub fn check_invariants(&self) {
        self.node.check_invariants();
        match &self.state {
            State::Leading(l) => l.check_invariants(),
            State::Learning(l) => l.check_invariants(),
            State::Looking => {
                assert!(!self.node.is_serving(), "serving while looking");
            }
        }
        assert!(
            self.history
                .iter()
                .zip(self.history.iter().skip(1))
                .all(|(a, b)| a.0 < b.0),
            "history out of order"
        );
    }
}

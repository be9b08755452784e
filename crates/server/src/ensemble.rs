//! The core's ensemble half: carries out a [`Replica`]'s outputs over the quorum sockets,
//! the election transport and the data directory, and feeds it their events.
//!
//! **Owns** the quorum connections the core holds (learners by [`PeerId`] when leading; the
//! leader connection, by generation, when learning), the running election, and the epoch
//! files. Everything runs on the core task, in the order the replica asked, so the ordering
//! rules of the replica (persist an epoch before the packet that depends on it, log before
//! acknowledging, hold client replies until commit) hold by construction. One step is
//! moved: a txn's disk write ([`ReplicaOutput::Log`]) waits for the end of the core's
//! wake-up, then is synced inline or handed to the log thread (see `core`, "Inline
//! sync, ensemble"); the replica is told it is durable only after that, and every output
//! that touches the log or the data directory hands the deferred appends to the log
//! thread first.
//!
//! Rare, heavy steps (a learner's TRUNC or SNAP: truncating the log, writing a snapshot,
//! reloading the tree) run synchronously on the core; they happen only while the member is
//! syncing and not serving clients. A leader's read of its txn log for a learner's sync
//! runs on the blocking pool instead (the leader is serving), and its answer comes back
//! as a [`QuorumInput::TxnLog`].

use crate::core::{Core, Engine};
use crate::durable::{self, LogCmd, PendingAppend};
use crate::election_net::{Decision, ElectionNet};
use crate::quorum_net::{self, PeerOut, PeerSender, QuorumEvent};
use crate::settings::QuorumSettings;
use crate::stats::{LearnerCounts, Role as StatsRole};
use corral_node::replica::{ReplicaOutput, Role, TxnLogReadId};
use corral_proto::quorum::ServerState;
use corral_tree::TreeConfig;
use corral_zab::leader::{PeerId, COMMIT_LOG_COUNT_DEFAULT};
use corral_zab::leader::{SyncKind, TxnLogRead};
use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;

/// What the ensemble half of the core waits for.
pub enum QuorumInput {
    Socket(QuorumEvent),
    Decided(u64, std::io::Result<Decision>),
    /// A txn log read for a learner's sync finished.
    TxnLog(TxnLogReadId, Result<TxnLogRead, String>),
}

type TxnLogAnswer = (TxnLogReadId, Result<TxnLogRead, String>);

/// The ensemble's handles, held by the core.
pub struct QuorumShell {
    pub settings: QuorumSettings,
    pub election: Arc<ElectionNet>,
    tick_ms: i64,
    tree_cfg: TreeConfig,
    events_tx: mpsc::UnboundedSender<QuorumEvent>,
    events_rx: mpsc::UnboundedReceiver<QuorumEvent>,
    decisions_tx: mpsc::UnboundedSender<(u64, std::io::Result<Decision>)>,
    decisions_rx: mpsc::UnboundedReceiver<(u64, std::io::Result<Decision>)>,
    /// Answers of txn log reads (one per learner sync at most, so few are ever queued).
    txn_log_tx: mpsc::UnboundedSender<TxnLogAnswer>,
    txn_log_rx: mpsc::UnboundedReceiver<TxnLogAnswer>,
    peers: HashMap<PeerId, PeerSender>,
    /// The leader connection: its generation, and its writer once connected.
    leader: Option<(u64, Option<PeerSender>)>,
    election_gen: u64,
    /// Generation of the newest leader connection (events of older ones are ignored).
    leader_gen: u64,
}

impl QuorumShell {
    pub fn new(
        settings: QuorumSettings,
        election: Arc<ElectionNet>,
        tick_ms: i64,
        tree_cfg: TreeConfig,
        events_tx: mpsc::UnboundedSender<QuorumEvent>,
        events_rx: mpsc::UnboundedReceiver<QuorumEvent>,
    ) -> QuorumShell {
        let (decisions_tx, decisions_rx) = mpsc::unbounded_channel();
        let (txn_log_tx, txn_log_rx) = mpsc::unbounded_channel();
        QuorumShell {
            settings,
            election,
            tick_ms,
            tree_cfg,
            events_tx,
            events_rx,
            decisions_tx,
            decisions_rx,
            txn_log_tx,
            txn_log_rx,
            peers: HashMap::new(),
            leader: None,
            election_gen: 0,
            leader_gen: 0,
        }
    }

    pub fn shutdown(&self) {
        self.election.shutdown();
        for tx in self.peers.values() {
            let _ = tx.send(PeerOut::Close);
        }
        if let Some((_, Some(tx))) = &self.leader {
            let _ = tx.send(PeerOut::Close);
        }
    }
}

/// Nothing is queued on the quorum's event sources (true for a standalone server): the
/// core may sync inline without delaying a packet that is already here.
pub fn quorum_idle(q: &Option<QuorumShell>) -> bool {
    q.as_ref().is_none_or(|q| {
        q.events_rx.is_empty() && q.decisions_rx.is_empty() && q.txn_log_rx.is_empty()
    })
}

/// A quorum socket event that is already queued (None for a standalone server).
pub fn try_next_socket_event(q: &mut Option<QuorumShell>) -> Option<QuorumInput> {
    let q = q.as_mut()?;
    q.events_rx.try_recv().ok().map(QuorumInput::Socket)
}

/// The next quorum input; never resolves for a standalone server.
pub async fn next_event(q: &mut Option<QuorumShell>) -> Option<QuorumInput> {
    let Some(q) = q else {
        return std::future::pending().await;
    };
    tokio::select! {
        Some(ev) = q.events_rx.recv() => Some(QuorumInput::Socket(ev)),
        Some((gen, d)) = q.decisions_rx.recv() => Some(QuorumInput::Decided(gen, d)),
        Some((id, r)) = q.txn_log_rx.recv() => Some(QuorumInput::TxnLog(id, r)),
    }
}

impl Core {
    pub(crate) fn on_quorum_event(&mut self, input: QuorumInput) {
        let now = self.clock.now();
        let (Engine::Ensemble(r), Some(q)) = (&mut self.engine, &mut self.quorum) else {
            return;
        };
        let out = &mut self.routputs;
        match input {
            QuorumInput::Decided(gen, Ok(d)) => {
                if gen != q.election_gen || r.role() != Role::Looking {
                    return;
                }
                tracing::info!(leader = d.leader, state = ?d.state, round = d.round, "election decided");
                match d.state {
                    ServerState::Leading => {
                        let f = q.settings.snapshot_size_factor;
                        r.set_sync_options(COMMIT_LOG_COUNT_DEFAULT, f >= 0.0);
                        r.lead(now, out)
                    }
                    ServerState::Following | ServerState::Observing => r.follow(d.leader, now, out),
                    ServerState::Looking => {}
                }
            }
            QuorumInput::Decided(_, Err(e)) => {
                tracing::info!("election stopped: {e}");
            }
            QuorumInput::TxnLog(id, result) => {
                if let Err(e) = &result {
                    tracing::warn!(peer = id.peer, "the txn log cannot sync a learner: {e}");
                }
                r.txn_log_read(id, result, now, out);
            }
            QuorumInput::Socket(ev) => match ev {
                QuorumEvent::PeerConnected { peer, out: tx } => {
                    q.peers.insert(peer, tx);
                    r.peer_connected(peer, now, out);
                }
                QuorumEvent::PeerPacket { peer, packet } => r.peer_packet(peer, packet, now, out),
                QuorumEvent::PeerClosed { peer } => {
                    if q.peers.remove(&peer).is_some() {
                        r.peer_disconnected(peer, now, out);
                    }
                }
                QuorumEvent::LeaderConnected { gen, out: tx } => match &mut q.leader {
                    Some((g, slot)) if *g == gen => {
                        *slot = Some(tx);
                        r.leader_connected(now, out);
                    }
                    _ => {
                        let _ = tx.send(PeerOut::Close);
                    }
                },
                QuorumEvent::LeaderPacket { gen, packet } => {
                    if q.leader.as_ref().is_some_and(|(g, _)| *g == gen) {
                        r.leader_packet(packet, now, out);
                    }
                }
                QuorumEvent::LeaderSnapshot { gen, zxid, tree } => {
                    if q.leader.as_ref().is_some_and(|(g, _)| *g == gen) {
                        match tree {
                            Ok(tree) => {
                                tracing::info!(
                                    zxid = format!("0x{zxid:x}"),
                                    "snapshot from the leader loaded"
                                );
                                r.leader_snapshot(zxid, *tree, now, out);
                            }
                            Err(e) => {
                                tracing::error!("bad snapshot from the leader: {e}");
                                r.leader_disconnected(now, out);
                            }
                        }
                    }
                }
                QuorumEvent::LeaderClosed { gen } => {
                    if q.leader.as_ref().is_some_and(|(g, _)| *g == gen) {
                        q.leader = None;
                        r.leader_disconnected(now, out);
                    }
                }
            },
        }
        self.flush_replica();
        // Learner counts change only with quorum traffic: not worth a look per request.
        self.publish_counts();
    }

    /// Carries out the replica's outputs, in order.
    pub(crate) fn flush_replica(&mut self) {
        let mut outputs = std::mem::take(&mut self.routputs);
        let mut i = 0;
        while i < outputs.len() {
            let o = std::mem::replace(&mut outputs[i], ReplicaOutput::DiscardHeld);
            i += 1;
            if let Some(more) = self.replica_output(o) {
                outputs.extend(more);
            }
        }
        outputs.clear();
        self.routputs = outputs;
    }

    fn publish_counts(&self) {
        let Engine::Ensemble(r) = &self.engine else {
            return;
        };
        if let Some(((learners, followers, observers), syncs)) = r.learner_counts() {
            self.stats.set_learner_counts(LearnerCounts {
                learners: learners as u64,
                synced_followers: followers as u64,
                synced_non_voting_followers: 0,
                synced_observers: observers as u64,
                pending_syncs: syncs as u64,
            });
        }
    }

    /// One replica output; returns outputs it caused (a reload's).
    fn replica_output(&mut self, o: ReplicaOutput) -> Option<Vec<ReplicaOutput>> {
        match o {
            ReplicaOutput::Client(c) => self.client_output(c),
            ReplicaOutput::Log { zxid, bytes, hold } => {
                if hold {
                    // Client output from here on waits for this txn's Release.
                    self.appended_zxid = zxid;
                }
                // Written at the end of the wake-up (inline or by the log thread); the
                // replica hears it is durable only then.
                self.deferred.push(PendingAppend::Encoded { zxid, bytes });
            }
            ReplicaOutput::Release(z) => self.release(z),
            ReplicaOutput::DiscardHeld => {
                self.held.clear();
                self.released_zxid = self.released_zxid.max(self.appended_zxid);
            }
            ReplicaOutput::SendPeer { peer, packet } => {
                if let Some(tx) = self.quorum.as_ref().and_then(|q| q.peers.get(&peer)) {
                    self.woke_writers = true;
                    let _ = tx.send(PeerOut::Packet(packet));
                }
            }
            ReplicaOutput::SendSnapshot {
                peer,
                zxid,
                snapshot,
            } => {
                tracing::info!(
                    peer,
                    zxid = format!("0x{zxid:x}"),
                    "sending a snapshot to a learner"
                );
                if let Some(tx) = self.quorum.as_ref().and_then(|q| q.peers.get(&peer)) {
                    self.woke_writers = true;
                    let _ = tx.send(PeerOut::Snapshot {
                        zxid,
                        view: snapshot,
                    });
                }
            }
            ReplicaOutput::ClosePeer { peer } => {
                if let Some(tx) = self.quorum.as_mut().and_then(|q| q.peers.remove(&peer)) {
                    let _ = tx.send(PeerOut::Close);
                }
            }
            ReplicaOutput::ListenForLearners(on) => {
                if !on {
                    if let Some(q) = self.quorum.as_mut() {
                        for (_, tx) in q.peers.drain() {
                            let _ = tx.send(PeerOut::Close);
                        }
                    }
                }
            }
            ReplicaOutput::ConnectLeader { sid } => {
                let q = self.quorum.as_mut()?;
                q.leader_gen += 1;
                let gen = q.leader_gen;
                q.leader = Some((gen, None));
                let Some(addr) = q.settings.member(sid).map(|m| m.quorum_addr) else {
                    tracing::error!(sid, "elected leader is not in the configuration");
                    let _ = q.events_tx.send(QuorumEvent::LeaderClosed { gen });
                    return None;
                };
                let deadline = Duration::from_millis(
                    (q.tick_ms.max(1) as u64) * q.settings.init_limit_ticks.max(1) as u64,
                );
                tracing::info!(sid, %addr, "connecting to the leader");
                quorum_net::connect_leader(
                    gen,
                    addr,
                    deadline,
                    q.events_tx.clone(),
                    q.tree_cfg.clone(),
                );
            }
            ReplicaOutput::SendLeader(p) => {
                if let Some((_, Some(tx))) = self.quorum.as_ref().and_then(|q| q.leader.as_ref()) {
                    self.woke_writers = true;
                    let _ = tx.send(PeerOut::Packet(p));
                }
            }
            ReplicaOutput::CloseLeader => {
                if let Some(q) = self.quorum.as_mut() {
                    if let Some((_, Some(tx))) = q.leader.take() {
                        let _ = tx.send(PeerOut::Close);
                    }
                }
            }
            ReplicaOutput::PersistAcceptedEpoch(e) => {
                self.persist_epoch(corral_storage::epoch::ACCEPTED_EPOCH_FILE, e);
            }
            ReplicaOutput::PersistCurrentEpoch(e) => {
                self.persist_epoch(corral_storage::epoch::CURRENT_EPOCH_FILE, e);
                if let Some(q) = &self.quorum {
                    q.election.update_election_vote(e);
                }
            }
            ReplicaOutput::Truncate { zxid, reload } => {
                tracing::info!(
                    zxid = format!("0x{zxid:x}"),
                    reload,
                    "truncating the log (TRUNC)"
                );
                if let Err(e) = self.truncate_log(zxid) {
                    self.fail(e);
                    return None;
                }
                if reload {
                    let tree_cfg = self.quorum.as_ref()?.tree_cfg.clone();
                    match durable::recover(self.storage.fs.clone(), &self.storage.dirs, tree_cfg) {
                        Ok(rec) => {
                            let now = self.clock.now();
                            if let Engine::Ensemble(r) = &mut self.engine {
                                r.reload(rec.tree, rec.last_zxid, now);
                            }
                        }
                        Err(e) => self.fail(format!("cannot reload after TRUNC: {e}")),
                    }
                }
            }
            ReplicaOutput::InstallSnapshot { zxid } => {
                if let Err(e) = self.truncate_log(zxid) {
                    self.fail(e);
                    return None;
                }
                let view = self.node().tree().snapshot_source(zxid);
                match durable::write_snapshot_now(
                    self.storage.fs.as_ref(),
                    &self.storage.dirs,
                    &view,
                    zxid,
                ) {
                    Ok(what) => tracing::info!("snapshot from the leader written: {what}"),
                    Err(e) => self.fail(format!("cannot write the leader's snapshot: {e}")),
                }
            }
            ReplicaOutput::RoleChanged(role) => {
                let Engine::Ensemble(r) = &self.engine else {
                    return None;
                };
                let stats_role = match role {
                    Role::Looking => StatsRole::Looking,
                    Role::Leading if r.is_serving() => StatsRole::Leader,
                    Role::Leading => StatsRole::Looking,
                    Role::Following => StatsRole::Follower,
                    Role::Observing => StatsRole::Observer,
                };
                tracing::info!(?role, leader = ?r.leader_sid(), zxid = format!("0x{:x}", r.node().last_zxid()), "role");
                self.stats.set_role(stats_role);
                self.stats.set_leader_sid(r.leader_sid());
            }
            ReplicaOutput::ReadTxnLog { id, after, upto } => {
                // The log thread gets this wake-up's appends before the read starts.
                self.flush_deferred();
                let q = self.quorum.as_ref()?;
                let (fs, dirs) = (self.storage.fs.clone(), self.storage.dirs.clone());
                let (factor, tx) = (q.settings.snapshot_size_factor, q.txn_log_tx.clone());
                tracing::info!(
                    peer = id.peer,
                    after = format!("0x{after:x}"),
                    upto = format!("0x{upto:x}"),
                    "learner is behind the committed log: reading the txn log"
                );
                tokio::task::spawn_blocking(move || {
                    let r = crate::txn_log_sync::read_for_learner(
                        fs.as_ref(),
                        &dirs,
                        after,
                        upto,
                        factor,
                    );
                    let _ = tx.send((id, r));
                });
            }
            ReplicaOutput::SyncedFromTxnLog {
                peer,
                kind,
                txns,
                why_not,
            } => match (kind, why_not) {
                (SyncKind::Snap, why) => tracing::info!(
                    peer,
                    "txn log read, but the learner gets SNAP: {}",
                    why.unwrap_or_default()
                ),
                (kind, _) => tracing::info!(
                    peer,
                    txns,
                    "syncing a learner by {} from the txn log and committed log",
                    if kind == SyncKind::Trunc {
                        "TRUNC+DIFF"
                    } else {
                        "DIFF"
                    }
                ),
            },
            ReplicaOutput::Elect => {
                let Engine::Ensemble(r) = &self.engine else {
                    return None;
                };
                let (zxid, epoch) = r.vote();
                let q = self.quorum.as_mut()?;
                q.election_gen += 1;
                let gen = q.election_gen;
                let election = q.election.clone();
                let tx = q.decisions_tx.clone();
                tokio::spawn(async move {
                    let d = election.look(zxid, epoch).await;
                    let _ = tx.send((gen, d));
                });
            }
        }
        None
    }

    /// Writes the epoch file `name` (`acceptedEpoch` or `currentEpoch`); a failure latches
    /// the server out of service.
    fn persist_epoch(&mut self, name: &str, epoch: i64) {
        // Appends that came before the epoch reach the log thread before it is written.
        self.flush_deferred();
        let t = std::time::Instant::now();
        let r = corral_storage::epoch::write_epoch(
            self.storage.fs.as_ref(),
            &self.storage.dirs.snap_dir,
            name,
            epoch,
        );
        // Both epoch files are on the failover's critical path (fsync of the file and of
        // the directory, on the core task): worth seeing when they are slow.
        tracing::debug!(
            epoch,
            elapsed_us = t.elapsed().as_micros() as u64,
            "{name} written"
        );
        if let Err(e) = r {
            self.fail(format!("cannot write {name}: {e}"));
        }
    }

    /// Truncates the log after `zxid` on the log thread and waits for it.
    fn truncate_log(&mut self, zxid: i64) -> Result<(), String> {
        // The truncation applies to every earlier append, deferred ones included.
        self.flush_deferred();
        let (tx, rx) = std_mpsc::channel();
        self.storage
            .log
            .send(LogCmd::Truncate { zxid, done: tx })
            .map_err(|_| "the log thread has stopped".to_string())?;
        match rx.recv() {
            Ok(Ok(what)) => {
                tracing::info!("log truncated after 0x{zxid:x}: {what}");
                Ok(())
            }
            Ok(Err(e)) => Err(e),
            Err(_) => Err("the log thread stopped while truncating".into()),
        }
    }
}

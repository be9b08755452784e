//! ZooKeeper's FastLeaderElection (`FastLeaderElection.java` of 3.8) as a pure state
//! machine.
//!
//! **Owns** one server's side of leader election: its logical clock (round), its proposal,
//! the tallies of the current round (`recvset`) and of servers already out of election
//! (`outofelection`), the finalize wait and the re-send backoff. It also plays the part of
//! Java's `WorkerReceiver` thread: answering servers that lag behind, and answering LOOKING
//! servers (and observers) once decided. It does not own connections, the send queues of
//! `QuorumCnxManager` (capacity one per peer, last message re-sent on reconnect) nor what
//! happens after a decision (discovery, sync): the caller does.
//!
//! **Driving it.** [`Election::start`] begins the first election, [`Election::step`] takes
//! one notification received from a peer, [`Election::tick`] advances time by one tick, and
//! [`Election::restart`] begins a new election after the server fell back to LOOKING. Each
//! returns [`Action`]s for the caller to carry out in order. [`Action::Broadcast`] goes to
//! every voter *except this server*: Java sends to itself through a loopback queue, which
//! this machine models with an internal inbox processed before the call returns.
//!
//! **Time** is ticks: `finalizeWait` (200 ms) and the notification interval (200 ms doubling
//! to 60 s) are counted in ticks of [`ElectionConfig`]. Java restarts a wait whenever any
//! notification is dequeued, and so does this machine.
//!
//! **Invariants** ([`Election::check_invariants`]): every vote in the current tally is of the
//! current round; tallies hold voters only; a participant's proposal is never worse than its
//! own initial vote; finalizing implies a quorum of the tally agrees with the proposal; a
//! decided server holds no election state; observers never vote for themselves, never send
//! to themselves and are never counted.
//!
//! **One deliberate difference from Java**: a LOOKING server that receives, in its own round,
//! a LOOKING vote worse than its proposal answers that peer with its proposal (Java stays
//! silent). Without it, a peer that missed our vote while it still followed the old leader
//! waits for the re-send backoff, and a failover takes hundreds of ms instead of one
//! finalize wait. The answer is ordinary election traffic, so Java peers accept it.
//!
//! Only majority quorums (`QuorumMaj`) are modelled: every voter has weight one, so Java's
//! weight test in `totalOrderPredicate` never fails. Dynamic reconfig (a notification
//! carrying a newer config) and the two-server oracle are left to later layers.
//!
//! Threading: none; the caller serialises calls.

use bytes::Bytes;
use corral_proto::quorum::{Notification, ServerState, Sid};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// How long a server that sees a quorum for its proposal waits for a better one, in ms
/// (`FastLeaderElection.finalizeWait`).
pub const FINALIZE_WAIT_MS: u64 = 200;
/// First wait before re-sending notifications, in ms (`minNotificationInterval`).
pub const NOTIFICATION_INTERVAL_MIN_MS: u64 = 200;
/// Cap of the doubling re-send wait, in ms (`maxNotificationInterval`).
pub const NOTIFICATION_INTERVAL_MAX_MS: u64 = 60_000;
/// Tick length assumed by [`ElectionConfig::default`], in ms.
pub const ELECTION_TICK_MS_DEFAULT: u64 = 10;

/// The vote of a participant that has no history (`-1` means "not loaded"): Java ignores
/// LOOKING notifications while its own last zxid is this, and notifications carrying it.
pub const ZXID_UNKNOWN: i64 = -1;
/// The sid, zxid and epoch an observer votes with: it never proposes itself.
pub const NO_VOTE: i64 = i64::MIN;

/// Timing of one election, in ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElectionConfig {
    pub finalize_wait_ticks: u32,
    pub notification_interval_min_ticks: u32,
    pub notification_interval_max_ticks: u32,
}

impl ElectionConfig {
    /// Java's defaults expressed in ticks of `tick_ms` (rounded up, at least one tick).
    pub fn from_tick_ms(tick_ms: u64) -> ElectionConfig {
        let ticks = |ms: u64| ms.div_ceil(tick_ms.max(1)).clamp(1, u32::MAX as u64) as u32;
        ElectionConfig {
            finalize_wait_ticks: ticks(FINALIZE_WAIT_MS),
            notification_interval_min_ticks: ticks(NOTIFICATION_INTERVAL_MIN_MS),
            notification_interval_max_ticks: ticks(NOTIFICATION_INTERVAL_MAX_MS),
        }
    }
}

impl Default for ElectionConfig {
    fn default() -> ElectionConfig {
        ElectionConfig::from_tick_ms(ELECTION_TICK_MS_DEFAULT)
    }
}

/// A vote: the proposed leader, its last zxid and epoch, and the round it was cast in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vote {
    pub leader: Sid,
    pub zxid: i64,
    pub election_epoch: i64,
    pub peer_epoch: i64,
}

/// What the caller must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send to one server.
    Send { to: Sid, notification: Notification },
    /// Send to every voter other than this server.
    Broadcast(Notification),
    /// The election is over: this server is now `state` (LEADING, FOLLOWING or OBSERVING)
    /// under `leader`. Discovery starts; if it fails, call [`Election::restart`].
    Decided { leader: Sid, state: ServerState },
}

/// `totalOrderPredicate`: does candidate `new` = (sid, zxid, epoch) beat `cur`? Higher
/// epoch first, then higher zxid, then higher sid.
pub fn total_order_predicate(new: (Sid, i64, i64), cur: (Sid, i64, i64)) -> bool {
    let (new_sid, new_zxid, new_epoch) = new;
    let (cur_sid, cur_zxid, cur_epoch) = cur;
    (new_epoch, new_zxid, new_sid) > (cur_epoch, cur_zxid, cur_sid)
}

/// A vote as kept in a tally, with what Java's `Vote.equals` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Tallied {
    vote: Vote,
    state: ServerState,
    version: i32,
}

impl Tallied {
    /// `Vote.equals`: if either side is LOOKING, every field of the vote counts; between
    /// servers out of election only the leader (and its epoch, unless exactly one side has
    /// a format version) counts, because their zxid and round go stale (ZOOKEEPER-1732).
    fn agrees(&self, other: &Tallied) -> bool {
        let (a, b) = (self.vote, other.vote);
        if self.state == ServerState::Looking || other.state == ServerState::Looking {
            a.leader == b.leader
                && a.zxid == b.zxid
                && a.election_epoch == b.election_epoch
                && a.peer_epoch == b.peer_epoch
        } else if (self.version > 0) ^ (other.version > 0) {
            a.leader == b.leader
        } else {
            a.leader == b.leader && a.peer_epoch == b.peer_epoch
        }
    }
}

/// One server's fast leader election.
#[derive(Debug, Clone)]
pub struct Election {
    my_sid: Sid,
    voters: BTreeSet<Sid>,
    observers: BTreeSet<Sid>,
    cfg: ElectionConfig,
    /// Quorum config text sent in every notification (Java's `QuorumVerifier.toString()`).
    config_text: Bytes,
    last_zxid: i64,
    current_epoch: i64,
    started: bool,
    state: ServerState,
    logical_clock: i64,
    /// (leader, zxid, peer epoch) this server currently proposes.
    proposal: (Sid, i64, i64),
    /// `QuorumPeer.currentVote`: what the server answers with when asked; set by a decision
    /// and by [`Election::update_election_vote`], stale while a new election runs (as in Java).
    current_vote: Vote,
    recvset: BTreeMap<Sid, Tallied>,
    outofelection: BTreeMap<Sid, Tallied>,
    /// Ticks waited since the tally reached a quorum (or since the last notification).
    finalizing: Option<u32>,
    idle_ticks: u32,
    notification_interval_ticks: u32,
    /// Notifications this server sent itself, processed before a call returns.
    self_inbox: VecDeque<Notification>,
}

impl Election {
    /// A server `my_sid` of an ensemble of `voters` and `observers` (disjoint; `my_sid` in
    /// one of them) whose last logged zxid and current epoch are given. Call
    /// [`Election::start`] next.
    pub fn new(
        my_sid: Sid,
        voters: impl IntoIterator<Item = Sid>,
        observers: impl IntoIterator<Item = Sid>,
        my_last_zxid: i64,
        my_current_epoch: i64,
    ) -> Election {
        let voters: BTreeSet<Sid> = voters.into_iter().collect();
        let observers: BTreeSet<Sid> = observers.into_iter().collect();
        assert!(
            voters.is_disjoint(&observers),
            "voters {voters:?} and observers {observers:?} overlap"
        );
        assert!(
            voters.contains(&my_sid) || observers.contains(&my_sid),
            "sid {my_sid} is neither a voter {voters:?} nor an observer {observers:?}"
        );
        assert!(!voters.is_empty(), "an ensemble needs voters");
        let cfg = ElectionConfig::default();
        Election {
            my_sid,
            voters,
            observers,
            cfg,
            config_text: Bytes::new(),
            last_zxid: my_last_zxid,
            current_epoch: my_current_epoch,
            started: false,
            state: ServerState::Looking,
            logical_clock: 0,
            proposal: (NO_VOTE, NO_VOTE, NO_VOTE),
            // QuorumPeer.startLeaderElection: Vote(myid, lastLoggedZxid, currentEpoch).
            current_vote: Vote {
                leader: my_sid,
                zxid: my_last_zxid,
                election_epoch: -1,
                peer_epoch: my_current_epoch,
            },
            recvset: BTreeMap::new(),
            outofelection: BTreeMap::new(),
            finalizing: None,
            idle_ticks: 0,
            notification_interval_ticks: cfg.notification_interval_min_ticks,
            self_inbox: VecDeque::new(),
        }
    }

    /// Timing in ticks (before [`Election::start`]).
    pub fn with_config(mut self, cfg: ElectionConfig) -> Election {
        assert!(
            cfg.finalize_wait_ticks > 0
                && cfg.notification_interval_min_ticks > 0
                && cfg.notification_interval_min_ticks <= cfg.notification_interval_max_ticks,
            "bad election timing {cfg:?}"
        );
        self.cfg = cfg;
        self.notification_interval_ticks = cfg.notification_interval_min_ticks;
        self
    }

    /// The quorum config text to put in every notification (peers running Java parse it).
    pub fn with_config_text(mut self, text: Bytes) -> Election {
        self.config_text = text;
        self
    }

    pub fn my_sid(&self) -> Sid {
        self.my_sid
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn logical_clock(&self) -> i64 {
        self.logical_clock
    }

    /// What this server proposes in the running round.
    pub fn proposal(&self) -> Vote {
        Vote {
            leader: self.proposal.0,
            zxid: self.proposal.1,
            election_epoch: self.logical_clock,
            peer_epoch: self.proposal.2,
        }
    }

    /// The vote of the last decision (what peers are told once this server is decided).
    pub fn current_vote(&self) -> Vote {
        self.current_vote
    }

    /// Is this server a voter (Java: a participant in the voting view)?
    pub fn is_voter(&self) -> bool {
        self.voters.contains(&self.my_sid)
    }

    /// Majority of the voters.
    pub fn quorum_size(&self) -> usize {
        self.voters.len() / 2 + 1
    }

    /// Begins the first election.
    pub fn start(&mut self) -> Vec<Action> {
        assert!(!self.started, "sid {}: election started twice", self.my_sid);
        self.started = true;
        let mut out = Vec::new();
        self.look_for_leader(&mut out);
        out
    }

    /// Begins a new election after the server fell back to LOOKING (the leader was lost or
    /// discovery failed). The logical clock carries on from the last round.
    pub fn restart(&mut self, my_last_zxid: i64, my_current_epoch: i64) -> Vec<Action> {
        assert!(self.started, "sid {}: restart before start", self.my_sid);
        self.last_zxid = my_last_zxid;
        self.current_epoch = my_current_epoch;
        self.state = ServerState::Looking;
        let mut out = Vec::new();
        self.look_for_leader(&mut out);
        out
    }

    /// After discovery set a new epoch (`QuorumPeer.updateElectionVote`): peers asking
    /// later are told this epoch, so a restarted server can match the established quorum.
    pub fn update_election_vote(&mut self, new_epoch: i64) {
        self.current_vote.peer_epoch = new_epoch;
    }

    /// A notification from `from` (known from the connection header).
    pub fn step(&mut self, from: Sid, n: Notification) -> Vec<Action> {
        assert!(self.started, "sid {}: step before start", self.my_sid);
        let mut out = Vec::new();
        self.receive(from, n, &mut out);
        self.drain_self_inbox(&mut out);
        out
    }

    /// One tick of time.
    pub fn tick(&mut self) -> Vec<Action> {
        assert!(self.started, "sid {}: tick before start", self.my_sid);
        let mut out = Vec::new();
        if self.state != ServerState::Looking {
            return out;
        }
        if let Some(waited) = self.finalizing {
            let waited = waited + 1;
            if waited >= self.cfg.finalize_wait_ticks {
                let vote = self.proposal();
                self.decide(vote, &mut out);
            } else {
                self.finalizing = Some(waited);
            }
        } else {
            self.idle_ticks += 1;
            if self.idle_ticks >= self.notification_interval_ticks {
                // Java re-sends only if some queue drained (else it reconnects); the send
                // queues belong to the caller, so this always re-sends.
                self.idle_ticks = 0;
                self.notification_interval_ticks = self
                    .notification_interval_ticks
                    .saturating_mul(2)
                    .min(self.cfg.notification_interval_max_ticks);
                self.send_notifications(&mut out);
            }
        }
        self.drain_self_inbox(&mut out);
        out
    }

    fn look_for_leader(&mut self, out: &mut Vec<Action>) {
        self.recvset.clear();
        self.outofelection.clear();
        self.finalizing = None;
        self.idle_ticks = 0;
        self.notification_interval_ticks = self.cfg.notification_interval_min_ticks;
        self.logical_clock += 1;
        self.proposal = self.initial_vote();
        self.send_notifications(out);
        self.drain_self_inbox(out);
    }

    /// (getInitId, getInitLastLoggedZxid, getPeerEpoch): observers propose nobody.
    fn initial_vote(&self) -> (Sid, i64, i64) {
        if self.is_voter() {
            (self.my_sid, self.last_zxid, self.current_epoch)
        } else {
            (NO_VOTE, NO_VOTE, NO_VOTE)
        }
    }

    fn notification(&self, state: ServerState, vote: Vote) -> Notification {
        Notification::new(
            state,
            vote.leader,
            vote.zxid,
            vote.election_epoch,
            vote.peer_epoch,
            self.config_text.clone(),
        )
    }

    /// `sendNotifications`: the proposal, as LOOKING, to every voter (self by loopback).
    fn send_notifications(&mut self, out: &mut Vec<Action>) {
        let n = self.notification(ServerState::Looking, self.proposal());
        if self.is_voter() {
            self.self_inbox.push_back(n.clone());
        }
        out.push(Action::Broadcast(n));
    }

    fn drain_self_inbox(&mut self, out: &mut Vec<Action>) {
        while let Some(n) = self.self_inbox.pop_front() {
            if self.state == ServerState::Looking {
                self.process(self.my_sid, n, out);
            }
        }
    }

    /// `WorkerReceiver`: answers what needs an answer, queues the rest for the main loop.
    fn receive(&mut self, from: Sid, n: Notification, out: &mut Vec<Action>) {
        if !self.voters.contains(&from) {
            // An observer (or unknown server): tell it our current vote, never count it.
            let vote = Vote {
                election_epoch: self.logical_clock,
                ..self.current_vote
            };
            let reply = self.notification(self.state, vote);
            out.push(Action::Send {
                to: from,
                notification: reply,
            });
            return;
        }
        if self.state == ServerState::Looking {
            if n.state == ServerState::Looking && n.election_epoch < self.logical_clock {
                let reply = self.notification(ServerState::Looking, self.proposal());
                out.push(Action::Send {
                    to: from,
                    notification: reply,
                });
            }
            self.process(from, n, out);
        } else if n.state == ServerState::Looking {
            let reply = self.notification(self.state, self.current_vote);
            out.push(Action::Send {
                to: from,
                notification: reply,
            });
        }
    }

    /// The body of `lookForLeader`'s loop for one dequeued notification from a voter.
    fn process(&mut self, from: Sid, n: Notification, out: &mut Vec<Action>) {
        debug_assert_eq!(self.state, ServerState::Looking);
        if self.finalizing.is_some() {
            // The finalize wait: anything not better is dropped and the wait starts over;
            // something better ends the wait and is handled as usual.
            if total_order_predicate((n.leader, n.zxid, n.peer_epoch), self.proposal) {
                self.finalizing = None;
            } else {
                self.finalizing = Some(0);
                return;
            }
        }
        self.idle_ticks = 0;
        if !self.voters.contains(&n.leader) {
            return;
        }
        match n.state {
            ServerState::Looking => self.looking_notification(from, &n, out),
            ServerState::Observing => {}
            ServerState::Following | ServerState::Leading => {
                self.out_of_election_notification(from, &n, out)
            }
        }
    }

    fn looking_notification(&mut self, from: Sid, n: &Notification, out: &mut Vec<Action>) {
        if self.initial_vote().1 == ZXID_UNKNOWN || n.zxid == ZXID_UNKNOWN {
            return;
        }
        let theirs = (n.leader, n.zxid, n.peer_epoch);
        if n.election_epoch > self.logical_clock {
            self.logical_clock = n.election_epoch;
            self.recvset.clear();
            self.proposal = if total_order_predicate(theirs, self.initial_vote()) {
                theirs
            } else {
                self.initial_vote()
            };
            self.send_notifications(out);
        } else if n.election_epoch < self.logical_clock {
            return;
        } else if total_order_predicate(theirs, self.proposal) {
            self.proposal = theirs;
            self.send_notifications(out);
        } else if from != self.my_sid && total_order_predicate(self.proposal, theirs) {
            // The peer, in our round, proposes something worse than our proposal: it has
            // not seen our vote. That happens when our notification reached it while it
            // still followed the old leader (its reply then was its old vote, and ours was
            // consumed), so without this answer neither side learns anything new until a
            // re-send timer fires (the 200 ms, 400 ms, ... backoff), which is what made
            // some failovers take ~450 ms instead of ~50 ms. Java does not answer here;
            // the extra notification is ordinary election traffic to any peer, and it
            // cannot repeat: the peer adopts our better proposal, after which its votes
            // are no longer worse.
            out.push(Action::Send {
                to: from,
                notification: self.notification(ServerState::Looking, self.proposal()),
            });
        }
        self.recvset.insert(
            from,
            Tallied {
                vote: vote_of(n),
                state: ServerState::Looking,
                version: 0,
            },
        );
        if self.has_quorum(&self.recvset, &self.proposal_tallied()) {
            self.finalizing = Some(0);
        }
    }

    /// `receivedFollowingNotification` (LEADING is the same without an oracle): join a
    /// leader that a quorum follows and that says it leads.
    fn out_of_election_notification(&mut self, from: Sid, n: &Notification, out: &mut Vec<Action>) {
        let theirs = Tallied {
            vote: vote_of(n),
            state: n.state,
            version: n.version(),
        };
        if n.election_epoch == self.logical_clock {
            // Stored without a version, so it agrees with `theirs` on the leader alone.
            self.recvset.insert(
                from,
                Tallied {
                    version: 0,
                    ..theirs
                },
            );
            if self.has_quorum(&self.recvset, &theirs)
                && self.check_leader(&self.recvset, n.leader, n.election_epoch)
            {
                self.decide(vote_of(n), out);
                return;
            }
        }
        // Before joining an established ensemble, a quorum must follow the same leader.
        self.outofelection.insert(from, theirs);
        if self.has_quorum(&self.outofelection, &theirs)
            && self.check_leader(&self.outofelection, n.leader, n.election_epoch)
        {
            self.logical_clock = n.election_epoch;
            self.decide(vote_of(n), out);
        }
    }

    /// The proposal as the tally compares it (`Vote(proposal, logicalclock)`, LOOKING).
    fn proposal_tallied(&self) -> Tallied {
        Tallied {
            vote: self.proposal(),
            state: ServerState::Looking,
            version: 0,
        }
    }

    /// `getVoteTracker(votes, vote).hasAllQuorums()`: a majority of voters agree with `vote`.
    fn has_quorum(&self, votes: &BTreeMap<Sid, Tallied>, vote: &Tallied) -> bool {
        let acks = votes
            .iter()
            .filter(|(sid, v)| self.voters.contains(sid) && v.agrees(vote))
            .count();
        acks >= self.quorum_size()
    }

    /// `checkLeader`: the leader must have said it leads; if it is us, in this round.
    fn check_leader(
        &self,
        votes: &BTreeMap<Sid, Tallied>,
        leader: Sid,
        election_epoch: i64,
    ) -> bool {
        if leader != self.my_sid {
            votes
                .get(&leader)
                .is_some_and(|v| v.state == ServerState::Leading)
        } else {
            self.logical_clock == election_epoch
        }
    }

    /// `setPeerState` + `leaveInstance`.
    fn decide(&mut self, vote: Vote, out: &mut Vec<Action>) {
        self.state = if vote.leader == self.my_sid {
            ServerState::Leading
        } else if self.is_voter() {
            ServerState::Following
        } else {
            ServerState::Observing
        };
        self.current_vote = vote;
        self.recvset.clear();
        self.outofelection.clear();
        self.finalizing = None;
        self.self_inbox.clear();
        out.push(Action::Decided {
            leader: vote.leader,
            state: self.state,
        });
    }

    /// Panics, with the server's state, if an invariant of the module docs is broken.
    pub fn check_invariants(&self) {
        let ctx = || {
            format!(
                "sid {} round {} state {:?}",
                self.my_sid, self.logical_clock, self.state
            )
        };
        assert!(
            self.self_inbox.is_empty(),
            "{}: loopback not drained",
            ctx()
        );
        if !self.started {
            assert_eq!(self.logical_clock, 0, "{}", ctx());
            return;
        }
        assert!(
            self.logical_clock >= 1,
            "{}: started without a round",
            ctx()
        );
        for (sid, v) in self.recvset.iter().chain(self.outofelection.iter()) {
            assert!(
                self.voters.contains(sid),
                "{}: tallied non-voter {sid}",
                ctx()
            );
            assert!(
                self.voters.contains(&v.vote.leader),
                "{}: vote for non-voter {v:?}",
                ctx()
            );
        }
        for (sid, v) in &self.recvset {
            assert_eq!(
                v.vote.election_epoch,
                self.logical_clock,
                "{}: vote of {sid} from another round",
                ctx()
            );
        }
        assert!(
            (self.cfg.notification_interval_min_ticks..=self.cfg.notification_interval_max_ticks)
                .contains(&self.notification_interval_ticks),
            "{}: interval {} out of range",
            ctx(),
            self.notification_interval_ticks
        );
        match self.state {
            ServerState::Looking => {
                if self.is_voter() {
                    assert!(
                        !total_order_predicate(self.initial_vote(), self.proposal),
                        "{}: proposal {:?} worse than own vote {:?}",
                        ctx(),
                        self.proposal,
                        self.initial_vote()
                    );
                } else {
                    assert!(
                        self.proposal.0 == NO_VOTE || self.voters.contains(&self.proposal.0),
                        "{}: observer proposes {:?}",
                        ctx(),
                        self.proposal
                    );
                }
                if self.finalizing.is_some() {
                    assert!(
                        self.has_quorum(&self.recvset, &self.proposal_tallied()),
                        "{}: finalizing without a quorum",
                        ctx()
                    );
                }
            }
            decided => {
                assert!(
                    self.recvset.is_empty() && self.outofelection.is_empty(),
                    "{}: decided with tallies",
                    ctx()
                );
                assert!(self.finalizing.is_none(), "{}", ctx());
                let leader = self.current_vote.leader;
                let expected = if leader == self.my_sid {
                    ServerState::Leading
                } else if self.is_voter() {
                    ServerState::Following
                } else {
                    ServerState::Observing
                };
                assert_eq!(decided, expected, "{}: leader {leader}", ctx());
                assert!(
                    self.voters.contains(&leader),
                    "{}: leader {leader} not a voter",
                    ctx()
                );
            }
        }
        assert!(
            !self.observers.contains(&self.proposal.0),
            "{}: observer proposed",
            ctx()
        );
    }
}

fn vote_of(n: &Notification) -> Vote {
    Vote {
        leader: n.leader,
        zxid: n.zxid,
        election_epoch: n.election_epoch,
        peer_epoch: n.peer_epoch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: ElectionConfig = ElectionConfig {
        finalize_wait_ticks: 3,
        notification_interval_min_ticks: 2,
        notification_interval_max_ticks: 8,
    };

    fn voter(sid: Sid, zxid: i64, epoch: i64) -> Election {
        Election::new(sid, [1, 2, 3], [4], zxid, epoch).with_config(CFG)
    }

    fn looking(leader: Sid, zxid: i64, round: i64, epoch: i64) -> Notification {
        Notification::new(
            ServerState::Looking,
            leader,
            zxid,
            round,
            epoch,
            Bytes::new(),
        )
    }

    fn state(st: ServerState, leader: Sid, zxid: i64, round: i64, epoch: i64) -> Notification {
        Notification::new(st, leader, zxid, round, epoch, Bytes::new())
    }

    fn broadcasts(actions: &[Action]) -> Vec<(Sid, i64, i64, i64)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Broadcast(n) => Some((n.leader, n.zxid, n.election_epoch, n.peer_epoch)),
                _ => None,
            })
            .collect()
    }

    fn decided(actions: &[Action]) -> Option<(Sid, ServerState)> {
        actions.iter().find_map(|a| match a {
            Action::Decided { leader, state } => Some((*leader, *state)),
            _ => None,
        })
    }

    fn ticks(e: &mut Election, n: u32) -> Vec<Action> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.extend(e.tick());
            e.check_invariants();
        }
        out
    }

    #[test]
    fn predicate_orders_epoch_then_zxid_then_sid() {
        assert!(total_order_predicate((1, 0, 2), (3, 0x1_0000_0009, 1)));
        assert!(!total_order_predicate((3, 0x1_0000_0009, 1), (1, 0, 2)));
        assert!(total_order_predicate((1, 5, 1), (3, 4, 1)));
        assert!(total_order_predicate((3, 5, 1), (2, 5, 1)));
        assert!(
            !total_order_predicate((2, 5, 1), (2, 5, 1)),
            "not strictly better"
        );
        assert!(!total_order_predicate(
            (NO_VOTE, NO_VOTE, NO_VOTE),
            (1, 0, 0)
        ));
    }

    #[test]
    fn vote_equality_follows_java() {
        let v = |leader, zxid, round, epoch| Vote {
            leader,
            zxid,
            election_epoch: round,
            peer_epoch: epoch,
        };
        let t = |vote, state, version| Tallied {
            vote,
            state,
            version,
        };
        use ServerState::*;
        // Anything LOOKING: all four fields.
        assert!(t(v(3, 1, 2, 1), Looking, 0).agrees(&t(v(3, 1, 2, 1), Following, 2)));
        assert!(!t(v(3, 1, 2, 1), Looking, 0).agrees(&t(v(3, 1, 1, 1), Following, 2)));
        // Out of election, one side versioned: leader only.
        assert!(t(v(3, 1, 2, 1), Following, 0).agrees(&t(v(3, 9, 5, 7), Leading, 2)));
        // Both versioned (or neither): leader and epoch.
        assert!(t(v(3, 1, 2, 1), Following, 2).agrees(&t(v(3, 9, 5, 1), Leading, 2)));
        assert!(!t(v(3, 1, 2, 1), Following, 2).agrees(&t(v(3, 9, 5, 2), Leading, 2)));
    }

    #[test]
    fn start_votes_for_itself_and_counts_its_own_vote() {
        let mut e = voter(2, 7, 1);
        let out = e.start();
        assert_eq!(broadcasts(&out), vec![(2, 7, 1, 1)]);
        assert_eq!(e.recvset.len(), 1, "own vote arrives through the loopback");
        e.check_invariants();
    }

    #[test]
    fn better_vote_in_same_round_is_adopted_and_rebroadcast() {
        let mut e = voter(2, 5, 1);
        e.start();
        // Worse vote: no change, but tallied, and the peer is told our better proposal.
        let out = e.step(1, looking(1, 5, 1, 1));
        assert!(broadcasts(&out).is_empty());
        assert_eq!(
            out,
            vec![Action::Send {
                to: 1,
                notification: looking(2, 5, 1, 1)
            }]
        );
        assert_eq!(e.recvset[&1].vote.leader, 1);
        assert!(e.finalizing.is_none());
        // Better vote: adopted and sent to everyone.
        let out = e.step(3, looking(3, 5, 1, 1));
        assert_eq!(broadcasts(&out), vec![(3, 5, 1, 1)]);
        assert_eq!(e.proposal().leader, 3);
        assert!(e.finalizing.is_some(), "2 and 3 agree on 3");
        e.check_invariants();
    }

    #[test]
    fn a_vote_missed_while_following_is_answered_not_waited_for() {
        // 2 led, died; 1 and 3 fall back to LOOKING with the same history. 3 was first: its
        // round-2 vote reached 1 while 1 still followed 2, and 1 answered with its old vote.
        let mut three = voter(3, 5, 1);
        let mut one = voter(1, 5, 1);
        three.start();
        one.start();
        three.step(1, looking(3, 5, 1, 1));
        one.step(3, looking(3, 5, 1, 1));
        ticks(&mut three, 3);
        ticks(&mut one, 3);
        three.restart(5, 1);
        let out = three.step(1, state(ServerState::Following, 2, 5, 1, 1));
        assert!(out.is_empty());
        // Now 1 looks too, in the same round, proposing itself: 3 answers at once.
        let out = one.restart(5, 1);
        assert_eq!(broadcasts(&out), vec![(1, 5, 2, 1)]);
        let out = three.step(1, looking(1, 5, 2, 1));
        assert_eq!(
            out,
            vec![Action::Send {
                to: 1,
                notification: looking(3, 5, 2, 1)
            }]
        );
        // 1 adopts 3 and tells everyone; 3 then has a quorum and only the finalize wait.
        let out = one.step(3, looking(3, 5, 2, 1));
        assert_eq!(broadcasts(&out), vec![(3, 5, 2, 1)]);
        assert!(three.step(1, looking(3, 5, 2, 1)).is_empty());
        assert_eq!(
            decided(&ticks(&mut three, 3)),
            Some((3, ServerState::Leading))
        );
        assert_eq!(
            decided(&ticks(&mut one, 3)),
            Some((3, ServerState::Following))
        );
    }

    #[test]
    fn higher_round_resets_tally_and_revotes_best_of_theirs_and_own() {
        let mut e = voter(3, 5, 1);
        e.start();
        e.step(2, looking(2, 5, 1, 1));
        // Round 4 proposing a worse candidate: adopt the round, re-vote for ourselves.
        let out = e.step(1, looking(1, 5, 4, 1));
        assert_eq!(e.logical_clock(), 4);
        assert_eq!(broadcasts(&out), vec![(3, 5, 4, 1)]);
        assert!(!e.recvset.contains_key(&2), "tally of round 1 dropped");
        assert_eq!(e.recvset[&1].vote.election_epoch, 4);
        // Round 5 proposing a better candidate: adopt both.
        let out = e.step(1, looking(2, 6, 5, 1));
        assert_eq!(broadcasts(&out), vec![(2, 6, 5, 1)]);
        e.check_invariants();
    }

    #[test]
    fn lower_round_gets_our_vote_back_and_is_not_counted() {
        let mut e = voter(3, 5, 1);
        e.start();
        e.step(1, looking(1, 5, 3, 1)); // now round 3
        let out = e.step(2, looking(2, 9, 1, 1));
        assert_eq!(
            out,
            vec![Action::Send {
                to: 2,
                notification: looking(3, 5, 3, 1)
            }]
        );
        assert!(!e.recvset.contains_key(&2));
    }

    #[test]
    fn quorum_then_finalize_wait_then_decide() {
        let mut e = voter(3, 5, 1);
        e.start();
        e.step(1, looking(3, 5, 1, 1));
        assert!(e.finalizing.is_some(), "2 of 3 agree");
        assert_eq!(decided(&ticks(&mut e, 2)), None);
        assert_eq!(decided(&ticks(&mut e, 1)), Some((3, ServerState::Leading)));
        assert_eq!(e.current_vote(), e.proposal());
        e.check_invariants();
    }

    #[test]
    fn finalize_wait_restarts_on_worse_and_ends_on_better() {
        let mut e = voter(1, 5, 1);
        e.start();
        e.step(2, looking(2, 5, 1, 1)); // adopt 2: 1 and 2 agree
        assert!(e.finalizing.is_some());
        ticks(&mut e, 2);
        e.step(3, looking(2, 5, 1, 1)); // not better: dropped, the wait starts over
        assert!(!e.recvset.contains_key(&3));
        assert_eq!(decided(&ticks(&mut e, 2)), None);
        let out = e.step(3, looking(3, 5, 1, 1)); // better: the wait ends, 3 is adopted
        assert_eq!(broadcasts(&out), vec![(3, 5, 1, 1)]);
        assert_eq!(e.proposal().leader, 3);
        assert!(e.finalizing.is_some(), "1 and 3 now agree on 3");
        assert_eq!(
            decided(&ticks(&mut e, 3)),
            Some((3, ServerState::Following))
        );
        e.check_invariants();
    }

    #[test]
    fn resend_backoff_doubles_to_the_cap() {
        let mut e = Election::new(1, [1, 2, 3], [], 0, 0).with_config(CFG);
        e.start();
        let mut sent_at = Vec::new();
        for t in 1..=40 {
            if !broadcasts(&e.tick()).is_empty() {
                sent_at.push(t);
            }
        }
        // Intervals 2, 4, 8, 8, ... (the loopback copy resets the wait each time).
        assert_eq!(sent_at, vec![2, 6, 14, 22, 30, 38]);
    }

    #[test]
    fn decided_server_answers_looking_peers_with_its_decision() {
        let mut e = voter(3, 5, 1);
        e.start();
        e.step(1, looking(3, 5, 1, 1));
        ticks(&mut e, 3);
        e.update_election_vote(2);
        let out = e.step(2, looking(2, 9, 1, 1));
        assert_eq!(
            out,
            vec![Action::Send {
                to: 2,
                notification: state(ServerState::Leading, 3, 5, 1, 2)
            }]
        );
        // Non-LOOKING notifications get no answer.
        assert!(e
            .step(2, state(ServerState::Following, 3, 5, 1, 2))
            .is_empty());
    }

    #[test]
    fn observers_get_answers_and_are_never_counted() {
        let mut e = voter(3, 5, 1);
        e.start();
        let out = e.step(4, looking(3, 5, 1, 1));
        assert!(matches!(&out[..], [Action::Send { to: 4, .. }]));
        assert!(!e.recvset.contains_key(&4));
        assert!(
            e.finalizing.is_none(),
            "an observer's agreement is no quorum"
        );
    }

    #[test]
    fn observer_votes_for_nobody_and_decides_observing() {
        let mut o = Election::new(4, [1, 2, 3], [4], 0, 0).with_config(CFG);
        let out = o.start();
        assert_eq!(broadcasts(&out), vec![(NO_VOTE, NO_VOTE, 1, NO_VOTE)]);
        assert!(o.recvset.is_empty(), "no loopback for observers");
        o.step(1, looking(3, 5, 1, 1));
        o.step(2, looking(3, 5, 1, 1));
        assert!(o.finalizing.is_some());
        assert_eq!(
            decided(&ticks(&mut o, 3)),
            Some((3, ServerState::Observing))
        );
        o.check_invariants();
    }

    #[test]
    fn joins_established_leader_once_a_quorum_follows_it_and_it_leads() {
        let mut e = voter(1, 5, 1);
        e.start();
        // Followers and leader are at round 7, we are at round 1: out of election.
        let out = e.step(2, state(ServerState::Following, 3, 5, 7, 2));
        assert_eq!(decided(&out), None);
        let out = e.step(3, state(ServerState::Following, 3, 5, 7, 2));
        assert_eq!(decided(&out), None, "3 has not said it leads");
        let out = e.step(3, state(ServerState::Leading, 3, 5, 7, 2));
        assert_eq!(decided(&out), Some((3, ServerState::Following)));
        assert_eq!(e.logical_clock(), 7, "adopts the leader's round");
        e.check_invariants();
    }

    #[test]
    fn out_of_election_votes_must_agree_on_the_epoch() {
        let mut e = voter(1, 5, 1);
        e.start();
        e.step(2, state(ServerState::Following, 3, 5, 7, 1));
        let out = e.step(3, state(ServerState::Leading, 3, 5, 7, 2));
        assert_eq!(decided(&out), None, "epochs 1 and 2 differ");
    }

    #[test]
    fn same_round_following_notifications_count_with_looking_ones() {
        let mut e = voter(1, 5, 1);
        e.start();
        let out = e.step(3, state(ServerState::Leading, 3, 5, 1, 1));
        assert_eq!(decided(&out), None);
        let out = e.step(2, state(ServerState::Following, 3, 5, 1, 1));
        assert_eq!(decided(&out), Some((3, ServerState::Following)));
    }

    #[test]
    fn unknown_zxid_is_ignored() {
        let mut e = voter(1, ZXID_UNKNOWN, 0);
        e.start();
        e.step(2, looking(2, 5, 1, 1));
        assert_eq!(e.proposal().leader, 1);
        let mut e = voter(1, 5, 1);
        e.start();
        e.step(2, looking(2, ZXID_UNKNOWN, 1, 1));
        assert!(!e.recvset.contains_key(&2));
    }

    #[test]
    fn votes_for_non_voters_are_ignored() {
        let mut e = voter(1, 5, 1);
        e.start();
        e.step(2, looking(4, 99, 1, 9));
        assert_eq!(e.proposal().leader, 1);
        assert!(!e.recvset.contains_key(&2));
    }

    #[test]
    fn restart_keeps_the_clock_and_votes_anew() {
        let mut e = voter(3, 5, 1);
        e.start();
        e.step(1, looking(3, 5, 1, 1));
        ticks(&mut e, 3);
        let out = e.restart(0x2_0000_0001, 2);
        assert_eq!(broadcasts(&out), vec![(3, 0x2_0000_0001, 2, 2)]);
        assert_eq!(e.state(), ServerState::Looking);
        e.check_invariants();
    }

    #[test]
    fn ticks_to_ms() {
        let c = ElectionConfig::from_tick_ms(30);
        assert_eq!(c.finalize_wait_ticks, 7);
        assert_eq!(c.notification_interval_max_ticks, 2000);
        assert_eq!(ElectionConfig::from_tick_ms(0).finalize_wait_ticks, 200);
    }
}

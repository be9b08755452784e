//! Differential check against a real Apache ZooKeeper 3.8.0 ensemble (3 voters, 1 observer;
//! capture in `crates/proto/tests/fixtures/quorum/`): for every server process, an
//! [`Election`] replays the notifications that process received, decoded with
//! corral-proto's codec and at the times they arrived, and must reach the decision the real
//! server reported (`srvr` mode) after every phase: a fresh start, the leader stopping, the
//! old leader rejoining as a follower, and a restart of all with one server behind.

#[path = "../../proto/tests/fixtures/quorum/capture.rs"]
mod capture;

use corral_proto::quorum::{Notification, ServerState, Sid};
use corral_zab::election::{Action, Election, ElectionConfig, NO_VOTE};
use std::collections::BTreeMap;

const TICK_US: u64 = 10_000;
const VOTERS: [Sid; 3] = [1, 2, 3];
const OBSERVERS: [Sid; 1] = [4];

enum Event {
    Mark(String),
    Message(capture::ElectionMessage),
    Time(u64),
}

struct Replay {
    election: Election,
    ticked_to_us: u64,
    decisions: Vec<(Sid, ServerState)>,
}

impl Replay {
    fn advance(&mut self, now_us: u64) {
        while self.ticked_to_us + TICK_US <= now_us {
            self.ticked_to_us += TICK_US;
            let actions = self.election.tick();
            self.note(&actions);
        }
    }

    fn note(&mut self, actions: &[Action]) {
        for a in actions {
            if let Action::Decided { leader, state } = a {
                self.decisions.push((*leader, *state));
            }
        }
        self.election.check_invariants();
    }
}

fn own_vote(sid: Sid, n: &Notification) -> bool {
    let own_leader = if VOTERS.contains(&sid) { sid } else { NO_VOTE };
    n.state == ServerState::Looking && n.leader == own_leader
}

#[test]
fn replayed_elections_decide_what_the_real_servers_decided() {
    let cap = capture::parse(capture::ENSEMBLE_3_8_0);
    let mut events: BTreeMap<(usize, usize), Event> = BTreeMap::new();
    for m in &cap.marks {
        events.insert((m.line, 0), Event::Mark(m.text.clone()));
    }
    for c in &cap.chunks {
        events.insert((c.line, 0), Event::Time(c.t_us));
    }
    let messages = capture::election_messages(&cap);
    for (i, m) in messages.iter().enumerate() {
        events.insert((m.line, 1 + i), Event::Message(m.clone()));
    }

    let mut running: BTreeMap<Sid, Option<Replay>> = BTreeMap::new();
    let mut modes: Vec<(Sid, String)> = Vec::new();
    let mut now_us = 0;
    let mut checked = 0;
    let mut restarts = 0;
    // A server's own vote (its zxid and epoch) is the first thing it sends of itself.
    let mut first_vote: BTreeMap<(Sid, usize), (i64, i64)> = BTreeMap::new();
    for m in &cap.marks {
        let Some(sid) = m.text.strip_prefix("note started ") else {
            continue;
        };
        let sid: Sid = sid.split(' ').next().unwrap().parse().unwrap();
        let n = messages
            .iter()
            .filter(|x| x.from == sid && x.line > m.line)
            .map(|x| Notification::decode(&x.payload).unwrap())
            .find(|n| own_vote(sid, n))
            .expect("the server voted");
        first_vote.insert((sid, m.line), (n.zxid, n.peer_epoch));
    }
    for ((line, _), event) in events {
        let t = match &event {
            Event::Time(t) => *t,
            Event::Message(m) => m.t_us,
            Event::Mark(_) => now_us,
        };
        now_us = now_us.max(t);
        for r in running.values_mut().flatten() {
            r.advance(now_us);
        }
        match event {
            Event::Time(_) => {}
            Event::Message(m) => {
                let n = Notification::decode(&m.payload).expect("captured notification decodes");
                // A decided sender that sends its own vote of a later round fell back to
                // LOOKING.
                if let Some(Some(r)) = running.get_mut(&m.from) {
                    if own_vote(m.from, &n)
                        && r.election.state() != ServerState::Looking
                        && n.election_epoch > r.election.logical_clock()
                    {
                        let (zxid, epoch) = if VOTERS.contains(&m.from) {
                            (n.zxid, n.peer_epoch)
                        } else {
                            (0, 0)
                        };
                        let actions = r.election.restart(zxid, epoch);
                        r.note(&actions);
                        restarts += 1;
                    }
                }
                if let Some(Some(r)) = running.get_mut(&m.to) {
                    let actions = r.election.step(m.from, n);
                    r.note(&actions);
                }
            }
            Event::Mark(text) => {
                let words: Vec<&str> = text.split(' ').collect();
                match words[..] {
                    ["note", "started", sid, ..] => {
                        let sid: Sid = sid.parse().unwrap();
                        let (zxid, epoch) = first_vote[&(sid, line)];
                        let mut e = Election::new(sid, VOTERS, OBSERVERS, zxid, epoch)
                            .with_config(ElectionConfig::from_tick_ms(TICK_US / 1000));
                        let mut r = Replay {
                            ticked_to_us: now_us,
                            decisions: Vec::new(),
                            election: {
                                e.start();
                                e
                            },
                        };
                        r.note(&[]);
                        running.insert(sid, Some(r));
                    }
                    ["note", "stopped", sid] => {
                        running.remove(&sid.parse::<Sid>().unwrap());
                    }
                    ["mode", sid, mode] => modes.push((sid.parse().unwrap(), mode.to_owned())),
                    _ => {}
                }
                if !text.starts_with("mode") && !modes.is_empty() {
                    // A group of `mode` lines ended: compare every server's replay with it.
                    let leader = modes
                        .iter()
                        .find(|(_, m)| m == "leader")
                        .expect("a leader")
                        .0;
                    for (sid, mode) in modes.drain(..) {
                        let r = running
                            .get_mut(&sid)
                            .and_then(|r| r.as_mut())
                            .unwrap_or_else(|| panic!("no replay of {sid}"));
                        let want = match mode.as_str() {
                            "leader" => ServerState::Leading,
                            "follower" => ServerState::Following,
                            "observer" => ServerState::Observing,
                            m => panic!("mode {m}"),
                        };
                        assert_eq!(
                            (r.election.current_vote().leader, r.election.state()),
                            (leader, want),
                            "server {sid} before `{text}`: decisions {:?}",
                            r.decisions
                        );
                        checked += 1;
                    }
                }
            }
        }
    }
    eprintln!("{checked} decisions compared, {restarts} fallbacks replayed");
    assert!(checked >= 15, "only {checked} decisions compared");
    assert!(
        restarts >= 3,
        "only {restarts} fallbacks to LOOKING replayed"
    );
}

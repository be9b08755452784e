//! The servers of one `--compare` side: one standalone server, or a replicated ensemble of
//! voters (and observers) on 127.0.0.1.
//!
//! Owns: the ensemble's configuration (one directory per member with `data/myid` and a
//! `zoo.cfg` holding the common settings of [`crate::compare::zoo_cfg`] plus the same
//! `server.N=127.0.0.1:quorum:election[:observer];127.0.0.1:client` lines for every member,
//! `standaloneEnabled=false` and `reconfigEnabled=false`, as `tests/ensemble.py` and
//! `corral_client::testing::TestEnsemble` write them), the launch of every member from the
//! side's command template, the bounded wait until every member serves in a quorum role
//! with exactly one leader, and the per-member views the report needs (connect strings,
//! PIDs, resident memory, modes).
//!
//! Invariants: every started member is a [`ServerProc`], killed by its PID when the cluster
//! is stopped or dropped (also when the start fails half-way, on error and on Ctrl-C); all
//! ports are distinct and on 127.0.0.1.
//!
//! Threading: synchronous; called from the compare loop's thread.

use crate::args::Compare;
use crate::compare::{free_port, fresh_dir, substitute, zoo_cfg_with, ServerProc};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Poll interval while waiting for the members to elect a leader.
const MODE_POLL: Duration = Duration::from_millis(100);
/// Attempts at drawing distinct free ports for one ensemble.
const PORT_DRAWS_MAX: usize = 1_000;

/// Ports of one ensemble member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemberPorts {
    pub client: u16,
    pub quorum: u16,
    pub election: u16,
}

/// The `zoo.cfg` keys an ensemble member gets beyond the common ones: the `server.N` line of
/// every member (myid = index + 1; observers after the voters), and the settings that make
/// a quorum of any size run the quorum code without dynamic reconfiguration.
pub fn ensemble_keys(ports: &[MemberPorts], voters: usize, me: usize) -> Vec<(String, String)> {
    let mut kv = vec![
        ("standaloneEnabled".to_owned(), "false".to_owned()),
        ("reconfigEnabled".to_owned(), "false".to_owned()),
    ];
    if me >= voters {
        kv.push(("peerType".into(), "observer".into()));
    }
    for (i, p) in ports.iter().enumerate() {
        kv.push((
            format!("server.{}", i + 1),
            format!(
                "127.0.0.1:{}:{}{};127.0.0.1:{}",
                p.quorum,
                p.election,
                if i >= voters { ":observer" } else { "" },
                p.client
            ),
        ));
    }
    kv
}

/// `3 * n` distinct free ports on 127.0.0.1, as `n` members' ports.
fn member_ports(n: usize) -> Result<Vec<MemberPorts>, String> {
    let mut ports: Vec<u16> = Vec::with_capacity(3 * n);
    for _ in 0..PORT_DRAWS_MAX {
        if ports.len() == 3 * n {
            break;
        }
        let p = free_port()?;
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    if ports.len() < 3 * n {
        return Err(format!("could not find {} distinct free ports", 3 * n));
    }
    Ok(ports
        .chunks(3)
        .map(|c| MemberPorts {
            client: c[0],
            quorum: c[1],
            election: c[2],
        })
        .collect())
}

/// One member's identity, for reports.
#[derive(Clone, Debug)]
pub struct MemberInfo {
    pub myid: u64,
    pub client_port: u16,
    pub pid: Option<u32>,
    pub observer: bool,
    /// `srvr`'s mode when the run started (leader, follower, observer, standalone).
    pub mode: String,
}

/// One side's servers.
#[derive(Debug)]
pub struct Cluster {
    pub label: String,
    /// One member for a standalone server; else voters first, then observers.
    pub members: Vec<ServerProc>,
    pub voters: usize,
    pub observers: usize,
    /// Modes when the run started, per member (empty for a standalone server).
    pub start_modes: Vec<String>,
    /// The ensemble's own directory (holding the members'), removed on drop unless kept.
    dir: Option<PathBuf>,
    keep: bool,
}

impl Cluster {
    /// Starts what `c` asks for: an ensemble when `c.voters > 0`, else one standalone
    /// server, and waits until it serves.
    pub fn launch(
        label: &str,
        template: &str,
        c: &Compare,
        stop: &AtomicBool,
    ) -> Result<Cluster, String> {
        if c.voters == 0 {
            let server = ServerProc::launch(label, template, c, stop)?;
            return Ok(Cluster {
                label: label.to_owned(),
                members: vec![server],
                voters: 0,
                observers: 0,
                start_modes: Vec::new(),
                dir: None,
                keep: c.keep,
            });
        }
        let n = c.voters + c.observers;
        let dir = fresh_dir(c, label);
        std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let mut cl = Cluster {
            label: label.to_owned(),
            members: Vec::with_capacity(n),
            voters: c.voters,
            observers: c.observers,
            start_modes: Vec::new(),
            dir: Some(dir.clone()),
            keep: c.keep,
        };
        // `cl` owns every member started so far: an early return drops it, which kills
        // them.
        let ports = member_ports(n)?;
        for (i, p) in ports.iter().enumerate() {
            let myid = i as u64 + 1;
            let mdir = dir.join(format!("m{myid}"));
            let data = mdir.join("data");
            std::fs::create_dir_all(&data)
                .map_err(|e| format!("create {}: {e}", data.display()))?;
            std::fs::write(data.join("myid"), format!("{myid}\n"))
                .map_err(|e| format!("write myid in {}: {e}", data.display()))?;
            let cfg = mdir.join("zoo.cfg");
            let text = zoo_cfg_with(
                &data,
                p.client,
                &ensemble_keys(&ports, c.voters, i),
                &c.cfg_lines,
            );
            std::fs::write(&cfg, text).map_err(|e| format!("write {}: {e}", cfg.display()))?;
            let command = substitute(template, &cfg, p.client, &mdir, Some(myid));
            let m = ServerProc::spawn(
                &format!("{label} m{myid}"),
                &command,
                p.client,
                mdir,
                c.keep,
            )?;
            cl.members.push(m);
        }
        cl.wait_quorum(Instant::now() + c.start_timeout, stop)?;
        let leader = cl.leader().map(|i| i + 1).unwrap_or(0);
        eprintln!(
            "{label}: ensemble of {} voters and {} observers serving, leader myid {leader}, \
             version {}",
            cl.voters,
            cl.observers,
            cl.version()
        );
        Ok(cl)
    }

    /// Waits until every member serves as leader, follower or observer, with one leader.
    fn wait_quorum(&mut self, deadline: Instant, stop: &AtomicBool) -> Result<(), String> {
        loop {
            let mut modes = Vec::with_capacity(self.members.len());
            for m in &mut self.members {
                m.check_running("during startup")?;
                let mode = m.read_srvr();
                if mode.as_deref() == Some("standalone") {
                    return Err(format!(
                        "{} runs standalone although its zoo.cfg lists an ensemble (for \
                         ZooKeeper, launch org.apache.zookeeper.server.quorum.QuorumPeerMain, \
                         not ZooKeeperServerMain)",
                        m.label
                    ));
                }
                modes.push(mode);
            }
            let serving = modes
                .iter()
                .all(|m| matches!(m.as_deref(), Some("leader" | "follower" | "observer")));
            let leaders = modes
                .iter()
                .filter(|m| m.as_deref() == Some("leader"))
                .count();
            if serving && leaders == 1 {
                self.start_modes = modes.into_iter().flatten().collect();
                return Ok(());
            }
            if stop.load(Ordering::Relaxed) {
                return Err("interrupted".into());
            }
            if Instant::now() > deadline {
                let logs: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("=== {}\n{}", m.label, m.log_tail()))
                    .collect();
                return Err(format!(
                    "{}: the ensemble did not serve in time (modes {modes:?}); logs:\n{}",
                    self.label,
                    logs.join("\n")
                ));
            }
            std::thread::sleep(MODE_POLL);
        }
    }

    pub fn is_ensemble(&self) -> bool {
        self.voters > 0
    }

    /// Index of the member that was leader when the run started.
    pub fn leader(&self) -> Option<usize> {
        self.start_modes.iter().position(|m| m == "leader")
    }

    /// The version the first member reports.
    pub fn version(&self) -> String {
        self.members
            .first()
            .map(|m| m.version.clone())
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| "unknown".into())
    }

    /// The launch command of the first member (the others differ only in paths and port).
    pub fn command(&self) -> String {
        self.members
            .first()
            .map(|m| m.command.clone())
            .unwrap_or_default()
    }

    /// One connect string per member, in member order.
    pub fn connect_strings(&self) -> Vec<String> {
        self.members.iter().map(|m| m.connect_string()).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.members.iter().filter_map(|m| m.pid()).collect()
    }

    pub fn members_info(&self) -> Vec<MemberInfo> {
        if !self.is_ensemble() {
            return Vec::new();
        }
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| MemberInfo {
                myid: i as u64 + 1,
                client_port: m.port,
                pid: m.pid(),
                observer: i >= self.voters,
                mode: self.start_modes.get(i).cloned().unwrap_or_default(),
            })
            .collect()
    }

    /// Resident memory of each member, KiB.
    pub fn rss_kib(&self) -> Vec<Option<u64>> {
        self.members.iter().map(|m| m.rss_kib()).collect()
    }

    /// Each member's current `srvr` mode (empty for a standalone server).
    pub fn modes(&mut self) -> Vec<Option<String>> {
        if !self.is_ensemble() {
            return Vec::new();
        }
        self.members.iter_mut().map(|m| m.read_srvr()).collect()
    }

    /// `Err` with the log's tail if any member has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        for m in &mut self.members {
            m.check_running("during the run")?;
        }
        Ok(())
    }

    /// Kills every member by its PID.
    pub fn stop(&mut self) {
        for m in &mut self.members {
            m.stop();
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Members first (each kills its process and removes its own directory).
        self.members.clear();
        if let Some(dir) = &self.dir {
            if self.keep {
                eprintln!("{}: kept {}", self.label, dir.display());
            } else {
                let _ = std::fs::remove_dir_all(dir);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensemble_keys_list_every_member_and_mark_observers() {
        let ports: Vec<MemberPorts> = (0..4)
            .map(|i| MemberPorts {
                client: 2000 + i,
                quorum: 3000 + i,
                election: 4000 + i,
            })
            .collect();
        let kv = ensemble_keys(&ports, 3, 1);
        let get = |k: &str| kv.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str());
        assert_eq!(get("standaloneEnabled"), Some("false"));
        assert_eq!(get("reconfigEnabled"), Some("false"));
        assert_eq!(get("peerType"), None, "member 2 votes");
        assert_eq!(get("server.1"), Some("127.0.0.1:3000:4000;127.0.0.1:2000"));
        assert_eq!(
            get("server.4"),
            Some("127.0.0.1:3003:4003:observer;127.0.0.1:2003")
        );
        let obs = ensemble_keys(&ports, 3, 3);
        assert!(obs.contains(&("peerType".into(), "observer".into())));
    }

    #[test]
    fn member_ports_are_distinct() {
        let ports = member_ports(3).unwrap();
        let mut all: Vec<u16> = ports
            .iter()
            .flat_map(|p| [p.client, p.quorum, p.election])
            .collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 9);
    }

    #[test]
    fn an_ensemble_cfg_keeps_the_common_settings_and_overrides() {
        let ports = member_ports(3).unwrap();
        let text = zoo_cfg_with(
            std::path::Path::new("/d"),
            ports[0].client,
            &ensemble_keys(&ports, 3, 0),
            &["tickTime=500".into()],
        );
        assert!(text.contains("forceSync=yes\n"), "{text}");
        assert!(text.contains("tickTime=500\n"), "{text}");
        assert!(text.contains("standaloneEnabled=false\n"), "{text}");
        assert_eq!(text.matches("server.").count(), 3, "{text}");
    }
}

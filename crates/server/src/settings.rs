//! The settings the running server needs, extracted from the validated [`Config`].
//!
//! Kept separate from `Config` so that the shell depends on a small, flat struct with units
//! in every name, and so that tests can build one directly.
//!
//! Host names (client address, every `server.N` line) are resolved here, once, at the edge:
//! the rest of the server only sees [`SocketAddr`]s. A name that does not resolve refuses the
//! config with a message naming the key.

use crate::config::{Config, FourLetterWordWhitelist, HostPort, LearnerType};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// One member of the ensemble, from its `server.N` line, addresses resolved. With
/// `multiAddress.enabled` a line may list several addresses; only the first is used here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumMember {
    /// The `N` of `server.N` (what that server's `myid` holds).
    pub sid: i64,
    /// Where its leader listens for learners (the "2888" port).
    pub quorum_addr: SocketAddr,
    /// Where it listens for election connections (the "3888" port).
    pub election_addr: SocketAddr,
    /// `:observer` on its line: it follows but never votes.
    pub observer: bool,
    /// The `;[host:]port` client part of its line, when given.
    pub client_addr: Option<SocketAddr>,
}

/// The ensemble this server belongs to. Present exactly when ZooKeeper would run the quorum
/// code: more than one participant, or `standaloneEnabled=false`.
///
/// Invariants: `members` is sorted by sid, sids are unique, `my_sid` is one of them, and at
/// least one member is a voter.
#[derive(Debug, Clone, PartialEq)]
pub struct QuorumSettings {
    /// This server's id, from `dataDir/myid`.
    pub my_sid: i64,
    /// Every `server.N` line, voters and observers, sorted by sid, this server included.
    pub members: Vec<QuorumMember>,
    /// `initLimit`: ticks a learner has to connect to the leader and sync.
    pub init_limit_ticks: u32,
    /// `syncLimit`: ticks a learner may stay silent or behind before it is dropped.
    pub sync_limit_ticks: u32,
    /// `cnxTimeout`: connect timeout of election connections.
    pub cnx_timeout_ms: u32,
    /// The text ZooKeeper puts in election notifications and NEWLEADER:
    /// `QuorumMaj.toString()`, i.e. one `server.N=host:quorumPort:electionPort:participant`
    /// (or `:observer`, plus `;clientHost:clientPort` when the line had a client part) line
    /// per member joined by `\n`, then `version=<hex>`, no trailing newline. Byte-identical
    /// to what a 3.8 server with the same config sends (see the test against the capture).
    pub config_text: String,
    /// The config's `version` (hex in files, 0 when absent): what FOLLOWERINFO/OBSERVERINFO
    /// carry as LearnerInfo's `configVersion`, and the `version=` at the end of
    /// `config_text`.
    pub config_version: i64,
    /// `snapshotSizeFactor` (see [`crate::txn_log_sync`]).
    pub snapshot_size_factor: f64,
}

impl QuorumSettings {
    /// This server's own member entry.
    pub fn me(&self) -> &QuorumMember {
        self.member(self.my_sid)
            .expect("QuorumSettings invariant: my_sid is one of the members")
    }

    /// The member with id `sid`, if it is in the ensemble.
    pub fn member(&self, sid: i64) -> Option<&QuorumMember> {
        self.members
            .binary_search_by_key(&sid, |m| m.sid)
            .ok()
            .map(|i| &self.members[i])
    }

    /// The voting members (participants), by sid.
    pub fn voters(&self) -> impl Iterator<Item = &QuorumMember> {
        self.members.iter().filter(|m| !m.observer)
    }

    /// The non-voting members, by sid.
    pub fn observers(&self) -> impl Iterator<Item = &QuorumMember> {
        self.members.iter().filter(|m| m.observer)
    }

    /// Whether this server is an observer.
    pub fn is_observer(&self) -> bool {
        self.me().observer
    }

    /// Whether `sid` is a voting member.
    pub fn is_voter(&self, sid: i64) -> bool {
        self.member(sid).is_some_and(|m| !m.observer)
    }

    /// Votes (or acks) that make a majority of the voters: `voters / 2 + 1`
    /// (`QuorumMaj.containsQuorum`: more than half). Note that ZooKeeper's `zk_quorum_size`
    /// gauge is something else, the number of voters.
    pub fn quorum_size(&self) -> usize {
        self.voters().count() / 2 + 1
    }
}

/// What the client-serving shell needs to run.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    pub client_addr: SocketAddr,
    pub tick_ms: i64,
    pub min_session_timeout_ms: i32,
    pub max_session_timeout_ms: i32,
    /// Per client IP; 0 = unlimited.
    pub max_client_cnxns: usize,
    /// Requests in flight across all connections before the server stops reading.
    pub global_outstanding_limit: usize,
    pub jute_maxbuffer_bytes: usize,
    /// Four-letter words allowed; `None` = all (`*`).
    pub four_letter_whitelist: Option<BTreeSet<String>>,
    pub extended_types_enabled: bool,
    pub skip_acl: bool,
    pub super_digest: Option<String>,
    pub data_dir: PathBuf,
    pub data_log_dir: PathBuf,
    /// The byte ZooKeeper puts at the top of every session id this server creates
    /// (`SessionTrackerImpl.initializeNextSessionId`: `id << 56`): the low 8 bits of `myid`
    /// in an ensemble (so sids 1 and 257 collide, as they do in ZooKeeper, which is why the
    /// config warns about sids above 255), and 1 standalone (`ZooKeeperServer`'s
    /// `createSessionTrackerServerId`).
    pub server_id: u8,
    pub container_check_interval_ms: i64,
    pub container_max_per_minute: usize,
    pub container_max_never_used_ms: i64,
    /// The `conf` four-letter word's text (rendered by the config module).
    pub conf_text: String,
    /// `snapCount`: txns between snapshots (on average 3/4 of this, randomised).
    pub snap_count_txns: u64,
    /// `snapSizeLimitInKb` in bytes; 0 turns the size rule off.
    pub snap_size_limit_bytes: u64,
    /// `preAllocSize` in bytes.
    pub prealloc_bytes: u64,
    /// `forceSync`: fsync the log before acknowledging.
    pub force_sync: bool,
    /// `autopurge.snapRetainCount`.
    pub autopurge_snap_retain_count: usize,
    /// `autopurge.purgeInterval` in hours; 0 = off.
    pub autopurge_interval_hours: u64,
    /// The ensemble; `None` standalone.
    pub quorum: Option<QuorumSettings>,
}

impl ServerSettings {
    /// Settings for tests: standalone on `addr`, ZooKeeper's defaults.
    pub fn for_tests(addr: SocketAddr, data_dir: PathBuf) -> ServerSettings {
        ServerSettings {
            client_addr: addr,
            tick_ms: 2000,
            min_session_timeout_ms: 4000,
            max_session_timeout_ms: 40000,
            max_client_cnxns: 60,
            global_outstanding_limit: 1000,
            jute_maxbuffer_bytes: corral_proto::frame::JUTE_MAXBUFFER_BYTES_DEFAULT,
            four_letter_whitelist: None,
            extended_types_enabled: true,
            skip_acl: false,
            super_digest: None,
            data_log_dir: data_dir.clone(),
            data_dir,
            server_id: 1,
            container_check_interval_ms: 60_000,
            container_max_per_minute: 10_000,
            container_max_never_used_ms: 0,
            conf_text: String::new(),
            snap_count_txns: 100_000,
            snap_size_limit_bytes: 4 * 1024 * 1024 * 1024,
            prealloc_bytes: 64 * 1024 * 1024,
            force_sync: true,
            autopurge_snap_retain_count: 3,
            autopurge_interval_hours: 0,
            quorum: None,
        }
    }

    /// `srvr` is always allowed, as in ZooKeeper 3.8.
    pub fn four_letter_allowed(&self, cmd: &str) -> bool {
        match &self.four_letter_whitelist {
            None => true,
            Some(set) => cmd == "srvr" || set.contains(cmd),
        }
    }

    /// Builds the settings of a server from a validated config: standalone, or a member of
    /// the ensemble its `server.N` lines and `myid` describe.
    pub fn from_config(cfg: &Config) -> Result<ServerSettings, String> {
        let quorum = quorum_settings(cfg)?;
        let hp = cfg.client_address.as_ref().ok_or_else(|| {
            "clientPort is not set: there is no address to serve clients on".to_string()
        })?;
        let client_key = match (
            &quorum,
            cfg.my_server().and_then(|s| s.client_address.as_ref()),
        ) {
            (Some(q), Some(_)) => format!("server.{}", q.my_sid),
            _ => "clientPortAddress".to_owned(),
        };
        let client_addr = resolve(hp, &client_key)?;
        let server_id = match &quorum {
            // Java's `id << 56` keeps the low byte.
            Some(q) => (q.my_sid & 0xff) as u8,
            None => 1,
        };
        let dir_size = |p: &Path| dir_size_bytes(&p.join("version-2"));
        Ok(ServerSettings {
            client_addr,
            tick_ms: cfg.tick_time_ms as i64,
            min_session_timeout_ms: cfg.min_session_timeout_ms as i32,
            max_session_timeout_ms: cfg.max_session_timeout_ms as i32,
            max_client_cnxns: cfg.max_client_cnxns_per_host as usize,
            global_outstanding_limit: cfg.global_outstanding_limit_requests as usize,
            jute_maxbuffer_bytes: cfg.jute_max_buffer_bytes as usize,
            four_letter_whitelist: match &cfg.four_letter_words {
                FourLetterWordWhitelist::All => None,
                FourLetterWordWhitelist::Only(set) => {
                    let mut set = set.clone();
                    if cfg.read_only_mode_enabled {
                        set.insert("isro".into());
                    }
                    Some(set)
                }
            },
            extended_types_enabled: cfg.extended_types_enabled,
            skip_acl: cfg.skip_acl,
            super_digest: cfg.super_digest.as_ref().map(|d| d.id()),
            data_dir: cfg.data_dir.clone(),
            data_log_dir: cfg.data_log_dir.clone(),
            server_id,
            container_check_interval_ms: cfg.container.check_interval_ms as i64,
            container_max_per_minute: cfg.container.max_per_minute as usize,
            container_max_never_used_ms: cfg.container.max_never_used_interval_ms as i64,
            conf_text: cfg.conf_text(dir_size(&cfg.data_dir), dir_size(&cfg.data_log_dir)),
            snap_count_txns: cfg.snap_count_txns as u64,
            snap_size_limit_bytes: cfg.snap_size_limit_kb.unwrap_or(0).saturating_mul(1024),
            prealloc_bytes: cfg.pre_alloc_size_kb.saturating_mul(1024),
            force_sync: cfg.force_sync,
            autopurge_snap_retain_count: cfg.autopurge_snap_retain_count as usize,
            autopurge_interval_hours: cfg.autopurge_purge_interval_hours as u64,
            quorum,
        })
    }
}

/// Resolves `hp` (named `key` in errors) to one socket address, preferring IPv4 as Java's
/// `InetAddress.getByName` does by default.
fn resolve(hp: &HostPort, key: &str) -> Result<SocketAddr, String> {
    let host = if hp.host.is_empty() {
        "0.0.0.0"
    } else {
        hp.host.trim_start_matches('[').trim_end_matches(']')
    };
    let addrs: Vec<SocketAddr> = (host, hp.port)
        .to_socket_addrs()
        .map_err(|e| format!("{key}: cannot resolve address {hp}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("{key}: address {hp} resolves to nothing"))
}

/// The ensemble part of the settings; `None` when ZooKeeper would run standalone.
/// [`Config`] has already checked what `QuorumPeerConfig` checks (limits set, `myid`
/// present and naming a server line, peer type); this re-checks what the quorum code relies
/// on, with ZooKeeper's wording first, so a hand-built `Config` cannot slip through.
fn quorum_settings(cfg: &Config) -> Result<Option<QuorumSettings>, String> {
    if cfg.is_standalone() {
        return Ok(None);
    }
    if !cfg.groups.is_empty() || !cfg.weights.is_empty() {
        return Err("hierarchical quorums (group.N / weight.N lines) are not supported by corral: use plain majority quorums".into());
    }
    let known = || {
        cfg.servers
            .iter()
            .map(|s| s.id.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(my_id) = cfg.server_id else {
        return Err(format!(
            "myid file is missing: {} must hold this server's id (one of {})",
            cfg.myid_path().display(),
            known()
        ));
    };
    if cfg.server(my_id).is_none() {
        return Err(format!(
            "My id {my_id} not in the peer list: {} names no server.N line (servers: {})",
            cfg.myid_path().display(),
            known()
        ));
    }
    if cfg.init_limit_ticks == 0 {
        return Err("initLimit is not set".into());
    }
    if cfg.sync_limit_ticks == 0 {
        return Err("syncLimit is not set".into());
    }
    let sid = |id: u64| {
        i64::try_from(id)
            .map_err(|_| format!("server.{id}: the id does not fit in a signed 64-bit number"))
    };
    let mut members = Vec::with_capacity(cfg.servers.len());
    for spec in &cfg.servers {
        let key = format!("server.{}", spec.id);
        members.push(QuorumMember {
            sid: sid(spec.id)?,
            quorum_addr: resolve(&spec.quorum_address(), &key)?,
            election_addr: resolve(&spec.election_address(), &key)?,
            observer: spec.learner_type == LearnerType::Observer,
            client_addr: match &spec.client_address {
                Some(hp) => Some(resolve(hp, &key)?),
                None => None,
            },
        });
    }
    members.sort_by_key(|m| m.sid);
    Ok(Some(QuorumSettings {
        my_sid: sid(my_id)?,
        members,
        init_limit_ticks: cfg.init_limit_ticks,
        sync_limit_ticks: cfg.sync_limit_ticks,
        cnx_timeout_ms: cfg.cnx_timeout_ms,
        config_text: cfg.membership_text(),
        config_version: i64::try_from(cfg.quorum_config_version).map_err(|_| {
            format!(
                "version={:x} does not fit in a signed 64-bit number",
                cfg.quorum_config_version
            )
        })?,
        snapshot_size_factor: cfg.snapshot_size_factor,
    }))
}

fn dir_size_bytes(p: &Path) -> u64 {
    std::fs::read_dir(p)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Reads `zoo.cfg` (or takes the embedded default), logs its warnings, creates the data
/// directories, and returns the settings. Errors name the key or file at fault.
pub fn load(path: Option<&Path>) -> Result<ServerSettings, String> {
    let cfg = match path {
        Some(p) => Config::from_file(p).map_err(|e| e.to_string())?,
        None => Config::embedded_default(),
    };
    cfg.log_warnings();
    for dir in [cfg.snap_dir(), cfg.txn_log_dir()] {
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    }
    let settings = ServerSettings::from_config(&cfg)?;
    Ok(settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch data directory (removed on drop).
    struct TempDir(tempfile::TempDir);

    impl TempDir {
        fn new() -> TempDir {
            TempDir(tempfile::tempdir().unwrap())
        }

        fn path(&self) -> &Path {
            self.0.path()
        }

        fn myid(&self, text: &str) {
            std::fs::write(self.path().join("myid"), text).unwrap();
        }
    }

    /// The ensemble of the captured 3.8.0 run (`proto/tests/fixtures/quorum`): voters 1-3
    /// and observer 4 on 127.0.0.1, with the capture's ports.
    fn capture_ensemble(dir: &TempDir, extra: &str) -> String {
        format!(
            "tickTime=200\ninitLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=2181\n\
             server.1=127.0.0.1:59791:57829\n\
             server.2=127.0.0.1:41351:33959\n\
             server.3=127.0.0.1:51503:35635\n\
             server.4=127.0.0.1:35305:56871:observer\n{extra}",
            dir.path().display()
        )
    }

    fn settings(dir: &TempDir, text: &str) -> Result<ServerSettings, String> {
        let cfg = Config::parse_str(text, dir.path()).map_err(|e| e.to_string())?;
        ServerSettings::from_config(&cfg)
    }

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn standalone_has_no_quorum() {
        let dir = TempDir::new();
        let s = settings(
            &dir,
            &format!("dataDir={}\nclientPort=2181\n", dir.path().display()),
        )
        .unwrap();
        assert!(s.quorum.is_none());
        assert_eq!(s.server_id, 1);
        assert_eq!(s.client_addr, addr("0.0.0.0:2181"));
        assert!(
            ServerSettings::for_tests(addr("127.0.0.1:1"), dir.path().to_path_buf())
                .quorum
                .is_none()
        );
    }

    #[test]
    fn three_voters_and_myid() {
        let dir = TempDir::new();
        dir.myid("2\n");
        let s = settings(&dir, &capture_ensemble(&dir, "")).unwrap();
        assert_eq!(s.server_id, 2);
        assert_eq!(s.client_addr, addr("0.0.0.0:2181"));
        let q = s.quorum.as_ref().expect("an ensemble");
        assert_eq!(q.my_sid, 2);
        assert_eq!(
            q.members.iter().map(|m| m.sid).collect::<Vec<_>>(),
            vec![1, 2, 3, 4]
        );
        assert_eq!(
            q.me(),
            &QuorumMember {
                sid: 2,
                quorum_addr: addr("127.0.0.1:41351"),
                election_addr: addr("127.0.0.1:33959"),
                observer: false,
                client_addr: None,
            }
        );
        assert_eq!(q.voters().map(|m| m.sid).collect::<Vec<_>>(), vec![1, 2, 3]);
        assert_eq!(q.observers().map(|m| m.sid).collect::<Vec<_>>(), vec![4]);
        assert!(!q.is_observer());
        assert!(q.is_voter(3) && !q.is_voter(4) && !q.is_voter(9));
        assert_eq!(q.quorum_size(), 2);
        assert_eq!((q.init_limit_ticks, q.sync_limit_ticks), (5, 2));
        assert_eq!(q.cnx_timeout_ms, 5000);
        assert_eq!(q.config_version, 0);
        assert_eq!(s.tick_ms, 200);
    }

    #[test]
    fn observer_member() {
        let dir = TempDir::new();
        dir.myid("4");
        let s = settings(&dir, &capture_ensemble(&dir, "peerType=observer\n")).unwrap();
        let q = s.quorum.unwrap();
        assert!(q.is_observer());
        assert_eq!(q.me().sid, 4);
        assert_eq!(q.me().quorum_addr, addr("127.0.0.1:35305"));
        assert_eq!(q.quorum_size(), 2);
        assert_eq!(s.server_id, 4);
    }

    #[test]
    fn missing_myid_is_refused() {
        let dir = TempDir::new();
        let err = settings(&dir, &capture_ensemble(&dir, "")).unwrap_err();
        assert!(err.starts_with("myid file is missing: "), "{err}");
        // A hand-edited Config that lost its id is refused too, in ZooKeeper's words.
        dir.myid("1");
        let mut cfg = Config::parse_str(&capture_ensemble(&dir, ""), dir.path()).unwrap();
        cfg.server_id = None;
        let err = ServerSettings::from_config(&cfg).unwrap_err();
        assert!(err.starts_with("myid file is missing: "), "{err}");
        assert!(err.ends_with("(one of 1, 2, 3, 4)"), "{err}");
    }

    #[test]
    fn myid_not_among_the_servers_is_refused() {
        let dir = TempDir::new();
        dir.myid("9");
        let err = settings(&dir, &capture_ensemble(&dir, "")).unwrap_err();
        assert!(err.starts_with("My id 9 not in the peer list: "), "{err}");
        dir.myid("1");
        let mut cfg = Config::parse_str(&capture_ensemble(&dir, ""), dir.path()).unwrap();
        cfg.server_id = Some(9);
        let err = ServerSettings::from_config(&cfg).unwrap_err();
        assert!(err.starts_with("My id 9 not in the peer list: "), "{err}");
    }

    #[test]
    fn client_part_of_server_lines() {
        let dir = TempDir::new();
        dir.myid("1");
        let text = format!(
            "initLimit=5\nsyncLimit=2\ndataDir={}\n\
             server.1=127.0.0.1:2888:3888;127.0.0.1:2191\n\
             server.2=127.0.0.2:2888:3888;2192\n\
             server.3=localhost:2888:3888\n",
            dir.path().display()
        );
        let s = settings(&dir, &text).unwrap();
        // No clientPort: my server line's client part is the listener.
        assert_eq!(s.client_addr, addr("127.0.0.1:2191"));
        let q = s.quorum.as_ref().unwrap();
        assert_eq!(q.me().client_addr, Some(addr("127.0.0.1:2191")));
        assert_eq!(q.members[1].client_addr, Some(addr("0.0.0.0:2192")));
        assert_eq!(q.members[2].client_addr, None);
        // Names are resolved here (IPv4 preferred).
        assert_eq!(q.members[2].quorum_addr, addr("127.0.0.1:2888"));
        // The client parts are in the config text, as QuorumServer.toString prints them.
        assert_eq!(
            q.config_text,
            "server.1=127.0.0.1:2888:3888:participant;127.0.0.1:2191\n\
             server.2=127.0.0.2:2888:3888:participant;0.0.0.0:2192\n\
             server.3=localhost:2888:3888:participant\n\
             version=0"
        );
        // A static clientPort that agrees with the line: the line's host wins.
        let s = settings(&dir, &format!("{text}clientPort=2191\n")).unwrap();
        assert_eq!(s.client_addr, addr("127.0.0.1:2191"));
        // ...and one that disagrees is refused (QuorumPeerConfig.setupClientPort).
        let err = settings(&dir, &format!("{text}clientPort=2200\n")).unwrap_err();
        assert!(err.starts_with("client address for server 1"), "{err}");
    }

    #[test]
    fn unresolvable_peer_names_the_line() {
        let dir = TempDir::new();
        dir.myid("1");
        let text = format!(
            "initLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=2181\n\
             server.1=127.0.0.1:2888:3888\nserver.2=no-such-host.invalid:2888:3888\n\
             server.3=127.0.0.3:2888:3888\n",
            dir.path().display()
        );
        let err = settings(&dir, &text).unwrap_err();
        assert!(
            err.starts_with("server.2: cannot resolve address no-such-host.invalid:2888"),
            "{err}"
        );
    }

    #[test]
    fn session_id_byte_is_the_low_byte_of_myid() {
        let dir = TempDir::new();
        dir.myid("257");
        let text = format!(
            "initLimit=5\nsyncLimit=2\ndataDir={}\nclientPort=2181\n\
             server.1=127.0.0.1:2888:3888\nserver.2=127.0.0.2:2888:3888\n\
             server.257=127.0.0.3:2888:3888\n",
            dir.path().display()
        );
        let s = settings(&dir, &text).unwrap();
        assert_eq!(s.quorum.unwrap().my_sid, 257);
        // Java: `id << 56` on a long keeps the low 8 bits.
        assert_eq!(s.server_id, 1);
    }

    #[test]
    fn hierarchical_quorums_are_refused() {
        let dir = TempDir::new();
        dir.myid("1");
        let text = capture_ensemble(&dir, "group.1=1:2:3\n");
        let err = settings(&dir, &text).unwrap_err();
        assert!(err.starts_with("hierarchical quorums"), "{err}");
    }

    /// The config text is byte for byte what ZooKeeper 3.8.0 put in its election
    /// notifications for the same ensemble.
    #[test]
    fn config_text_matches_the_captured_notifications() {
        const CAPTURE: &str = include_str!(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../proto/tests/fixtures/quorum/ensemble-3.8.0.txt"
        ));
        let unhex = |h: &str| -> Vec<u8> {
            (0..h.len() / 2)
                .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).unwrap())
                .collect()
        };
        // Chunk lines: `<t_us> <conn> <kind> <target_sid> <dir> <hex>`; a notification
        // is the payload chunk after its 4-byte length.
        let captured: Vec<Vec<u8>> = CAPTURE
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 6 && f[2] == "election").then(|| unhex(f[5]))
            })
            .filter_map(|bytes| {
                corral_proto::quorum::Notification::decode(&bytes)
                    .ok()
                    .and_then(|n| n.config)
            })
            .map(|c| c.to_vec())
            .collect();
        assert!(captured.len() > 50, "{} notifications", captured.len());
        for sid in 1..=4 {
            let dir = TempDir::new();
            dir.myid(&sid.to_string());
            let s = settings(&dir, &capture_ensemble(&dir, "")).unwrap();
            let text = s.quorum.unwrap().config_text;
            assert_eq!(text.len(), 178);
            for c in &captured {
                assert_eq!(
                    text.as_bytes(),
                    &c[..],
                    "ours:\n{text}\ncaptured:\n{}",
                    String::from_utf8_lossy(c)
                );
            }
        }
    }
}

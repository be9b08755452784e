//! The validated server configuration, built once at the edge from a ZooKeeper `zoo.cfg`.
//!
//! Owns: reading `zoo.cfg` (java.util.Properties syntax, see [`properties`]), the optional
//! dynamic config file and `dataDir/myid`; turning them into a [`Config`] whose every limit
//! is a named field with its unit in the name; the `conf` four-letter-word text
//! ([`Config::conf_text`]). Nothing here is global: the server builds one `Config` in
//! `main` and passes it (or the parts it needs) down.
//!
//! Invariants of a `Config` returned by [`Config::from_file`], [`Config::parse_str`] or
//! [`Config::embedded_default`] (re-checked by [`Config::validate`]):
//! - `tick_time_ms > 0` and `min_session_timeout_ms <= max_session_timeout_ms`;
//! - `data_dir` is set; `data_log_dir` is `data_dir` unless configured;
//! - `servers` is sorted by id, ids are unique, and every spec's quorum and election
//!   ports differ;
//! - when the ensemble is distributed (see [`Config::is_standalone`]): `init_limit_ticks`
//!   and `sync_limit_ticks` are non-zero and `server_id` names one of `servers`;
//! - `peer_type` agrees with this server's own `server.N` line.
//!
//! Unknown keys never fail the parse: they are kept in [`Config::unknown`] and reported in
//! [`Config::warnings`] for the caller to log. Invalid values fail with a [`ConfigError`]
//! naming the key and the value. Nothing here panics on file contents.
//!
//! Threading: plain data, `Send + Sync`; reading happens on the caller's thread.

mod conf;
mod error;
mod parse;
pub mod properties;
mod quorum;

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

pub use error::{ConfigError, ConfigWarning};
pub use quorum::{HostPort, LearnerType, QuorumAddress, QuorumPeerSpec};

/// ZooKeeper's tick when `tickTime` is absent from a file (`ZooKeeperServer.DEFAULT_TICK_TIME`).
pub const DEFAULT_TICK_TIME_MS: u32 = 3000;
/// The tick of [`Config::embedded_default`] (and of ZooKeeper's sample `zoo.cfg`).
pub const EMBEDDED_TICK_TIME_MS: u32 = 2000;
/// Default `jute.maxbuffer`: the largest frame or znode payload accepted.
pub const DEFAULT_JUTE_MAX_BUFFER_BYTES: u32 = 0xfffff;
/// `snapCount` lower bound; smaller values are raised to it, as ZooKeeper does.
pub const SNAP_COUNT_MIN_TXNS: u32 = 2;
/// `autopurge.snapRetainCount` lower bound; smaller values are raised to it.
pub const SNAP_RETAIN_COUNT_MIN: u32 = 3;
/// The class name of ZooKeeper's built-in metrics provider (feeds `mntr`, no HTTP port).
pub const DEFAULT_METRICS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.impl.DefaultMetricsProvider";
/// The class name of ZooKeeper's Prometheus metrics provider (serves `/metrics` over HTTP).
pub const PROMETHEUS_METRICS_PROVIDER: &str =
    "org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider";

/// Every four-letter word ZooKeeper 3.8 knows, as spelled in `4lw.commands.whitelist`.
/// (`telnet close` is the telnet IAC sequence ZooKeeper also recognises.)
pub const FOUR_LETTER_WORDS: &[&str] = &[
    "conf",
    "cons",
    "crst",
    "dirs",
    "dump",
    "envi",
    "gtmk",
    "hash",
    "isro",
    "mntr",
    "ruok",
    "srst",
    "srvr",
    "stat",
    "stmk",
    "wchc",
    "wchp",
    "wchs",
    "telnet close",
];

/// The validated configuration of one corral server. See the module docs for invariants.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The file this was read from; `None` for [`Config::embedded_default`] and
    /// [`Config::parse_str`].
    pub source_path: Option<PathBuf>,
    /// The text of the main config file as read (ZooKeeper's admin `icfg`/
    /// `initial_configuration` command returns it).
    pub initial_config: String,

    // --- time -------------------------------------------------------------------------
    /// `tickTime`: the basic time unit; session expiry buckets and the quorum limits count
    /// in ticks of this length.
    pub tick_time_ms: u32,
    /// `initLimit`: ticks a learner may take to connect to and sync with the leader.
    /// 0 = unset (only allowed standalone).
    pub init_limit_ticks: u32,
    /// `syncLimit`: ticks a learner may lag behind or stay silent. 0 = unset (standalone).
    pub sync_limit_ticks: u32,
    /// `connectToLearnerMasterLimit`: ticks to connect to the leader (or observer master)
    /// after election. 0 = use `init_limit_ticks`.
    pub connect_to_learner_master_limit_ticks: u32,
    /// `minSessionTimeout` (default 2 × tick).
    pub min_session_timeout_ms: u32,
    /// `maxSessionTimeout` (default 20 × tick).
    pub max_session_timeout_ms: u32,
    /// `cnxTimeout`: connect timeout for election connections (default 5000).
    pub cnx_timeout_ms: u32,

    // --- storage ----------------------------------------------------------------------
    /// `dataDir`: holds `myid`, and `version-2/` with snapshots and epoch files.
    pub data_dir: PathBuf,
    /// `dataLogDir`: holds `version-2/log.*` (= `data_dir` when not configured).
    pub data_log_dir: PathBuf,
    /// `snapCount`: txns between snapshots (ZooKeeper randomises the roll point within
    /// [snapCount/2, snapCount]). At least [`SNAP_COUNT_MIN_TXNS`].
    pub snap_count_txns: u32,
    /// `snapSizeLimitInKb`: txn-log bytes since the last snapshot that also trigger one;
    /// `None` when the file value is <= 0 (feature disabled). Default 4 GiB.
    pub snap_size_limit_kb: Option<u64>,
    /// `preAllocSize`: the txn log grows in steps of this many KiB (default 65536).
    pub pre_alloc_size_kb: u64,
    /// `snapshotSizeFactor`: a leader syncs a learner from its txn log when the log files
    /// to read are at most this fraction of its newest snapshot (default 0.33; negative:
    /// never; 0: no limit).
    pub snapshot_size_factor: f64,
    /// `forceSync` (`yes`/`no`): fsync the txn log before acknowledging. Default true.
    pub force_sync: bool,
    /// `autopurge.snapRetainCount`: snapshots (and their logs) kept by the purge task.
    /// At least [`SNAP_RETAIN_COUNT_MIN`].
    pub autopurge_snap_retain_count: u32,
    /// `autopurge.purgeInterval`: hours between purges; 0 = never purge.
    pub autopurge_purge_interval_hours: u32,

    // --- client listener and limits -----------------------------------------------------
    /// Where the plain client listener binds: `clientPortAddress:clientPort`, or this
    /// server's client address from its own `server.N` line. `None` = no plain listener.
    /// Without `clientPortAddress` the host is `0.0.0.0` (ZooKeeper binds the wildcard
    /// address, which in Java also accepts IPv6).
    pub client_address: Option<HostPort>,
    /// `secureClientPortAddress:secureClientPort` (TLS listener). Parsed and stored; `None`
    /// when `secureClientPort` is absent.
    pub secure_client_address: Option<HostPort>,
    /// `clientPortListenBacklog`; `None` = the OS default (ZooKeeper's -1).
    pub client_port_listen_backlog: Option<u32>,
    /// `maxClientCnxns`: concurrent connections per client IP; 0 = unlimited. Default 60.
    pub max_client_cnxns_per_host: u32,
    /// `maxCnxns`: concurrent client connections in total; 0 = unlimited (the default).
    pub max_cnxns: u32,
    /// `globalOutstandingLimit`: queued requests before the server stops reading from
    /// clients. Default 1000.
    pub global_outstanding_limit_requests: u32,
    /// `jute.maxbuffer`: largest request frame / znode data accepted, default 0xfffff.
    pub jute_max_buffer_bytes: u32,
    /// `jute.maxbuffer.extrasize`: slack ZooKeeper adds when deserialising records on
    /// top of `jute_max_buffer_bytes`; default = `jute_max_buffer_bytes`, minimum 1024.
    pub jute_max_buffer_extra_bytes: u32,
    /// `localSessionsEnabled`.
    pub local_sessions_enabled: bool,
    /// `localSessionsUpgradingEnabled`: an ephemeral create upgrades a local session.
    pub local_sessions_upgrading_enabled: bool,
    /// `readonlymode.enabled`: serve read-only clients when the quorum is lost.
    pub read_only_mode_enabled: bool,

    // --- features and security ------------------------------------------------------------
    /// `4lw.commands.whitelist`, as configured. Use [`Config::four_letter_word_enabled`],
    /// which adds the implied `srvr` and `isro`.
    pub four_letter_words: FourLetterWordWhitelist,
    /// `extendedTypesEnabled`: TTL nodes allowed; server ids must then be <= 254.
    pub extended_types_enabled: bool,
    /// `skipACL` (`yes`/`no`): ACL checks off.
    pub skip_acl: bool,
    /// `DigestAuthenticationProvider.superDigest`: the digest identity that passes every
    /// ACL check.
    pub super_digest: Option<SuperDigest>,

    // --- quorum -----------------------------------------------------------------------------
    /// `electionAlg`: always 3 (fast leader election); anything else is refused.
    pub election_alg: u32,
    /// `quorumListenOnAllIPs`: bind quorum and election listeners on the wildcard address.
    pub quorum_listen_on_all_ips: bool,
    /// `standaloneEnabled`: with at most one participant, run standalone (true) or run the
    /// quorum code anyway (false, needed to grow a one-node ensemble by reconfig).
    pub standalone_enabled: bool,
    /// `reconfigEnabled`: allow the `reconfig` operation.
    pub reconfig_enabled: bool,
    /// This server's role: from its own `server.N` line (which overrides `peerType`).
    pub peer_type: LearnerType,
    /// `syncEnabled`: observers log txns and take snapshots like followers. Default true.
    pub sync_enabled: bool,
    /// `observerMasterPort`: followers also serve observers on this port. `None` = off.
    pub observer_master_port: Option<u16>,
    /// `multiAddress.enabled`: allow several `|`-separated addresses per server line.
    pub multi_address_enabled: bool,
    /// `dynamicConfigFile`: where the `server.N` lines came from, when not from `zoo.cfg`.
    pub dynamic_config_file: Option<PathBuf>,
    /// All `server.N` lines, participants and observers, sorted by id.
    pub servers: Vec<QuorumPeerSpec>,
    /// `group.N` values as written (hierarchical quorums), validated: ids are numbers and a
    /// server is in at most one group.
    pub groups: BTreeMap<u64, String>,
    /// `weight.N` values as written, validated as non-negative integers.
    pub weights: BTreeMap<u64, String>,
    /// The `version` of the quorum configuration (hex in files; from the dynamic file's
    /// name suffix when there is one). 0 when absent.
    pub quorum_config_version: u64,
    /// This server's id from `dataDir/myid`; `None` when no `server.N` lines exist or the
    /// file is absent in a standalone setup.
    pub server_id: Option<u64>,

    // --- side listeners -----------------------------------------------------------------------
    /// `admin.*`: the HTTP admin server.
    pub admin: AdminServerConfig,
    /// `metricsProvider.*`.
    pub metrics: MetricsConfig,
    /// `znode.container.*`: the container/TTL reaper.
    pub container: ContainerConfig,

    // --- what was not understood ------------------------------------------------------------------
    /// Keys corral does not recognise, with their values (last occurrence wins).
    pub unknown: BTreeMap<String, String>,
    /// Everything the operator should hear about; see [`Config::log_warnings`].
    pub warnings: Vec<ConfigWarning>,
}

/// The parsed `4lw.commands.whitelist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FourLetterWordWhitelist {
    /// `*` appeared in the list: every command.
    All,
    /// Exactly these (trimmed) names. ZooKeeper's default when the key is absent is
    /// `{"srvr"}`.
    Only(BTreeSet<String>),
}

impl Default for FourLetterWordWhitelist {
    fn default() -> Self {
        FourLetterWordWhitelist::Only(BTreeSet::from(["srvr".to_owned()]))
    }
}

impl FourLetterWordWhitelist {
    /// Parses a comma-separated list, trimming each name; `*` anywhere means all, empty
    /// names are skipped.
    pub fn parse(list: &str) -> FourLetterWordWhitelist {
        let mut names = BTreeSet::new();
        for name in list.split(',').map(properties::java_trim) {
            if name == "*" {
                return FourLetterWordWhitelist::All;
            }
            if !name.is_empty() {
                names.insert(name.to_owned());
            }
        }
        FourLetterWordWhitelist::Only(names)
    }

    /// Whether the list itself names `word` (without the implied `srvr`/`isro`).
    pub fn contains(&self, word: &str) -> bool {
        match self {
            FourLetterWordWhitelist::All => true,
            FourLetterWordWhitelist::Only(names) => names.contains(word),
        }
    }
}

/// `DigestAuthenticationProvider.superDigest=user:BASE64(SHA1(user:password))`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuperDigest {
    pub user: String,
    pub digest: String,
}

impl SuperDigest {
    /// The `digest` scheme id this stands for: `user:digest`.
    pub fn id(&self) -> String {
        format!("{}:{}", self.user, self.digest)
    }
}

/// The HTTP admin server (`admin.*`). ZooKeeper's defaults: enabled on `0.0.0.0:8080`,
/// commands under `/commands`, idle timeout 30000 ms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminServerConfig {
    /// `admin.enableServer`.
    pub enabled: bool,
    /// `admin.serverAddress`.
    pub server_address: String,
    /// `admin.serverPort`.
    pub server_port: u16,
    /// `admin.commandURL`.
    pub command_url: String,
    /// `admin.idleTimeout`.
    pub idle_timeout_ms: u32,
}

impl Default for AdminServerConfig {
    fn default() -> Self {
        AdminServerConfig {
            enabled: true,
            server_address: "0.0.0.0".to_owned(),
            server_port: 8080,
            command_url: "/commands".to_owned(),
            idle_timeout_ms: 30_000,
        }
    }
}

impl AdminServerConfig {
    /// Where the admin server listens, when enabled.
    pub fn listen_address(&self) -> Option<HostPort> {
        self.enabled
            .then(|| HostPort::new(self.server_address.clone(), self.server_port))
    }
}

/// `metricsProvider.*`. As in ZooKeeper, an HTTP metrics endpoint exists only when the
/// provider is the Prometheus one; the default provider only feeds `mntr`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsConfig {
    /// `metricsProvider.className`: [`DEFAULT_METRICS_PROVIDER`] or
    /// [`PROMETHEUS_METRICS_PROVIDER`].
    pub provider_class_name: String,
    /// `metricsProvider.httpHost` (default `0.0.0.0`).
    pub http_host: String,
    /// `metricsProvider.httpPort` (default 7000).
    pub http_port: u16,
    /// `metricsProvider.exportJvmInfo` (default true; corral has no JVM, kept for `conf`
    /// tooling).
    pub export_jvm_info: bool,
    /// Any other `metricsProvider.<name>` keys, by `<name>`.
    pub other: BTreeMap<String, String>,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            provider_class_name: DEFAULT_METRICS_PROVIDER.to_owned(),
            http_host: "0.0.0.0".to_owned(),
            http_port: 7000,
            export_jvm_info: true,
            other: BTreeMap::new(),
        }
    }
}

impl MetricsConfig {
    /// Where the Prometheus endpoint (`/metrics`) listens; `None` with the default provider.
    pub fn http_listen_address(&self) -> Option<HostPort> {
        (self.provider_class_name == PROMETHEUS_METRICS_PROVIDER)
            .then(|| HostPort::new(self.http_host.clone(), self.http_port))
    }
}

/// `znode.container.*`: how the container manager reaps empty containers and expired TTL
/// nodes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerConfig {
    /// `znode.container.checkIntervalMs` (default 60000).
    pub check_interval_ms: u64,
    /// `znode.container.maxPerMinute`: deletions per minute at most (default 10000).
    pub max_per_minute: u32,
    /// `znode.container.maxNeverUsedIntervalMs`: a container that never had children is
    /// deleted after this long; 0 = never (default).
    pub max_never_used_interval_ms: u64,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            check_interval_ms: 60_000,
            max_per_minute: 10_000,
            max_never_used_interval_ms: 0,
        }
    }
}

impl Config {
    /// ZooKeeper's defaults for everything a file leaves out, with `data_dir` set to
    /// `data_dir`. The starting point of the parser; not validated on its own.
    fn zookeeper_defaults(data_dir: PathBuf) -> Config {
        let tick = DEFAULT_TICK_TIME_MS;
        Config {
            source_path: None,
            initial_config: String::new(),
            tick_time_ms: tick,
            init_limit_ticks: 0,
            sync_limit_ticks: 0,
            connect_to_learner_master_limit_ticks: 0,
            min_session_timeout_ms: tick * 2,
            max_session_timeout_ms: tick * 20,
            cnx_timeout_ms: 5000,
            data_log_dir: data_dir.clone(),
            data_dir,
            snap_count_txns: 100_000,
            snap_size_limit_kb: Some(4_194_304),
            pre_alloc_size_kb: 65_536,
            snapshot_size_factor: crate::txn_log_sync::SNAPSHOT_SIZE_FACTOR_DEFAULT,
            force_sync: true,
            autopurge_snap_retain_count: 3,
            autopurge_purge_interval_hours: 0,
            client_address: None,
            secure_client_address: None,
            client_port_listen_backlog: None,
            max_client_cnxns_per_host: 60,
            max_cnxns: 0,
            global_outstanding_limit_requests: 1000,
            jute_max_buffer_bytes: DEFAULT_JUTE_MAX_BUFFER_BYTES,
            jute_max_buffer_extra_bytes: DEFAULT_JUTE_MAX_BUFFER_BYTES,
            local_sessions_enabled: false,
            local_sessions_upgrading_enabled: false,
            read_only_mode_enabled: false,
            four_letter_words: FourLetterWordWhitelist::default(),
            extended_types_enabled: false,
            skip_acl: false,
            super_digest: None,
            election_alg: 3,
            quorum_listen_on_all_ips: false,
            standalone_enabled: true,
            reconfig_enabled: false,
            peer_type: LearnerType::Participant,
            sync_enabled: true,
            observer_master_port: None,
            multi_address_enabled: false,
            dynamic_config_file: None,
            servers: Vec::new(),
            groups: BTreeMap::new(),
            weights: BTreeMap::new(),
            quorum_config_version: 0,
            server_id: None,
            admin: AdminServerConfig::default(),
            metrics: MetricsConfig::default(),
            container: ContainerConfig::default(),
            unknown: BTreeMap::new(),
            warnings: Vec::new(),
        }
    }

    /// The configuration corral runs with when given no file: a standalone server on
    /// `127.0.0.1:2181`, tick 2000 ms, data in `./corral-data` (relative to the working
    /// directory), the default 4lw whitelist (`srvr` only).
    ///
    /// Unlike ZooKeeper's defaults (which files keep), the admin server is disabled and the
    /// metrics provider is the default one (no HTTP port): a developer running corral next
    /// to a ZooKeeper, a web app or a second corral should not collide on 8080 or 7000.
    /// The client listener binds loopback only, for the same reason and because an
    /// unconfigured server should not be reachable from the network.
    pub fn embedded_default() -> Config {
        let tick = EMBEDDED_TICK_TIME_MS;
        let mut config = Config::zookeeper_defaults(PathBuf::from("./corral-data"));
        config.tick_time_ms = tick;
        config.min_session_timeout_ms = tick * 2;
        config.max_session_timeout_ms = tick * 20;
        config.init_limit_ticks = 10;
        config.sync_limit_ticks = 5;
        config.client_address = Some(HostPort::new("127.0.0.1", 2181));
        config.admin.enabled = false;
        config
    }

    /// Reads and validates a `zoo.cfg`. Relative paths inside it (`dataDir`, `dataLogDir`,
    /// `dynamicConfigFile`) are resolved against the current working directory, as
    /// ZooKeeper resolves them.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Config, ConfigError> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base_dir = std::env::current_dir().map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let text = properties::decode(&bytes);
        let mut config = parse::parse(&text, &base_dir)?;
        config.source_path = Some(path.to_owned());
        Ok(config)
    }

    /// Parses and validates `zoo.cfg` text. Relative paths are resolved against
    /// `base_dir`. Reads `dataDir/myid` when there are `server.N` lines, and the dynamic
    /// config file when `dynamicConfigFile` is set.
    pub fn parse_str(text: &str, base_dir: impl AsRef<Path>) -> Result<Config, ConfigError> {
        parse::parse(text, base_dir.as_ref())
    }

    /// Re-checks the cross-field invariants listed in the module docs; for callers that
    /// edit a parsed `Config` (tests picking ports, for instance).
    pub fn validate(&self) -> Result<(), ConfigError> {
        parse::validate(self)
    }

    /// Whether this server runs standalone, as ZooKeeper decides it: no participants, or
    /// exactly one and `standaloneEnabled=true`. Otherwise it runs the quorum code.
    pub fn is_standalone(&self) -> bool {
        self.standalone_enabled && self.participants().count() <= 1
    }

    /// The voting members.
    pub fn participants(&self) -> impl Iterator<Item = &QuorumPeerSpec> {
        self.servers.iter().filter(|s| s.is_participant())
    }

    /// The non-voting members.
    pub fn observers(&self) -> impl Iterator<Item = &QuorumPeerSpec> {
        self.servers.iter().filter(|s| !s.is_participant())
    }

    /// The `server.N` line of a server id.
    pub fn server(&self, id: u64) -> Option<&QuorumPeerSpec> {
        self.servers.iter().find(|s| s.id == id)
    }

    /// This server's own `server.N` line, when it has one.
    pub fn my_server(&self) -> Option<&QuorumPeerSpec> {
        self.server_id.and_then(|id| self.server(id))
    }

    /// Whether a four-letter word may run: listed in `4lw.commands.whitelist` (or `*`),
    /// or `srvr` (ZooKeeper always allows it; `zkServer.sh status` needs it), or `isro`
    /// while read-only mode is enabled (read-only clients probe with it).
    pub fn four_letter_word_enabled(&self, word: &str) -> bool {
        word == "srvr"
            || (word == "isro" && self.read_only_mode_enabled)
            || self.four_letter_words.contains(word)
    }

    /// `dataDir/myid`.
    pub fn myid_path(&self) -> PathBuf {
        self.data_dir.join("myid")
    }

    /// Where snapshots and epoch files live: `dataDir/version-2`.
    pub fn snap_dir(&self) -> PathBuf {
        self.data_dir.join("version-2")
    }

    /// Where txn logs live: `dataLogDir/version-2`.
    pub fn txn_log_dir(&self) -> PathBuf {
        self.data_log_dir.join("version-2")
    }

    /// Sends every warning to `tracing` at WARN level.
    pub fn log_warnings(&self) {
        for warning in &self.warnings {
            tracing::warn!(target: "corral::config", "{warning}");
        }
    }

    /// The text of the `conf` four-letter word, byte for byte as ZooKeeper 3.8 prints it
    /// (`ZooKeeperServer.dumpConf`, plus `QuorumZooKeeperServer.dumpConf` in quorum mode).
    /// The caller measures the directories (ZooKeeper sums file sizes recursively under
    /// the two `version-2` directories) and passes the byte counts.
    pub fn conf_text(&self, data_dir_size_bytes: u64, data_log_size_bytes: u64) -> String {
        conf::conf_text(self, data_dir_size_bytes, data_log_size_bytes)
    }

    /// The membership text ZooKeeper prints after `membership: ` in `conf`, and stores in
    /// the `/zookeeper/config` znode: one `server.N=` line per member, `group.`/`weight.`
    /// lines for hierarchical quorums, then `version=<hex>` (no final newline).
    pub fn membership_text(&self) -> String {
        conf::membership_text(self)
    }
}

//! Tests of the whole `zoo.cfg` → [`Config`] path: every key, defaults, error messages,
//! server lines, `myid`, and the `conf` text against output captured from ZooKeeper 3.8.0.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::*;

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "corral-config-test-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse_str(text, "/base")
}

fn parse_ok(text: &str) -> Config {
    match parse(text) {
        Ok(c) => c,
        Err(e) => panic!("config should parse: {e}\n{text}"),
    }
}

fn parse_err(text: &str) -> String {
    match parse(text) {
        Ok(_) => panic!("config should be refused:\n{text}"),
        Err(e) => e.to_string(),
    }
}

fn has_warning(config: &Config, pred: impl Fn(&ConfigWarning) -> bool) -> bool {
    config.warnings.iter().any(pred)
}

// --- defaults ---------------------------------------------------------------------------------

#[test]
fn defaults_of_a_minimal_file() {
    let c = parse_ok("dataDir=/var/lib/zookeeper\n");
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(c.min_session_timeout_ms, 6000);
    assert_eq!(c.max_session_timeout_ms, 60000);
    assert_eq!(c.init_limit_ticks, 0);
    assert_eq!(c.sync_limit_ticks, 0);
    assert_eq!(c.connect_to_learner_master_limit_ticks, 0);
    assert_eq!(c.cnx_timeout_ms, 5000);
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/zookeeper"));
    assert_eq!(c.data_log_dir, c.data_dir);
    assert_eq!(c.snap_count_txns, 100_000);
    assert_eq!(c.snap_size_limit_kb, Some(4_194_304));
    assert_eq!(c.pre_alloc_size_kb, 65_536);
    assert!(c.force_sync);
    assert_eq!(c.autopurge_snap_retain_count, 3);
    assert_eq!(c.autopurge_purge_interval_hours, 0);
    assert_eq!(c.client_address, None);
    assert_eq!(c.secure_client_address, None);
    assert_eq!(c.client_port_listen_backlog, None);
    assert_eq!(c.max_client_cnxns_per_host, 60);
    assert_eq!(c.max_cnxns, 0);
    assert_eq!(c.global_outstanding_limit_requests, 1000);
    assert_eq!(c.jute_max_buffer_bytes, 0xfffff);
    assert_eq!(c.jute_max_buffer_extra_bytes, 0xfffff);
    assert!(!c.local_sessions_enabled);
    assert!(!c.local_sessions_upgrading_enabled);
    assert!(!c.read_only_mode_enabled);
    assert_eq!(c.four_letter_words, FourLetterWordWhitelist::default());
    assert!(!c.extended_types_enabled);
    assert!(!c.skip_acl);
    assert_eq!(c.super_digest, None);
    assert_eq!(c.election_alg, 3);
    assert!(!c.quorum_listen_on_all_ips);
    assert!(c.standalone_enabled);
    assert!(!c.reconfig_enabled);
    assert_eq!(c.peer_type, LearnerType::Participant);
    assert!(c.sync_enabled);
    assert_eq!(c.observer_master_port, None);
    assert!(!c.multi_address_enabled);
    assert_eq!(c.dynamic_config_file, None);
    assert!(c.servers.is_empty());
    assert_eq!(c.server_id, None);
    assert_eq!(c.quorum_config_version, 0);
    assert_eq!(c.admin, AdminServerConfig::default());
    assert_eq!(
        c.admin.listen_address(),
        Some(HostPort::new("0.0.0.0", 8080))
    );
    assert_eq!(c.admin.command_url, "/commands");
    assert_eq!(c.admin.idle_timeout_ms, 30_000);
    assert_eq!(c.metrics.provider_class_name, DEFAULT_METRICS_PROVIDER);
    assert_eq!(c.metrics.http_port, 7000);
    assert_eq!(c.metrics.http_listen_address(), None);
    assert_eq!(c.container, ContainerConfig::default());
    assert_eq!(c.container.check_interval_ms, 60_000);
    assert_eq!(c.container.max_per_minute, 10_000);
    assert!(c.is_standalone());
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    assert!(c.unknown.is_empty());
    assert_eq!(c.source_path, None);
    assert_eq!(c.initial_config, "dataDir=/var/lib/zookeeper\n");
}

#[test]
fn session_timeouts_follow_tick_unless_set() {
    let c = parse_ok("dataDir=/d\ntickTime=2000\n");
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (4000, 40000)
    );
    let c =
        parse_ok("dataDir=/d\ntickTime=2000\nminSessionTimeout=1000\nmaxSessionTimeout=90000\n");
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (1000, 90000)
    );
    // -1 is ZooKeeper's "use the default".
    let c = parse_ok("dataDir=/d\ntickTime=100\nminSessionTimeout=-1\nmaxSessionTimeout=-1\n");
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (200, 2000)
    );
}

#[test]
fn embedded_default() {
    let c = Config::embedded_default();
    c.validate().unwrap();
    assert!(c.is_standalone());
    assert_eq!(c.client_address, Some(HostPort::new("127.0.0.1", 2181)));
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!(
        (c.min_session_timeout_ms, c.max_session_timeout_ms),
        (4000, 40000)
    );
    assert_eq!(c.data_dir, PathBuf::from("./corral-data"));
    assert_eq!(c.data_log_dir, c.data_dir);
    assert_eq!(c.four_letter_words, FourLetterWordWhitelist::default());
    assert!(c.four_letter_word_enabled("srvr"));
    assert!(!c.four_letter_word_enabled("ruok"));
    assert!(!c.admin.enabled);
    assert_eq!(c.admin.listen_address(), None);
    assert_eq!(c.metrics.http_listen_address(), None);
    assert!(c.warnings.is_empty());
    assert_eq!(c.server_id, None);
}

// --- every key ---------------------------------------------------------------------------------

const EVERY_KEY: &str = r#"
# every key corral understands, none at its default
tickTime=1000
initLimit=7
syncLimit=3
connectToLearnerMasterLimit=9
dataDir=/data/zk
dataLogDir=/logs/zk
clientPort=12181
clientPortAddress=127.0.0.5
secureClientPort=12182
secureClientPortAddress=127.0.0.6
clientPortListenBacklog=128
observerMasterPort=12183
maxClientCnxns=0
maxCnxns=500
minSessionTimeout=1500
maxSessionTimeout=30000
globalOutstandingLimit=2000
snapCount=5000
snapSizeLimitInKb=1024
preAllocSize=1024
autopurge.snapRetainCount=5
autopurge.purgeInterval=24
forceSync=no
4lw.commands.whitelist=stat, ruok ,conf,,isro
extendedTypesEnabled=true
skipACL=yes
DigestAuthenticationProvider.superDigest=super:D/InIHSb7yEEbrWz8b9l71RjZJU=
jute.maxbuffer=0x400000
jute.maxbuffer.extrasize=2048
electionAlg=3
cnxTimeout=7000
quorumListenOnAllIPs=true
localSessionsEnabled=true
localSessionsUpgradingEnabled=TRUE
standaloneEnabled=true
reconfigEnabled=true
peerType=participant
syncEnabled=false
multiAddress.enabled=false
sslQuorum=false
portUnification=false
quorum.auth.enableSasl=false
admin.enableServer=false
admin.serverAddress=127.0.0.1
admin.serverPort=18080
admin.commandURL=/cmds
admin.idleTimeout=1000
metricsProvider.className=org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider
metricsProvider.httpHost=127.0.0.1
metricsProvider.httpPort=17000
metricsProvider.exportJvmInfo=false
metricsProvider.numWorkerThreads=4
readonlymode.enabled=true
znode.container.checkIntervalMs=1000
znode.container.maxPerMinute=50
znode.container.maxNeverUsedIntervalMs=120000
"#;

#[test]
fn every_key() {
    let c = parse_ok(EVERY_KEY);
    assert_eq!(c.tick_time_ms, 1000);
    assert_eq!(c.init_limit_ticks, 7);
    assert_eq!(c.sync_limit_ticks, 3);
    assert_eq!(c.connect_to_learner_master_limit_ticks, 9);
    assert_eq!(c.data_dir, PathBuf::from("/data/zk"));
    assert_eq!(c.data_log_dir, PathBuf::from("/logs/zk"));
    assert_eq!(c.client_address, Some(HostPort::new("127.0.0.5", 12181)));
    assert_eq!(
        c.secure_client_address,
        Some(HostPort::new("127.0.0.6", 12182))
    );
    assert_eq!(c.client_port_listen_backlog, Some(128));
    assert_eq!(c.observer_master_port, Some(12183));
    assert_eq!(c.max_client_cnxns_per_host, 0);
    assert_eq!(c.max_cnxns, 500);
    assert_eq!(c.min_session_timeout_ms, 1500);
    assert_eq!(c.max_session_timeout_ms, 30000);
    assert_eq!(c.global_outstanding_limit_requests, 2000);
    assert_eq!(c.snap_count_txns, 5000);
    assert_eq!(c.snap_size_limit_kb, Some(1024));
    assert_eq!(c.pre_alloc_size_kb, 1024);
    assert_eq!(c.autopurge_snap_retain_count, 5);
    assert_eq!(c.autopurge_purge_interval_hours, 24);
    assert!(!c.force_sync);
    assert_eq!(
        c.four_letter_words,
        FourLetterWordWhitelist::Only(
            ["stat", "ruok", "conf", "isro"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        )
    );
    assert!(c.extended_types_enabled);
    assert!(c.skip_acl);
    let digest = c.super_digest.clone().unwrap();
    assert_eq!(digest.user, "super");
    assert_eq!(digest.digest, "D/InIHSb7yEEbrWz8b9l71RjZJU=");
    assert_eq!(digest.id(), "super:D/InIHSb7yEEbrWz8b9l71RjZJU=");
    assert_eq!(c.jute_max_buffer_bytes, 0x400000);
    assert_eq!(c.jute_max_buffer_extra_bytes, 2048);
    assert_eq!(c.election_alg, 3);
    assert_eq!(c.cnx_timeout_ms, 7000);
    assert!(c.quorum_listen_on_all_ips);
    assert!(c.local_sessions_enabled);
    assert!(c.local_sessions_upgrading_enabled);
    assert!(c.standalone_enabled);
    assert!(c.reconfig_enabled);
    assert_eq!(c.peer_type, LearnerType::Participant);
    assert!(!c.sync_enabled);
    assert!(!c.multi_address_enabled);
    assert!(!c.admin.enabled);
    assert_eq!(c.admin.server_address, "127.0.0.1");
    assert_eq!(c.admin.server_port, 18080);
    assert_eq!(c.admin.command_url, "/cmds");
    assert_eq!(c.admin.idle_timeout_ms, 1000);
    assert_eq!(c.admin.listen_address(), None);
    assert_eq!(c.metrics.provider_class_name, PROMETHEUS_METRICS_PROVIDER);
    assert_eq!(
        c.metrics.http_listen_address(),
        Some(HostPort::new("127.0.0.1", 17000))
    );
    assert!(!c.metrics.export_jvm_info);
    assert_eq!(
        c.metrics.other.get("numWorkerThreads").map(String::as_str),
        Some("4")
    );
    assert!(c.read_only_mode_enabled);
    assert_eq!(c.container.check_interval_ms, 1000);
    assert_eq!(c.container.max_per_minute, 50);
    assert_eq!(c.container.max_never_used_interval_ms, 120_000);
    assert!(c.unknown.is_empty(), "{:?}", c.unknown);
    // The only warnings: keys ZooKeeper reads only as JVM properties.
    for w in &c.warnings {
        assert!(
            matches!(w, ConfigWarning::IgnoredByZooKeeper { .. }),
            "unexpected warning {w}"
        );
    }
    assert_eq!(c.warnings.len(), 5);
}

#[test]
fn zookeeper_prefixed_spellings_are_accepted_and_flagged() {
    let c = parse_ok(
        "dataDir=/d\nzookeeper.extendedTypesEnabled=true\nzookeeper.skipACL=yes\n\
         zookeeper.DigestAuthenticationProvider.superDigest=super:abc=\n\
         zookeeper.snapCount=10\nzookeeper.4lw.commands.whitelist=*\nzookeeper.forceSync=no\n\
         zookeeper.jute.maxbuffer=2048\nzookeeper.admin.serverPort=9999\n",
    );
    assert!(c.extended_types_enabled);
    assert!(c.skip_acl);
    assert_eq!(c.super_digest.as_ref().unwrap().id(), "super:abc=");
    assert_eq!(c.snap_count_txns, 10);
    assert_eq!(c.four_letter_words, FourLetterWordWhitelist::All);
    assert!(!c.force_sync);
    assert_eq!(c.jute_max_buffer_bytes, 2048);
    assert_eq!(c.admin.server_port, 9999);
    assert!(c.unknown.is_empty());
    assert!(has_warning(&c, |w| matches!(w,
        ConfigWarning::IgnoredByZooKeeper { key, hint }
            if key == "zookeeper.skipACL" && hint.contains("zookeeper.zookeeper.skipACL"))));
    // Direct keys have no prefixed spelling: that is an unknown key.
    let c = parse_ok("dataDir=/d\nzookeeper.tickTime=10\n");
    assert_eq!(c.tick_time_ms, 3000);
    assert_eq!(
        c.unknown.get("zookeeper.tickTime").map(String::as_str),
        Some("10")
    );
}

#[test]
fn both_spellings_count_as_a_duplicate_and_the_last_wins() {
    let c = parse_ok("dataDir=/d\nskipACL=no\nzookeeper.skipACL=yes\n");
    assert!(c.skip_acl);
    assert!(has_warning(&c, |w| *w
        == ConfigWarning::DuplicateKey {
            key: "skipACL".into(),
            first_line: 2,
            last_line: 3
        }));
    let c = parse_ok("dataDir=/d\ntickTime=100\ntickTime=200\n");
    assert_eq!(c.tick_time_ms, 200);
}

#[test]
fn unknown_keys_are_kept_and_reported() {
    let c = parse_ok("dataDir=/d\nfooBar = baz \nsnapCount=5000\nsomething.else=1\n");
    assert_eq!(c.unknown.get("fooBar").map(String::as_str), Some("baz"));
    assert_eq!(
        c.unknown.get("something.else").map(String::as_str),
        Some("1")
    );
    assert!(has_warning(&c, |w| *w
        == ConfigWarning::UnknownKey {
            key: "fooBar".into(),
            value: "baz".into(),
            line: 2
        }));
    assert_eq!(
        c.warnings
            .iter()
            .find(|w| matches!(w, ConfigWarning::UnknownKey { .. }))
            .unwrap()
            .to_string(),
        r#"line 2: unknown configuration key fooBar (value "baz"); ignored"#
    );
    assert_eq!(c.snap_count_txns, 5000);
}

#[test]
fn clamped_values_warn_like_zookeeper() {
    let c = parse_ok("dataDir=/d\nsnapCount=1\nautopurge.snapRetainCount=1\nautopurge.purgeInterval=-5\nsnapSizeLimitInKb=-1\n");
    assert_eq!(c.snap_count_txns, 2);
    assert_eq!(c.autopurge_snap_retain_count, 3);
    assert_eq!(c.autopurge_purge_interval_hours, 0);
    assert_eq!(c.snap_size_limit_kb, None);
    assert_eq!(
        c.warnings
            .iter()
            .filter(|w| matches!(w, ConfigWarning::Clamped { .. }))
            .count(),
        2
    );
    let c = parse_ok("dataDir=/d\njute.maxbuffer.extrasize=10\n");
    assert_eq!(c.jute_max_buffer_extra_bytes, 1024);
}

#[test]
fn jute_maxbuffer_decimal_and_hex() {
    assert_eq!(
        parse_ok("dataDir=/d\njute.maxbuffer=4194304").jute_max_buffer_bytes,
        4_194_304
    );
    assert_eq!(
        parse_ok("dataDir=/d\njute.maxbuffer=0xfffff").jute_max_buffer_bytes,
        0xfffff
    );
    assert_eq!(
        parse_ok("dataDir=/d\njute.maxbuffer=0X10").jute_max_buffer_bytes,
        16
    );
    assert_eq!(
        parse_err("dataDir=/d\njute.maxbuffer=lots"),
        r#"invalid value for jute.maxbuffer: "lots" (expected a positive number of bytes, decimal or 0x hex)"#
    );
    assert!(parse("dataDir=/d\njute.maxbuffer=0").is_err());
}

#[test]
fn relative_paths_resolve_against_base_dir() {
    let c = Config::parse_str("dataDir=data\ndataLogDir=./logs\n", "/srv/zk").unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/srv/zk/data"));
    assert_eq!(c.data_log_dir, PathBuf::from("/srv/zk/./logs"));
    assert_eq!(c.snap_dir(), PathBuf::from("/srv/zk/data/version-2"));
    assert_eq!(c.txn_log_dir(), PathBuf::from("/srv/zk/./logs/version-2"));
    // ZooKeeper warns about a relative path unless it starts with "./".
    assert_eq!(
        c.warnings,
        vec![ConfigWarning::RelativePath {
            key: "dataDir".into(),
            path: "data".into()
        }]
    );
}

// --- the four-letter-word whitelist --------------------------------------------------------------

#[test]
fn four_letter_word_whitelist() {
    let c = parse_ok("dataDir=/d\n");
    assert!(c.four_letter_word_enabled("srvr"));
    assert!(!c.four_letter_word_enabled("isro"));
    assert!(!c.four_letter_word_enabled("mntr"));

    let c = parse_ok("dataDir=/d\n4lw.commands.whitelist= mntr ,  ruok\n");
    assert!(c.four_letter_word_enabled("mntr"));
    assert!(c.four_letter_word_enabled("ruok"));
    // srvr cannot be switched off in ZooKeeper: zkServer.sh status needs it.
    assert!(c.four_letter_word_enabled("srvr"));
    assert!(!c.four_letter_word_enabled("conf"));

    let c = parse_ok("dataDir=/d\n4lw.commands.whitelist=ruok, *\n");
    assert_eq!(c.four_letter_words, FourLetterWordWhitelist::All);
    for word in FOUR_LETTER_WORDS {
        assert!(c.four_letter_word_enabled(word));
    }

    // isro is implied by read-only mode.
    let c = parse_ok("dataDir=/d\nreadonlymode.enabled=true\n");
    assert!(c.four_letter_word_enabled("isro"));
    assert!(!c.four_letter_word_enabled("ruok"));

    // An empty list leaves only srvr.
    let c = parse_ok("dataDir=/d\n4lw.commands.whitelist=\n");
    assert_eq!(
        c.four_letter_words,
        FourLetterWordWhitelist::Only(Default::default())
    );
    assert!(c.four_letter_word_enabled("srvr"));

    let c = parse_ok("dataDir=/d\n4lw.commands.whitelist=ruok,bogus\n");
    assert!(has_warning(&c, |w| *w
        == ConfigWarning::UnknownFourLetterWord {
            word: "bogus".into()
        }));
}

// --- syntax ----------------------------------------------------------------------------------------

#[test]
fn comments_separators_continuations_and_whitespace() {
    let text = "# ZooKeeper config\n\
                ! another comment\n\
                \n\
                tickTime : 2000   \n\
                dataDir /var/zk\n\
                4lw.commands.whitelist=ruok,\\\n    \
                    stat,\\\n\t\tmntr\n\
                clientPort=2181 \t\n\
                   initLimit=5\n";
    let c = parse_ok(text);
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!(c.data_dir, PathBuf::from("/var/zk"));
    assert_eq!(
        c.four_letter_words,
        FourLetterWordWhitelist::Only(
            ["ruok", "stat", "mntr"]
                .iter()
                .map(|s| s.to_string())
                .collect()
        )
    );
    assert_eq!(c.client_address, Some(HostPort::new("0.0.0.0", 2181)));
    assert_eq!(c.init_limit_ticks, 5);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn escapes_in_values() {
    let c = parse_ok("dataDir=/var/my\\ zk\\u00e9\n");
    assert_eq!(c.data_dir, PathBuf::from("/var/my zké"));
    assert_eq!(
        parse_err("dataDir=/d\nclientPort=\\u21G1\n"),
        "malformed \\uxxxx escape on line 2"
    );
}

#[test]
fn crlf_files_parse() {
    let c = parse_ok("tickTime=2000\r\ndataDir=/d\r\nclientPort=2181\r\n");
    assert_eq!(c.tick_time_ms, 2000);
    assert_eq!(c.client_address.unwrap().port, 2181);
}

// --- error messages ------------------------------------------------------------------------------

#[test]
fn error_messages_name_key_and_value() {
    let cases: &[(&str, &str)] = &[
        (
            "dataDir=/d\ntickTime=abc",
            r#"invalid value for tickTime: "abc" (expected a positive integer)"#,
        ),
        (
            "dataDir=/d\ntickTime=0",
            r#"invalid value for tickTime: "0" (expected a positive integer)"#,
        ),
        (
            "dataDir=/d\ntickTime=-5",
            r#"invalid value for tickTime: "-5" (expected a positive integer)"#,
        ),
        (
            "dataDir=/d\ninitLimit=ten",
            r#"invalid value for initLimit: "ten" (expected a non-negative integer)"#,
        ),
        (
            "dataDir=/d\nclientPort=99999",
            r#"invalid value for clientPort: "99999" (expected a port number between 0 and 65535 (0 = not set))"#,
        ),
        (
            "dataDir=/d\nforceSync=false",
            r#"invalid value for forceSync: "false" (expected yes or no)"#,
        ),
        (
            "dataDir=/d\nzookeeper.skipACL=true",
            r#"invalid value for zookeeper.skipACL: "true" (expected yes or no)"#,
        ),
        (
            "dataDir=/d\nstandaloneEnabled=yes",
            r#"invalid value for standaloneEnabled: "yes" (expected true or false)"#,
        ),
        (
            "dataDir=/d\nelectionAlg=1",
            r#"invalid value for electionAlg: "1" (expected 3 (fast leader election, the only algorithm))"#,
        ),
        (
            "dataDir=/d\npeerType=leader",
            r#"invalid value for peerType: "leader" (expected participant or observer)"#,
        ),
        (
            "dataDir=/d\nminSessionTimeout=-7",
            r#"invalid value for minSessionTimeout: "-7" (expected a non-negative integer, or -1 for the default)"#,
        ),
        (
            "dataDir=/d\nmaxClientCnxns=-1",
            r#"invalid value for maxClientCnxns: "-1" (expected a non-negative integer)"#,
        ),
        (
            "dataDir=/d\nDigestAuthenticationProvider.superDigest=nocolon",
            r#"invalid value for DigestAuthenticationProvider.superDigest: "nocolon" (expected user:base64digest, e.g. super:xQJmxLMiHGwaqBvst5y6rkB6HQs=)"#,
        ),
        ("tickTime=2000\n", "dataDir is not set"),
        (
            "dataDir=/d\nclientPortAddress=127.0.0.1",
            "clientPortAddress is set but clientPort is not set",
        ),
        (
            "dataDir=/d\nsecureClientPortAddress=127.0.0.1",
            "secureClientPortAddress is set but secureClientPort is not set",
        ),
        (
            "dataDir=/d\ntickTime=2000\nminSessionTimeout=50000",
            "minSessionTimeout (50000 ms) must not be larger than maxSessionTimeout (40000 ms)",
        ),
        (
            "dataDir=/d\ntickTime=2000\nmaxSessionTimeout=3000",
            "minSessionTimeout (4000 ms) must not be larger than maxSessionTimeout (3000 ms)",
        ),
        (
            "dataDir=/d\nsslQuorum=true",
            "sslQuorum=true is not supported by corral: TLS between servers is not implemented",
        ),
        (
            "dataDir=/d\nquorum.auth.enableSasl=true",
            "quorum.auth.enableSasl=true is not supported by corral: SASL authentication between servers is not implemented",
        ),
        (
            "dataDir=/d\ndataDir=",
            r#"invalid value for dataDir: "" (expected a directory path)"#,
        ),
    ];
    for (text, expected) in cases {
        assert_eq!(&parse_err(text), expected, "for config {text:?}");
    }
    assert!(
        parse_err("dataDir=/d\nmetricsProvider.className=com.example.Metrics").starts_with(
            "metricsProvider.className=com.example.Metrics is not supported by corral"
        )
    );
    assert!(parse_err("dataDir=/d\ntickTime=200000000").starts_with("invalid value for tickTime"));
}

#[test]
fn read_errors_name_the_file() {
    let err = Config::from_file("/nonexistent/corral/zoo.cfg").unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }));
    assert!(err
        .to_string()
        .starts_with("cannot read config file /nonexistent/corral/zoo.cfg: "));
}

// --- server lines and myid -----------------------------------------------------------------------

fn ensemble_text(data_dir: &Path, extra: &str) -> String {
    format!(
        "tickTime=2000\ninitLimit=10\nsyncLimit=5\ndataDir={}\n\
         server.1=zk1:2888:3888\n\
         server.2=zk2:2888:3888:participant;2182\n\
         server.3=zk3:2888:3888;10.0.0.3:2183\n\
         server.4=zk4:2888:3888:observer\n{extra}",
        data_dir.display()
    )
}

#[test]
fn ensemble_with_myid() {
    let dir = TempDir::new();
    dir.write("myid", "2\n");
    let c = Config::parse_str(&ensemble_text(dir.path(), ""), dir.path()).unwrap();
    assert!(!c.is_standalone());
    assert_eq!(c.server_id, Some(2));
    assert_eq!(c.servers.len(), 4);
    assert_eq!(c.participants().count(), 3);
    assert_eq!(c.observers().map(|s| s.id).collect::<Vec<_>>(), vec![4]);
    let me = c.my_server().unwrap();
    assert_eq!(me.quorum_address(), HostPort::new("zk2", 2888));
    assert_eq!(me.election_address(), HostPort::new("zk2", 3888));
    // A bare port on the server line means all interfaces.
    assert_eq!(c.client_address, Some(HostPort::new("0.0.0.0", 2182)));
    assert_eq!(c.peer_type, LearnerType::Participant);
    assert_eq!(
        c.server(3).unwrap().client_address,
        Some(HostPort::new("10.0.0.3", 2183))
    );
    assert_eq!(c.server(1).unwrap().client_address, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn static_client_port_must_agree_with_own_server_line() {
    let dir = TempDir::new();
    dir.write("myid", "3");
    // clientPort=2181 on all interfaces, but server.3 says 10.0.0.3:2183.
    let err = Config::parse_str(&ensemble_text(dir.path(), "clientPort=2181\n"), "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "client address for server 3 in the static config is 0.0.0.0:2181, which differs from 10.0.0.3:2183 on its server.3 line"
    );
    // The same port on the wildcard address agrees; the server line's host wins.
    let c = Config::parse_str(&ensemble_text(dir.path(), "clientPort=2183\n"), "/").unwrap();
    assert_eq!(c.client_address, Some(HostPort::new("10.0.0.3", 2183)));
    // A specific address must match exactly.
    let err = Config::parse_str(
        &ensemble_text(dir.path(), "clientPort=2183\nclientPortAddress=10.0.0.4\n"),
        "/",
    )
    .unwrap_err();
    assert!(matches!(
        err,
        ConfigError::ClientAddressMismatch { id: 3, .. }
    ));
    let c = Config::parse_str(
        &ensemble_text(dir.path(), "clientPort=2183\nclientPortAddress=10.0.0.3\n"),
        "/",
    )
    .unwrap();
    assert_eq!(c.client_address, Some(HostPort::new("10.0.0.3", 2183)));
    // Server 1 has no client part: the static address is used.
    dir.write("myid", "1");
    let c = Config::parse_str(&ensemble_text(dir.path(), "clientPort=2181\n"), "/").unwrap();
    assert_eq!(c.client_address, Some(HostPort::new("0.0.0.0", 2181)));
}

#[test]
fn client_address_from_server_line_when_no_client_port() {
    let dir = TempDir::new();
    dir.write("myid", "1");
    let text = format!(
        "initLimit=5\nsyncLimit=2\ndataDir={}\n\
         server.1=127.0.0.1:2888:3888;127.0.0.1:2181\nserver.2=127.0.0.2:2888:3888\nserver.3=127.0.0.3:2888:3888\n",
        dir.path().display()
    );
    let c = Config::parse_str(&text, "/").unwrap();
    assert_eq!(c.client_address, Some(HostPort::new("127.0.0.1", 2181)));
}

#[test]
fn observer_from_server_line_overrides_peer_type() {
    let dir = TempDir::new();
    dir.write("myid", "4");
    let c = Config::parse_str(&ensemble_text(dir.path(), "peerType=participant\n"), "/").unwrap();
    assert_eq!(c.peer_type, LearnerType::Observer);
    assert!(has_warning(&c, |w| matches!(
        w,
        ConfigWarning::PeerTypeMismatch { .. }
    )));
    let c = Config::parse_str(&ensemble_text(dir.path(), "peerType=observer\n"), "/").unwrap();
    assert_eq!(c.peer_type, LearnerType::Observer);
    assert!(c.warnings.is_empty());
}

#[test]
fn myid_missing_names_the_file() {
    let dir = TempDir::new();
    let err = Config::parse_str(&ensemble_text(dir.path(), ""), "/").unwrap_err();
    assert!(matches!(err, ConfigError::MyidMissing { .. }));
    let path = dir.path().join("myid");
    assert_eq!(
        err.to_string(),
        format!(
            "myid file is missing: {} must hold this server's id (one of 1, 2, 3, 4)",
            path.display()
        )
    );
}

#[test]
fn myid_invalid_names_the_file() {
    let dir = TempDir::new();
    for bad in ["one\n", "", "-1\n", "1.5", "99999999999999999999999"] {
        dir.write("myid", bad);
        let err = Config::parse_str(&ensemble_text(dir.path(), ""), "/").unwrap_err();
        assert!(
            matches!(err, ConfigError::MyidInvalid { .. }),
            "{bad:?}: {err}"
        );
        assert!(err
            .to_string()
            .starts_with(&format!("myid file {} ", dir.path().join("myid").display())));
    }
    // Surrounding whitespace and later lines are tolerated.
    dir.write("myid", " 1 \r\nextra\n");
    let c = Config::parse_str(&ensemble_text(dir.path(), ""), "/").unwrap();
    assert_eq!(c.server_id, Some(1));
}

#[test]
fn myid_must_be_a_configured_server() {
    let dir = TempDir::new();
    dir.write("myid", "9");
    let err = Config::parse_str(&ensemble_text(dir.path(), ""), "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "My id 9 not in the peer list: myid file {} says this is server 9, but there is no server.9 line (servers: 1, 2, 3, 4)",
            dir.path().join("myid").display()
        )
    );
}

#[test]
fn standalone_ignores_myid() {
    let dir = TempDir::new();
    dir.write("myid", "garbage");
    // No server lines: myid is not read at all.
    let c = Config::parse_str(&format!("dataDir={}\n", dir.path().display()), "/").unwrap();
    assert_eq!(c.server_id, None);
}

#[test]
fn single_participant_runs_standalone() {
    let c = parse_ok("dataDir=/nonexistent\nserver.1=127.0.0.1:2888:3888\n");
    assert!(c.is_standalone());
    assert_eq!(c.server_id, None);
    assert!(has_warning(&c, |w| *w == ConfigWarning::SingleServerIgnored));

    // ...unless standaloneEnabled=false, which runs the quorum code and needs limits and myid.
    let err =
        parse_err("dataDir=/nonexistent\nstandaloneEnabled=false\nserver.1=127.0.0.1:2888:3888\n");
    assert_eq!(
        err,
        "initLimit is not set (required when running as a quorum)"
    );
    let dir = TempDir::new();
    dir.write("myid", "1");
    let c = Config::parse_str(
        &format!(
            "dataDir={}\nstandaloneEnabled=false\ninitLimit=5\nsyncLimit=2\nserver.1=127.0.0.1:2888:3888\n",
            dir.path().display()
        ),
        "/",
    )
    .unwrap();
    assert!(!c.is_standalone());
    assert!(has_warning(&c, |w| *w == ConfigWarning::QuorumSize { participants: 1 }));
}

#[test]
fn quorum_needs_limits() {
    let dir = TempDir::new();
    dir.write("myid", "1");
    let base = format!(
        "dataDir={}\nserver.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n",
        dir.path().display()
    );
    assert_eq!(
        Config::parse_str(&base, "/").unwrap_err().to_string(),
        "initLimit is not set (required when running as a quorum)"
    );
    assert_eq!(
        Config::parse_str(&format!("{base}initLimit=5\n"), "/")
            .unwrap_err()
            .to_string(),
        "syncLimit is not set (required when running as a quorum)"
    );
    let c = Config::parse_str(&format!("{base}initLimit=5\nsyncLimit=2\n"), "/").unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let c = Config::parse_str(
        &format!("{base}initLimit=5\nsyncLimit=2\nserver.4=d:1:2\n"),
        "/",
    )
    .unwrap();
    assert!(has_warning(&c, |w| *w == ConfigWarning::QuorumSize { participants: 4 }));
}

#[test]
fn server_line_errors() {
    assert_eq!(
        parse_err("dataDir=/d\nserver.1=h:2888:2888\n"),
        r#"invalid server.1="h:2888:2888": quorum port and election port must differ (both are 2888)"#
    );
    assert_eq!(
        parse_err("dataDir=/d\nserver.1=a:1:2\nserver.01=b:1:2\n"),
        "server id 1 is defined more than once (server.1 and server.01)"
    );
    assert_eq!(
        parse_err("dataDir=/d\nserver.1=a:1:2\nserver.1=b:1:2\n"),
        "server id 1 is defined more than once (server.1 and server.1)"
    );
    assert!(parse_err("dataDir=/d\nserver.x=a:1:2\n")
        .starts_with(r#"invalid server.x="a:1:2": the id"#));
    assert!(parse_err("dataDir=/d\nserver.1=a:1\n")
        .starts_with(r#"invalid server.1="a:1": expected host:quorumPort"#));
    assert_eq!(
        parse_err("dataDir=/d\nserver.1=a:1:2:observer\n"),
        "invalid quorum configuration: observers without participants"
    );
    assert!(
        parse_err("dataDir=/d\nserver.1=a:1:2\nserver.2=b:1:2:observer\n")
            .starts_with("invalid quorum configuration: observers without a quorum")
    );
    assert_eq!(
        parse_err("dataDir=/d\nstandaloneEnabled=false\n"),
        "invalid quorum configuration: standaloneEnabled=false needs at least one participant server line"
    );
    assert!(parse_err("dataDir=/d\nserver.1=a:1:2|b:3:4\n").contains("multiAddress.enabled=true"));
    assert!(parse_err("dataDir=/d\ngroupies=1\n").starts_with("invalid value for groupies"));
}

#[test]
fn extended_types_limit_server_ids() {
    let dir = TempDir::new();
    dir.write("myid", "300");
    let text = format!(
        "dataDir={}\ninitLimit=5\nsyncLimit=2\nserver.300=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\n",
        dir.path().display()
    );
    let c = Config::parse_str(&text, "/").unwrap();
    assert!(has_warning(&c, |w| *w == ConfigWarning::LargeServerId { id: 300 }));
    assert_eq!(
        c.servers.iter().map(|s| s.id).collect::<Vec<_>>(),
        vec![2, 3, 300]
    );
    let err = Config::parse_str(&format!("{text}extendedTypesEnabled=true\n"), "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "server id 300 is too large: extendedTypesEnabled=true allows server ids up to 254"
    );
}

#[test]
fn hierarchical_groups_and_weights() {
    let dir = TempDir::new();
    dir.write("myid", "1");
    let text = format!(
        "dataDir={}\ninitLimit=5\nsyncLimit=2\n\
         server.1=a:1:2\nserver.2=b:1:2\nserver.3=c:1:2\nserver.4=d:1:2\n\
         group.1=2:1\ngroup.2=3:4\nweight.1=3\nweight.2=0\n",
        dir.path().display()
    );
    let c = Config::parse_str(&text, "/").unwrap();
    assert_eq!(c.groups.get(&1).map(String::as_str), Some("2:1"));
    assert_eq!(c.weights.get(&2).map(String::as_str), Some("0"));
    assert_eq!(
        c.membership_text(),
        "server.1=a:1:2:participant\nserver.2=b:1:2:participant\nserver.3=c:1:2:participant\nserver.4=d:1:2:participant\n\
         group.1=1:2\ngroup.2=3:4\nweight.1=3\nweight.2=0\nweight.3=1\nweight.4=1\nversion=0"
    );
    let err = Config::parse_str(&format!("{text}group.3=1\n"), "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid quorum configuration: server 1 is in more than one group"
    );
    let text_missing = text.replace("group.2=3:4\n", "group.2=3\n");
    let err = Config::parse_str(&text_missing, "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid quorum configuration: server 4 is not in any group"
    );
}

#[test]
fn dynamic_config_file() {
    let dir = TempDir::new();
    dir.write("myid", "2");
    let dynamic = dir.write(
        "zoo.cfg.dynamic.100000000",
        "server.1=a:1:2\nserver.2=b:1:2;2181\nserver.3=c:1:2\n",
    );
    let text = format!(
        "dataDir={}\ninitLimit=5\nsyncLimit=2\ndynamicConfigFile={}\n",
        dir.path().display(),
        dynamic.display()
    );
    let c = Config::parse_str(&text, "/").unwrap();
    assert_eq!(c.servers.len(), 3);
    assert_eq!(c.quorum_config_version, 0x1_0000_0000);
    assert_eq!(c.dynamic_config_file.as_deref(), Some(dynamic.as_path()));
    assert_eq!(c.client_address, Some(HostPort::new("0.0.0.0", 2181)));
    assert!(c.membership_text().ends_with("\nversion=100000000"));

    let err = Config::parse_str(&format!("{text}server.4=d:1:2\n"), "/").unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid quorum configuration: server.4 must be in the dynamic config file when dynamicConfigFile is set"
    );
    dir.write("zoo.cfg.dynamic.100000000", "server.1=a:1:2\ntickTime=5\n");
    let err = Config::parse_str(&text, "/").unwrap_err();
    assert!(err
        .to_string()
        .ends_with("unrecognised parameter tickTime on line 2"));
    dir.write("zoo.cfg.dynamic.100000000", "server.1=a:1:2\nversion=5\n");
    assert!(Config::parse_str(&text, "/").is_err());
}

#[test]
fn version_key_in_static_file() {
    let c = parse_ok("dataDir=/d\nversion=1a\n");
    assert_eq!(c.quorum_config_version, 0x1a);
    assert!(parse_err("dataDir=/d\nversion=xyz\n").starts_with("invalid value for version"));
}

// --- conf text against the real server ---------------------------------------------------------------

const FIXTURE_STANDALONE_CFG: &str = include_str!("fixtures/standalone.zoo.cfg");
const FIXTURE_STANDALONE_CONF: &str = include_str!("fixtures/standalone.conf");
const FIXTURE_N1_CFG: &str = include_str!("fixtures/quorum-n1.zoo.cfg");
const FIXTURE_N1_CONF: &str = include_str!("fixtures/quorum-n1.conf");
const FIXTURE_N3_CFG: &str = include_str!("fixtures/quorum-n3.zoo.cfg");
const FIXTURE_N3_CONF: &str = include_str!("fixtures/quorum-n3.conf");

#[test]
fn conf_text_matches_zookeeper_standalone() {
    // Captured from ZooKeeper 3.8.0 (ZooKeeperServerMain) started with the fixture config.
    let c = parse_ok(FIXTURE_STANDALONE_CFG);
    assert!(c.is_standalone());
    assert_eq!(c.conf_text(457, 457), FIXTURE_STANDALONE_CONF);
}

/// Re-homes a quorum fixture captured under `/tmp/zkt/q/n<i>/data` into a temp dir that
/// holds the same `myid`, then compares.
fn check_quorum_fixture(node: u64, cfg: &str, conf: &str) {
    let dir = TempDir::new();
    dir.write("myid", &format!("{node}\n"));
    let captured_dir = format!("/tmp/zkt/q/n{node}/data");
    let here = dir.path().to_string_lossy().into_owned();
    let c = Config::parse_str(&cfg.replace(&captured_dir, &here), "/").unwrap();
    assert!(!c.is_standalone());
    assert_eq!(c.server_id, Some(node));
    assert_eq!(c.conf_text(667, 667), conf.replace(&captured_dir, &here));
}

#[test]
fn conf_text_matches_zookeeper_quorum_follower() {
    // Server 1 takes its client address from its own server line.
    check_quorum_fixture(1, FIXTURE_N1_CFG, FIXTURE_N1_CONF);
}

#[test]
fn conf_text_matches_zookeeper_quorum_leader() {
    // Server 3 takes its client address from clientPort/clientPortAddress, which ZooKeeper
    // then leaves out of its own membership line.
    check_quorum_fixture(3, FIXTURE_N3_CFG, FIXTURE_N3_CONF);
}

#[test]
fn conf_text_embedded_default() {
    let c = Config::embedded_default();
    let text = c.conf_text(0, 0);
    let cwd = std::env::current_dir().unwrap();
    assert!(text.starts_with("clientPort=2181\nsecureClientPort=-1\ndataDir="));
    assert!(text.contains(&format!(
        "dataLogDir={}/corral-data/version-2\n",
        cwd.display()
    )));
    assert!(text.ends_with(
        "tickTime=2000\nmaxClientCnxns=60\nminSessionTimeout=4000\nmaxSessionTimeout=40000\nclientPortListenBacklog=-1\nserverId=0\n"
    ));
}

#[test]
fn conf_text_without_client_port_and_with_backlog() {
    let c = parse_ok("dataDir=/d//x/\nclientPortListenBacklog=50\nsecureClientPort=2281\n");
    let text = c.conf_text(1, 2);
    assert!(text.starts_with(
        "clientPort=-1\nsecureClientPort=2281\ndataDir=/d/x/version-2\ndataDirSize=1\ndataLogDir=/d/x/version-2\ndataLogSize=2\n"
    ));
    assert!(text.contains("clientPortListenBacklog=50\n"));
}

// --- files ----------------------------------------------------------------------------------------------

#[test]
fn from_file_reads_and_records_the_path() {
    let dir = TempDir::new();
    let path = dir.write(
        "zoo.cfg",
        &format!(
            "tickTime=2000\ndataDir={}\nclientPort=2181\n",
            dir.path().display()
        ),
    );
    let c = Config::from_file(&path).unwrap();
    assert_eq!(c.source_path.as_deref(), Some(path.as_path()));
    assert_eq!(c.tick_time_ms, 2000);
    assert!(c.initial_config.starts_with("tickTime=2000\n"));
}

#[test]
fn from_file_reads_latin1() {
    let dir = TempDir::new();
    let path = dir.0.join("zoo.cfg");
    std::fs::write(&path, b"dataDir=/data/caf\xe9\n").unwrap();
    let c = Config::from_file(&path).unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/data/café"));
}

// --- robustness ------------------------------------------------------------------------------------------

#[test]
fn never_panics_on_arbitrary_text() {
    // A seeded generator over characters that matter to the grammar, and keys that matter
    // to the parser.
    const PIECES: &[&str] = &[
        "=",
        ":",
        " ",
        "\t",
        "\n",
        "\r",
        "\\",
        "\\u",
        "#",
        "!",
        ";",
        "|",
        "[",
        "]",
        "0",
        "1",
        "-1",
        "0x",
        "2888",
        "65536",
        "é",
        "server.",
        "server.1",
        "group.1",
        "weight.1",
        "tickTime",
        "dataDir",
        "/d",
        "clientPort",
        "4lw.commands.whitelist",
        "*",
        "version",
        "myid",
        "minSessionTimeout",
        "jute.maxbuffer",
        "observer",
        "standaloneEnabled",
        "false",
        "true",
        "dynamicConfigFile",
        "zookeeper.",
        "peerType",
        "initLimit",
    ];
    let mut seed: u64 = 0x5eed_c0ff_ee00_0001;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) as usize
    };
    for _ in 0..5000 {
        let len = next() % 40;
        let mut text = String::new();
        for _ in 0..len {
            text.push_str(PIECES[next() % PIECES.len()]);
        }
        let _ = Config::parse_str(&text, "/nonexistent-corral-base");
        let _ = Config::parse_str(&format!("dataDir=/nonexistent\n{text}"), "/");
    }
}

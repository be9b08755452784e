//! From properties entries to a validated [`Config`]: the key table, value parsers with
//! ZooKeeper's defaults and ranges, the ensemble checks of `QuorumPeerConfig`, and reading
//! `myid` and the dynamic config file.
//!
//! How ZooKeeper treats keys shapes this module. `QuorumPeerConfig` parses a fixed set of
//! keys ([`Origin::Direct`]) and turns every other key into the system property
//! `zookeeper.<key>`; many settings are read from such properties
//! ([`Origin::SystemProperty`]), so `zoo.cfg` spells them without the prefix. A few are
//! read from un-prefixed JVM properties ([`Origin::JvmOnly`]) and so have no effect in a
//! ZooKeeper `zoo.cfg` at all. corral honours both of the latter kinds in either spelling
//! (`skipACL` or `zookeeper.skipACL`) and warns where ZooKeeper would not.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::properties::{self, java_trim};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// Parsed by `QuorumPeerConfig` itself; only the plain spelling works.
    Direct,
    /// Read by ZooKeeper as the system property `zookeeper.<key>`.
    SystemProperty,
    /// Read by ZooKeeper only as the JVM system property `<key>`, never from `zoo.cfg`.
    JvmOnly,
}

const KEYS: &[(&str, Origin)] = &[
    ("tickTime", Origin::Direct),
    ("initLimit", Origin::Direct),
    ("syncLimit", Origin::Direct),
    ("connectToLearnerMasterLimit", Origin::Direct),
    ("dataDir", Origin::Direct),
    ("dataLogDir", Origin::Direct),
    ("clientPort", Origin::Direct),
    ("clientPortAddress", Origin::Direct),
    ("secureClientPort", Origin::Direct),
    ("secureClientPortAddress", Origin::Direct),
    ("clientPortListenBacklog", Origin::Direct),
    ("observerMasterPort", Origin::Direct),
    ("maxClientCnxns", Origin::Direct),
    ("minSessionTimeout", Origin::Direct),
    ("maxSessionTimeout", Origin::Direct),
    ("electionAlg", Origin::Direct),
    ("quorumListenOnAllIPs", Origin::Direct),
    ("peerType", Origin::Direct),
    ("syncEnabled", Origin::Direct),
    ("dynamicConfigFile", Origin::Direct),
    ("autopurge.snapRetainCount", Origin::Direct),
    ("autopurge.purgeInterval", Origin::Direct),
    ("standaloneEnabled", Origin::Direct),
    ("reconfigEnabled", Origin::Direct),
    ("localSessionsEnabled", Origin::Direct),
    ("localSessionsUpgradingEnabled", Origin::Direct),
    ("multiAddress.enabled", Origin::Direct),
    ("sslQuorum", Origin::Direct),
    ("portUnification", Origin::Direct),
    ("quorum.auth.enableSasl", Origin::Direct),
    ("quorum.auth.serverRequireSasl", Origin::Direct),
    ("quorum.auth.learnerRequireSasl", Origin::Direct),
    ("metricsProvider.className", Origin::Direct),
    ("metricsProvider.httpHost", Origin::Direct),
    ("metricsProvider.httpPort", Origin::Direct),
    ("metricsProvider.exportJvmInfo", Origin::Direct),
    ("snapCount", Origin::SystemProperty),
    ("snapSizeLimitInKb", Origin::SystemProperty),
    ("preAllocSize", Origin::SystemProperty),
    ("snapshotSizeFactor", Origin::SystemProperty),
    ("globalOutstandingLimit", Origin::SystemProperty),
    ("forceSync", Origin::SystemProperty),
    ("skipACL", Origin::SystemProperty),
    ("4lw.commands.whitelist", Origin::SystemProperty),
    ("extendedTypesEnabled", Origin::SystemProperty),
    (
        "DigestAuthenticationProvider.superDigest",
        Origin::SystemProperty,
    ),
    ("cnxTimeout", Origin::SystemProperty),
    ("maxCnxns", Origin::SystemProperty),
    ("jute.maxbuffer.extrasize", Origin::SystemProperty),
    ("admin.enableServer", Origin::SystemProperty),
    ("admin.serverAddress", Origin::SystemProperty),
    ("admin.serverPort", Origin::SystemProperty),
    ("admin.commandURL", Origin::SystemProperty),
    ("admin.idleTimeout", Origin::SystemProperty),
    ("jute.maxbuffer", Origin::JvmOnly),
    ("readonlymode.enabled", Origin::JvmOnly),
    ("znode.container.checkIntervalMs", Origin::JvmOnly),
    ("znode.container.maxPerMinute", Origin::JvmOnly),
    ("znode.container.maxNeverUsedIntervalMs", Origin::JvmOnly),
];

const ZK_PREFIX: &str = "zookeeper.";

/// Finds the canonical key for a key as written, and whether it was spelled with the
/// `zookeeper.` prefix.
fn lookup(key: &str) -> Option<(&'static str, Origin, bool)> {
    if let Some(&(name, origin)) = KEYS.iter().find(|(name, _)| *name == key) {
        return Some((name, origin, false));
    }
    let rest = key.strip_prefix(ZK_PREFIX)?;
    KEYS.iter()
        .find(|(name, origin)| *name == rest && *origin != Origin::Direct)
        .map(|&(name, origin)| (name, origin, true))
}

/// A value as found in the file: trimmed, with the key as the user spelled it (error
/// messages name that spelling) and its line.
#[derive(Debug, Clone)]
struct Found {
    spelled: String,
    value: String,
    line: usize,
}

impl Found {
    fn invalid(&self, expected: impl Into<String>) -> ConfigError {
        ConfigError::InvalidValue {
            key: self.spelled.clone(),
            value: self.value.clone(),
            expected: expected.into(),
        }
    }
}

/// A `server.`, `group`, `weight` or `version` line, kept for the ensemble pass.
#[derive(Debug, Clone)]
struct QuorumLine {
    key: String,
    value: String,
}

#[derive(Default)]
struct Collected {
    known: HashMap<&'static str, Found>,
    quorum_lines: Vec<QuorumLine>,
    metrics_other: BTreeMap<String, String>,
}

fn is_quorum_key(key: &str) -> bool {
    key.starts_with("server.") || key.starts_with("group") || key.starts_with("weight")
}

fn collect(entries: Vec<properties::Entry>, config: &mut Config) -> Collected {
    let mut collected = Collected::default();
    for entry in entries {
        let key = java_trim(&entry.key).to_owned();
        let value = java_trim(&entry.value).to_owned();
        if is_quorum_key(&key) || key == "version" {
            collected.quorum_lines.push(QuorumLine { key, value });
            continue;
        }
        if let Some((name, origin, prefixed)) = lookup(&key) {
            if prefixed {
                config.warnings.push(ConfigWarning::IgnoredByZooKeeper {
                    key: key.clone(),
                    hint: format!(
                        "ZooKeeper turns zoo.cfg keys into zookeeper.<key> system properties, so this line sets zookeeper.{key}; write {name} instead"
                    ),
                });
            }
            if origin == Origin::JvmOnly && !prefixed {
                config.warnings.push(ConfigWarning::IgnoredByZooKeeper {
                    key: key.clone(),
                    hint: format!("ZooKeeper reads it only from the JVM system property -D{name}"),
                });
            }
            let found = Found {
                spelled: key,
                value,
                line: entry.line,
            };
            if let Some(previous) = collected.known.insert(name, found) {
                config.warnings.push(ConfigWarning::DuplicateKey {
                    key: name.to_owned(),
                    first_line: previous.line,
                    last_line: entry.line,
                });
            }
            continue;
        }
        if let Some(name) = key.strip_prefix("metricsProvider.") {
            collected.metrics_other.insert(name.to_owned(), value);
            continue;
        }
        config.warnings.push(ConfigWarning::UnknownKey {
            key: key.clone(),
            value: value.clone(),
            line: entry.line,
        });
        config.unknown.insert(key, value);
    }
    collected
}

// --- value parsers -------------------------------------------------------------------------

const POSITIVE: &str = "a positive integer";
const NON_NEGATIVE: &str = "a non-negative integer";
const TRUE_FALSE: &str = "true or false";
const YES_NO: &str = "yes or no";

/// `Integer.parseInt`: optional sign, decimal digits, must fit 32 bits.
fn java_int(s: &str) -> Option<i32> {
    if s.is_empty()
        || !s
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    s.parse::<i32>().ok()
}

/// `Long.parseLong`.
fn java_long(s: &str) -> Option<i64> {
    if s.is_empty()
        || !s
            .trim_start_matches(['+', '-'])
            .chars()
            .all(|c| c.is_ascii_digit())
    {
        return None;
    }
    s.parse::<i64>().ok()
}

/// `Integer.decode`: decimal, `0x`/`0X`/`#` hex, or `0`-prefixed octal, optional sign.
fn java_decode_int(s: &str) -> Option<i32> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(hex) = digits
        .strip_prefix("0x")
        .or_else(|| digits.strip_prefix("0X"))
        .or_else(|| digits.strip_prefix('#'))
    {
        (16, hex)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || body.starts_with(['+', '-']) {
        return None;
    }
    let magnitude = i64::from_str_radix(body, radix).ok()?;
    let value = if negative { -magnitude } else { magnitude };
    i32::try_from(value).ok()
}

fn positive_u32(f: &Found) -> Result<u32, ConfigError> {
    match java_int(&f.value) {
        Some(v) if v > 0 => Ok(v as u32),
        _ => Err(f.invalid(POSITIVE)),
    }
}

fn non_negative_u32(f: &Found) -> Result<u32, ConfigError> {
    match java_int(&f.value) {
        Some(v) if v >= 0 => Ok(v as u32),
        _ => Err(f.invalid(NON_NEGATIVE)),
    }
}

fn any_int(f: &Found) -> Result<i32, ConfigError> {
    java_int(&f.value).ok_or_else(|| f.invalid("an integer"))
}

fn any_long(f: &Found) -> Result<i64, ConfigError> {
    java_long(&f.value).ok_or_else(|| f.invalid("an integer"))
}

/// A port where 0 means "not set" (`clientPort`, `secureClientPort`).
fn optional_port(f: &Found) -> Result<Option<u16>, ConfigError> {
    match java_int(&f.value) {
        Some(0) => Ok(None),
        Some(p) if (1..=65535).contains(&p) => Ok(Some(p as u16)),
        _ => Err(f.invalid("a port number between 0 and 65535 (0 = not set)")),
    }
}

/// A port for a listener where 0 asks the OS for a free one.
fn listen_port(f: &Found) -> Result<u16, ConfigError> {
    match java_int(&f.value) {
        Some(p) if (0..=65535).contains(&p) => Ok(p as u16),
        _ => Err(f.invalid("a port number between 0 and 65535")),
    }
}

/// `parseBoolean` of `QuorumPeerConfig`: `true`/`false` in any case, nothing else.
fn true_false(f: &Found) -> Result<bool, ConfigError> {
    if f.value.eq_ignore_ascii_case("true") {
        Ok(true)
    } else if f.value.eq_ignore_ascii_case("false") {
        Ok(false)
    } else {
        Err(f.invalid(TRUE_FALSE))
    }
}

/// `forceSync` and `skipACL`: ZooKeeper compares with exactly `no` / `yes`, so any other
/// spelling would silently mean the opposite on a ZooKeeper node; refuse it.
fn yes_no(f: &Found) -> Result<bool, ConfigError> {
    match f.value.as_str() {
        "yes" => Ok(true),
        "no" => Ok(false),
        _ => Err(f.invalid(YES_NO)),
    }
}

fn non_empty(f: &Found, expected: &str) -> Result<String, ConfigError> {
    if f.value.is_empty() {
        Err(f.invalid(expected))
    } else {
        Ok(f.value.clone())
    }
}

fn resolve_path(
    f: &Found,
    base_dir: &Path,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<PathBuf, ConfigError> {
    if f.value.is_empty() {
        return Err(f.invalid("a directory path"));
    }
    let path = Path::new(&f.value);
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    if !f.value.starts_with("./") {
        warnings.push(ConfigWarning::RelativePath {
            key: f.spelled.clone(),
            path: f.value.clone(),
        });
    }
    Ok(base_dir.join(path))
}

fn host_port(host: Option<&Found>, port: u16) -> Result<HostPort, ConfigError> {
    let host = match host {
        Some(f) => {
            let h = f.value.trim_start_matches('[').trim_end_matches(']');
            if h.is_empty() || h.contains(char::is_whitespace) {
                return Err(f.invalid("a host name or IP address"));
            }
            h.to_owned()
        }
        None => "0.0.0.0".to_owned(),
    };
    Ok(HostPort::new(host, port))
}

fn unsupported_when_true(f: Option<&Found>, reason: &'static str) -> Result<(), ConfigError> {
    if let Some(f) = f {
        if true_false(f)? {
            return Err(ConfigError::Unsupported {
                key: f.spelled.clone(),
                value: f.value.clone(),
                reason,
            });
        }
    }
    Ok(())
}

// --- the parse --------------------------------------------------------------------------------

pub(super) fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigError> {
    let entries =
        properties::parse(text).map_err(|e| ConfigError::MalformedEscape { line: e.line })?;
    let mut config = Config::zookeeper_defaults(PathBuf::new());
    config.initial_config = text.to_owned();
    let collected = collect(entries, &mut config);
    let get = |name: &str| collected.known.get(name);

    // Time.
    if let Some(f) = get("tickTime") {
        config.tick_time_ms = positive_u32(f)?;
    }
    let tick = u64::from(config.tick_time_ms);
    let explicit_timeout = |name: &str| -> Result<Option<u32>, ConfigError> {
        match get(name) {
            None => Ok(None),
            Some(f) => match java_int(&f.value) {
                Some(-1) => Ok(None), // ZooKeeper's own "not set" value
                Some(v) if v >= 0 => Ok(Some(v as u32)),
                _ => Err(f.invalid("a non-negative integer, or -1 for the default")),
            },
        }
    };
    // The defaults are multiples of the tick and must fit a Java int, as in ZooKeeper.
    let default_timeout = |factor: u64| -> Result<u32, ConfigError> {
        let ms = tick * factor;
        if ms <= i32::MAX as u64 {
            return Ok(ms as u32);
        }
        let f = get("tickTime").expect("only a configured tickTime can be this large");
        Err(f.invalid(format!(
            "a positive integer of at most {} (the default session timeout, {factor} x tickTime, must fit a Java int)",
            i32::MAX as u64 / factor
        )))
    };
    config.min_session_timeout_ms = match explicit_timeout("minSessionTimeout")? {
        Some(v) => v,
        None => default_timeout(2)?,
    };
    config.max_session_timeout_ms = match explicit_timeout("maxSessionTimeout")? {
        Some(v) => v,
        None => default_timeout(20)?,
    };
    if let Some(f) = get("initLimit") {
        config.init_limit_ticks = non_negative_u32(f)?;
    }
    if let Some(f) = get("syncLimit") {
        config.sync_limit_ticks = non_negative_u32(f)?;
    }
    if let Some(f) = get("connectToLearnerMasterLimit") {
        config.connect_to_learner_master_limit_ticks = non_negative_u32(f)?;
    }
    if let Some(f) = get("cnxTimeout") {
        config.cnx_timeout_ms = positive_u32(f)?;
    }

    // Storage.
    let data_dir = get("dataDir").ok_or(ConfigError::MissingKey {
        key: "dataDir",
        context: None,
    })?;
    config.data_dir = resolve_path(data_dir, base_dir, &mut config.warnings)?;
    config.data_log_dir = match get("dataLogDir") {
        Some(f) => resolve_path(f, base_dir, &mut config.warnings)?,
        None => config.data_dir.clone(),
    };
    if let Some(f) = get("snapCount") {
        let v = any_int(f)?;
        if v < SNAP_COUNT_MIN_TXNS as i32 {
            config.warnings.push(ConfigWarning::Clamped {
                key: f.spelled.clone(),
                value: f.value.clone(),
                used: SNAP_COUNT_MIN_TXNS.to_string(),
            });
            config.snap_count_txns = SNAP_COUNT_MIN_TXNS;
        } else {
            config.snap_count_txns = v as u32;
        }
    }
    if let Some(f) = get("snapSizeLimitInKb") {
        let v = any_long(f)?;
        config.snap_size_limit_kb = (v > 0).then_some(v as u64);
    }
    if let Some(f) = get("preAllocSize") {
        match java_long(&f.value) {
            Some(v) if v > 0 && v <= i64::MAX / 1024 => config.pre_alloc_size_kb = v as u64,
            _ => return Err(f.invalid("a positive number of kilobytes")),
        }
    }
    if let Some(f) = get("snapshotSizeFactor") {
        // ZKDatabase: an unparsable value or one above 1 falls back to the default (with a
        // log line); a negative one turns the txn log sync off.
        match f.value.trim().parse::<f64>() {
            Ok(v) if v <= 1.0 || v.is_nan() => config.snapshot_size_factor = v,
            _ => config.warnings.push(ConfigWarning::Clamped {
                key: f.spelled.clone(),
                value: f.value.clone(),
                used: config.snapshot_size_factor.to_string(),
            }),
        }
    }
    if let Some(f) = get("forceSync") {
        config.force_sync = yes_no(f)?;
    }
    if let Some(f) = get("autopurge.snapRetainCount") {
        let v = any_int(f)?;
        if v < SNAP_RETAIN_COUNT_MIN as i32 {
            config.warnings.push(ConfigWarning::Clamped {
                key: f.spelled.clone(),
                value: f.value.clone(),
                used: SNAP_RETAIN_COUNT_MIN.to_string(),
            });
            config.autopurge_snap_retain_count = SNAP_RETAIN_COUNT_MIN;
        } else {
            config.autopurge_snap_retain_count = v as u32;
        }
    }
    if let Some(f) = get("autopurge.purgeInterval") {
        // ZooKeeper schedules no purge for any value <= 0.
        config.autopurge_purge_interval_hours = any_int(f)?.max(0) as u32;
    }

    // Client listener and limits.
    let client_port = get("clientPort").map(optional_port).transpose()?.flatten();
    match (client_port, get("clientPortAddress")) {
        (None, Some(_)) => {
            return Err(ConfigError::RequiresKey {
                key: "clientPortAddress",
                required: "clientPort",
            })
        }
        (Some(port), host) => config.client_address = Some(host_port(host, port)?),
        (None, None) => {}
    }
    let secure_port = get("secureClientPort")
        .map(optional_port)
        .transpose()?
        .flatten();
    match (secure_port, get("secureClientPortAddress")) {
        (None, Some(_)) => {
            return Err(ConfigError::RequiresKey {
                key: "secureClientPortAddress",
                required: "secureClientPort",
            })
        }
        (Some(port), host) => config.secure_client_address = Some(host_port(host, port)?),
        (None, None) => {}
    }
    if let Some(f) = get("clientPortListenBacklog") {
        config.client_port_listen_backlog = match java_int(&f.value) {
            Some(-1) => None,
            Some(v) if v >= 0 => Some(v as u32),
            _ => return Err(f.invalid("a non-negative integer, or -1 for the OS default")),
        };
    }
    if let Some(f) = get("observerMasterPort") {
        config.observer_master_port = match java_int(&f.value) {
            Some(v) if v <= 0 => None,
            Some(v) if v <= 65535 => Some(v as u16),
            _ => return Err(f.invalid("a port number between 1 and 65535 (<= 0 = off)")),
        };
    }
    if let Some(f) = get("maxClientCnxns") {
        config.max_client_cnxns_per_host = non_negative_u32(f)?;
    }
    if let Some(f) = get("maxCnxns") {
        config.max_cnxns = non_negative_u32(f)?;
    }
    if let Some(f) = get("globalOutstandingLimit") {
        config.global_outstanding_limit_requests = positive_u32(f)?;
    }
    if let Some(f) = get("jute.maxbuffer") {
        config.jute_max_buffer_bytes = match java_decode_int(&f.value) {
            Some(v) if v > 0 => v as u32,
            _ => return Err(f.invalid("a positive number of bytes, decimal or 0x hex")),
        };
    }
    config.jute_max_buffer_extra_bytes = match get("jute.maxbuffer.extrasize") {
        None => config.jute_max_buffer_bytes,
        Some(f) => match java_decode_int(&f.value) {
            // ZooKeeper raises anything below 1024 to 1024.
            Some(v) => v.max(1024) as u32,
            None => return Err(f.invalid("a number of bytes, decimal or 0x hex")),
        },
    };
    if let Some(f) = get("localSessionsEnabled") {
        config.local_sessions_enabled = true_false(f)?;
    }
    if let Some(f) = get("localSessionsUpgradingEnabled") {
        config.local_sessions_upgrading_enabled = true_false(f)?;
    }
    if let Some(f) = get("readonlymode.enabled") {
        config.read_only_mode_enabled = true_false(f)?;
    }

    // Features and security.
    if let Some(f) = get("4lw.commands.whitelist") {
        config.four_letter_words = FourLetterWordWhitelist::parse(&f.value);
        if let FourLetterWordWhitelist::Only(words) = &config.four_letter_words {
            for word in words {
                if !FOUR_LETTER_WORDS.contains(&word.as_str()) {
                    config
                        .warnings
                        .push(ConfigWarning::UnknownFourLetterWord { word: word.clone() });
                }
            }
        }
    }
    if let Some(f) = get("extendedTypesEnabled") {
        config.extended_types_enabled = true_false(f)?;
    }
    if let Some(f) = get("skipACL") {
        config.skip_acl = yes_no(f)?;
    }
    if let Some(f) = get("DigestAuthenticationProvider.superDigest") {
        config.super_digest = match f.value.split_once(':') {
            Some((user, digest)) if !user.is_empty() && !digest.is_empty() => Some(SuperDigest {
                user: user.to_owned(),
                digest: digest.to_owned(),
            }),
            _ => {
                return Err(f.invalid("user:base64digest, e.g. super:xQJmxLMiHGwaqBvst5y6rkB6HQs="))
            }
        };
    }
    unsupported_when_true(get("sslQuorum"), "TLS between servers is not implemented")?;
    unsupported_when_true(
        get("portUnification"),
        "TLS on the client port is not implemented",
    )?;
    for key in [
        "quorum.auth.enableSasl",
        "quorum.auth.serverRequireSasl",
        "quorum.auth.learnerRequireSasl",
    ] {
        unsupported_when_true(
            get(key),
            "SASL authentication between servers is not implemented",
        )?;
    }

    // Quorum settings.
    if let Some(f) = get("electionAlg") {
        if java_int(&f.value) != Some(3) {
            return Err(f.invalid("3 (fast leader election, the only algorithm)"));
        }
    }
    if let Some(f) = get("quorumListenOnAllIPs") {
        config.quorum_listen_on_all_ips = true_false(f)?;
    }
    if let Some(f) = get("standaloneEnabled") {
        config.standalone_enabled = true_false(f)?;
    }
    if let Some(f) = get("reconfigEnabled") {
        config.reconfig_enabled = true_false(f)?;
    }
    let configured_peer_type = match get("peerType") {
        Some(f) => {
            Some(LearnerType::parse(&f.value).ok_or_else(|| f.invalid("participant or observer"))?)
        }
        None => None,
    };
    if let Some(f) = get("syncEnabled") {
        config.sync_enabled = true_false(f)?;
    }
    if let Some(f) = get("multiAddress.enabled") {
        config.multi_address_enabled = true_false(f)?;
    }

    // Side listeners.
    if let Some(f) = get("admin.enableServer") {
        config.admin.enabled = true_false(f)?;
    }
    if let Some(f) = get("admin.serverAddress") {
        config.admin.server_address = non_empty(f, "a host name or IP address")?;
    }
    if let Some(f) = get("admin.serverPort") {
        config.admin.server_port = listen_port(f)?;
    }
    if let Some(f) = get("admin.commandURL") {
        config.admin.command_url = non_empty(f, "a URL path such as /commands")?;
    }
    if let Some(f) = get("admin.idleTimeout") {
        config.admin.idle_timeout_ms = positive_u32(f)?;
    }
    if let Some(f) = get("metricsProvider.className") {
        if f.value != DEFAULT_METRICS_PROVIDER && f.value != PROMETHEUS_METRICS_PROVIDER {
            return Err(ConfigError::Unsupported {
                key: f.spelled.clone(),
                value: f.value.clone(),
                reason: "corral has two metrics providers: org.apache.zookeeper.metrics.impl.DefaultMetricsProvider and org.apache.zookeeper.metrics.prometheus.PrometheusMetricsProvider",
            });
        }
        config.metrics.provider_class_name = f.value.clone();
    }
    if let Some(f) = get("metricsProvider.httpHost") {
        config.metrics.http_host = non_empty(f, "a host name or IP address")?;
    }
    if let Some(f) = get("metricsProvider.httpPort") {
        config.metrics.http_port = listen_port(f)?;
    }
    if let Some(f) = get("metricsProvider.exportJvmInfo") {
        config.metrics.export_jvm_info = true_false(f)?;
    }
    config.metrics.other = collected.metrics_other.clone();
    if let Some(f) = get("znode.container.checkIntervalMs") {
        config.container.check_interval_ms = u64::from(positive_u32(f)?);
    }
    if let Some(f) = get("znode.container.maxPerMinute") {
        config.container.max_per_minute = positive_u32(f)?;
    }
    if let Some(f) = get("znode.container.maxNeverUsedIntervalMs") {
        match java_long(&f.value) {
            Some(v) if v >= 0 => config.container.max_never_used_interval_ms = v as u64,
            _ => return Err(f.invalid(NON_NEGATIVE)),
        }
    }

    // The ensemble.
    let quorum_lines = match get("dynamicConfigFile") {
        None => collected.quorum_lines.clone(),
        Some(f) => {
            if let Some(line) = collected
                .quorum_lines
                .iter()
                .find(|l| is_quorum_key(&l.key))
            {
                return Err(ConfigError::InvalidQuorum {
                    reason: format!(
                        "{} must be in the dynamic config file when dynamicConfigFile is set",
                        line.key
                    ),
                });
            }
            let path = resolve_path(f, base_dir, &mut config.warnings)?;
            let lines = read_dynamic_config(&path)?;
            config.dynamic_config_file = Some(path);
            lines
        }
    };
    build_ensemble(&mut config, &quorum_lines)?;
    read_myid(&mut config)?;
    merge_client_address(&mut config)?;

    let effective = match config.server_id.and_then(|id| config.server(id)) {
        Some(spec) => spec.learner_type,
        None => LearnerType::Participant,
    };
    if let Some(configured) = configured_peer_type {
        if configured != effective {
            config.warnings.push(ConfigWarning::PeerTypeMismatch {
                peer_type: configured.as_str().to_owned(),
                server_line: effective.as_str().to_owned(),
            });
        }
    }
    config.peer_type = effective;

    if !config.is_standalone() {
        if let Some(id) = config.server_id {
            if config.extended_types_enabled && id > 254 {
                return Err(ConfigError::ServerIdTooLarge {
                    id,
                    reason: "extendedTypesEnabled=true allows server ids up to 254",
                });
            }
            if id > 255 {
                config.warnings.push(ConfigWarning::LargeServerId { id });
            }
        }
    }

    validate(&config)?;
    Ok(config)
}

/// Reads the file named by `dynamicConfigFile`: only `server.`, `group`, `weight` lines;
/// its `version` comes from the hex suffix of the file name (`zoo.cfg.dynamic.100000000`).
fn read_dynamic_config(path: &Path) -> Result<Vec<QuorumLine>, ConfigError> {
    let bytes = std::fs::read(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = properties::decode(&bytes);
    let entries = properties::parse(&text).map_err(|e| ConfigError::DynamicConfig {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    let mut lines = Vec::with_capacity(entries.len() + 1);
    for entry in entries {
        let key = java_trim(&entry.key).to_owned();
        let value = java_trim(&entry.value).to_owned();
        if key == "version" {
            return Err(ConfigError::DynamicConfig {
                path: path.to_owned(),
                reason:
                    "it must not contain a version line (the version is the file name's suffix)"
                        .to_owned(),
            });
        }
        if !is_quorum_key(&key) {
            return Err(ConfigError::DynamicConfig {
                path: path.to_owned(),
                reason: format!("unrecognised parameter {key} on line {}", entry.line),
            });
        }
        lines.push(QuorumLine { key, value });
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some((_, suffix)) = name.rsplit_once('.') {
        if !suffix.is_empty() && u64::from_str_radix(suffix, 16).is_ok() {
            lines.push(QuorumLine {
                key: "version".to_owned(),
                value: suffix.to_owned(),
            });
        }
    }
    Ok(lines)
}

/// Parses `group.N` member lists: ids separated by ':'.
pub(super) fn group_members(value: &str) -> Option<Vec<u64>> {
    value
        .split(':')
        .map(|s| s.trim().parse::<u64>().ok())
        .collect()
}

fn numbered_key(key: &str, prefix: &str) -> Option<u64> {
    let rest = key.strip_prefix(prefix)?;
    if rest.is_empty() || !rest.chars().all(|c| c.is_ascii_digit()) {
        return None;
    }
    rest.parse().ok()
}

fn build_ensemble(config: &mut Config, lines: &[QuorumLine]) -> Result<(), ConfigError> {
    let mut seen_ids: HashMap<u64, String> = HashMap::new();
    let mut servers = Vec::new();
    for line in lines {
        let invalid = |expected: &str| ConfigError::InvalidValue {
            key: line.key.clone(),
            value: line.value.clone(),
            expected: expected.to_owned(),
        };
        if line.key == "version" {
            config.quorum_config_version = u64::from_str_radix(&line.value, 16)
                .map_err(|_| invalid("a hexadecimal number"))?;
        } else if line.key.starts_with("server.") {
            let id = numbered_key(&line.key, "server.").ok_or_else(|| {
                ConfigError::InvalidServerLine {
                    key: line.key.clone(),
                    value: line.value.clone(),
                    reason: "the id after 'server.' must be a non-negative decimal number"
                        .to_owned(),
                }
            })?;
            if let Some(first) = seen_ids.insert(id, line.key.clone()) {
                return Err(ConfigError::DuplicateServerId {
                    id,
                    first_key: first,
                    second_key: line.key.clone(),
                });
            }
            let spec = QuorumPeerSpec::parse(id, &line.value, config.multi_address_enabled)
                .map_err(|reason| ConfigError::InvalidServerLine {
                    key: line.key.clone(),
                    value: line.value.clone(),
                    reason,
                })?;
            servers.push(spec);
        } else if line.key.starts_with("group") {
            let gid = numbered_key(&line.key, "group.")
                .ok_or_else(|| invalid("a key of the form group.<number>"))?;
            if group_members(&line.value).is_none() {
                return Err(invalid("server ids separated by ':'"));
            }
            config.groups.insert(gid, line.value.clone());
        } else if line.key.starts_with("weight") {
            let sid = numbered_key(&line.key, "weight.")
                .ok_or_else(|| invalid("a key of the form weight.<server id>"))?;
            if java_long(&line.value).is_none_or(|w| w < 0) {
                return Err(invalid(NON_NEGATIVE));
            }
            config.weights.insert(sid, line.value.clone());
        }
    }
    servers.sort_by_key(|s| s.id);
    config.servers = servers;

    if !config.groups.is_empty() || !config.weights.is_empty() {
        let mut group_of: HashMap<u64, u64> = HashMap::new();
        for (&gid, value) in &config.groups {
            for sid in group_members(value).unwrap_or_default() {
                if group_of.insert(sid, gid).is_some() {
                    return Err(ConfigError::InvalidQuorum {
                        reason: format!("server {sid} is in more than one group"),
                    });
                }
            }
        }
        if let Some(s) = config
            .participants()
            .find(|s| !group_of.contains_key(&s.id))
        {
            return Err(ConfigError::InvalidQuorum {
                reason: format!("server {} is not in any group", s.id),
            });
        }
    }

    let participants = config.participants().count();
    if participants == 1 && config.standalone_enabled && config.observers().count() == 0 {
        config.warnings.push(ConfigWarning::SingleServerIgnored);
    }
    if !config.is_standalone() && (participants <= 2 || participants & 1 == 0) {
        config
            .warnings
            .push(ConfigWarning::QuorumSize { participants });
    }
    Ok(())
}

/// Reads `dataDir/myid` when there are server lines. A missing file is not an error here
/// ([`validate`] requires it when the ensemble is distributed).
fn read_myid(config: &mut Config) -> Result<(), ConfigError> {
    if config.servers.is_empty() {
        return Ok(());
    }
    let path = config.myid_path();
    if !path.is_file() {
        return Ok(());
    }
    let bytes = std::fs::read(&path).map_err(|source| ConfigError::MyidRead {
        path: path.clone(),
        source,
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let first_line = text.lines().next().unwrap_or("");
    let id_text = first_line.trim();
    if id_text.is_empty() || !id_text.chars().all(|c| c.is_ascii_digit()) {
        return Err(ConfigError::MyidInvalid {
            path,
            content: first_line.to_owned(),
        });
    }
    let id = id_text
        .parse::<u64>()
        .map_err(|_| ConfigError::MyidInvalid {
            path: path.clone(),
            content: first_line.to_owned(),
        })?;
    config.server_id = Some(id);
    Ok(())
}

fn same_address(a: &HostPort, b: &HostPort) -> bool {
    if a.port != b.port {
        return false;
    }
    match (
        a.host.parse::<std::net::IpAddr>(),
        b.host.parse::<std::net::IpAddr>(),
    ) {
        (Ok(x), Ok(y)) => x == y,
        _ => a.host.eq_ignore_ascii_case(&b.host),
    }
}

/// This server's client address: its own server line's, which must agree with a static
/// `clientPort`/`clientPortAddress` if both are given (ZooKeeper's `setupClientPort`).
fn merge_client_address(config: &mut Config) -> Result<(), ConfigError> {
    let Some(id) = config.server_id else {
        return Ok(());
    };
    let Some(from_line) = config.server(id).and_then(|s| s.client_address.clone()) else {
        return Ok(());
    };
    if let Some(from_static) = &config.client_address {
        let agrees = if from_static.is_wildcard() {
            from_static.port == from_line.port
        } else {
            same_address(from_static, &from_line)
        };
        if !agrees {
            return Err(ConfigError::ClientAddressMismatch {
                id,
                static_address: from_static.to_string(),
                server_line_address: from_line.to_string(),
            });
        }
    }
    config.client_address = Some(from_line);
    Ok(())
}

fn known_ids(config: &Config) -> String {
    config
        .servers
        .iter()
        .map(|s| s.id.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The cross-field invariants of a [`Config`] (module docs).
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let invalid = |key: &str, value: String, expected: &str| ConfigError::InvalidValue {
        key: key.to_owned(),
        value,
        expected: expected.to_owned(),
    };
    if config.tick_time_ms == 0 {
        return Err(invalid("tickTime", "0".into(), POSITIVE));
    }
    if config.data_dir.as_os_str().is_empty() {
        return Err(ConfigError::MissingKey {
            key: "dataDir",
            context: None,
        });
    }
    if config.min_session_timeout_ms > config.max_session_timeout_ms {
        return Err(ConfigError::SessionTimeoutRange {
            min_ms: config.min_session_timeout_ms,
            max_ms: config.max_session_timeout_ms,
        });
    }
    if config.election_alg != 3 {
        return Err(invalid(
            "electionAlg",
            config.election_alg.to_string(),
            "3 (fast leader election, the only algorithm)",
        ));
    }
    if config.snap_count_txns < SNAP_COUNT_MIN_TXNS {
        return Err(invalid(
            "snapCount",
            config.snap_count_txns.to_string(),
            "at least 2",
        ));
    }
    if config.autopurge_snap_retain_count < SNAP_RETAIN_COUNT_MIN {
        return Err(invalid(
            "autopurge.snapRetainCount",
            config.autopurge_snap_retain_count.to_string(),
            "at least 3",
        ));
    }
    for pair in config.servers.windows(2) {
        if pair[0].id >= pair[1].id {
            return Err(ConfigError::DuplicateServerId {
                id: pair[1].id,
                first_key: format!("server.{}", pair[0].id),
                second_key: format!("server.{}", pair[1].id),
            });
        }
    }
    for spec in &config.servers {
        let bad = spec.addresses.is_empty()
            || spec
                .addresses
                .iter()
                .any(|a| a.quorum_port == a.election_port || a.quorum_port == 0);
        if bad {
            return Err(ConfigError::InvalidServerLine {
                key: format!("server.{}", spec.id),
                value: spec.to_config_value(),
                reason: "needs an address whose quorum and election ports differ".to_owned(),
            });
        }
    }

    let participants = config.participants().count();
    let observers = config.observers().count();
    if participants == 0 {
        if !config.standalone_enabled {
            return Err(ConfigError::InvalidQuorum {
                reason: "standaloneEnabled=false needs at least one participant server line"
                    .to_owned(),
            });
        }
        if observers > 0 {
            return Err(ConfigError::InvalidQuorum {
                reason: "observers without participants".to_owned(),
            });
        }
    } else if participants == 1 && config.standalone_enabled && observers > 0 {
        return Err(ConfigError::InvalidQuorum {
            reason: "observers without a quorum (a single participant runs standalone while standaloneEnabled=true)".to_owned(),
        });
    }

    if !config.is_standalone() {
        let context = Some("required when running as a quorum");
        if config.init_limit_ticks == 0 {
            return Err(ConfigError::MissingKey {
                key: "initLimit",
                context,
            });
        }
        if config.sync_limit_ticks == 0 {
            return Err(ConfigError::MissingKey {
                key: "syncLimit",
                context,
            });
        }
        let Some(id) = config.server_id else {
            return Err(ConfigError::MyidMissing {
                path: config.myid_path(),
                known_ids: known_ids(config),
            });
        };
        let Some(me) = config.server(id) else {
            return Err(ConfigError::MyidNotInServers {
                path: config.myid_path(),
                id,
                known_ids: known_ids(config),
            });
        };
        if me.learner_type != config.peer_type {
            return Err(invalid(
                "peerType",
                config.peer_type.as_str().to_owned(),
                "the type on this server's own server line",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_int_is_strict() {
        assert_eq!(java_int("42"), Some(42));
        assert_eq!(java_int("+42"), Some(42));
        assert_eq!(java_int("-1"), Some(-1));
        assert_eq!(java_int(""), None);
        assert_eq!(java_int("4 2"), None);
        assert_eq!(java_int("0x10"), None);
        assert_eq!(java_int("2147483648"), None);
        assert_eq!(java_int("--1"), None);
    }

    #[test]
    fn java_decode_int_accepts_hex_octal_decimal() {
        assert_eq!(java_decode_int("1048575"), Some(1_048_575));
        assert_eq!(java_decode_int("0xfffff"), Some(0xfffff));
        assert_eq!(java_decode_int("0XFFFFF"), Some(0xfffff));
        assert_eq!(java_decode_int("#ff"), Some(255));
        assert_eq!(java_decode_int("010"), Some(8));
        assert_eq!(java_decode_int("0"), Some(0));
        assert_eq!(java_decode_int("-0x10"), Some(-16));
        assert_eq!(java_decode_int("0x"), None);
        assert_eq!(java_decode_int("0x-1"), None);
        assert_eq!(java_decode_int("09"), None);
        assert_eq!(java_decode_int("0x80000000"), None);
        assert_eq!(java_decode_int("abc"), None);
    }

    #[test]
    fn lookup_spellings() {
        assert_eq!(
            lookup("skipACL"),
            Some(("skipACL", Origin::SystemProperty, false))
        );
        assert_eq!(
            lookup("zookeeper.skipACL"),
            Some(("skipACL", Origin::SystemProperty, true))
        );
        assert_eq!(lookup("zookeeper.tickTime"), None);
        assert_eq!(
            lookup("zookeeper.jute.maxbuffer"),
            Some(("jute.maxbuffer", Origin::JvmOnly, true))
        );
        assert_eq!(lookup("nonsense"), None);
    }

    #[test]
    fn group_members_parse() {
        assert_eq!(group_members("1:2:3"), Some(vec![1, 2, 3]));
        assert_eq!(group_members("1:x"), None);
        assert_eq!(group_members(""), None);
    }
}

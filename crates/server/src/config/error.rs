//! Errors (the config is refused) and warnings (the config is accepted; the caller logs
//! them) produced while building a [`Config`](super::Config).
//!
//! Every error names the key, the file or the server id it is about, so an operator can
//! fix `zoo.cfg` from the message alone.

use std::fmt;
use std::path::PathBuf;

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config (or dynamic config) file could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A `\uXXXX` escape without four hex digits (java.util.Properties refuses it too).
    #[error("malformed \\uxxxx escape on line {line}")]
    MalformedEscape { line: usize },

    /// A value that does not parse or is out of range for its key.
    #[error("invalid value for {key}: {value:?} (expected {expected})")]
    InvalidValue {
        key: String,
        value: String,
        expected: String,
    },

    /// A key that must be present is absent.
    #[error("{key} is not set{}", context_suffix(context))]
    MissingKey {
        key: &'static str,
        /// When the key is only required in some setups, which one (e.g. "required when the
        /// ensemble has more than one participant").
        context: Option<&'static str>,
    },

    /// A key that only makes sense together with another one.
    #[error("{key} is set but {required} is not set")]
    RequiresKey {
        key: &'static str,
        required: &'static str,
    },

    /// `minSessionTimeout` greater than `maxSessionTimeout` (after defaults are applied).
    #[error(
        "minSessionTimeout ({min_ms} ms) must not be larger than maxSessionTimeout ({max_ms} ms)"
    )]
    SessionTimeoutRange { min_ms: u32, max_ms: u32 },

    /// A `server.N` line that does not have the form
    /// `host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]`.
    #[error("invalid {key}={value:?}: {reason}")]
    InvalidServerLine {
        key: String,
        value: String,
        reason: String,
    },

    /// Two `server.N` lines with the same id (`server.1` and `server.01` count as the same).
    #[error("server id {id} is defined more than once ({first_key} and {second_key})")]
    DuplicateServerId {
        id: u64,
        first_key: String,
        second_key: String,
    },

    /// The ensemble as a whole is inconsistent (observers without participants, a
    /// participant outside every group, ...).
    #[error("invalid quorum configuration: {reason}")]
    InvalidQuorum { reason: String },

    /// `dataDir/myid` is needed (more than one participant, or standaloneEnabled=false) but
    /// absent.
    #[error("myid file is missing: {} must hold this server's id (one of {known_ids})", path.display())]
    MyidMissing { path: PathBuf, known_ids: String },

    /// `dataDir/myid` exists but could not be read.
    #[error("cannot read myid file {}: {source}", path.display())]
    MyidRead {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `dataDir/myid` does not hold a decimal server id.
    #[error("myid file {} does not hold a decimal server id: {content:?}", path.display())]
    MyidInvalid { path: PathBuf, content: String },

    /// `myid` names a server that has no `server.N` line.
    #[error("My id {id} not in the peer list: myid file {} says this is server {id}, but there is no server.{id} line (servers: {known_ids})", path.display())]
    MyidNotInServers {
        path: PathBuf,
        id: u64,
        known_ids: String,
    },

    /// The static `clientPortAddress`/`clientPort` disagrees with the client address on this
    /// server's own `server.N` line.
    #[error("client address for server {id} in the static config is {static_address}, which differs from {server_line_address} on its server.{id} line")]
    ClientAddressMismatch {
        id: u64,
        static_address: String,
        server_line_address: String,
    },

    /// A setting ZooKeeper supports that corral does not, set to a value that would need it.
    /// Refused rather than ignored, so a cluster never runs with less security or
    /// durability than its config asks for.
    #[error("{key}={value} is not supported by corral: {reason}")]
    Unsupported {
        key: String,
        value: String,
        reason: &'static str,
    },

    /// A server id that a feature cannot represent.
    #[error("server id {id} is too large: {reason}")]
    ServerIdTooLarge { id: u64, reason: &'static str },

    /// A problem with the file named by `dynamicConfigFile`.
    #[error("dynamic config file {}: {reason}", path.display())]
    DynamicConfig { path: PathBuf, reason: String },
}

fn context_suffix(context: &Option<&'static str>) -> String {
    match context {
        Some(c) => format!(" ({c})"),
        None => String::new(),
    }
}

/// Something worth telling the operator about an accepted configuration. The caller logs
/// these (see [`Config::log_warnings`](super::Config::log_warnings)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigWarning {
    /// A key corral does not know. It is kept in [`Config::unknown`](super::Config::unknown)
    /// and otherwise ignored (ZooKeeper would turn it into the system property
    /// `zookeeper.<key>`).
    UnknownKey {
        key: String,
        value: String,
        line: usize,
    },
    /// The same key (or both spellings of it, `X` and `zookeeper.X`) appears more than once;
    /// the last one wins, as in java.util.Properties.
    DuplicateKey {
        key: String,
        first_line: usize,
        last_line: usize,
    },
    /// A value outside the allowed range that ZooKeeper silently raises to its minimum;
    /// corral does the same.
    Clamped {
        key: String,
        value: String,
        used: String,
    },
    /// Apache ZooKeeper does not read this key from `zoo.cfg` (only as a JVM system
    /// property), so nodes of a mixed ensemble may disagree. corral honours it.
    IgnoredByZooKeeper { key: String, hint: String },
    /// A relative path; it is resolved against the working directory, as ZooKeeper does.
    RelativePath { key: String, path: String },
    /// `peerType` disagrees with this server's `server.N` line; the server line wins.
    PeerTypeMismatch {
        peer_type: String,
        server_line: String,
    },
    /// Exactly one participant and standaloneEnabled=true: the `server.N` line is ignored and
    /// the server runs standalone.
    SingleServerIgnored,
    /// A participant count that tolerates no failure, or an even one.
    QuorumSize { participants: usize },
    /// A name in `4lw.commands.whitelist` that is no four-letter word.
    UnknownFourLetterWord { word: String },
    /// A server id above 255 does not fit the top byte of a session id; sessions of
    /// different servers may collide.
    LargeServerId { id: u64 },
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigWarning::UnknownKey { key, value, line } => write!(
                f,
                "line {line}: unknown configuration key {key} (value {value:?}); ignored"
            ),
            ConfigWarning::DuplicateKey {
                key,
                first_line,
                last_line,
            } => write!(
                f,
                "{key} is set on line {first_line} and again on line {last_line}; the last one wins"
            ),
            ConfigWarning::Clamped { key, value, used } => {
                write!(f, "{key}={value} is below the minimum; using {used}")
            }
            ConfigWarning::IgnoredByZooKeeper { key, hint } => write!(
                f,
                "{key} is honoured by corral, but Apache ZooKeeper ignores it in zoo.cfg ({hint}); ZooKeeper nodes of a mixed ensemble will not apply it"
            ),
            ConfigWarning::RelativePath { key, path } => write!(
                f,
                "{key}={path} is a relative path, resolved against the working directory; prepend ./ to show that is intended"
            ),
            ConfigWarning::PeerTypeMismatch {
                peer_type,
                server_line,
            } => write!(
                f,
                "peerType={peer_type} does not match this server's server line ({server_line}); using the server line"
            ),
            ConfigWarning::SingleServerIgnored => write!(
                f,
                "only one participant is configured and standaloneEnabled=true: running standalone, the server line is ignored"
            ),
            ConfigWarning::QuorumSize { participants } => {
                if *participants <= 2 {
                    write!(f, "{participants} participants: no server failure will be tolerated; you need at least 3 servers")
                } else {
                    write!(f, "{participants} participants: non-optimal configuration, consider an odd number of servers")
                }
            }
            ConfigWarning::UnknownFourLetterWord { word } => {
                write!(f, "4lw.commands.whitelist names {word:?}, which is not a four-letter word command")
            }
            ConfigWarning::LargeServerId { id } => write!(
                f,
                "server id {id} is larger than 255 and does not fit the top byte of a session id; session ids of different servers may collide"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_value_display_names_key_and_value() {
        let e = ConfigError::InvalidValue {
            key: "tickTime".into(),
            value: "abc".into(),
            expected: "a positive integer".into(),
        };
        assert_eq!(
            e.to_string(),
            r#"invalid value for tickTime: "abc" (expected a positive integer)"#
        );
    }

    #[test]
    fn missing_key_display() {
        let e = ConfigError::MissingKey {
            key: "dataDir",
            context: None,
        };
        assert_eq!(e.to_string(), "dataDir is not set");
        let e = ConfigError::MissingKey {
            key: "initLimit",
            context: Some("required for a quorum"),
        };
        assert_eq!(
            e.to_string(),
            "initLimit is not set (required for a quorum)"
        );
    }
}

//! The settings the running server needs, extracted from the validated [`Config`].
//!
//! Kept separate from `Config` so that the shell depends on a small, flat struct with units
//! in every name, and so that tests can build one directly.

use crate::config::{Config, FourLetterWordWhitelist};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

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
        }
    }

    /// `srvr` is always allowed, as in ZooKeeper 3.8.
    pub fn four_letter_allowed(&self, cmd: &str) -> bool {
        match &self.four_letter_whitelist {
            None => true,
            Some(set) => cmd == "srvr" || set.contains(cmd),
        }
    }

    /// Builds the settings of a standalone server from a validated config.
    pub fn from_config(cfg: &Config) -> Result<ServerSettings, String> {
        if !cfg.is_standalone() {
            return Err("this corral build runs standalone only: remove the server.N lines (replication is not implemented yet)".into());
        }
        let hp = cfg.client_address.as_ref().ok_or_else(|| {
            "clientPort is not set: there is no address to serve clients on".to_string()
        })?;
        let host = if hp.host.is_empty() {
            "0.0.0.0"
        } else {
            hp.host.trim_start_matches('[').trim_end_matches(']')
        };
        let client_addr = (host, hp.port)
            .to_socket_addrs()
            .map_err(|e| format!("invalid clientPortAddress {host}:{}: {e}", hp.port))?
            .next()
            .ok_or_else(|| format!("clientPortAddress {host} resolves to no address"))?;
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
            server_id: 1,
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
        })
    }
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
    ServerSettings::from_config(&cfg)
}

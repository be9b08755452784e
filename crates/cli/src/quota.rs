//! Quotas as zkCli keeps them: under `/zookeeper/quota<path>`, a `zookeeper_limits` node
//! holds the limits and a `zookeeper_stats` node the usage the server maintains, both in
//! `StatsTrack` text (`count=2,bytes=-1=;byteHardLimit=100;countHardLimit=-1`).
//!
//! Owns: [`StatsTrack`] (parse and print) and the `setquota`, `listquota` and `delquota`
//! commands, with the same requests and checks as zkCli's (a quota may not be set under a
//! path that has one on an ancestor or a descendant).

use crate::commands::{child_path, java_sort, parse, wrap, SubtreeWalk, DEL_QUOTA, SET_QUOTA};
use crate::java::{self, Uncaught};
use crate::shell::{usage_of, CmdResult, Failure, Shell};
use bytes::Bytes;
use corral_client::connect_string::check_path;
use corral_client::{Acl, CreateMode, Error};
use std::collections::BTreeMap;

/// `Quotas.procZookeeper`.
pub const PROC_ZOOKEEPER: &str = "/zookeeper";
/// `Quotas.quotaZookeeper`.
pub const QUOTA_ZOOKEEPER: &str = "/zookeeper/quota";
/// `Quotas.limitNode`.
pub const LIMIT_NODE: &str = "zookeeper_limits";
/// `Quotas.statNode`.
pub const STAT_NODE: &str = "zookeeper_stats";

const COUNT: &str = "count";
const BYTES: &str = "bytes";
const COUNT_HARD: &str = "countHardLimit";
const BYTES_HARD: &str = "byteHardLimit";

pub fn quota_path(path: &str) -> String {
    format!("{QUOTA_ZOOKEEPER}{path}")
}

pub fn limit_path(path: &str) -> String {
    format!("{QUOTA_ZOOKEEPER}{path}/{LIMIT_NODE}")
}

pub fn stat_path(path: &str) -> String {
    format!("{QUOTA_ZOOKEEPER}{path}/{STAT_NODE}")
}

/// ZooKeeper's `StatsTrack`: named counters; an absent one reads as -1.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatsTrack {
    stats: BTreeMap<String, i64>,
}

impl StatsTrack {
    /// Parses `k=v` pairs separated by `,` or `;` (an empty value is -1).
    pub fn parse(text: &str) -> Result<StatsTrack, Uncaught> {
        let mut stats = BTreeMap::new();
        if text.is_empty() {
            return Ok(StatsTrack { stats });
        }
        let pairs: Vec<&str> = text.split([',', ';']).filter(|p| !p.is_empty()).collect();
        let leading_empty = text.starts_with([',', ';']);
        if leading_empty {
            // Java's split keeps a leading empty string, which has no value part.
            return Err(Uncaught(
                "java.lang.ArrayIndexOutOfBoundsException: Index 1 out of bounds for length 1"
                    .into(),
            ));
        }
        for pair in pairs {
            let mut kv: Vec<&str> = pair.split('=').collect();
            while kv.len() > 1 && kv.last().is_some_and(|s| s.is_empty()) {
                kv.pop();
            }
            let key = kv.first().copied().unwrap_or("");
            let Some(value) = kv.get(1) else {
                return Err(Uncaught(
                    "java.lang.ArrayIndexOutOfBoundsException: Index 1 out of bounds for length 1"
                        .into(),
                ));
            };
            let v = if value.is_empty() {
                -1
            } else {
                java::parse_long(value)?
            };
            stats.insert(key.to_owned(), v);
        }
        Ok(StatsTrack { stats })
    }

    fn get(&self, key: &str) -> i64 {
        self.stats.get(key).copied().unwrap_or(-1)
    }

    fn set(&mut self, key: &str, v: i64) {
        self.stats.insert(key.to_owned(), v);
    }

    pub fn count(&self) -> i64 {
        self.get(COUNT)
    }
    pub fn bytes(&self) -> i64 {
        self.get(BYTES)
    }
    pub fn count_hard_limit(&self) -> i64 {
        self.get(COUNT_HARD)
    }
    pub fn byte_hard_limit(&self) -> i64 {
        self.get(BYTES_HARD)
    }
    pub fn set_count(&mut self, v: i64) {
        self.set(COUNT, v)
    }
    pub fn set_bytes(&mut self, v: i64) {
        self.set(BYTES, v)
    }
    pub fn set_count_hard_limit(&mut self, v: i64) {
        self.set(COUNT_HARD, v)
    }
    pub fn set_byte_hard_limit(&mut self, v: i64) {
        self.set(BYTES_HARD, v)
    }
}

impl std::fmt::Display for StatsTrack {
    /// `count=..,bytes=..` first; other keys sorted after a `=` so old parsers skip them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{COUNT}={},{BYTES}={}", self.count(), self.bytes())?;
        let extra: Vec<(&String, &i64)> = self
            .stats
            .iter()
            .filter(|(k, _)| k.as_str() != COUNT && k.as_str() != BYTES)
            .collect();
        if !extra.is_empty() {
            write!(f, "=")?;
            for (k, v) in extra {
                write!(f, ";{k}={v}")?;
            }
        }
        Ok(())
    }
}

/// `Path.split("/")` in Java: empty trailing parts dropped.
fn split_path(path: &str) -> Vec<&str> {
    let mut parts: Vec<&str> = path.split('/').collect();
    while parts.len() > 1 && parts.last().is_some_and(|s| s.is_empty()) {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].is_empty() {
        parts.clear();
    }
    parts
}

/// What can stop a quota change: a KeeperException (with the node it concerned) or an
/// IllegalArgumentException message (printed as is).
enum QuotaError {
    Keeper(Error, String),
    Illegal(String),
    Uncaught(Uncaught),
}

impl From<Uncaught> for QuotaError {
    fn from(u: Uncaught) -> QuotaError {
        QuotaError::Uncaught(u)
    }
}

impl Shell {
    /// `zk.create(path, null, OPEN_ACL_UNSAFE, PERSISTENT)`.
    async fn create_null(&self, path: &str) -> Result<(), Error> {
        let client = self.live().map_err(|_| Error::Closed)?;
        self.request(client.create_opt(path, None, &Acl::open_unsafe(), CreateMode::Persistent))
            .await
            .map(|_| ())
    }

    async fn exists_at(&self, path: &str) -> Result<bool, QuotaError> {
        check_path(path, false).map_err(QuotaError::Illegal)?;
        let client = self
            .live()
            .map_err(|_| QuotaError::Keeper(Error::Closed, path.into()))?;
        self.request(client.exists(path))
            .await
            .map(|s| s.is_some())
            .map_err(|e| QuotaError::Keeper(e, path.into()))
    }

    async fn read_stats(&self, path: &str) -> Result<StatsTrack, QuotaError> {
        let client = self
            .live()
            .map_err(|_| QuotaError::Keeper(Error::Closed, path.into()))?;
        let (data, _) = self
            .request(client.get_data(path))
            .await
            .map_err(|e| QuotaError::Keeper(e, path.into()))?;
        Ok(StatsTrack::parse(&String::from_utf8_lossy(&data))?)
    }

    async fn children_at(&self, path: &str) -> Result<Vec<String>, Error> {
        let client = self.live().map_err(|_| Error::Closed)?;
        self.request(client.get_children(path)).await
    }

    /// `checkQuota`: warnings on stdout when the new limits are already exceeded.
    fn check_quota(&self, quota: &StatsTrack, stats: &StatsTrack) {
        if (quota.count() > -1 && quota.count() < stats.count())
            || (quota.count_hard_limit() > -1 && quota.count_hard_limit() < stats.count())
        {
            self.outln(&format!(
                "[Warning]: the count quota you create is less than the existing count:{}",
                stats.count()
            ));
        }
        if (quota.bytes() > -1 && quota.bytes() < stats.bytes())
            || (quota.byte_hard_limit() > -1 && quota.byte_hard_limit() < stats.bytes())
        {
            self.outln(&format!(
                "[Warning]: the bytes quota you create is less than the existing bytes:{}",
                stats.bytes()
            ));
        }
    }

    /// `SetQuotaCommand.createQuota`.
    async fn create_quota(&self, path: &str, quota: &StatsTrack) -> Result<(), QuotaError> {
        if !self.exists_at(path).await? {
            return Err(QuotaError::Illegal(format!("{path} does not exist.")));
        }
        // A descendant with a quota?
        let real = quota_path(path);
        check_path(&real, false).map_err(QuotaError::Illegal)?;
        let mut walk = SubtreeWalk::new(&real, false);
        loop {
            match walk.next(self).await {
                Ok(Some(node)) => {
                    let children = match self.children_at(&node).await {
                        Ok(c) => c,
                        Err(_) => continue,
                    };
                    if node != real && children.iter().any(|c| c == LIMIT_NODE) {
                        let trimmed = &node[QUOTA_ZOOKEEPER.len()..];
                        return Err(QuotaError::Illegal(format!(
                            "{path} has a child {trimmed} which has a quota"
                        )));
                    }
                }
                Ok(None) => break,
                Err((Error::NoNode, _)) => break,
                Err((e, p)) => return Err(QuotaError::Keeper(e, p)),
            }
        }
        // An ancestor with a quota?
        let parts = split_path(path);
        let mut q = QUOTA_ZOOKEEPER.to_owned();
        for part in parts.iter().take(parts.len().saturating_sub(1)).skip(1) {
            q = format!("{q}/{part}");
            let children = match self.children_at(&q).await {
                Ok(c) => c,
                Err(Error::NoNode) => break,
                Err(e) => return Err(QuotaError::Keeper(e, q)),
            };
            if children.is_empty() {
                break;
            }
            if q != quota_path(path) && children.iter().any(|c| c == LIMIT_NODE) {
                let trimmed = &q[QUOTA_ZOOKEEPER.len()..];
                return Err(QuotaError::Illegal(format!(
                    "{path} has a parent {trimmed} which has a quota"
                )));
            }
        }
        if !self.exists_at(QUOTA_ZOOKEEPER).await? {
            // zkCli gives up on the second node once the first exists.
            for p in [PROC_ZOOKEEPER, QUOTA_ZOOKEEPER] {
                match self.create_null(p).await {
                    Ok(()) => {}
                    Err(Error::NodeExists) => break,
                    Err(e) => return Err(QuotaError::Keeper(e, p.into())),
                }
            }
        }
        let mut q = QUOTA_ZOOKEEPER.to_owned();
        for part in parts.iter().skip(1) {
            q = format!("{q}/{part}");
            if !self.exists_at(&q).await? {
                match self.create_null(&q).await {
                    Ok(()) | Err(Error::NodeExists) => {}
                    Err(e) => return Err(QuotaError::Keeper(e, q)),
                }
            }
        }
        let stat_node = format!("{q}/{STAT_NODE}");
        let limit_node = format!("{q}/{LIMIT_NODE}");
        let client = self
            .live()
            .map_err(|_| QuotaError::Keeper(Error::Closed, limit_node.clone()))?;
        let open = Acl::open_unsafe();
        let create = corral_client::CreateMode::Persistent;
        if !self.exists_at(&limit_node).await? {
            let text = quota.to_string();
            self.request(client.create(&limit_node, text.as_bytes(), &open, create))
                .await
                .map_err(|e| QuotaError::Keeper(e, limit_node.clone()))?;
            let mut stats = StatsTrack::default();
            stats.set_count(0);
            stats.set_bytes(0);
            let text = stats.to_string();
            self.request(client.create(&stat_node, text.as_bytes(), &open, create))
                .await
                .map_err(|e| QuotaError::Keeper(e, stat_node.clone()))?;
            let limits = self.read_stats(&limit_node).await?;
            let usage = self.read_stats(&stat_node).await?;
            self.check_quota(&limits, &usage);
        } else {
            let mut limits = self.read_stats(&limit_node).await?;
            if quota.count() > -1 {
                limits.set_count(quota.count());
            }
            if quota.bytes() > -1 {
                limits.set_bytes(quota.bytes());
            }
            if quota.count_hard_limit() > -1 {
                limits.set_count_hard_limit(quota.count_hard_limit());
            }
            if quota.byte_hard_limit() > -1 {
                limits.set_byte_hard_limit(quota.byte_hard_limit());
            }
            let usage = self.read_stats(&stat_node).await?;
            self.check_quota(&limits, &usage);
            let text = Bytes::from(limits.to_string());
            self.request(client.set_data(&limit_node, &text, -1))
                .await
                .map_err(|e| QuotaError::Keeper(e, limit_node.clone()))?;
        }
        Ok(())
    }

    pub(crate) async fn cmd_setquota(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&SET_QUOTA, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("setquota")));
        }
        let path = cl.args[1].clone();
        if path.starts_with(QUOTA_ZOOKEEPER) {
            self.errln(&format!(
                "cannot set a quota under the path: {QUOTA_ZOOKEEPER}"
            ));
            return Ok(());
        }
        let mut quota = StatsTrack::default();
        quota.set_count(-1);
        quota.set_bytes(-1);
        quota.set_count_hard_limit(-1);
        quota.set_byte_hard_limit(-1);
        let number_error = "NumberFormatException happens when parsing the option value";
        let count_error = "the num quota must be greater than zero";
        let bytes_error = "the bytes quota must be greater than or equal to zero";
        for (name, is_count, setter) in [
            ("n", true, StatsTrack::set_count as fn(&mut StatsTrack, i64)),
            ("b", false, StatsTrack::set_bytes),
            ("N", true, StatsTrack::set_count_hard_limit),
            ("B", false, StatsTrack::set_byte_hard_limit),
        ] {
            let Some(v) = cl.value(name) else { continue };
            let parsed = if is_count {
                java::parse_int(v).map(i64::from)
            } else {
                java::parse_long(v)
            };
            let Ok(n) = parsed else {
                self.errln(number_error);
                return Ok(());
            };
            let valid = if is_count { n > 0 } else { n >= 0 };
            if !valid {
                self.errln(if is_count { count_error } else { bytes_error });
                return Ok(());
            }
            setter(&mut quota, n);
        }
        match self.create_quota(&path, &quota).await {
            Ok(()) => Ok(()),
            Err(QuotaError::Illegal(m)) => Err(Failure::cli(m)),
            Err(QuotaError::Keeper(e, p)) => Err(wrap(&e, &p)),
            Err(QuotaError::Uncaught(u)) => Err(Failure::Uncaught(u)),
        }
    }

    pub(crate) async fn cmd_listquota(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&crate::cmdline::OptionsSpec::NONE, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("listquota")));
        }
        let path = cl.args[1].clone();
        let limit = limit_path(&path);
        self.errln(&format!("absolute path is {limit}"));
        check_path(&limit, false).map_err(Failure::cli)?;
        let limits = match self.read_stats(&limit).await {
            Ok(s) => s,
            Err(QuotaError::Keeper(Error::NoNode, _)) => {
                self.errln(&format!("quota for {path} does not exist."));
                return Ok(());
            }
            Err(QuotaError::Keeper(e, p)) => return Err(wrap(&e, &p)),
            Err(QuotaError::Illegal(m)) => return Err(Failure::cli(m)),
            Err(QuotaError::Uncaught(u)) => return Err(Failure::Uncaught(u)),
        };
        let usage = match self.read_stats(&stat_path(&path)).await {
            Ok(s) => s,
            Err(QuotaError::Keeper(Error::NoNode, _)) => {
                self.errln(&format!("quota for {path} does not exist."));
                return Ok(());
            }
            Err(QuotaError::Keeper(e, p)) => return Err(wrap(&e, &p)),
            Err(QuotaError::Illegal(m)) => return Err(Failure::cli(m)),
            Err(QuotaError::Uncaught(u)) => return Err(Failure::Uncaught(u)),
        };
        self.outln(&format!("Output quota for {path} {limits}"));
        self.outln(&format!("Output stat for {path} {usage}"));
        Ok(())
    }

    pub(crate) async fn cmd_delquota(&mut self, words: Vec<String>) -> CmdResult {
        let cl = parse(&DEL_QUOTA, &words)?;
        if cl.args.len() < 2 {
            return Err(Failure::cli(usage_of("delquota")));
        }
        let path = cl.args[1].clone();
        let flags = ["n", "b", "N", "B"];
        let flagged = flags.iter().any(|f| cl.has(f));
        match self.del_quota(&path, flagged.then_some(&cl)).await {
            Ok(()) => Ok(()),
            Err(QuotaError::Keeper(Error::NoNode, _)) => {
                self.errln(&format!("quota for {path} does not exist."));
                Ok(())
            }
            Err(QuotaError::Keeper(e, p)) => Err(wrap(&e, &p)),
            Err(QuotaError::Illegal(m)) => Err(Failure::cli(m)),
            Err(QuotaError::Uncaught(u)) => Err(Failure::Uncaught(u)),
        }
    }

    /// `DelQuotaCommand.delQuota`: all limits (no flag) or the flagged ones.
    async fn del_quota(
        &self,
        path: &str,
        flags: Option<&crate::cmdline::CommandLine>,
    ) -> Result<(), QuotaError> {
        let parent = quota_path(path);
        let limit = limit_path(path);
        if !self.exists_at(&limit).await? {
            self.outln(&format!("Quota does not exist for {path}"));
            return Ok(());
        }
        let mut limits = self.read_stats(&limit).await?;
        let client = self
            .live()
            .map_err(|_| QuotaError::Keeper(Error::Closed, limit.clone()))?;
        match flags {
            None => {
                let mut children = self
                    .children_at(&parent)
                    .await
                    .map_err(|e| QuotaError::Keeper(e, parent.clone()))?;
                java_sort(&mut children);
                for c in children {
                    let p = child_path(&parent, &c);
                    self.request(client.delete(&p, -1))
                        .await
                        .map_err(|e| QuotaError::Keeper(e, p.clone()))?;
                }
                // Remove the now empty quota directories up to /zookeeper/quota.
                let mut dir = parent;
                while dir != QUOTA_ZOOKEEPER && dir.len() > QUOTA_ZOOKEEPER.len() {
                    let children = self
                        .children_at(&dir)
                        .await
                        .map_err(|e| QuotaError::Keeper(e, dir.clone()))?;
                    if !children.is_empty() {
                        break;
                    }
                    self.request(client.delete(&dir, -1))
                        .await
                        .map_err(|e| QuotaError::Keeper(e, dir.clone()))?;
                    let cut = dir.rfind('/').unwrap_or(0);
                    dir.truncate(cut);
                }
            }
            Some(cl) => {
                if cl.has("n") {
                    limits.set_count(-1);
                }
                if cl.has("b") {
                    limits.set_bytes(-1);
                }
                if cl.has("N") {
                    limits.set_count_hard_limit(-1);
                }
                if cl.has("B") {
                    limits.set_byte_hard_limit(-1);
                }
                let text = limits.to_string();
                self.request(client.set_data(&limit, text.as_bytes(), -1))
                    .await
                    .map_err(|e| QuotaError::Keeper(e, limit.clone()))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_track_round_trip() {
        let mut q = StatsTrack::default();
        q.set_count(2);
        q.set_bytes(-1);
        q.set_count_hard_limit(-1);
        q.set_byte_hard_limit(100);
        let text = q.to_string();
        assert_eq!(
            text,
            "count=2,bytes=-1=;byteHardLimit=100;countHardLimit=-1"
        );
        assert_eq!(StatsTrack::parse(&text).unwrap(), q);
        let s = StatsTrack::parse("count=4,bytes=5").unwrap();
        assert_eq!((s.count(), s.bytes(), s.count_hard_limit()), (4, 5, -1));
        assert_eq!(s.to_string(), "count=4,bytes=5");
        assert_eq!(
            StatsTrack::parse("").unwrap().to_string(),
            "count=-1,bytes=-1"
        );
        assert!(StatsTrack::parse("count=,bytes=3").is_err()); // Java: kv[1] out of bounds
        assert!(StatsTrack::parse("count").is_err());
        assert!(StatsTrack::parse("count=x").is_err());
    }

    #[test]
    fn split_like_java() {
        assert_eq!(split_path("/a/b"), ["", "a", "b"]);
        assert_eq!(split_path("/"), Vec::<&str>::new());
        assert_eq!(quota_path("/a"), "/zookeeper/quota/a");
        assert_eq!(limit_path("/a"), "/zookeeper/quota/a/zookeeper_limits");
    }
}

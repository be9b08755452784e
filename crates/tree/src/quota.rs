//! Quota bookkeeping: which paths have a quota, and the `count=..,bytes=..` usage text the
//! server keeps in `/zookeeper/quota/<path>/zookeeper_stats`.
//!
//! Owns the set of quota roots (ZooKeeper's `PathTrie`): a root is added when a
//! `zookeeper_limits` node is created under `/zookeeper/quota/<path>`, and removed, with
//! every root below it, when that node is deleted. Paths are normalised the way the trie
//! splits them: empty and whitespace-only components are dropped.
//!
//! Usage updates rewrite the stats node's data only (no stat change, no watch, no digest:
//! the node is under `/zookeeper/`). Enforcement (`zookeeper.enforceQuota`) is not done
//! here. Where ZooKeeper would throw on malformed stats text (and stop applying txns), we
//! leave the stats node unchanged.

use std::collections::BTreeSet;

pub(crate) const LIMIT_NODE: &str = "zookeeper_limits";
pub(crate) const STAT_NODE: &str = "zookeeper_stats";

/// Components as `PathTrie.split` keeps them.
fn components(path: &str) -> impl Iterator<Item = &str> {
    path.split('/')
        .filter(|c| !crate::path::java_trim(c).is_empty())
}

fn normalise(path: &str) -> Option<String> {
    let mut out = String::new();
    for c in components(path) {
        out.push('/');
        out.push_str(c);
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Debug, Clone, Default)]
pub(crate) struct QuotaRoots {
    roots: BTreeSet<String>,
}

impl QuotaRoots {
    pub(crate) fn add(&mut self, path: &str) {
        if let Some(p) = normalise(path) {
            self.roots.insert(p);
        }
    }

    /// `PathTrie.deletePath`: drops the trie node and its whole subtree.
    pub(crate) fn delete(&mut self, path: &str) {
        let Some(p) = normalise(path) else {
            return;
        };
        let below = format!("{p}/");
        self.roots.retain(|r| r != &p && !r.starts_with(&below));
    }

    /// `DataTree.getMaxPrefixWithQuota`: the deepest quota root that is a component prefix
    /// of `path`.
    pub(crate) fn max_prefix(&self, path: &str) -> Option<String> {
        if self.roots.is_empty() {
            return None;
        }
        let mut prefix = String::new();
        let mut best = None;
        for c in components(path) {
            prefix.push('/');
            prefix.push_str(c);
            if self.roots.contains(&prefix) {
                best = Some(prefix.clone());
            }
        }
        best
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &String> {
        self.roots.iter()
    }
}

/// `Quotas.statPath`.
pub(crate) fn stat_path(root: &str) -> String {
    format!("{}{root}/{STAT_NODE}", crate::path::QUOTA)
}

/// `Quotas.trimQuotaPath`: drops the first 16 UTF-16 units (`/zookeeper/quota`). `None`
/// where Java would throw (the string is shorter).
pub(crate) fn trim_quota_path(path: &str) -> Option<&str> {
    let quota_units = crate::path::QUOTA.len();
    let mut units = 0;
    for (i, ch) in path.char_indices() {
        if units == quota_units {
            return Some(&path[i..]);
        }
        units += ch.len_utf16();
    }
    (units == quota_units).then_some("")
}

/// `StatsTrack`: `key=value` pairs separated by runs of `,`/`;`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct StatsTrack {
    pairs: Vec<(String, i64)>,
}

/// Java `String.split(regex)` for a one-char class (`collapse`: the class with `+`),
/// trailing empty strings removed.
fn java_split(s: &str, is_sep: impl Fn(char) -> bool, collapse: bool) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut chars = s.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if is_sep(c) {
            parts.push(&s[start..i]);
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = chars.peek() {
                if !collapse || !is_sep(d) {
                    break;
                }
                end = j + d.len_utf8();
                chars.next();
            }
            start = end;
        }
    }
    parts.push(&s[start..]);
    while parts.len() > 1 && parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    if parts.len() == 1 && parts[0].is_empty() && !s.is_empty() {
        parts.clear();
    }
    parts
}

impl StatsTrack {
    pub(crate) fn new(count: i64, bytes: i64) -> StatsTrack {
        StatsTrack {
            pairs: vec![("count".into(), count), ("bytes".into(), bytes)],
        }
    }

    /// Parses like `new StatsTrack(String)`; `None` where Java throws.
    pub(crate) fn parse(data: Option<&[u8]>) -> Option<StatsTrack> {
        let text = String::from_utf8_lossy(data?);
        let mut st = StatsTrack::default();
        if text.is_empty() {
            return Some(st);
        }
        for pair in java_split(&text, |c| c == ',' || c == ';', true) {
            let kv = java_split(pair, |c| c == '=', false);
            let key = kv.first()?;
            let val = kv.get(1)?;
            let v = if val.is_empty() {
                -1
            } else {
                val.parse::<i64>().ok()?
            };
            st.set(key, v);
        }
        Some(st)
    }

    fn get(&self, key: &str) -> i64 {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map_or(-1, |(_, v)| *v)
    }

    fn set(&mut self, key: &str, v: i64) {
        match self.pairs.iter_mut().find(|(k, _)| k == key) {
            Some(p) => p.1 = v,
            None => self.pairs.push((key.to_string(), v)),
        }
    }

    pub(crate) fn add(&mut self, count_diff: i64, bytes_diff: i64) {
        let c = self.get("count").wrapping_add(count_diff);
        let b = self.get("bytes").wrapping_add(bytes_diff);
        self.set("count", c);
        self.set("bytes", b);
    }

    /// `StatsTrack.toString`.
    pub(crate) fn render(&self) -> String {
        let mut s = format!("count={},bytes={}", self.get("count"), self.get("bytes"));
        let mut rest: Vec<&(String, i64)> = self
            .pairs
            .iter()
            .filter(|(k, _)| k != "count" && k != "bytes")
            .collect();
        if !rest.is_empty() {
            rest.sort_by(|a, b| a.0.cmp(&b.0));
            s.push('=');
            for (k, v) in rest {
                s.push_str(&format!(";{k}={v}"));
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_and_prefixes() {
        let mut q = QuotaRoots::default();
        q.add("/a");
        q.add("/a/b");
        q.add("");
        assert_eq!(q.max_prefix("/a/b/c").as_deref(), Some("/a/b"));
        assert_eq!(q.max_prefix("/a/bc").as_deref(), Some("/a"));
        assert_eq!(q.max_prefix("/a").as_deref(), Some("/a"));
        assert_eq!(q.max_prefix("/x"), None);
        assert_eq!(
            q.max_prefix("/a/ /b").as_deref(),
            Some("/a/b"),
            "blank components vanish"
        );
        q.delete("/a");
        assert_eq!(
            q.iter().count(),
            0,
            "deleting a trie node drops its subtree"
        );
    }

    #[test]
    fn trim() {
        assert_eq!(trim_quota_path("/zookeeper/quota/a/b"), Some("/a/b"));
        assert_eq!(trim_quota_path("/zookeeper/quota"), Some(""));
        assert_eq!(trim_quota_path("/zookeeper/quotaX"), Some("X"));
        assert_eq!(trim_quota_path("/zookeeper"), None);
        assert_eq!(stat_path("/a"), "/zookeeper/quota/a/zookeeper_stats");
    }

    #[test]
    fn stats_text_like_java() {
        let mut s = StatsTrack::parse(Some(b"count=1,bytes=2=;countHardLimit=5")).unwrap();
        s.add(1, 0);
        assert_eq!(s.render(), "count=2,bytes=2=;countHardLimit=5");
        let mut s = StatsTrack::parse(Some(b"")).unwrap();
        s.add(1, 3);
        assert_eq!(s.render(), "count=0,bytes=2");
        assert_eq!(StatsTrack::new(2, 7).render(), "count=2,bytes=7");
        assert_eq!(StatsTrack::parse(Some(b"count")), None);
        assert_eq!(StatsTrack::parse(Some(b",count=1")), None);
        assert_eq!(StatsTrack::parse(Some(b"count=x")), None);
        assert_eq!(StatsTrack::parse(None), None);
        let s = StatsTrack::parse(Some(b"count==5,,;bytes=3")).unwrap();
        assert_eq!(s.render(), "count=-1,bytes=3");
        assert_eq!(StatsTrack::parse(Some(b"count==")), None);
        assert_eq!(StatsTrack::parse(Some(b",,,")), Some(StatsTrack::default()));
        let s = StatsTrack::parse(Some(b"b=1;a=2;count=3;bytes=4")).unwrap();
        assert_eq!(s.render(), "count=3,bytes=4=;a=2;b=1");
    }
}

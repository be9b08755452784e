//! Watch tables, keyed by path and session id.
//!
//! ZooKeeper keeps two tables, *data* (getData, exists, addWatch) and *child*
//! (getChildren, addWatch). Here one map holds, per `(path, session)`, a bit set saying in
//! which table and mode the session watches the path:
//!
//! | bit | table | set by |
//! |---|---|---|
//! | `DATA_STANDARD` | data | getData / exists / setWatches data+exist lists (one-shot) |
//! | `DATA_PERSISTENT` | data | addWatch mode 0 |
//! | `DATA_RECURSIVE` | data | addWatch mode 1 |
//! | `CHILD_STANDARD` | child | getChildren(2) / setWatches child list (one-shot) |
//! | `CHILD_PERSISTENT` | child | addWatch mode 0 |
//! | `CHILD_RECURSIVE` | child | addWatch mode 1 (3.8 registers recursive watches in both tables; they never fire NodeChildrenChanged) |
//!
//! Keeping the modes as separate bits is ZooKeeper 3.9.2's behaviour (ZOOKEEPER-4466): in
//! 3.8 a later getData on a path with a persistent watch silently downgraded it to a
//! one-shot watch (observed on 3.8.0), which no client relies on.
//!
//! Firing follows `WatchManager.triggerWatch`: an exact-path entry fires (and loses its
//! standard bit); entries on ancestors fire only for recursive bits and never for
//! NodeChildrenChanged. One trigger yields each session at most once. Invariants: no entry
//! has an empty bit set, the by-session index mirrors the by-path map, and the recursive
//! counters equal the number of entries with a recursive bit.

use crate::hash::FastMap;
use corral_proto::EventType;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub(crate) const DATA_STANDARD: u8 = 1;
pub(crate) const DATA_PERSISTENT: u8 = 2;
pub(crate) const DATA_RECURSIVE: u8 = 4;
pub(crate) const CHILD_STANDARD: u8 = 8;
pub(crate) const CHILD_PERSISTENT: u8 = 16;
pub(crate) const CHILD_RECURSIVE: u8 = 32;
pub(crate) const DATA_ALL: u8 = DATA_STANDARD | DATA_PERSISTENT | DATA_RECURSIVE;
pub(crate) const CHILD_ALL: u8 = CHILD_STANDARD | CHILD_PERSISTENT | CHILD_RECURSIVE;
pub(crate) const PERSISTENT: u8 = DATA_PERSISTENT | CHILD_PERSISTENT;
pub(crate) const RECURSIVE: u8 = DATA_RECURSIVE | CHILD_RECURSIVE;

/// Which table a trigger consults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Table {
    Data,
    Child,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct WatchTable {
    by_path: FastMap<Arc<str>, BTreeMap<i64, u8>>,
    by_session: FastMap<i64, BTreeSet<Arc<str>>>,
    /// Entries with DATA_RECURSIVE / CHILD_RECURSIVE: ancestors are only walked when > 0.
    data_recursive: usize,
    child_recursive: usize,
}

/// `PathParentIterator.forAll` without the path itself: `/a/b` -> `/a`, `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut cur = Some(path);
    std::iter::from_fn(move || {
        let p = cur?;
        if p == "/" || p.is_empty() {
            cur = None;
            return None;
        }
        let parent = match p.rfind('/') {
            Some(0) => "/",
            Some(i) => &p[..i],
            None => {
                cur = None;
                return None;
            }
        };
        cur = Some(parent);
        Some(parent)
    })
}

impl WatchTable {
    fn adjust_recursive(&mut self, old: u8, new: u8) {
        if old & DATA_RECURSIVE != new & DATA_RECURSIVE {
            if new & DATA_RECURSIVE != 0 {
                self.data_recursive += 1;
            } else {
                self.data_recursive -= 1;
            }
        }
        if old & CHILD_RECURSIVE != new & CHILD_RECURSIVE {
            if new & CHILD_RECURSIVE != 0 {
                self.child_recursive += 1;
            } else {
                self.child_recursive -= 1;
            }
        }
    }

    /// Adds `bits` for `(path, session)`.
    pub(crate) fn add(&mut self, path: &str, session: i64, bits: u8) {
        debug_assert!(bits != 0);
        let key: Arc<str> = match self.by_path.get_key_value(path) {
            Some((k, _)) => k.clone(),
            None => path.into(),
        };
        let entry = self.by_path.entry(key.clone()).or_default();
        let old = entry.get(&session).copied().unwrap_or(0);
        let new = old | bits;
        entry.insert(session, new);
        if old == 0 {
            self.by_session.entry(session).or_default().insert(key);
        }
        self.adjust_recursive(old, new);
    }

    /// Sets the bits of `(path, session)` to `new`, removing the entry when it is empty.
    fn set(&mut self, path: &str, session: i64, new: u8) {
        let Some(entry) = self.by_path.get_mut(path) else {
            return;
        };
        let old = entry.get(&session).copied().unwrap_or(0);
        if old == new {
            return;
        }
        if new == 0 {
            entry.remove(&session);
            if entry.is_empty() {
                self.by_path.remove(path);
            }
            if let Some(paths) = self.by_session.get_mut(&session) {
                paths.remove(path);
                if paths.is_empty() {
                    self.by_session.remove(&session);
                }
            }
        } else {
            entry.insert(session, new);
        }
        self.adjust_recursive(old, new);
    }

    pub(crate) fn bits(&self, path: &str, session: i64) -> u8 {
        self.by_path
            .get(path)
            .and_then(|e| e.get(&session))
            .copied()
            .unwrap_or(0)
    }

    /// Whether any recursive watch lives in the tables `mask` covers.
    pub(crate) fn has_recursive(&self, mask: u8) -> bool {
        (mask & DATA_ALL != 0 && self.data_recursive > 0)
            || (mask & CHILD_ALL != 0 && self.child_recursive > 0)
    }

    /// Whether any session has a watch with a bit in `mask` on exactly `path`.
    pub(crate) fn any_on(&self, path: &str, mask: u8) -> bool {
        self.by_path
            .get(path)
            .is_some_and(|e| e.values().any(|b| b & mask != 0))
    }

    /// Clears `mask` for `(path, session)`; true if any bit was set.
    pub(crate) fn remove(&mut self, path: &str, session: i64, mask: u8) -> bool {
        let old = self.bits(path, session);
        if old & mask == 0 {
            return false;
        }
        self.set(path, session, old & !mask);
        true
    }

    pub(crate) fn remove_session(&mut self, session: i64) {
        let Some(paths) = self.by_session.remove(&session) else {
            return;
        };
        for p in paths {
            if let Some(entry) = self.by_path.get_mut(&p) {
                if let Some(old) = entry.remove(&session) {
                    if entry.is_empty() {
                        self.by_path.remove(&p);
                    }
                    self.adjust_recursive(old, 0);
                }
            }
        }
    }

    /// `triggerWatch(path, event)` on one table: the sessions to notify, ascending, each
    /// once. One-shot (standard) bits on `path` are consumed.
    pub(crate) fn trigger(&mut self, path: &str, table: Table, event: EventType) -> Vec<i64> {
        let (standard, firing, recursive) = match table {
            Table::Data => (DATA_STANDARD, DATA_ALL, DATA_RECURSIVE),
            Table::Child => (CHILD_STANDARD, CHILD_ALL, CHILD_RECURSIVE),
        };
        let children_changed = event == EventType::NodeChildrenChanged;
        let mut out = Vec::new();
        let mut consumed = Vec::new();
        if let Some(entry) = self.by_path.get(path) {
            for (&session, &bits) in entry {
                if bits & firing == 0 {
                    continue;
                }
                let fires = bits & (firing & !recursive) != 0 || !children_changed;
                if fires {
                    out.push(session);
                }
                if bits & standard != 0 {
                    consumed.push((session, bits & !standard));
                }
            }
        }
        for (session, new) in consumed {
            self.set(path, session, new);
        }
        let walk = match table {
            Table::Data => self.data_recursive,
            Table::Child => self.child_recursive,
        };
        if walk > 0 && !children_changed {
            for anc in ancestors(path) {
                if let Some(entry) = self.by_path.get(anc) {
                    out.extend(
                        entry
                            .iter()
                            .filter(|(_, &b)| b & recursive != 0)
                            .map(|(&s, _)| s),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// ZooKeeper's `getWatchCount`: entries in the data table plus entries in the child
    /// table.
    pub(crate) fn count(&self) -> usize {
        self.by_path
            .values()
            .flat_map(|e| e.values())
            .map(|b| usize::from(b & DATA_ALL != 0) + usize::from(b & CHILD_ALL != 0))
            .sum()
    }

    /// Data-table watches per session (what `wchc` lists in 3.8), sorted.
    pub(crate) fn data_by_session(&self) -> Vec<(i64, Vec<String>)> {
        let mut out: Vec<(i64, Vec<String>)> = self
            .by_session
            .iter()
            .map(|(&s, paths)| {
                let v: Vec<String> = paths
                    .iter()
                    .filter(|p| self.bits(p, s) & DATA_ALL != 0)
                    .map(|p| p.to_string())
                    .collect();
                (s, v)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        out.sort();
        out
    }

    /// Data-table watches per path (what `wchp` lists in 3.8), sorted.
    pub(crate) fn data_by_path(&self) -> Vec<(String, Vec<i64>)> {
        let mut out: Vec<(String, Vec<i64>)> = self
            .by_path
            .iter()
            .map(|(p, e)| {
                let v: Vec<i64> = e
                    .iter()
                    .filter(|(_, &b)| b & DATA_ALL != 0)
                    .map(|(&s, _)| s)
                    .collect();
                (p.to_string(), v)
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        out.sort();
        out
    }

    /// Every `(path, session, bits)`, sorted, for tests.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> Vec<(String, i64, u8)> {
        let mut out: Vec<_> = self
            .by_path
            .iter()
            .flat_map(|(p, e)| e.iter().map(move |(&s, &b)| (p.to_string(), s, b)))
            .collect();
        out.sort();
        out
    }

    pub(crate) fn check_invariants(&self) {
        let mut data_rec = 0;
        let mut child_rec = 0;
        let mut pairs = 0;
        for (p, e) in &self.by_path {
            assert!(!e.is_empty(), "watch path {p:?} has no sessions");
            for (&s, &b) in e {
                assert!(b != 0, "watch ({p:?}, {s:#x}) has no bits");
                assert!(
                    self.by_session.get(&s).is_some_and(|ps| ps.contains(p)),
                    "watch ({p:?}, {s:#x}) missing from the session index"
                );
                data_rec += usize::from(b & DATA_RECURSIVE != 0);
                child_rec += usize::from(b & CHILD_RECURSIVE != 0);
                pairs += 1;
            }
        }
        let indexed: usize = self.by_session.values().map(BTreeSet::len).sum();
        assert_eq!(indexed, pairs, "session index has extra watches");
        assert_eq!(data_rec, self.data_recursive, "data recursive count");
        assert_eq!(child_rec, self.child_recursive, "child recursive count");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    #[test]
    fn ancestors_walk_to_root() {
        assert_eq!(
            ancestors("/a/b/c").collect::<Vec<_>>(),
            vec!["/a/b", "/a", "/"]
        );
        assert_eq!(ancestors("/a").collect::<Vec<_>>(), vec!["/"]);
        assert_eq!(ancestors("/").count(), 0);
    }

    #[test]
    fn standard_is_one_shot_persistent_stays() {
        let mut w = WatchTable::default();
        w.add("/a", 1, DATA_STANDARD);
        w.add("/a", 2, PERSISTENT);
        w.add("/a", 3, DATA_STANDARD | DATA_PERSISTENT);
        assert_eq!(w.trigger("/a", Table::Data, NodeDataChanged), vec![1, 2, 3]);
        assert_eq!(w.trigger("/a", Table::Data, NodeDataChanged), vec![2, 3]);
        assert_eq!(w.bits("/a", 3), DATA_PERSISTENT);
        w.check_invariants();
    }

    #[test]
    fn recursive_fires_for_descendants_but_never_children_changed() {
        let mut w = WatchTable::default();
        w.add("/a", 1, RECURSIVE);
        w.add("/a/b", 2, CHILD_STANDARD);
        assert_eq!(w.trigger("/a/b/c", Table::Data, NodeCreated), vec![1]);
        assert_eq!(w.trigger("/a", Table::Data, NodeDataChanged), vec![1]);
        assert_eq!(
            w.trigger("/a/b", Table::Child, NodeChildrenChanged),
            vec![2]
        );
        assert_eq!(
            w.trigger("/a", Table::Child, NodeChildrenChanged),
            Vec::<i64>::new()
        );
        assert_eq!(w.count(), 2, "recursive counts in both tables");
        w.check_invariants();
        w.remove_session(1);
        assert_eq!(
            w.trigger("/a/x", Table::Data, NodeCreated),
            Vec::<i64>::new()
        );
        w.check_invariants();
    }

    #[test]
    fn remove_and_reports() {
        let mut w = WatchTable::default();
        w.add("/a", 1, DATA_STANDARD | CHILD_STANDARD);
        w.add("/b", 1, CHILD_STANDARD);
        w.add("/a", 2, DATA_STANDARD);
        assert_eq!(w.count(), 4);
        assert_eq!(
            w.data_by_session(),
            vec![(1, vec!["/a".to_string()]), (2, vec!["/a".to_string()])]
        );
        assert_eq!(w.data_by_path(), vec![("/a".to_string(), vec![1, 2])]);
        assert!(w.remove("/a", 1, CHILD_ALL));
        assert!(!w.remove("/a", 1, CHILD_ALL));
        assert!(w.remove("/b", 1, CHILD_ALL));
        assert_eq!(
            w.entries(),
            vec![
                ("/a".into(), 1, DATA_STANDARD),
                ("/a".into(), 2, DATA_STANDARD)
            ]
        );
        w.check_invariants();
    }
}

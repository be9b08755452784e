//! ACLs: the interned ACL lists nodes point to, permission checks, and the fixup applied to
//! ACLs given in create / setACL.
//!
//! Owns [`AclCache`]: every distinct ACL list (order matters, as in ZooKeeper's
//! `ReferenceCountedACLCache`) is stored once with a reference count and a numeric id;
//! nodes store the id. Invariant: the reference count of an id equals the number of nodes
//! using it, and ids with no users are dropped (and may be reused). The built-in nodes use
//! [`AclId::OPEN`], ZooKeeper's implicit id -1 for `world:anyone ALL`, which is never
//! counted. Ids are local to a replica: they are not part of txns or of the digest, only of
//! snapshot files, exactly like ZooKeeper's `aclId`s.
//!
//! Providers: only ZooKeeper's built-in `ip` (IPv4 only, as in 3.8) and `digest` schemes are
//! valid in ACLs; `world` only as `world:anyone`; `auth` expands to the caller's
//! authenticated (non-`ip`, non-`super`) ids. Anything else is InvalidACL, which is what a
//! default 3.8 server answers for `sasl`, `x509`, `super` and unknown schemes.

use crate::hash::{FastMap, FastSet};
use crate::TreeConfig;
use corral_proto::{perms, Acl, ErrorCode, Id};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Interned ACL list handle stored in every node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AclId(u32);

impl AclId {
    /// ZooKeeper's `OPEN_UNSAFE_ACL_ID` (-1): `world:anyone ALL`, used by the built-in nodes.
    pub const OPEN: AclId = AclId(u32::MAX);

    /// The `aclId` a snapshot file carries for this list.
    pub fn snapshot_id(self) -> i64 {
        if self == AclId::OPEN {
            -1
        } else {
            i64::from(self.0)
        }
    }
}

/// The largest id handed out; ids are reused once free, so reaching it needs ~4 billion
/// distinct ACL lists alive at once (far beyond memory).
const ACL_ID_MAX: u32 = u32::MAX - 1;

#[derive(Debug, Clone)]
struct AclEntry {
    acl: Arc<[Acl]>,
    refs: u64,
}

/// Reference-counted interning of ACL lists.
#[derive(Debug, Clone)]
pub(crate) struct AclCache {
    by_list: FastMap<Arc<[Acl]>, AclId>,
    by_id: BTreeMap<AclId, AclEntry>,
    /// Ids released by lists that lost their last user, reused LIFO.
    free: Vec<AclId>,
    /// The last id handed out for the first time (ZooKeeper's `aclIndex`).
    last: u32,
    open: Arc<[Acl]>,
}

impl AclCache {
    pub(crate) fn new() -> AclCache {
        AclCache {
            by_list: FastMap::default(),
            by_id: BTreeMap::new(),
            free: Vec::new(),
            last: 0,
            open: Acl::open_unsafe().into(),
        }
    }

    /// Adds one use of `acl`, creating its id if it is new.
    pub(crate) fn intern(&mut self, acl: &[Acl]) -> AclId {
        if let Some(&id) = self.by_list.get(acl) {
            self.add_usage(id);
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                assert!(
                    self.last < ACL_ID_MAX,
                    "ACL id space exhausted ({} lists live)",
                    self.by_id.len()
                );
                self.last += 1;
                AclId(self.last)
            }
        };
        let list: Arc<[Acl]> = acl.into();
        self.by_list.insert(list.clone(), id);
        self.by_id.insert(id, AclEntry { acl: list, refs: 1 });
        id
    }

    pub(crate) fn add_usage(&mut self, id: AclId) {
        if id == AclId::OPEN {
            return;
        }
        match self.by_id.get_mut(&id) {
            Some(e) => e.refs += 1,
            None => panic!("add_usage of unknown ACL id {id:?}"),
        }
    }

    /// Drops one use; the list is forgotten when nothing uses it any more.
    pub(crate) fn release(&mut self, id: AclId) {
        if id == AclId::OPEN {
            return;
        }
        let gone = match self.by_id.get_mut(&id) {
            Some(e) => {
                e.refs -= 1;
                e.refs == 0
            }
            None => panic!("release of unknown ACL id {id:?}"),
        };
        if gone {
            if let Some(e) = self.by_id.remove(&id) {
                self.by_list.remove(&e.acl);
            }
            self.free.push(id);
        }
    }

    pub(crate) fn get(&self, id: AclId) -> &Arc<[Acl]> {
        if id == AclId::OPEN {
            return &self.open;
        }
        match self.by_id.get(&id) {
            Some(e) => &e.acl,
            None => panic!("unknown ACL id {id:?}"),
        }
    }

    /// Loading a snapshot: registers `acl` under the file's `id` with no users yet and
    /// returns the id nodes carrying `id` must use. A list the file holds twice keeps the
    /// id it was first registered under (ids are replica-local, so nothing else sees the
    /// change). Ids handed out later start above the largest loaded one, as ZooKeeper's
    /// `aclIndex` does. The caller rejects ids it has seen already.
    pub(crate) fn load_entry(&mut self, id: i64, acl: Vec<Acl>) -> Result<AclId, String> {
        let raw = u32::try_from(id)
            .ok()
            .filter(|&v| v <= ACL_ID_MAX)
            .ok_or_else(|| format!("ACL id {id} is out of range (0..={ACL_ID_MAX})"))?;
        if let Some(&existing) = self.by_list.get(&acl[..]) {
            return Ok(existing);
        }
        let aid = AclId(raw);
        let list: Arc<[Acl]> = acl.into();
        self.by_list.insert(list.clone(), aid);
        self.by_id.insert(aid, AclEntry { acl: list, refs: 0 });
        self.last = self.last.max(raw);
        Ok(aid)
    }

    /// Whether `id` is [`AclId::OPEN`] or an interned list.
    pub(crate) fn contains(&self, id: AclId) -> bool {
        id == AclId::OPEN || self.by_id.contains_key(&id)
    }

    /// Drops the lists no node uses (ZooKeeper's `purgeUnused`, run after loading).
    pub(crate) fn purge_unused(&mut self) {
        let unused: Vec<AclId> = self
            .by_id
            .iter()
            .filter(|(_, e)| e.refs == 0)
            .map(|(id, _)| *id)
            .collect();
        for id in unused {
            if let Some(e) = self.by_id.remove(&id) {
                self.by_list.remove(&e.acl);
            }
        }
    }

    /// Number of interned lists (ZooKeeper's `aclCacheSize`, which excludes the implicit -1).
    pub(crate) fn len(&self) -> usize {
        self.by_id.len()
    }

    /// `(id, list, users)` in id order, for snapshots and invariant checks.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (AclId, &Arc<[Acl]>, u64)> + '_ {
        self.by_id.iter().map(|(id, e)| (*id, &e.acl, e.refs))
    }

    pub(crate) fn check_invariants(&self, uses: &BTreeMap<AclId, u64>) {
        assert_eq!(
            self.by_list.len(),
            self.by_id.len(),
            "ACL maps differ in size"
        );
        for (id, e) in &self.by_id {
            assert_eq!(
                self.by_list.get(&e.acl),
                Some(id),
                "ACL {id:?} not indexed by list"
            );
            assert_eq!(
                uses.get(id).copied().unwrap_or(0),
                e.refs,
                "ACL {id:?} refcount differs from node uses"
            );
        }
        for id in uses.keys() {
            assert!(
                *id == AclId::OPEN || self.by_id.contains_key(id),
                "node uses unknown ACL {id:?}"
            );
        }
        for id in &self.free {
            assert!(!self.by_id.contains_key(id), "free ACL id {id:?} is live");
        }
    }
}

/// Does the caller hold `super` (or the configured super digest)?
pub(crate) fn is_super(cfg: &TreeConfig, auth: &[Id]) -> bool {
    auth.iter().any(|id| {
        id.scheme == "super"
            || (id.scheme == "digest" && cfg.super_digest.as_deref() == Some(id.id.as_str()))
    })
}

/// `ZooKeeperServer.checkACL`: may a caller holding `auth` do `perm` on a node with `acl`?
pub(crate) fn allowed(cfg: &TreeConfig, acl: &[Acl], perm: i32, auth: &[Id]) -> bool {
    if cfg.skip_acl || acl.is_empty() || is_super(cfg, auth) {
        return true;
    }
    acl.iter().any(|a| {
        a.perms & perm != 0
            && ((a.id.scheme == "world" && a.id.id == "anyone")
                || auth.iter().any(|id| {
                    id.scheme == a.id.scheme && scheme_matches(&a.id.scheme, &id.id, &a.id.id)
                }))
    })
}

/// `AuthenticationProvider.matches(id, aclExpr)` of the built-in providers.
fn scheme_matches(scheme: &str, id: &str, expr: &str) -> bool {
    match scheme {
        "digest" => id == expr,
        "ip" => ip_matches(id, expr),
        _ => false,
    }
}

/// Does a caller id under `scheme` count as authenticated for the `auth` ACL scheme?
/// (`IPAuthenticationProvider.isAuthenticated()` is false; `super` has no provider.)
fn is_authenticated_scheme(scheme: &str) -> bool {
    !matches!(scheme, "ip" | "super" | "world")
}

/// `PrepRequestProcessor.fixupACL`: dedupes, validates and expands `auth`.
pub(crate) fn fixup(acl: Option<&[Acl]>, auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let acl = acl.ok_or(ErrorCode::InvalidAcl)?;
    let mut seen: FastSet<&Acl> = FastSet::default();
    let mut out = Vec::with_capacity(acl.len());
    let mut any = false;
    for a in acl {
        if !seen.insert(a) {
            continue;
        }
        any = true;
        let id = &a.id;
        if id.scheme == "world" && id.id == "anyone" {
            out.push(a.clone());
        } else if id.scheme == "auth" {
            let before = out.len();
            for cid in auth
                .iter()
                .filter(|cid| is_authenticated_scheme(&cid.scheme))
            {
                out.push(Acl {
                    perms: a.perms,
                    id: cid.clone(),
                });
            }
            if out.len() == before {
                return Err(ErrorCode::InvalidAcl);
            }
        } else {
            let valid = match id.scheme.as_str() {
                "ip" => ip_is_valid(&id.id),
                "digest" => digest_is_valid(&id.id),
                _ => false,
            };
            if !valid {
                return Err(ErrorCode::InvalidAcl);
            }
            out.push(a.clone());
        }
    }
    if !any {
        return Err(ErrorCode::InvalidAcl);
    }
    Ok(out)
}

/// What getACL returns to a caller without ADMIN: digest ids with everything after the
/// user name replaced (`id.replaceAll(":.*", ":x")`).
pub(crate) fn mask_digests(acl: &[Acl]) -> Vec<Acl> {
    acl.iter()
        .map(|a| {
            if a.id.scheme == "digest" {
                Acl {
                    perms: a.perms,
                    id: Id::new("digest", java_mask_colon_rest(&a.id.id)),
                }
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Java regex `.` stops at these.
fn is_line_terminator(c: char) -> bool {
    matches!(c, '\n' | '\r' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// `s.replaceAll(":.*", ":x")` with Java's regex semantics (`.` excludes line terminators).
fn java_mask_colon_rest(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == ':' {
            out.push_str(":x");
            while chars.peek().is_some_and(|n| !is_line_terminator(*n)) {
                chars.next();
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Number of parts `s.split(sep)` yields in Java (trailing empty strings removed; an input
/// without the separator is one part, even when empty).
fn java_split_len(s: &str, sep: char) -> usize {
    if !s.contains(sep) {
        return 1;
    }
    let parts: Vec<&str> = s.split(sep).collect();
    let mut n = parts.len();
    while n > 0 && parts[n - 1].is_empty() {
        n -= 1;
    }
    n
}

/// `DigestAuthenticationProvider.isValid`: `user:hash` splits into exactly two parts.
fn digest_is_valid(id: &str) -> bool {
    java_split_len(id, ':') == 2
}

/// Java's `Integer.parseInt` for what an IPv4 octet can be (ASCII digits with an optional
/// sign; Java also takes non-ASCII Unicode digits, which we do not).
fn java_parse_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i32>().ok().map(i64::from)
}

/// `IPAuthenticationProvider.v4addr2Bytes`.
fn parse_ipv4(s: &str) -> Option<[u8; 4]> {
    let mut out = [0u8; 4];
    let mut n = 0;
    for part in s.split('.') {
        if n == 4 {
            return None;
        }
        let v = java_parse_int(part)?;
        out[n] = u8::try_from(v).ok()?;
        n += 1;
    }
    (n == 4).then_some(out)
}

/// An `ip` ACL expression: `a.b.c.d` or `a.b.c.d/bits`.
fn parse_ip_expr(expr: &str) -> Option<([u8; 4], u32)> {
    let (addr, bits) = match expr.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (expr, None),
    };
    let addr = parse_ipv4(addr)?;
    let bits = match bits {
        Some(b) => {
            let v = java_parse_int(b)?;
            u32::try_from(v).ok().filter(|v| *v <= 32)?
        }
        None => 32,
    };
    Some((addr, bits))
}

fn mask_ipv4(addr: [u8; 4], bits: u32) -> u32 {
    let v = u32::from_be_bytes(addr);
    if bits == 0 {
        0
    } else {
        v & (u32::MAX << (32 - bits))
    }
}

fn ip_is_valid(expr: &str) -> bool {
    parse_ip_expr(expr).is_some()
}

fn ip_matches(id: &str, expr: &str) -> bool {
    let Some((acl_addr, bits)) = parse_ip_expr(expr) else {
        return false;
    };
    let Some(remote) = parse_ipv4(id) else {
        return false;
    };
    mask_ipv4(acl_addr, bits) == mask_ipv4(remote, bits)
}

/// Permission bits a request needs, named for readability at the call sites.
pub(crate) mod need {
    use super::perms;
    pub const READ: i32 = perms::READ;
    pub const WRITE: i32 = perms::WRITE;
    pub const CREATE: i32 = perms::CREATE;
    pub const DELETE: i32 = perms::DELETE;
    pub const ADMIN: i32 = perms::ADMIN;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> TreeConfig {
        TreeConfig::default()
    }

    fn acl(perms: i32, scheme: &str, id: &str) -> Acl {
        Acl::new(perms, scheme, id)
    }

    #[test]
    fn cache_interns_counts_and_reuses() {
        let mut c = AclCache::new();
        let read = Acl::read_unsafe();
        let a = c.intern(&read);
        assert_eq!(a.snapshot_id(), 1);
        let b = c.intern(&read);
        assert_eq!(a, b);
        let open = c.intern(&Acl::open_unsafe());
        assert_eq!(
            open.snapshot_id(),
            2,
            "a created node's open ACL gets its own id"
        );
        c.release(a);
        assert_eq!(c.len(), 2);
        c.release(b);
        assert_eq!(c.len(), 1);
        let again = c.intern(&[acl(3, "world", "anyone")]);
        assert_eq!(again, a, "freed ids are reused");
        assert_eq!(AclId::OPEN.snapshot_id(), -1);
        assert_eq!(&**c.get(AclId::OPEN), &Acl::open_unsafe()[..]);
    }

    #[test]
    fn check_rules() {
        let alice = Id::new("digest", "alice:h");
        let ip = Id::new("ip", "127.0.0.1");
        let list = vec![
            acl(perms::READ, "digest", "alice:h"),
            acl(perms::WRITE, "ip", "127.0.0.0/8"),
        ];
        assert!(allowed(
            &cfg(),
            &list,
            perms::READ,
            std::slice::from_ref(&alice)
        ));
        assert!(!allowed(
            &cfg(),
            &list,
            perms::WRITE,
            std::slice::from_ref(&alice)
        ));
        assert!(allowed(
            &cfg(),
            &list,
            perms::WRITE,
            std::slice::from_ref(&ip)
        ));
        assert!(!allowed(
            &cfg(),
            &list,
            perms::READ,
            std::slice::from_ref(&ip)
        ));
        assert!(allowed(
            &cfg(),
            &list,
            perms::READ | perms::ADMIN,
            std::slice::from_ref(&alice)
        ));
        assert!(
            allowed(&cfg(), &[], perms::ADMIN, &[]),
            "empty ACL allows all"
        );
        assert!(allowed(
            &cfg(),
            &list,
            perms::ADMIN,
            &[Id::new("super", "")]
        ));
        let skip = TreeConfig {
            skip_acl: true,
            ..cfg()
        };
        assert!(allowed(&skip, &list, perms::ADMIN, &[]));
        let sup = TreeConfig {
            super_digest: Some("super:abc".into()),
            ..cfg()
        };
        assert!(allowed(
            &sup,
            &list,
            perms::ADMIN,
            &[Id::new("digest", "super:abc")]
        ));
        assert!(!allowed(
            &cfg(),
            &list,
            perms::ADMIN,
            &[Id::new("digest", "super:abc")]
        ));
        // Same id under another scheme does not match.
        assert!(!allowed(
            &cfg(),
            &list,
            perms::READ,
            &[Id::new("sasl", "alice:h")]
        ));
    }

    #[test]
    fn fixup_rules_seen_on_3_8_0() {
        let none: [Id; 0] = [];
        let bad = |l: Vec<Acl>| fixup(Some(&l), &none) == Err(ErrorCode::InvalidAcl);
        let good = |l: Vec<Acl>| fixup(Some(&l), &none).is_ok();
        assert_eq!(fixup(None, &none), Err(ErrorCode::InvalidAcl));
        assert!(bad(vec![]));
        assert!(bad(vec![acl(31, "world", "foo")]));
        assert!(bad(vec![acl(31, "ip", "::1")]));
        assert!(good(vec![acl(31, "ip", "10.0.0.1")]));
        assert!(good(vec![acl(31, "ip", "10.0.0.0/8")]));
        assert!(good(vec![acl(31, "ip", "10.0.0.0/0")]));
        assert!(bad(vec![acl(31, "ip", "10.0.0.0/33")]));
        assert!(bad(vec![acl(31, "ip", "10.0.0.1/")]));
        assert!(bad(vec![acl(31, "ip", "10.0.0")]));
        assert!(bad(vec![acl(31, "ip", "10.0.0.256")]));
        assert!(bad(vec![acl(31, "ip", "1.2.3.4.5")]));
        assert!(good(vec![acl(31, "ip", "+10.0.0.1")]));
        assert!(good(vec![acl(31, "ip", "-0.0.0.1")]));
        assert!(bad(vec![acl(31, "digest", "user:")]));
        assert!(good(vec![acl(31, "digest", "user:h:")]));
        assert!(good(vec![acl(31, "digest", ":h")]));
        assert!(bad(vec![acl(31, "digest", "a:b:c")]));
        assert!(bad(vec![acl(31, "digest", "abc")]));
        assert!(bad(vec![acl(31, "digest", "")]));
        assert!(bad(vec![acl(31, "super", "")]));
        assert!(bad(vec![acl(31, "sasl", "x")]));
        assert!(bad(vec![acl(31, "x509", "x")]));
        assert!(bad(vec![acl(31, "foo", "bar")]));
        assert!(bad(vec![acl(31, "auth", "")]));
        assert!(good(vec![acl(0, "world", "anyone")]));
        assert_eq!(
            fixup(
                Some(&[acl(31, "world", "anyone"), acl(31, "world", "anyone")]),
                &none
            ),
            Ok(vec![acl(31, "world", "anyone")])
        );
    }

    #[test]
    fn fixup_expands_auth_without_ip_or_super_and_keeps_later_duplicates() {
        let auth = [
            Id::new("super", ""),
            Id::new("digest", "alice:h"),
            Id::new("ip", "127.0.0.1"),
        ];
        assert_eq!(
            fixup(
                Some(&[acl(31, "auth", "ignored"), acl(1, "world", "anyone")]),
                &auth
            ),
            Ok(vec![
                acl(31, "digest", "alice:h"),
                acl(1, "world", "anyone")
            ])
        );
        // 3.8.0 keeps the duplicate that appears only after expansion.
        assert_eq!(
            fixup(
                Some(&[acl(31, "auth", ""), acl(31, "digest", "alice:h")]),
                &auth
            ),
            Ok(vec![
                acl(31, "digest", "alice:h"),
                acl(31, "digest", "alice:h")
            ])
        );
        assert_eq!(
            fixup(Some(&[acl(31, "auth", "")]), &[Id::new("ip", "127.0.0.1")]),
            Err(ErrorCode::InvalidAcl)
        );
    }

    #[test]
    fn masking() {
        let l = vec![
            acl(1, "world", "anyone"),
            acl(31, "digest", "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="),
            acl(2, "digest", "bob:xyz"),
            acl(2, "digest", "odd"),
            acl(2, "digest", "a:b\nc:d"),
        ];
        let m = mask_digests(&l);
        assert_eq!(m[0], l[0]);
        assert_eq!(m[1].id.id, "alice:x");
        assert_eq!(m[2].id.id, "bob:x");
        assert_eq!(m[3].id.id, "odd");
        assert_eq!(m[4].id.id, "a:x\nc:x");
    }

    #[test]
    fn ip_matching() {
        assert!(ip_matches("127.0.0.1", "127.0.0.1"));
        assert!(ip_matches("127.1.2.3", "127.0.0.0/8"));
        assert!(!ip_matches("128.1.2.3", "127.0.0.0/8"));
        assert!(ip_matches("10.9.8.7", "0.0.0.0/0"));
        assert!(ip_matches("10.0.0.129", "10.0.0.128/25"));
        assert!(!ip_matches("10.0.0.127", "10.0.0.128/25"));
        assert!(!ip_matches("::1", "127.0.0.1"));
        assert!(!ip_matches("127.0.0.1", "garbage"));
    }
}

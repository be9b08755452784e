//! Property test: random sequences of create / delete / setData / setACL / check / multi /
//! session open and close run against the tree and against a plain `BTreeMap` model that
//! implements the same rules directly (a multi is a clone of the model, committed only if
//! every op succeeds). After every step the replies, every node's stat, data and ACL, and
//! the set of paths must agree, and `check_invariants` must hold (which also recomputes
//! the digest, data size, indexes and reference counts from scratch).

mod common;
use bytes::Bytes;
use common::*;
use corral_proto::request::{CreateRequest, PathVersion, SetAclRequest, SetDataRequest};
use corral_proto::{perms, Acl, ErrorCode, Id, MultiResult, Request, Response, Stat};
use corral_tree::path::validate_path;
use corral_tree::{DataTree, TreeConfig};
use proptest::prelude::*;
use std::collections::{BTreeMap, BTreeSet};

const SESSIONS: [i64; 3] = [11, 12, 13];
const ALICE: &str = "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=";

fn auth_of(session: i64) -> Vec<Id> {
    match session {
        12 => vec![Id::new("digest", ALICE), Id::new("ip", "127.0.0.1")],
        _ => vec![Id::new("ip", "127.0.0.1")],
    }
}

#[derive(Debug, Clone, PartialEq)]
struct MNode {
    data: Option<Vec<u8>>,
    acl: Vec<Acl>,
    czxid: i64,
    mzxid: i64,
    pzxid: i64,
    ctime: i64,
    mtime: i64,
    version: i32,
    cversion: i32,
    aversion: i32,
    owner: i64,
}

impl MNode {
    fn builtin(acl: Vec<Acl>) -> MNode {
        MNode {
            data: Some(Vec::new()),
            acl,
            czxid: 0,
            mzxid: 0,
            pzxid: 0,
            ctime: 0,
            mtime: 0,
            version: 0,
            cversion: 0,
            aversion: 0,
            owner: 0,
        }
    }
}

#[derive(Debug, Clone)]
struct Model {
    nodes: BTreeMap<String, MNode>,
    sessions: BTreeSet<i64>,
}

fn parent_of(p: &str) -> Option<&str> {
    let i = p.rfind('/')?;
    Some(if i == 0 { "/" } else { &p[..i] })
}

fn allowed(acl: &[Acl], perm: i32, auth: &[Id]) -> bool {
    acl.is_empty()
        || auth.iter().any(|i| i.scheme == "super")
        || acl.iter().any(|a| {
            a.perms & perm != 0
                && ((a.id.scheme == "world" && a.id.id == "anyone")
                    || auth.iter().any(|i| {
                        i.scheme == a.id.scheme && i.id == a.id.id && i.scheme == "digest"
                    }))
        })
}

fn fixup(acl: &Option<Vec<Acl>>, auth: &[Id]) -> Result<Vec<Acl>, ErrorCode> {
    let acl = acl.as_ref().ok_or(ErrorCode::InvalidAcl)?;
    let mut uniq: Vec<&Acl> = Vec::new();
    for a in acl {
        if !uniq.contains(&a) {
            uniq.push(a);
        }
    }
    if uniq.is_empty() {
        return Err(ErrorCode::InvalidAcl);
    }
    let mut out = Vec::new();
    for a in uniq {
        match (a.id.scheme.as_str(), a.id.id.as_str()) {
            ("world", "anyone") => out.push(a.clone()),
            ("auth", _) => {
                let ids: Vec<&Id> = auth.iter().filter(|i| i.scheme == "digest").collect();
                if ids.is_empty() {
                    return Err(ErrorCode::InvalidAcl);
                }
                out.extend(ids.into_iter().map(|i| Acl {
                    perms: a.perms,
                    id: i.clone(),
                }));
            }
            ("digest", id) if id.split(':').count() == 2 && !id.ends_with(':') => {
                out.push(a.clone())
            }
            _ => return Err(ErrorCode::InvalidAcl),
        }
    }
    Ok(out)
}

fn check_version(cur: i32, want: i32) -> Result<i32, ErrorCode> {
    if want != -1 && want != cur {
        Err(ErrorCode::BadVersion)
    } else {
        Ok(cur.wrapping_add(1))
    }
}

impl Model {
    fn new() -> Model {
        let mut nodes = BTreeMap::new();
        for p in ["/", "/zookeeper", "/zookeeper/quota"] {
            nodes.insert(p.to_string(), MNode::builtin(Acl::open_unsafe()));
        }
        let mut config = MNode::builtin(Acl::read_unsafe());
        config.aversion = -1;
        nodes.insert("/zookeeper/config".to_string(), config);
        Model {
            nodes,
            sessions: SESSIONS.iter().copied().collect(),
        }
    }

    fn children(&self, p: &str) -> Vec<String> {
        self.nodes
            .keys()
            .filter(|k| k.as_str() != "/" && parent_of(k) == Some(p))
            .map(|k| k.rsplit('/').next().unwrap().to_string())
            .collect()
    }

    fn stat(&self, p: &str) -> Stat {
        let n = &self.nodes[p];
        let kids = self.children(p).len() as i32;
        Stat {
            czxid: n.czxid,
            mzxid: n.mzxid,
            ctime: n.ctime,
            mtime: n.mtime,
            version: n.version,
            cversion: n.cversion * 2 - kids,
            aversion: n.aversion,
            ephemeral_owner: n.owner,
            data_length: n.data.as_ref().map_or(0, |d| d.len() as i32),
            num_children: kids,
            pzxid: n.pzxid,
        }
    }

    fn create(
        &mut self,
        session: i64,
        req: &CreateRequest,
        two: bool,
        zxid: i64,
        time: i64,
    ) -> Result<MultiResult, ErrorCode> {
        let auth = auth_of(session);
        if !(0..=3).contains(&req.flags) {
            return Err(ErrorCode::BadArguments);
        }
        let ephemeral = req.flags & 1 != 0;
        let sequential = req.flags & 2 != 0;
        if ephemeral && !self.sessions.contains(&session) {
            return Err(ErrorCode::SessionExpired);
        }
        let slash = req.path.rfind('/').ok_or(ErrorCode::BadArguments)?;
        let acl = fixup(&req.acl, &auth)?;
        let parent = if slash == 0 { "/" } else { &req.path[..slash] };
        let pn = self.nodes.get(parent).ok_or(ErrorCode::NoNode)?.clone();
        if !allowed(&pn.acl, perms::CREATE, &auth) {
            return Err(ErrorCode::NoAuth);
        }
        let mut path = req.path.clone();
        if sequential {
            path.push_str(&format!("{:010}", pn.cversion));
        }
        validate_path(&path)?;
        if self.nodes.contains_key(&path) {
            return Err(ErrorCode::NodeExists);
        }
        if pn.owner != 0 {
            return Err(ErrorCode::NoChildrenForEphemerals);
        }
        let p = self.nodes.get_mut(parent).unwrap();
        p.cversion += 1;
        p.pzxid = zxid;
        self.nodes.insert(
            path.clone(),
            MNode {
                data: req.data.as_ref().map(|d| d.to_vec()),
                acl,
                czxid: zxid,
                mzxid: zxid,
                pzxid: zxid,
                ctime: time,
                mtime: time,
                version: 0,
                cversion: 0,
                aversion: 0,
                owner: if ephemeral { session } else { 0 },
            },
        );
        Ok(if two {
            MultiResult::Create2 {
                stat: self.stat(&path),
                path,
            }
        } else {
            MultiResult::Create { path }
        })
    }

    fn remove(&mut self, path: &str, zxid: i64) {
        self.nodes.remove(path);
        let p = self.nodes.get_mut(parent_of(path).unwrap()).unwrap();
        p.pzxid = p.pzxid.max(zxid);
    }

    fn delete(
        &mut self,
        session: i64,
        req: &PathVersion,
        zxid: i64,
    ) -> Result<MultiResult, ErrorCode> {
        let auth = auth_of(session);
        let special = ["/", "/zookeeper", "/zookeeper/quota", "/zookeeper/config"];
        if special.contains(&req.path.as_str())
            || !req.path.contains('/')
            || req.path.contains('\0')
        {
            return Err(ErrorCode::BadArguments);
        }
        let slash = req.path.rfind('/').unwrap();
        let parent = if slash == 0 { "/" } else { &req.path[..slash] };
        let pn = self.nodes.get(parent).ok_or(ErrorCode::NoNode)?;
        if !allowed(&pn.acl, perms::DELETE, &auth) {
            return Err(ErrorCode::NoAuth);
        }
        let n = self.nodes.get(&req.path).ok_or(ErrorCode::NoNode)?;
        check_version(n.version, req.version)?;
        if !self.children(&req.path).is_empty() {
            return Err(ErrorCode::NotEmpty);
        }
        self.remove(&req.path, zxid);
        Ok(MultiResult::Delete)
    }

    fn set_data(
        &mut self,
        session: i64,
        req: &SetDataRequest,
        zxid: i64,
        time: i64,
    ) -> Result<MultiResult, ErrorCode> {
        validate_path(&req.path)?;
        let n = self.nodes.get(&req.path).ok_or(ErrorCode::NoNode)?;
        if !allowed(&n.acl, perms::WRITE, &auth_of(session)) {
            return Err(ErrorCode::NoAuth);
        }
        let v = check_version(n.version, req.version)?;
        let n = self.nodes.get_mut(&req.path).unwrap();
        n.version = v;
        n.data = req.data.as_ref().map(|d| d.to_vec());
        n.mzxid = zxid;
        n.mtime = time;
        Ok(MultiResult::SetData {
            stat: self.stat(&req.path),
        })
    }

    fn set_acl(&mut self, session: i64, req: &SetAclRequest) -> Result<Stat, ErrorCode> {
        validate_path(&req.path)?;
        let auth = auth_of(session);
        let acl = fixup(&req.acl, &auth)?;
        let n = self.nodes.get(&req.path).ok_or(ErrorCode::NoNode)?;
        if !allowed(&n.acl, perms::ADMIN, &auth) {
            return Err(ErrorCode::NoAuth);
        }
        let v = check_version(n.aversion, req.version)?;
        let n = self.nodes.get_mut(&req.path).unwrap();
        n.aversion = v;
        n.acl = acl;
        Ok(self.stat(&req.path))
    }

    fn check(&self, session: i64, req: &PathVersion) -> Result<MultiResult, ErrorCode> {
        validate_path(&req.path)?;
        let n = self.nodes.get(&req.path).ok_or(ErrorCode::NoNode)?;
        if !allowed(&n.acl, perms::READ, &auth_of(session)) {
            return Err(ErrorCode::NoAuth);
        }
        check_version(n.version, req.version)?;
        Ok(MultiResult::Check)
    }

    fn sub(
        &mut self,
        session: i64,
        req: &Request,
        zxid: i64,
        time: i64,
    ) -> Result<MultiResult, ErrorCode> {
        match req {
            Request::Create(c) => self.create(session, c, false, zxid, time),
            Request::Create2(c) => self.create(session, c, true, zxid, time),
            Request::Delete(d) => self.delete(session, d, zxid),
            Request::SetData(s) => self.set_data(session, s, zxid, time),
            Request::Check(c) => self.check(session, c),
            other => panic!("not a multi op: {other:?}"),
        }
    }

    /// The expected reply of one write.
    fn write(
        &mut self,
        session: i64,
        req: &Request,
        zxid: i64,
        time: i64,
    ) -> Result<Response, ErrorCode> {
        match req {
            Request::Multi(ops) => {
                let mut trial = self.clone();
                let mut results = Vec::new();
                let mut failed = None;
                for (i, op) in ops.iter().enumerate() {
                    match trial.sub(session, op, zxid, time) {
                        Ok(r) => results.push(r),
                        Err(e) => {
                            failed = Some((i, e));
                            break;
                        }
                    }
                }
                Ok(Response::Multi(match failed {
                    None => {
                        *self = trial;
                        results
                    }
                    Some((at, code)) => (0..ops.len())
                        .map(|i| {
                            MultiResult::Error(match i.cmp(&at) {
                                std::cmp::Ordering::Less => ErrorCode::Ok,
                                std::cmp::Ordering::Equal => code,
                                std::cmp::Ordering::Greater => ErrorCode::RuntimeInconsistency,
                            })
                        })
                        .collect(),
                }))
            }
            Request::SetAcl(s) => self.set_acl(session, s).map(Response::Stat),
            Request::CloseSession => {
                let mine: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|(_, n)| n.owner == session)
                    .map(|(p, _)| p.clone())
                    .collect();
                for p in mine {
                    self.remove(&p, zxid);
                }
                self.sessions.remove(&session);
                Ok(Response::Empty)
            }
            other => self.sub(session, other, zxid, time).map(|r| match r {
                MultiResult::Create { path } => Response::Create { path },
                MultiResult::Create2 { path, stat } => Response::Create2 { path, stat },
                MultiResult::SetData { stat } => Response::Stat(stat),
                _ => Response::Empty,
            }),
        }
    }
}

// ---- generated operations ------------------------------------------------------------

#[derive(Debug, Clone)]
enum Spec {
    Create {
        s: usize,
        path: PathSel,
        data: Option<Vec<u8>>,
        flags: u8,
        acl: u8,
        two: bool,
    },
    Delete {
        s: usize,
        path: PathSel,
        version: u8,
    },
    SetData {
        s: usize,
        path: PathSel,
        data: Option<Vec<u8>>,
        version: u8,
    },
    SetAcl {
        s: usize,
        path: PathSel,
        acl: u8,
        version: u8,
    },
    Check {
        s: usize,
        path: PathSel,
        version: u8,
    },
    Multi {
        s: usize,
        ops: Vec<Spec>,
    },
    Close {
        s: usize,
    },
    Open {
        s: usize,
    },
}

/// An existing path (by index), a child name under an existing path, or a made-up path.
#[derive(Debug, Clone)]
enum PathSel {
    Existing(usize),
    Under(usize, u8),
    Made(Vec<u8>),
}

fn name(b: u8) -> &'static str {
    ["a", "b", "c", "d", "e", ".", "é", ""][b as usize % 8]
}

fn resolve(m: &Model, p: &PathSel) -> String {
    match p {
        PathSel::Existing(i) => {
            let all: Vec<&String> = m.nodes.keys().collect();
            all[i % all.len()].clone()
        }
        PathSel::Under(i, b) => {
            let parent = resolve(m, &PathSel::Existing(*i));
            corral_tree::path::join(&parent, name(*b))
        }
        PathSel::Made(parts) => {
            let mut s = String::new();
            for &b in parts {
                s.push('/');
                s.push_str(name(b));
            }
            if s.is_empty() {
                s.push('/');
            }
            s
        }
    }
}

fn acl_choice(c: u8) -> Option<Vec<Acl>> {
    Some(match c % 8 {
        0..=2 => Acl::open_unsafe(),
        3 => Acl::read_unsafe(),
        4 => vec![Acl::new(perms::ALL, "digest", ALICE)],
        5 => vec![
            Acl::new(perms::ALL, "auth", ""),
            Acl::new(perms::READ | perms::CREATE, "world", "anyone"),
        ],
        6 => vec![],
        _ => return None,
    })
}

fn version_choice(m: &Model, path: &str, c: u8, acl: bool) -> i32 {
    let cur = m
        .nodes
        .get(path)
        .map_or(0, |n| if acl { n.aversion } else { n.version });
    match c % 4 {
        0 | 1 => -1,
        2 => cur,
        _ => cur + 1,
    }
}

fn build(m: &Model, spec: &Spec) -> (i64, Request) {
    let data = |d: &Option<Vec<u8>>| d.as_ref().map(|d| Bytes::copy_from_slice(d));
    match spec {
        Spec::Create {
            s,
            path,
            data: d,
            flags,
            acl,
            two,
        } => {
            let c = CreateRequest {
                path: resolve(m, path),
                data: data(d),
                acl: acl_choice(*acl),
                flags: if *flags == 9 {
                    7
                } else {
                    i32::from(*flags % 4)
                },
                ttl: None,
            };
            (
                SESSIONS[*s],
                if *two {
                    Request::Create2(c)
                } else {
                    Request::Create(c)
                },
            )
        }
        Spec::Delete { s, path, version } => {
            let p = resolve(m, path);
            let v = version_choice(m, &p, *version, false);
            (
                SESSIONS[*s],
                Request::Delete(PathVersion {
                    path: p,
                    version: v,
                }),
            )
        }
        Spec::SetData {
            s,
            path,
            data: d,
            version,
        } => {
            let p = resolve(m, path);
            let v = version_choice(m, &p, *version, false);
            (
                SESSIONS[*s],
                Request::SetData(SetDataRequest {
                    path: p,
                    data: data(d),
                    version: v,
                }),
            )
        }
        Spec::SetAcl {
            s,
            path,
            acl,
            version,
        } => {
            let p = resolve(m, path);
            let v = version_choice(m, &p, *version, true);
            (
                SESSIONS[*s],
                Request::SetAcl(SetAclRequest {
                    path: p,
                    acl: acl_choice(*acl),
                    version: v,
                }),
            )
        }
        Spec::Check { s, path, version } => {
            let p = resolve(m, path);
            let v = version_choice(m, &p, *version, false);
            (
                SESSIONS[*s],
                Request::Check(PathVersion {
                    path: p,
                    version: v,
                }),
            )
        }
        Spec::Multi { s, ops } => {
            // Versions and indexes inside a multi resolve against the state before it.
            let reqs = ops.iter().map(|o| build(m, o).1).collect();
            (SESSIONS[*s], Request::Multi(reqs))
        }
        Spec::Close { s } | Spec::Open { s } => (SESSIONS[*s], Request::CloseSession),
    }
}

fn path_sel() -> impl Strategy<Value = PathSel> {
    prop_oneof![
        2 => (0usize..64).prop_map(PathSel::Existing),
        2 => (0usize..64, 0u8..8).prop_map(|(i, b)| PathSel::Under(i, b)),
        1 => prop::collection::vec(0u8..8, 0..4).prop_map(PathSel::Made),
    ]
}

fn data() -> impl Strategy<Value = Option<Vec<u8>>> {
    prop::option::weighted(0.9, prop::collection::vec(any::<u8>(), 0..4))
}

fn leaf(multi: bool) -> BoxedStrategy<Spec> {
    let s = 0usize..3;
    // Inside a multi, lean towards ops that succeed so that whole multis commit often.
    let (acl, version) = if multi {
        (0u8..=2, 0u8..=2)
    } else {
        (0u8..=255, 0u8..=255)
    };
    let create = (
        s.clone(),
        path_sel(),
        data(),
        prop_oneof![8 => 0u8..4, 1 => Just(9u8)],
        acl.clone(),
        any::<bool>(),
    )
        .prop_map(|(s, path, data, flags, acl, two)| Spec::Create {
            s,
            path,
            data,
            flags,
            acl,
            two,
        });
    let delete = (s.clone(), path_sel(), version.clone())
        .prop_map(|(s, path, version)| Spec::Delete { s, path, version });
    let set_data =
        (s.clone(), path_sel(), data(), version.clone()).prop_map(|(s, path, data, version)| {
            Spec::SetData {
                s,
                path,
                data,
                version,
            }
        });
    let check = (s.clone(), path_sel(), version.clone())
        .prop_map(|(s, path, version)| Spec::Check { s, path, version });
    if multi {
        prop_oneof![4 => create, 2 => delete, 2 => set_data, 1 => check].boxed()
    } else {
        let set_acl = (s.clone(), path_sel(), acl, version).prop_map(|(s, path, acl, version)| {
            Spec::SetAcl {
                s,
                path,
                acl,
                version,
            }
        });
        let multi = (s.clone(), prop::collection::vec(leaf(true), 0..4))
            .prop_map(|(s, ops)| Spec::Multi { s, ops });
        prop_oneof![
            8 => create,
            3 => delete,
            3 => set_data,
            2 => set_acl,
            1 => check,
            4 => multi,
            1 => s.clone().prop_map(|s| Spec::Close { s }),
            1 => s.prop_map(|s| Spec::Open { s }),
        ]
        .boxed()
    }
}

fn compare_state(h: &Harness, m: &Model) {
    let paths: Vec<String> = m.nodes.keys().cloned().collect();
    assert_eq!(h.tree.all_paths(), paths, "paths");
    for p in &paths {
        let (data, stat) = h.tree.get(p).unwrap();
        assert_eq!(stat, m.stat(p), "stat of {p}");
        assert_eq!(data.map(|d| d.to_vec()), m.nodes[p].data, "data of {p}");
        assert_eq!(h.tree.acl(p).unwrap(), m.nodes[p].acl, "acl of {p}");
        let mut kids = m.children(p);
        kids.sort();
        assert_eq!(h.tree.children(p).unwrap(), kids, "children of {p}");
    }
    for s in SESSIONS {
        assert_eq!(
            h.tree.session_exists(s),
            m.sessions.contains(&s),
            "session {s}"
        );
        let mine: Vec<String> = m
            .nodes
            .iter()
            .filter(|(_, n)| n.owner == s)
            .map(|(p, _)| p.clone())
            .collect();
        assert_eq!(h.tree.ephemerals_of(s), mine, "ephemerals of {s}");
    }
    assert_eq!(h.tree.node_count(), m.nodes.len() + 1);
}

/// Everything a client or a snapshot could tell apart.
fn fingerprint(t: &DataTree) -> Vec<String> {
    let mut out = vec![format!(
        "digest {} size {}",
        t.digest(),
        t.approximate_data_size()
    )];
    for p in t.all_paths() {
        let (data, stat) = t.get(&p).unwrap();
        out.push(format!(
            "{p} {data:?} {stat:?} {:?} {:?}",
            t.acl(&p),
            t.persisted_owner_and_cversion(&p)
        ));
    }
    out.extend(
        t.sessions()
            .map(|(s, to)| format!("session {s} {to} {:?}", t.ephemerals_of(s))),
    );
    out
}

/// A fuzzy snapshot taken after txn `j` and a log replayed from txn `k <= j` must end in
/// the same state as applying the log once.
fn check_fuzzy_replay(h: &Harness, k: usize, j: usize) {
    let n = h.log.len();
    let j = j % (n + 1);
    let k = k % (j + 1);
    let mut t = DataTree::new(TreeConfig::default());
    for (hdr, txn) in &h.log[..j] {
        t.apply(hdr, txn);
    }
    for (hdr, txn) in &h.log[k..] {
        t.replay(hdr, txn).unwrap_or_else(|e| panic!("replay: {e}"));
    }
    t.check_invariants();
    assert_eq!(
        fingerprint(&t),
        fingerprint(&h.tree),
        "snapshot after {j}, replay from {k} of {n}"
    );
}

fn run(specs: Vec<Spec>) -> Harness {
    let mut h = Harness::default();
    let mut m = Model::new();
    for s in SESSIONS {
        h.open_session(s);
    }
    compare_state(&h, &m);
    for spec in &specs {
        if let Spec::Open { s } = spec {
            let sid = SESSIONS[*s];
            h.open_session(sid);
            m.sessions.insert(sid);
            continue;
        }
        let (session, req) = build(&m, spec);
        let expected = m.write(session, &req, h.zxid + 1, h.time + 1);
        let got = h.write_as(session, &auth_of(session), &req);
        assert_eq!(got, expected, "reply to {req:?}");
        compare_state(&h, &m);
    }
    h
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn tree_matches_the_model(specs in prop::collection::vec(leaf(false), 1..60), k in any::<usize>(), j in any::<usize>()) {
        let h = run(specs);
        check_fuzzy_replay(&h, k, j);
    }
}

#[test]
fn model_smoke() {
    let h = run(vec![
        Spec::Create {
            s: 0,
            path: PathSel::Made(vec![0]),
            data: Some(vec![1]),
            flags: 0,
            acl: 0,
            two: true,
        },
        Spec::Create {
            s: 0,
            path: PathSel::Made(vec![0, 1]),
            data: None,
            flags: 3,
            acl: 0,
            two: false,
        },
        Spec::Multi {
            s: 1,
            ops: vec![
                Spec::Create {
                    s: 1,
                    path: PathSel::Made(vec![2]),
                    data: None,
                    flags: 2,
                    acl: 5,
                    two: false,
                },
                Spec::SetData {
                    s: 1,
                    path: PathSel::Made(vec![0]),
                    data: None,
                    version: 2,
                },
            ],
        },
        Spec::Close { s: 0 },
        Spec::Delete {
            s: 2,
            path: PathSel::Made(vec![0]),
            version: 0,
        },
    ]);
    for j in 0..=h.log.len() {
        for k in 0..=j {
            check_fuzzy_replay(&h, k, j);
        }
    }
}

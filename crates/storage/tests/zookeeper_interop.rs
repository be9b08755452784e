//! ZooKeeper 3.8.0 starts on a data directory corral wrote and serves what corral says is
//! in it. One JVM start (about 5-10 s); needs Debian's `zookeeper` package and `java`.
//!
//! corral writes a snapshot (at zxid 3) and a txn log (zxids 4..=11: session, ephemeral,
//! setData, container, TTL, setACL, delete) with correct tree digests in both. The test
//! then checks that ZooKeeper
//! * loads and replays them without a digest mismatch (so its whole tree — paths, data
//!   and all stat fields — equals corral's model of it),
//! * serves every node with the stat, data and ACL corral's model predicts,
//! * and that the snapshot ZooKeeper writes at startup reads back, with corral's reader,
//!   as the same tree.

mod common;

use bytes::Bytes;
use common::*;
use corral_proto::jute::{Reader, Record, Writer};
use corral_proto::records::{perms, read_acl_vec, Acl, Stat, StatPersisted};
use corral_proto::txn::{CreateTxn, Txn, TxnDigest, TxnEntry, TxnHeader};
use corral_storage::image::{ImageNode, SnapshotImage};
use corral_storage::layout::DataDirs;
use corral_storage::log::{LogWriterOptions, TxnLogWriter};
use corral_storage::snapshot::{self, ZxidDigest, OPEN_ACL_UNSAFE_ID};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SESSION: i64 = 0x0100_0000_0000_0042;
const T0: i64 = 1_700_000_000_000;
/// How long ZooKeeper gets to start and load.
const START_TIMEOUT: Duration = Duration::from_secs(60);

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn acl_id(img: &mut SnapshotImage, acl: &[Acl]) -> i64 {
    if let Some((&id, _)) = img.acls.iter().find(|(_, a)| a[..] == acl[..]) {
        return id;
    }
    let id = img.acls.keys().max().copied().unwrap_or(0) + 1;
    img.acls.insert(id, acl.to_vec());
    id
}

/// Applies a txn to the model the way ZooKeeper's DataTree does (for the txns used here).
fn apply(img: &mut SnapshotImage, h: &TxnHeader, txn: &Txn) {
    let mut create = |c: &CreateTxn, owner: i64| {
        let parent = SnapshotImage::parent_of(&c.path).unwrap().to_string();
        let id = acl_id(img, &c.acl);
        let p = img.nodes.get_mut(&parent).unwrap();
        p.stat.cversion = c.parent_cversion;
        p.stat.pzxid = h.zxid;
        img.nodes.insert(
            c.path.clone(),
            ImageNode {
                data: c.data.clone(),
                acl_id: id,
                stat: StatPersisted {
                    czxid: h.zxid,
                    mzxid: h.zxid,
                    ctime: h.time_ms,
                    mtime: h.time_ms,
                    version: 0,
                    cversion: 0,
                    aversion: 0,
                    ephemeral_owner: owner,
                    pzxid: h.zxid,
                },
            },
        );
    };
    match txn {
        Txn::CreateSession { timeout_ms } => {
            img.sessions.insert(h.session_id, *timeout_ms);
        }
        Txn::Create(c) => create(c, if c.ephemeral { h.session_id } else { 0 }),
        Txn::CreateContainer(c) => create(c, i64::MIN),
        Txn::CreateTtl(c) => create(c, (0xff00_0000_0000_0000u64 as i64) | c.ttl),
        Txn::SetData {
            path,
            data,
            version,
        } => {
            let n = img.nodes.get_mut(path).unwrap();
            n.data = data.clone();
            n.stat.version = *version;
            n.stat.mzxid = h.zxid;
            n.stat.mtime = h.time_ms;
        }
        Txn::SetAcl { path, acl, version } => {
            let id = acl_id(img, acl);
            let n = img.nodes.get_mut(path).unwrap();
            n.acl_id = id;
            n.stat.aversion = *version;
        }
        Txn::Delete { path } => {
            img.nodes.remove(path);
            let parent = SnapshotImage::parent_of(path).unwrap().to_string();
            let p = img.nodes.get_mut(&parent).unwrap();
            p.stat.pzxid = p.stat.pzxid.max(h.zxid);
        }
        other => panic!("not modelled: {other:?}"),
    }
}

fn node_txn(zxid: i64, txn: Txn, img: &mut SnapshotImage) -> TxnEntry {
    let header = TxnHeader {
        session_id: SESSION,
        cxid: zxid as i32,
        zxid,
        time_ms: T0 + zxid * 1000,
        op: txn.op().code(),
    };
    apply(img, &header, &txn);
    TxnEntry {
        header,
        txn,
        digest: Some(TxnDigest {
            version: 2,
            tree_digest: img.tree_digest(),
        }),
    }
}

fn create_txn(
    path: &str,
    data: Option<&[u8]>,
    acl: Vec<Acl>,
    eph: bool,
    pcv: i32,
    ttl: i64,
) -> CreateTxn {
    CreateTxn {
        path: path.into(),
        data: data.map(Bytes::copy_from_slice),
        acl,
        ephemeral: eph,
        parent_cversion: pcv,
        ttl,
    }
}

/// Writes the data dir; returns the model of the tree after the last txn.
fn write_data_dir(dirs: &DataDirs) -> SnapshotImage {
    let alice = vec![Acl::new(
        perms::ALL,
        "digest",
        "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E=",
    )];
    let mut img = SnapshotImage::initial();
    // State at zxid 3, as if /s1, /s2 and /s1/child had been created by zxids 1..=3.
    let h = |z: i64| TxnHeader {
        session_id: SESSION,
        cxid: z as i32,
        zxid: z,
        time_ms: T0 + z * 1000,
        op: 1,
    };
    apply(
        &mut img,
        &h(1),
        &Txn::Create(create_txn(
            "/s1",
            Some(b"snap-data"),
            alice.clone(),
            false,
            1,
            0,
        )),
    );
    apply(
        &mut img,
        &h(2),
        &Txn::Create(create_txn("/s2", None, Acl::open_unsafe(), false, 2, 0)),
    );
    apply(
        &mut img,
        &h(3),
        &Txn::Create(create_txn(
            "/s1/child",
            Some(b""),
            Acl::read_unsafe(),
            false,
            1,
            0,
        )),
    );
    img.digest = Some(ZxidDigest {
        zxid: 3,
        version: 2,
        digest: img.tree_digest(),
    });
    img.check_invariants().unwrap();
    snapshot::write_snapshot(&*fs(), &dirs.snap_dir, 3, &img).unwrap();

    let txns = vec![
        Txn::CreateSession { timeout_ms: 40_000 },
        Txn::Create(create_txn(
            "/e",
            Some(b"ephemeral"),
            Acl::open_unsafe(),
            true,
            3,
            0,
        )),
        Txn::SetData {
            path: "/s1".into(),
            data: Some(Bytes::from_static(b"updated")),
            version: 1,
        },
        Txn::CreateContainer(create_txn("/c", None, Acl::open_unsafe(), false, 4, 0)),
        Txn::CreateTtl(create_txn(
            "/c/ttl",
            Some(b"t"),
            Acl::open_unsafe(),
            false,
            1,
            600_000,
        )),
        Txn::SetAcl {
            path: "/s2".into(),
            acl: vec![Acl::new(perms::READ | perms::WRITE, "world", "anyone")],
            version: 1,
        },
        Txn::Delete {
            path: "/s1/child".into(),
        },
        Txn::SetData {
            path: "/c/ttl".into(),
            data: Some(Bytes::from_static(b"t2")),
            version: 1,
        },
    ];
    let o = LogWriterOptions::default(); // 64 MiB preallocation, as ZooKeeper
    let mut w = TxnLogWriter::new(fs(), &dirs.log_dir, Some(3), o).unwrap();
    for (i, txn) in txns.into_iter().enumerate() {
        let e = node_txn(4 + i as i64, txn, &mut img);
        w.append(&e).unwrap();
        if i == 3 {
            w.roll().unwrap();
        }
    }
    w.close().unwrap();
    img
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as i32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut b = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut b).unwrap();
    b
}

struct RawClient {
    s: TcpStream,
    xid: i32,
}

impl RawClient {
    fn connect(port: u16) -> std::io::Result<RawClient> {
        let mut s = TcpStream::connect(("127.0.0.1", port))?;
        s.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut w = Writer::new();
        w.write_i32(0);
        w.write_i64(0);
        w.write_i32(30_000);
        w.write_i64(0);
        w.write_buffer(Some(&[0u8; 16]));
        w.write_bool(false);
        s.write_all(&frame(w.as_slice()))?;
        let mut len = [0u8; 4];
        s.read_exact(&mut len)?;
        let mut b = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut b)?;
        // addAuth digest alice:secret (the hash in the ACLs is of this password).
        let mut w = Writer::new();
        w.write_i32(-4);
        w.write_i32(100);
        w.write_i32(0);
        w.write_string("digest");
        w.write_buffer(Some(b"alice:secret"));
        s.write_all(&frame(w.as_slice()))?;
        let mut r = Reader::new(read_frame(&mut s).into());
        assert_eq!(r.read_i32("xid").unwrap(), -4);
        let _ = r.read_i64("zxid").unwrap();
        assert_eq!(r.read_i32("err").unwrap(), 0, "auth failed");
        Ok(RawClient { s, xid: 0 })
    }

    /// Sends `op` with `body`; returns the reply body after a successful header.
    fn call(&mut self, op: i32, body: &[u8]) -> Result<Reader, i32> {
        self.xid += 1;
        let mut w = Writer::new();
        w.write_i32(self.xid);
        w.write_i32(op);
        w.write_raw(body);
        self.s.write_all(&frame(w.as_slice())).unwrap();
        let mut r = Reader::new(read_frame(&mut self.s).into());
        assert_eq!(r.read_i32("xid").unwrap(), self.xid);
        let _zxid = r.read_i64("zxid").unwrap();
        match r.read_i32("err").unwrap() {
            0 => Ok(r),
            e => Err(e),
        }
    }

    fn get_data(&mut self, path: &str) -> (Option<Bytes>, Stat) {
        let mut w = Writer::new();
        w.write_string(path);
        w.write_bool(false);
        let mut r = self
            .call(4, w.as_slice())
            .unwrap_or_else(|e| panic!("getData {path}: {e}"));
        let data = r.read_buffer("data").unwrap();
        (data, Stat::read(&mut r).unwrap())
    }

    fn get_acl(&mut self, path: &str) -> Vec<Acl> {
        let mut w = Writer::new();
        w.write_string(path);
        let mut r = self.call(6, w.as_slice()).unwrap();
        read_acl_vec(&mut r).unwrap().unwrap()
    }

    fn exists(&mut self, path: &str) -> bool {
        let mut w = Writer::new();
        w.write_string(path);
        w.write_bool(false);
        self.call(3, w.as_slice()).is_ok()
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_zookeeper(dir: &Path, data: &Path, log: &Path, port: u16) -> Server {
    assert!(
        Path::new("/usr/share/java/zookeeper.jar").exists(),
        "Apache ZooKeeper is not installed: apt-get install -y zookeeper"
    );
    let cfg = dir.join("zoo.cfg");
    std::fs::write(
        &cfg,
        format!(
            "tickTime=2000\ndataDir={}\ndataLogDir={}\nclientPort={port}\n\
             clientPortAddress=127.0.0.1\nextendedTypesEnabled=true\nadmin.enableServer=false\n",
            data.display(),
            log.display()
        ),
    )
    .unwrap();
    let child = Command::new("java")
        .arg("-cp")
        .arg("/usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar")
        .arg("-Xmx256m")
        .arg("-XX:+UseSerialGC")
        .arg("-XX:TieredStopAtLevel=1")
        .arg(format!(
            "-Dorg.slf4j.simpleLogger.logFile={}",
            dir.join("zookeeper.log").display()
        ))
        .arg("-Dzookeeper.admin.enableServer=false")
        .arg("org.apache.zookeeper.server.ZooKeeperServerMain")
        .arg(&cfg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("java must be installed (apt-get install -y zookeeper pulls it in)");
    Server(child)
}

fn visible(n: &ImageNode, children: usize) -> Stat {
    Stat {
        czxid: n.stat.czxid,
        mzxid: n.stat.mzxid,
        ctime: n.stat.ctime,
        mtime: n.stat.mtime,
        version: n.stat.version,
        // ZooKeeper stores child creations; clients see creations + deletions.
        cversion: n.stat.cversion * 2 - children as i32,
        aversion: n.stat.aversion,
        // Containers (0x80…) and TTL nodes (0xff…) show clients an owner of 0.
        ephemeral_owner: if n.stat.ephemeral_owner == i64::MIN
            || (n.stat.ephemeral_owner as u64) >> 56 == 0xff
        {
            0
        } else {
            n.stat.ephemeral_owner
        },
        data_length: n.data.as_ref().map_or(0, |d| d.len() as i32),
        num_children: children as i32,
        pzxid: n.stat.pzxid,
    }
}

#[test]
fn zookeeper_starts_on_a_data_dir_corral_wrote() {
    let t = tempfile::tempdir().unwrap();
    let (data, log) = (t.path().join("data"), t.path().join("log"));
    let dirs = DataDirs::new(&data, &log);
    let model = write_data_dir(&dirs);
    // corral's own recovery agrees first.
    let plan = corral_storage::plan_recovery(fs(), &dirs, Default::default()).unwrap();
    assert_eq!(
        (plan.replay_after, plan.last_zxid, plan.entry_count),
        (3, 11, 8)
    );

    let port = free_port();
    let mut server = start_zookeeper(t.path(), &data, &log, port);
    let deadline = Instant::now() + START_TIMEOUT;
    let mut client = loop {
        match RawClient::connect(port) {
            Ok(c) => break c,
            Err(e) => {
                if let Ok(Some(status)) = server.0.try_wait() {
                    let l =
                        std::fs::read_to_string(t.path().join("zookeeper.log")).unwrap_or_default();
                    panic!("ZooKeeper exited ({status}):\n{l}");
                }
                assert!(Instant::now() < deadline, "ZooKeeper did not start: {e}");
                std::thread::sleep(Duration::from_millis(200));
            }
        }
    };

    for (path, node) in &model.nodes {
        if path.starts_with("/zookeeper") {
            continue;
        }
        let wire = if path.is_empty() { "/" } else { path.as_str() };
        let children = model.children_of(path).len();
        let (got_data, stat) = client.get_data(wire);
        assert_eq!(stat, visible(node, children), "stat of {wire}");
        assert_eq!(
            got_data.unwrap_or_default(),
            node.data.clone().unwrap_or_default(),
            "data of {wire}"
        );
        if node.acl_id != OPEN_ACL_UNSAFE_ID {
            assert_eq!(
                client.get_acl(wire),
                model.acls[&node.acl_id],
                "ACL of {wire}"
            );
        }
    }
    assert!(!client.exists("/s1/child"));
    assert_eq!(model.nodes["/e"].stat.ephemeral_owner, SESSION);
    drop(client);

    // ZooKeeper snapshots right after loading; that file must read back as the same tree.
    let zk_log = std::fs::read_to_string(t.path().join("zookeeper.log")).unwrap();
    drop(server);
    assert!(zk_log.contains("8 txns loaded"), "{zk_log}");
    let lower = zk_log.to_lowercase();
    assert!(
        !lower.contains("not matching") && !lower.contains("mismatch"),
        "{zk_log}"
    );
    let written = dirs.snap_dir.join("snapshot.b");
    let mut back = SnapshotImage::default();
    snapshot::read_snapshot(&*fs(), &written, &mut back).unwrap();
    assert_eq!(back.sessions, model.sessions);
    assert_eq!(
        back.nodes.keys().collect::<Vec<_>>(),
        model.nodes.keys().collect::<Vec<_>>()
    );
    for (path, n) in &model.nodes {
        let b = &back.nodes[path];
        assert_eq!((b.stat, &b.data), (n.stat, &n.data), "{path}");
        assert_eq!(back.acl_of(path), model.acl_of(path), "{path}");
    }
    assert_eq!(back.digest.unwrap().digest, model.tree_digest());
    assert_eq!(back.tree_digest(), model.tree_digest());
}

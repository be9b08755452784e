//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use bytes::Bytes;
use corral_proto::error::ErrorCode;
use corral_proto::records::{perms, Acl};
use corral_proto::txn::{CreateTxn, Txn, TxnDigest, TxnEntry, TxnHeader};
use corral_storage::fs::{FileSystem, StdFs};
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub fn fs() -> Arc<dyn FileSystem> {
    StdFs::shared()
}

/// The ZooKeeper 3.8.0 data directory under tests/fixtures/zk380.
pub fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/zk380")
}

/// A scratch copy of the fixture: (tempdir guard, dataDir, dataLogDir).
pub fn fixture_copy() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    for sub in ["data/version-2", "log/version-2"] {
        let to = t.path().join(sub);
        std::fs::create_dir_all(&to).unwrap();
        for e in std::fs::read_dir(fixture().join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
    let data = t.path().join("data");
    let log = t.path().join("log");
    (t, data, log)
}

pub fn header(zxid: i64, op: i32) -> TxnHeader {
    TxnHeader {
        session_id: 0x1000_0000_0000_0001,
        cxid: (zxid & 0x7fff_ffff) as i32,
        zxid,
        time_ms: 1_700_000_000_000 + zxid,
        op,
    }
}

/// A create of `path` at `zxid` with the given parent cversion.
pub fn create(zxid: i64, path: &str, data: &[u8], parent_cversion: i32) -> TxnEntry {
    let txn = Txn::Create(CreateTxn {
        path: path.into(),
        data: Some(Bytes::copy_from_slice(data)),
        acl: Acl::open_unsafe(),
        ephemeral: false,
        parent_cversion,
        ttl: 0,
    });
    TxnEntry {
        header: header(zxid, txn.op().code()),
        txn,
        digest: Some(TxnDigest {
            version: 2,
            tree_digest: zxid * 7919,
        }),
    }
}

/// One entry of a kind chosen by `k`, at `zxid`.
pub fn entry_of_kind(k: u8, zxid: i64, payload: &[u8]) -> TxnEntry {
    let c = |ttl| CreateTxn {
        path: format!("/n{zxid}"),
        data: Some(Bytes::copy_from_slice(payload)),
        acl: vec![Acl::new(perms::READ | perms::WRITE, "digest", "u:pw=")],
        ephemeral: false,
        parent_cversion: 3,
        ttl,
    };
    let txn = match k % 9 {
        0 => Txn::CreateSession { timeout_ms: 30_000 },
        1 => Txn::Create(c(0)),
        2 => Txn::CreateContainer(c(0)),
        3 => Txn::CreateTtl(c(60_000)),
        4 => Txn::SetData {
            path: "/x".into(),
            data: Some(Bytes::copy_from_slice(payload)),
            version: 3,
        },
        5 => Txn::Delete {
            path: format!("/d{zxid}"),
        },
        6 => Txn::Multi(vec![
            Txn::Create(c(0)),
            Txn::Check {
                path: "/x".into(),
                version: 1,
            },
        ]),
        7 => Txn::Error(ErrorCode::NodeExists),
        _ => Txn::CloseSession {
            paths_to_delete: vec!["/e1".into(), "/e2".into()],
        },
    };
    let digest = (!matches!(txn, Txn::Error(_))).then_some(TxnDigest {
        version: 2,
        tree_digest: zxid.wrapping_mul(31),
    });
    TxnEntry {
        header: header(zxid, txn.op().code()),
        txn,
        digest,
    }
}

pub fn flip_byte(path: &Path, offset: u64) {
    let mut b = std::fs::read(path).unwrap();
    b[offset as usize] ^= 0x40;
    std::fs::write(path, b).unwrap();
}

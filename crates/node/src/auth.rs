//! Authentication providers for the `auth` packet (ZooKeeper's `digest` and `ip` schemes).
//!
//! Owns: turning an auth packet into the identities a connection holds. There is no
//! password store in ZooKeeper's digest scheme: any `user:password` authenticates as
//! `digest:user:BASE64(SHA1("user:password"))`, and ACLs decide what that id may do.

use base64::Engine;
use corral_proto::Id;
use sha1::{Digest, Sha1};

/// The id `super:` that bypasses every ACL check.
pub fn super_id() -> Id {
    Id::new("super", "")
}

/// `user:BASE64(SHA1("user:password"))` for the plaintext `user:password`.
pub fn digest_id(user_password: &str) -> String {
    let user = user_password.split(':').next().unwrap_or("");
    let hash = Sha1::digest(user_password.as_bytes());
    format!(
        "{user}:{}",
        base64::engine::general_purpose::STANDARD.encode(hash)
    )
}

/// What an auth packet does to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// These ids are added to the connection.
    Added(Vec<Id>),
    /// Unknown scheme: the connection gets AuthFailed and is closed.
    Failed,
}

/// Handles an auth packet of `scheme` with payload `auth` (`None` for a null buffer) on a
/// connection from `peer_ip`. `super_digest` is the configured `super:<b64>` id, if any.
pub fn authenticate(
    scheme: &str,
    auth: Option<&[u8]>,
    peer_ip: &str,
    super_digest: Option<&str>,
) -> AuthOutcome {
    match (scheme, auth) {
        // ZooKeeper's digest provider cannot read a null credential and fails the auth.
        ("digest", None) => AuthOutcome::Failed,
        ("digest", Some(auth)) => {
            let plain = String::from_utf8_lossy(auth);
            let id = digest_id(&plain);
            let mut ids = Vec::with_capacity(2);
            if super_digest == Some(id.as_str()) {
                ids.push(super_id());
            }
            ids.push(Id::new("digest", id));
            AuthOutcome::Added(ids)
        }
        // The ip provider ignores the payload: the connection's address is the identity.
        ("ip", _) => AuthOutcome::Added(vec![Id::new("ip", peer_ip)]),
        _ => AuthOutcome::Failed,
    }
}

/// The user name whoAmI reports for an id.
pub fn user_name(id: &Id) -> String {
    match id.scheme.as_str() {
        "digest" => id.id.split(':').next().unwrap_or("").to_owned(),
        _ => id.id.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_matches_real_zookeeper() {
        // Observed on ZooKeeper 3.8.0: alice:secret.
        assert_eq!(
            digest_id("alice:secret"),
            "alice:aYXlLOpEooaV1cRAvUL1fp9Qt7E="
        );
    }

    #[test]
    fn super_digest_grants_super() {
        let sup = digest_id("super:pw");
        let out = authenticate("digest", Some(b"super:pw"), "127.0.0.1", Some(&sup));
        assert_eq!(
            out,
            AuthOutcome::Added(vec![super_id(), Id::new("digest", sup)])
        );
        assert_eq!(
            authenticate("kerberos", Some(b"x"), "127.0.0.1", None),
            AuthOutcome::Failed
        );
        assert_eq!(
            authenticate("digest", None, "127.0.0.1", None),
            AuthOutcome::Failed
        );
    }
}

//! zkCli's output texts: stats (`StatPrinter`), ACL entries (a jute `Id` record printed with
//! its `toString`, then the permission letters), watch events (`WatchedEvent.toString`), and
//! the messages of failed operations (`CliWrapperException` and `KeeperException`).
//!
//! Owns: pure formatting; no I/O. Every function takes server data as it came and never
//! panics on it.

use crate::java;
use corral_client::proto::ErrorCode;
use corral_client::{perms, Acl, Error, EventType, KeeperState, Stat};

/// The eleven `key = value` lines of `StatPrinter.print`, each ending in a newline.
pub fn stat(s: &Stat) -> String {
    format!(
        "cZxid = 0x{:x}\nctime = {}\nmZxid = 0x{:x}\nmtime = {}\npZxid = 0x{:x}\n\
         cversion = {}\ndataVersion = {}\naclVersion = {}\nephemeralOwner = 0x{:x}\n\
         dataLength = {}\nnumChildren = {}\n",
        s.czxid as u64,
        java::date_to_string(s.ctime),
        s.mzxid as u64,
        java::date_to_string(s.mtime),
        s.pzxid as u64,
        s.cversion,
        s.version,
        s.aversion,
        s.ephemeral_owner as u64,
        s.data_length,
        s.num_children,
    )
}

/// `ZKUtil.getPermString`: the letters `cdrwa` in that order.
pub fn perm_string(p: i32) -> String {
    let mut out = String::new();
    for (bit, letter) in [
        (perms::CREATE, 'c'),
        (perms::DELETE, 'd'),
        (perms::READ, 'r'),
        (perms::WRITE, 'w'),
        (perms::ADMIN, 'a'),
    ] {
        if p & bit != 0 {
            out.push(letter);
        }
    }
    out
}

/// A string field as jute's `ToStringOutputArchive` prints it: a leading quote and
/// `%`-escapes for NUL, newline, return, comma, `}` and `%`.
fn jute_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 1);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("%00"),
            '\n' => out.push_str("%0A"),
            '\r' => out.push_str("%0D"),
            ',' => out.push_str("%2C"),
            '}' => out.push_str("%7D"),
            '%' => out.push_str("%25"),
            c => out.push(c),
        }
    }
    out
}

/// One ACL entry as `getAcl` prints it: `'world,'anyone` + newline + `: cdrwa` + newline.
pub fn acl_entry(a: &Acl) -> String {
    format!(
        "{},{}\n: {}\n",
        jute_string(&a.id.scheme),
        jute_string(&a.id.id),
        perm_string(a.perms)
    )
}

/// The two lines zkCli's default watcher prints for an event (`printMessage` twice).
/// `path` is `None` for connection-state events (printed as `null`).
pub fn watcher_lines(state: KeeperState, event_type: EventType, path: Option<&str>) -> String {
    format!(
        "\nWATCHER::\n\nWatchedEvent state:{state:?} type:{event_type:?} path:{}\n",
        path.unwrap_or("null")
    )
}

/// The error code a client error stands for, as the Java client would report it.
pub fn error_code(e: &Error) -> Option<ErrorCode> {
    match e {
        // No reply in time: the Java client reports a lost connection.
        Error::Timeout => Some(ErrorCode::ConnectionLoss),
        Error::Closed => Some(ErrorCode::SessionExpired),
        other => other.code(),
    }
}

/// `KeeperException.getMessage()`: `KeeperErrorCode = <text>` and ` for <path>` when known.
pub fn keeper_message(code: ErrorCode, path: Option<&str>) -> String {
    // `KeeperException.getCodeMessage` has no text of its own for these two codes.
    let text = match code {
        ErrorCode::UnknownSession => "Unknown error UNKNOWNSESSION",
        ErrorCode::RequestTimeout => "Unknown error REQUESTTIMEOUT",
        other => other.message(),
    };
    match path {
        Some(p) if !p.is_empty() => format!("KeeperErrorCode = {text} for {p}"),
        _ => format!("KeeperErrorCode = {text}"),
    }
}

/// `KeeperException.getMessage()` for a client error.
pub fn error_message(e: &Error, path: Option<&str>) -> String {
    match error_code(e) {
        Some(code) => keeper_message(code, path),
        None => match e {
            Error::Unknown(code) => match path {
                Some(p) => format!("KeeperErrorCode = Unknown error {code} for {p}"),
                None => format!("KeeperErrorCode = Unknown error {code}"),
            },
            other => other.to_string(),
        },
    }
}

/// `CliWrapperException`'s message for a failed operation on `path`.
pub fn cli_wrapper_message(e: &Error, path: Option<&str>) -> String {
    let p = path.unwrap_or("null");
    let Some(code) = error_code(e) else {
        return error_message(e, path);
    };
    match code {
        ErrorCode::NoNode => format!("Node does not exist: {p}"),
        ErrorCode::NoChildrenForEphemerals => format!("Ephemerals cannot have children: {p}"),
        ErrorCode::NodeExists => format!("Node already exists: {p}"),
        ErrorCode::NotEmpty => format!("Node not empty: {p}"),
        ErrorCode::NotReadOnly => format!("Not a read-only call: {p}"),
        ErrorCode::InvalidAcl => format!("Acl is not valid : {p}"),
        ErrorCode::NoAuth => format!("Insufficient permission : {p}"),
        ErrorCode::BadArguments => format!("Arguments are not valid : {p}"),
        ErrorCode::BadVersion => format!("version No is not valid : {p}"),
        ErrorCode::ReconfigInProgress => {
            "Another reconfiguration is in progress -- concurrent reconfigs not supported (yet)"
                .to_owned()
        }
        ErrorCode::NewConfigNoQuorum => "No quorum of new config is connected and up-to-date \
             with the leader of last commmitted config - try invoking reconfiguration after new \
             servers are connected and synced"
            .to_owned(),
        ErrorCode::QuotaExceeded => format!("Quota has exceeded : {p}"),
        _ => keeper_message(code, path),
    }
}

/// The name zkCli's prompt shows for a session state (`ZooKeeper.States`).
pub fn state_name(s: corral_client::SessionState) -> &'static str {
    use corral_client::SessionState as S;
    match s {
        S::Connecting | S::Disconnected => "CONNECTING",
        S::Connected => "CONNECTED",
        S::ConnectedReadOnly => "CONNECTEDREADONLY",
        S::Expired | S::Closed => "CLOSED",
        S::AuthFailed => "AUTH_FAILED",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acl_and_perms() {
        assert_eq!(
            acl_entry(&Acl::new(perms::ALL, "world", "anyone")),
            "'world,'anyone\n: cdrwa\n"
        );
        assert_eq!(
            acl_entry(&Acl::new(3, "ip", "1,2%")),
            "'ip,'1%2C2%25\n: rw\n"
        );
        assert_eq!(perm_string(0), "");
        assert_eq!(perm_string(perms::READ | perms::ADMIN), "ra");
    }

    #[test]
    fn stat_lines() {
        let s = Stat {
            czxid: 2,
            mzxid: 0x1f,
            ctime: 0,
            mtime: 0,
            version: 1,
            cversion: -1,
            aversion: 0,
            ephemeral_owner: -1,
            data_length: 5,
            num_children: 0,
            pzxid: 2,
        };
        let text = stat(&s);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 11);
        assert_eq!(lines[0], "cZxid = 0x2");
        assert_eq!(lines[2], "mZxid = 0x1f");
        assert_eq!(lines[5], "cversion = -1");
        assert_eq!(lines[8], "ephemeralOwner = 0xffffffffffffffff");
    }

    #[test]
    fn error_texts() {
        assert_eq!(
            cli_wrapper_message(&Error::NoNode, Some("/x")),
            "Node does not exist: /x"
        );
        assert_eq!(
            cli_wrapper_message(&Error::BadVersion, Some("/x")),
            "version No is not valid : /x"
        );
        assert_eq!(
            cli_wrapper_message(&Error::NoWatcher, Some("/x")),
            "KeeperErrorCode = No such watcher for /x"
        );
        assert_eq!(
            cli_wrapper_message(&Error::ConnectionLoss, Some("/x")),
            "KeeperErrorCode = ConnectionLoss for /x"
        );
        assert_eq!(
            cli_wrapper_message(&Error::InvalidAcl, None),
            "Acl is not valid : null"
        );
        assert_eq!(
            error_message(&Error::InvalidAcl, None),
            "KeeperErrorCode = InvalidACL"
        );
        assert_eq!(
            watcher_lines(
                KeeperState::SyncConnected,
                EventType::NodeDataChanged,
                Some("/x")
            ),
            "\nWATCHER::\n\nWatchedEvent state:SyncConnected type:NodeDataChanged path:/x\n"
        );
    }
}

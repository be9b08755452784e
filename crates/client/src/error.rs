//! The client's typed errors.
//!
//! Owns: [`Error`], one variant per server error code (every `corral_proto::ErrorCode`) plus
//! the client-side conditions (connection loss, expiry, timeouts, closed client, bad input,
//! protocol violations by the server). Invariant: [`Error::from_code`] and [`Error::code`]
//! round-trip for every server code, so a shell can print ZooKeeper's own names.

use corral_proto::ErrorCode;

/// Result alias used throughout the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    // --- server-side API errors (codes <= -100) -------------------------------------------
    #[error("no node")]
    NoNode,
    #[error("not authorized")]
    NoAuth,
    #[error("version mismatch")]
    BadVersion,
    #[error("ephemeral nodes may not have children")]
    NoChildrenForEphemerals,
    #[error("node exists")]
    NodeExists,
    #[error("node has children")]
    NotEmpty,
    #[error("session expired")]
    SessionExpired,
    #[error("invalid callback")]
    InvalidCallback,
    #[error("invalid ACL")]
    InvalidAcl,
    #[error("authentication failed")]
    AuthFailed,
    #[error("session moved to another server")]
    SessionMoved,
    #[error("not a read-only call (server is read-only)")]
    NotReadOnly,
    #[error("ephemeral node on a local session")]
    EphemeralOnLocalSession,
    #[error("no such watcher")]
    NoWatcher,
    #[error("reconfig is disabled")]
    ReconfigDisabled,
    #[error("session closed because client failed to authenticate")]
    SessionClosedRequireSaslAuth,
    #[error("quota exceeded")]
    QuotaExceeded,
    #[error("operation throttled due to high load")]
    ThrottledOp,
    #[error("API error")]
    ApiError,

    // --- server-side system errors (-1..-99) -----------------------------------------------
    #[error("system error")]
    SystemError,
    #[error("runtime inconsistency")]
    RuntimeInconsistency,
    #[error("data inconsistency")]
    DataInconsistency,
    #[error("marshalling error")]
    MarshallingError,
    #[error("unimplemented")]
    Unimplemented,
    #[error("operation timeout")]
    OperationTimeout,
    #[error("bad arguments")]
    BadArguments,
    #[error("unknown session")]
    UnknownSession,
    #[error("new config has no quorum")]
    NewConfigNoQuorum,
    #[error("reconfig in progress")]
    ReconfigInProgress,
    /// A code this client does not know (a newer server).
    #[error("unknown error code {0}")]
    Unknown(i32),

    // --- client-side conditions ------------------------------------------------------------
    /// The connection dropped while the request was in flight: it may or may not have been
    /// applied. The session may still be alive; the client is reconnecting.
    #[error("connection loss")]
    ConnectionLoss,
    /// No reply within the request timeout. Like connection loss, the outcome is unknown.
    #[error("request timed out")]
    Timeout,
    /// The client was closed (by [`crate::Client::close`] or after a terminal state).
    #[error("client closed")]
    Closed,
    /// A path or argument was rejected before anything was sent.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The connect string could not be parsed or no host could be resolved.
    #[error("invalid connect string: {0}")]
    InvalidConnectString(String),
    /// The server sent bytes this client cannot understand for the request it made.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// In the per-op results of a failed multi: this op was fine but the multi was rolled
    /// back (the server reports it as an error result with code 0).
    #[error("rolled back")]
    RolledBack,
    /// A multi failed atomically; `index` is the first failing op, `error` its error.
    #[error("multi op {index} failed: {error}")]
    Multi { index: usize, error: Box<Error> },
}

impl Error {
    /// The error for a non-zero `ReplyHeader.err` or multi result code.
    pub fn from_code(code: i32) -> Error {
        let Some(c) = ErrorCode::from_i32(code) else {
            return Error::Unknown(code);
        };
        match c {
            // Only multi results carry an error result with code 0: a rolled-back op.
            ErrorCode::Ok => Error::RolledBack,
            ErrorCode::SystemError => Error::SystemError,
            ErrorCode::RuntimeInconsistency => Error::RuntimeInconsistency,
            ErrorCode::DataInconsistency => Error::DataInconsistency,
            ErrorCode::ConnectionLoss => Error::ConnectionLoss,
            ErrorCode::MarshallingError => Error::MarshallingError,
            ErrorCode::Unimplemented => Error::Unimplemented,
            ErrorCode::OperationTimeout => Error::OperationTimeout,
            ErrorCode::BadArguments => Error::BadArguments,
            ErrorCode::UnknownSession => Error::UnknownSession,
            ErrorCode::NewConfigNoQuorum => Error::NewConfigNoQuorum,
            ErrorCode::ReconfigInProgress => Error::ReconfigInProgress,
            ErrorCode::ApiError => Error::ApiError,
            ErrorCode::NoNode => Error::NoNode,
            ErrorCode::NoAuth => Error::NoAuth,
            ErrorCode::BadVersion => Error::BadVersion,
            ErrorCode::NoChildrenForEphemerals => Error::NoChildrenForEphemerals,
            ErrorCode::NodeExists => Error::NodeExists,
            ErrorCode::NotEmpty => Error::NotEmpty,
            ErrorCode::SessionExpired => Error::SessionExpired,
            ErrorCode::InvalidCallback => Error::InvalidCallback,
            ErrorCode::InvalidAcl => Error::InvalidAcl,
            ErrorCode::AuthFailed => Error::AuthFailed,
            ErrorCode::SessionMoved => Error::SessionMoved,
            ErrorCode::NotReadOnly => Error::NotReadOnly,
            ErrorCode::EphemeralOnLocalSession => Error::EphemeralOnLocalSession,
            ErrorCode::NoWatcher => Error::NoWatcher,
            ErrorCode::RequestTimeout => Error::Timeout,
            ErrorCode::ReconfigDisabled => Error::ReconfigDisabled,
            ErrorCode::SessionClosedRequireSaslAuth => Error::SessionClosedRequireSaslAuth,
            ErrorCode::QuotaExceeded => Error::QuotaExceeded,
            ErrorCode::ThrottledOp => Error::ThrottledOp,
        }
    }

    /// The ZooKeeper code for this error, when it has one. Client-only conditions map to the
    /// code the Java client would report (ConnectionLoss -4, RequestTimeout -122, ...).
    pub fn code(&self) -> Option<ErrorCode> {
        Some(match self {
            Error::NoNode => ErrorCode::NoNode,
            Error::NoAuth => ErrorCode::NoAuth,
            Error::BadVersion => ErrorCode::BadVersion,
            Error::NoChildrenForEphemerals => ErrorCode::NoChildrenForEphemerals,
            Error::NodeExists => ErrorCode::NodeExists,
            Error::NotEmpty => ErrorCode::NotEmpty,
            Error::SessionExpired => ErrorCode::SessionExpired,
            Error::InvalidCallback => ErrorCode::InvalidCallback,
            Error::InvalidAcl => ErrorCode::InvalidAcl,
            Error::AuthFailed => ErrorCode::AuthFailed,
            Error::SessionMoved => ErrorCode::SessionMoved,
            Error::NotReadOnly => ErrorCode::NotReadOnly,
            Error::EphemeralOnLocalSession => ErrorCode::EphemeralOnLocalSession,
            Error::NoWatcher => ErrorCode::NoWatcher,
            Error::ReconfigDisabled => ErrorCode::ReconfigDisabled,
            Error::SessionClosedRequireSaslAuth => ErrorCode::SessionClosedRequireSaslAuth,
            Error::QuotaExceeded => ErrorCode::QuotaExceeded,
            Error::ThrottledOp => ErrorCode::ThrottledOp,
            Error::ApiError => ErrorCode::ApiError,
            Error::SystemError => ErrorCode::SystemError,
            Error::RuntimeInconsistency => ErrorCode::RuntimeInconsistency,
            Error::DataInconsistency => ErrorCode::DataInconsistency,
            Error::MarshallingError => ErrorCode::MarshallingError,
            Error::Unimplemented => ErrorCode::Unimplemented,
            Error::OperationTimeout => ErrorCode::OperationTimeout,
            Error::BadArguments => ErrorCode::BadArguments,
            Error::UnknownSession => ErrorCode::UnknownSession,
            Error::NewConfigNoQuorum => ErrorCode::NewConfigNoQuorum,
            Error::ReconfigInProgress => ErrorCode::ReconfigInProgress,
            Error::ConnectionLoss => ErrorCode::ConnectionLoss,
            Error::Timeout => ErrorCode::RequestTimeout,
            Error::Closed => ErrorCode::SessionExpired,
            Error::RolledBack => ErrorCode::Ok,
            Error::Multi { error, .. } => return error.code(),
            Error::Unknown(_)
            | Error::InvalidArgument(_)
            | Error::InvalidConnectString(_)
            | Error::Protocol(_) => return None,
        })
    }

    /// Whether the outcome of the failed request is unknown (it may have been applied), so a
    /// recipe has to look before retrying.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, Error::ConnectionLoss | Error::Timeout)
    }

    /// Whether the session is gone for good (no retry on this client can succeed).
    pub fn is_session_terminal(&self) -> bool {
        matches!(
            self,
            Error::SessionExpired | Error::Closed | Error::AuthFailed
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_server_code_round_trips() {
        for code in -200..=0 {
            if let Some(c) = ErrorCode::from_i32(code) {
                let e = Error::from_code(code);
                assert_eq!(e.code(), Some(c), "code {code} -> {e:?}");
            } else {
                assert_eq!(Error::from_code(code), Error::Unknown(code));
            }
        }
    }
}

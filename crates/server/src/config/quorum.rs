//! The ensemble part of the configuration: `server.N` lines, host/port pairs and learner
//! types.
//!
//! Owns: parsing one `server.N` value into a [`QuorumPeerSpec`] and printing it back the
//! way ZooKeeper prints membership (the `conf` 4lw, the `/zookeeper/config` znode).
//!
//! Grammar of a `server.N` value (ZooKeeper 3.8, `QuorumPeer.QuorumServer`):
//!
//! ```text
//! value          = server-config [";" client-config]          (at most one ";")
//! server-config  = address *("|" address)                     ("|" needs multiAddress.enabled)
//! address        = host ":" quorum-port ":" election-port [":" type]
//! type           = "participant" | "observer"                  (case-insensitive)
//! client-config  = port | host ":" port                       (host defaults to 0.0.0.0)
//! host           = name | IPv4 | "[" IPv6 "]"
//! ```
//!
//! Invariants of a parsed [`QuorumPeerSpec`]: at least one address; in every address the
//! quorum and election ports differ and are non-zero; all addresses share one type.
//! Host names are kept as written (not resolved): ZooKeeper re-resolves peers on
//! reconnection, and resolution is I/O that belongs to the connecting code.

use std::fmt;

/// A host (name or IP literal, without brackets) and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    pub fn new(host: impl Into<String>, port: u16) -> HostPort {
        HostPort {
            host: host.into(),
            port,
        }
    }

    /// True for the all-interfaces addresses `0.0.0.0` and `::`.
    pub fn is_wildcard(&self) -> bool {
        match self.host.parse::<std::net::IpAddr>() {
            Ok(ip) => ip.is_unspecified(),
            Err(_) => false,
        }
    }

    /// The host as ZooKeeper prints it inside `host:port` text: IPv6 literals in brackets.
    pub fn delimited_host(&self) -> String {
        delimited(&self.host)
    }
}

fn delimited(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.delimited_host(), self.port)
    }
}

/// Whether a server votes (participant) or only follows (observer). ZooKeeper's
/// `LearnerType`; the `conf` 4lw prints the ordinal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum LearnerType {
    #[default]
    Participant,
    Observer,
}

impl LearnerType {
    /// The number ZooKeeper prints as `peerType=` (enum ordinal).
    pub fn ordinal(self) -> u8 {
        match self {
            LearnerType::Participant => 0,
            LearnerType::Observer => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LearnerType::Participant => "participant",
            LearnerType::Observer => "observer",
        }
    }

    /// Case-insensitive, surrounding whitespace ignored, as ZooKeeper reads it.
    pub fn parse(s: &str) -> Option<LearnerType> {
        match s.trim().to_ascii_lowercase().as_str() {
            "participant" => Some(LearnerType::Participant),
            "observer" => Some(LearnerType::Observer),
            _ => None,
        }
    }
}

impl fmt::Display for LearnerType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `host:quorumPort:electionPort` triple of a server line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct QuorumAddress {
    pub host: String,
    /// Port of the Zab (leader/learner) listener, "2888".
    pub quorum_port: u16,
    /// Port of the leader-election listener, "3888".
    pub election_port: u16,
}

impl QuorumAddress {
    pub fn quorum(&self) -> HostPort {
        HostPort::new(self.host.clone(), self.quorum_port)
    }

    pub fn election(&self) -> HostPort {
        HostPort::new(self.host.clone(), self.election_port)
    }
}

/// One member of the ensemble, from a `server.N=` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumPeerSpec {
    /// The `N` of `server.N`; what that server's `myid` file holds.
    pub id: u64,
    /// One address, or several separated by `|` when `multiAddress.enabled=true`.
    /// Never empty.
    pub addresses: Vec<QuorumAddress>,
    pub learner_type: LearnerType,
    /// The client address given after `;` on the server line, if any. A bare port means
    /// `0.0.0.0:port`.
    pub client_address: Option<HostPort>,
}

impl QuorumPeerSpec {
    /// Parses the value of `server.<id>`. The error is a reason, without the key.
    pub fn parse(id: u64, value: &str, multi_address_enabled: bool) -> Result<Self, String> {
        let parts = java_split(value, ';');
        if parts.is_empty() {
            return Err(FORM.to_owned());
        }
        if parts.len() > 2 {
            return Err(format!("more than one ';' ({FORM})"));
        }
        let client_address = match parts.get(1) {
            None => None,
            Some(client) => {
                let fields = host_and_port(client.trim())?;
                let (host, port) = match fields.as_slice() {
                    [port] => ("0.0.0.0".to_owned(), port),
                    [host, port] => (host.trim().to_owned(), port),
                    _ => return Err(format!("client part {client:?} is not port or host:port")),
                };
                if host.is_empty() {
                    return Err(format!("client part {client:?} has an empty host"));
                }
                Some(HostPort::new(host, parse_port(port, "client port")?))
            }
        };

        let address_texts = java_split(parts[0], '|');
        if address_texts.len() > 1 && !multi_address_enabled {
            return Err(
                "several addresses separated by '|' need multiAddress.enabled=true".to_owned(),
            );
        }
        let mut addresses = Vec::with_capacity(address_texts.len());
        let mut learner_type: Option<LearnerType> = None;
        for text in address_texts {
            let fields = host_and_port(text.trim())?;
            if fields.len() < 3 || fields.len() > 4 {
                return Err(FORM.to_owned());
            }
            let host = fields[0].trim();
            if host.is_empty() {
                return Err("empty host".to_owned());
            }
            let quorum_port = parse_port(&fields[1], "quorum port")?;
            let election_port = parse_port(&fields[2], "election port")?;
            if quorum_port == election_port {
                return Err(format!(
                    "quorum port and election port must differ (both are {quorum_port})"
                ));
            }
            if let Some(type_text) = fields.get(3) {
                let t = LearnerType::parse(type_text)
                    .ok_or_else(|| format!("unrecognised peer type {type_text:?}"))?;
                if learner_type.is_some_and(|prev| prev != t) {
                    return Err("all addresses of one server must have the same type".to_owned());
                }
                learner_type = Some(t);
            }
            addresses.push(QuorumAddress {
                host: host.to_owned(),
                quorum_port,
                election_port,
            });
        }
        if addresses.is_empty() {
            return Err(FORM.to_owned());
        }
        Ok(QuorumPeerSpec {
            id,
            addresses,
            learner_type: learner_type.unwrap_or_default(),
            client_address,
        })
    }

    /// The first (usually only) quorum address.
    pub fn quorum_address(&self) -> HostPort {
        self.addresses[0].quorum()
    }

    /// The first (usually only) election address.
    pub fn election_address(&self) -> HostPort {
        self.addresses[0].election()
    }

    pub fn is_participant(&self) -> bool {
        self.learner_type == LearnerType::Participant
    }

    /// The value ZooKeeper prints for this server in membership text
    /// (`QuorumServer.toString`): addresses ordered by host, the type always spelled out,
    /// the client address only when it came from the server line.
    pub fn to_config_value(&self) -> String {
        let mut addresses: Vec<&QuorumAddress> = self.addresses.iter().collect();
        addresses.sort_by(|a, b| a.host.cmp(&b.host));
        let mut out = addresses
            .iter()
            .map(|a| {
                format!(
                    "{}:{}:{}",
                    delimited(&a.host),
                    a.quorum_port,
                    a.election_port
                )
            })
            .collect::<Vec<_>>()
            .join("|");
        out.push(':');
        out.push_str(self.learner_type.as_str());
        if let Some(client) = &self.client_address {
            out.push(';');
            out.push_str(&client.to_string());
        }
        out
    }
}

const FORM: &str =
    "expected host:quorumPort:electionPort[:participant|:observer][;[clientHost:]clientPort]";

/// `String.split` as Java does it: trailing empty pieces are dropped.
fn java_split(s: &str, sep: char) -> Vec<&str> {
    let mut parts: Vec<&str> = s.split(sep).collect();
    while parts.last().is_some_and(|p| p.is_empty()) {
        parts.pop();
    }
    parts
}

/// Splits `host:port[:port...]`, allowing a bracketed IPv6 literal as the host.
fn host_and_port(s: &str) -> Result<Vec<String>, String> {
    if let Some(rest) = s.strip_prefix('[') {
        let Some(close) = rest.find(']') else {
            return Err(format!("{s:?} starts with '[' but has no matching ']'"));
        };
        let host = &rest[..close];
        let after = &rest[close + 1..];
        if after.is_empty() {
            return Ok(vec![host.to_owned()]);
        }
        let Some(ports) = after.strip_prefix(':') else {
            return Err(format!("{s:?}: expected ':' after ']'"));
        };
        if ports.is_empty() {
            return Err(format!("{s:?} does not have a port after the colon"));
        }
        let mut out = vec![host.to_owned()];
        out.extend(java_split(ports, ':').into_iter().map(str::to_owned));
        Ok(out)
    } else {
        Ok(java_split(s, ':').into_iter().map(str::to_owned).collect())
    }
}

fn parse_port(s: &str, what: &str) -> Result<u16, String> {
    match s.trim().parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        _ => Err(format!(
            "{what} {s:?} is not a port number between 1 and 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(v: &str) -> Result<QuorumPeerSpec, String> {
        QuorumPeerSpec::parse(7, v, false)
    }

    #[test]
    fn plain_participant() {
        let s = parse("zk1.example.com:2888:3888").unwrap();
        assert_eq!(s.id, 7);
        assert_eq!(s.quorum_address(), HostPort::new("zk1.example.com", 2888));
        assert_eq!(s.election_address(), HostPort::new("zk1.example.com", 3888));
        assert_eq!(s.learner_type, LearnerType::Participant);
        assert_eq!(s.client_address, None);
        assert_eq!(s.to_config_value(), "zk1.example.com:2888:3888:participant");
    }

    #[test]
    fn observer_and_participant_suffix() {
        assert_eq!(
            parse("h:1:2:observer").unwrap().learner_type,
            LearnerType::Observer
        );
        assert_eq!(
            parse("h:1:2:OBSERVER").unwrap().learner_type,
            LearnerType::Observer
        );
        assert_eq!(
            parse("h:1:2:participant").unwrap().learner_type,
            LearnerType::Participant
        );
        assert!(parse("h:1:2:leader")
            .unwrap_err()
            .contains("unrecognised peer type"));
    }

    #[test]
    fn client_part() {
        let s = parse("127.0.0.1:2888:3888;2181").unwrap();
        assert_eq!(s.client_address, Some(HostPort::new("0.0.0.0", 2181)));
        assert_eq!(
            s.to_config_value(),
            "127.0.0.1:2888:3888:participant;0.0.0.0:2181"
        );
        let s = parse("127.0.0.1:2888:3888:observer;127.0.0.2:2182").unwrap();
        assert_eq!(s.client_address, Some(HostPort::new("127.0.0.2", 2182)));
        assert_eq!(s.learner_type, LearnerType::Observer);
        assert_eq!(
            s.to_config_value(),
            "127.0.0.1:2888:3888:observer;127.0.0.2:2182"
        );
        // A trailing ';' is an empty client part, which Java's split drops.
        assert_eq!(parse("h:1:2;").unwrap().client_address, None);
    }

    #[test]
    fn ipv6_literals() {
        let s = parse("[::1]:2888:3888;[::1]:2181").unwrap();
        assert_eq!(s.addresses[0].host, "::1");
        assert_eq!(s.client_address, Some(HostPort::new("::1", 2181)));
        assert_eq!(
            s.to_config_value(),
            "[::1]:2888:3888:participant;[::1]:2181"
        );
        assert!(parse("[::1:2888:3888").is_err());
        assert!(parse("[::1]:").is_err());
    }

    #[test]
    fn ports_must_differ_and_be_valid() {
        assert!(parse("h:2888:2888").unwrap_err().contains("must differ"));
        assert!(parse("h:0:1").is_err());
        assert!(parse("h:70000:1").is_err());
        assert!(parse("h:x:1").is_err());
        assert!(parse("h:1:2;0").is_err());
    }

    #[test]
    fn wrong_shapes() {
        for bad in [
            "",
            "h",
            "h:1",
            "h:1:2:observer:x",
            "h:1:2;a;b",
            ":1:2",
            "h:1:2;a:b:c",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn multiple_addresses_need_the_flag() {
        assert!(parse("b:1:2|a:3:4")
            .unwrap_err()
            .contains("multiAddress.enabled"));
        let s = QuorumPeerSpec::parse(1, "b:1:2|a:3:4", true).unwrap();
        assert_eq!(s.addresses.len(), 2);
        assert_eq!(s.quorum_address(), HostPort::new("b", 1));
        assert_eq!(s.to_config_value(), "a:3:4|b:1:2:participant");
        assert!(QuorumPeerSpec::parse(1, "b:1:2:observer|a:3:4:participant", true).is_err());
    }

    #[test]
    fn wildcard_and_display() {
        assert!(HostPort::new("0.0.0.0", 1).is_wildcard());
        assert!(HostPort::new("::", 1).is_wildcard());
        assert!(!HostPort::new("127.0.0.1", 1).is_wildcard());
        assert!(!HostPort::new("localhost", 1).is_wildcard());
        assert_eq!(HostPort::new("::1", 5).to_string(), "[::1]:5");
    }
}

//! Connect strings, chroot path mapping, path validation and the host order.
//!
//! Owns: parsing `host1:port1,host2:port2/chroot` ([`ConnectString`]), turning client paths
//! into server paths and back ([`Chroot`]), the client-side path check ([`validate_path`]),
//! and the shuffled host rotation with its seeded RNG ([`HostList`]).
//!
//! Invariants: a [`Chroot`] is either empty (no chroot) or a valid path other than `/`;
//! `strip(apply(p)) == p` for every valid `p`. [`HostList`] yields every host once per round,
//! in an order fixed by the seed.

use crate::error::{Error, Result};

/// The default client port.
pub const DEFAULT_PORT: u16 = 2181;

/// A parsed connect string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectString {
    /// `host:port` strings, as given (IPv6 in brackets), port defaulted to 2181.
    pub hosts: Vec<String>,
    pub chroot: Chroot,
}

impl ConnectString {
    pub fn parse(s: &str) -> Result<ConnectString> {
        let s = s.trim();
        let (host_part, chroot) = match s.find('/') {
            Some(i) => (&s[..i], Chroot::new(&s[i..])?),
            None => (s, Chroot::none()),
        };
        let mut hosts = Vec::new();
        for h in host_part.split(',') {
            let h = h.trim();
            if h.is_empty() {
                continue;
            }
            hosts.push(normalize_host(h)?);
        }
        if hosts.is_empty() {
            return Err(Error::InvalidConnectString(format!("no hosts in {s:?}")));
        }
        Ok(ConnectString { hosts, chroot })
    }
}

fn normalize_host(h: &str) -> Result<String> {
    let bad = || Error::InvalidConnectString(format!("bad host {h:?}"));
    if let Some(rest) = h.strip_prefix('[') {
        // [v6]:port or [v6]
        let end = rest.find(']').ok_or_else(bad)?;
        let addr = &rest[..end];
        let tail = &rest[end + 1..];
        let port = match tail.strip_prefix(':') {
            Some(p) => p.parse::<u16>().map_err(|_| bad())?,
            None if tail.is_empty() => DEFAULT_PORT,
            None => return Err(bad()),
        };
        return Ok(format!("[{addr}]:{port}"));
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => {
            let port = port.parse::<u16>().map_err(|_| bad())?;
            if host.is_empty() {
                return Err(bad());
            }
            Ok(format!("{host}:{port}"))
        }
        Some(_) => Ok(format!("[{h}]:{DEFAULT_PORT}")), // bare IPv6
        None => Ok(format!("{h}:{DEFAULT_PORT}")),
    }
}

/// A chroot prefix applied to every request path and stripped from every returned path.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Chroot(String);

impl Chroot {
    pub fn none() -> Chroot {
        Chroot(String::new())
    }

    /// `"/"` and `""` mean no chroot.
    pub fn new(path: &str) -> Result<Chroot> {
        if path.is_empty() || path == "/" {
            return Ok(Chroot::none());
        }
        validate_path(path, false)
            .map_err(|e| Error::InvalidConnectString(format!("bad chroot {path:?}: {e}")))?;
        Ok(Chroot(path.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_none(&self) -> bool {
        self.0.is_empty()
    }

    /// Client path to server path.
    pub fn apply(&self, path: &str) -> String {
        if self.0.is_empty() {
            path.to_owned()
        } else if path == "/" {
            self.0.clone()
        } else {
            format!("{}{}", self.0, path)
        }
    }

    /// Server path to client path. Paths outside the chroot are returned unchanged (the
    /// server never sends them for chrooted requests, but getConfig and whoAmI-style data
    /// are absolute).
    pub fn strip(&self, path: &str) -> String {
        if self.0.is_empty() {
            return path.to_owned();
        }
        match path.strip_prefix(self.0.as_str()) {
            Some("") => "/".to_owned(),
            Some(rest) if rest.starts_with('/') => rest.to_owned(),
            _ => path.to_owned(),
        }
    }
}

/// ZooKeeper's `PathUtils.validatePath(path, isSequential)`, as the Java client runs it before
/// sending a request. `Err` holds the message of Java's `IllegalArgumentException`, word for
/// word (positions `@i` count UTF-16 code units, as Java does). A sequential path is checked
/// with a `1` appended, since the server appends the counter: so `/` and `/a/` are valid
/// sequential paths (the server creates `/0000000001` and `/a/0000000001`).
pub fn check_path(path: &str, sequential: bool) -> std::result::Result<(), String> {
    if sequential {
        return check_plain_path(&format!("{path}1"));
    }
    check_plain_path(path)
}

/// `PathUtils.validatePath(path)`.
fn check_plain_path(path: &str) -> std::result::Result<(), String> {
    const SLASH: u16 = b'/' as u16;
    const DOT: u16 = b'.' as u16;
    let units: Vec<u16> = path.encode_utf16().collect();
    if units.is_empty() {
        return Err("Path length must be > 0".into());
    }
    if units[0] != SLASH {
        return Err("Path must start with / character".into());
    }
    if units.len() == 1 {
        return Ok(());
    }
    if units[units.len() - 1] == SLASH {
        return Err("Path must not end with / character".into());
    }
    let mut last = SLASH;
    for i in 1..units.len() {
        let c = units[i];
        // `i + 1` is the next unit; `i - 2` exists whenever `last` is a dot (i >= 2).
        let component_ends = units.get(i + 1).is_none_or(|&n| n == SLASH);
        let reason = if c == 0 {
            Some("null character not allowed")
        } else if c == SLASH && last == SLASH {
            Some("empty node name specified")
        } else if c == DOT && last == DOT {
            let starts = i >= 2 && units[i - 2] == SLASH;
            (starts && component_ends).then_some("relative paths not allowed")
        } else if c == DOT {
            (last == SLASH && component_ends).then_some("relative paths not allowed")
        } else if (0x01..=0x1f).contains(&c)
            || (0x7f..=0x9f).contains(&c)
            || (0xd800..=0xf8ff).contains(&c)
            || c >= 0xfff0
        {
            Some("invalid character")
        } else {
            None
        };
        if let Some(r) = reason {
            return Err(format!("Invalid path string \"{path}\" caused by {r} @{i}"));
        }
        last = c;
    }
    Ok(())
}

/// [`check_path`] as a client error: [`Error::InvalidArgument`] with Java's message.
pub fn validate_path(path: &str, sequential: bool) -> Result<()> {
    check_path(path, sequential).map_err(Error::InvalidArgument)
}

/// The parent of a path (`/a/b` -> `/a`, `/a` -> `/`).
pub fn parent(path: &str) -> &str {
    match path.rfind('/') {
        Some(0) | None => "/",
        Some(i) => &path[..i],
    }
}

/// The last component of a path.
pub fn basename(path: &str) -> &str {
    match path.rfind('/') {
        Some(i) => &path[i + 1..],
        None => path,
    }
}

/// Joins a parent and a child name.
pub fn join(parent: &str, child: &str) -> String {
    if parent == "/" {
        format!("/{child}")
    } else {
        format!("{parent}/{child}")
    }
}

/// SplitMix64: a tiny deterministic RNG so host order and backoff jitter can be seeded in
/// tests without pulling in a crate.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }

    /// A seed from the clock and the process id (not for cryptography).
    pub fn from_entropy() -> SplitMix64 {
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let local = 0u8;
        let addr = &local as *const u8 as u64;
        SplitMix64::new(t ^ (std::process::id() as u64).rotate_left(32) ^ addr)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// The hosts in shuffled order, visited round-robin.
#[derive(Debug, Clone)]
pub struct HostList {
    hosts: Vec<String>,
    next: usize,
    /// Attempts in the current round since the last successful connect.
    attempts_since_success: usize,
}

impl HostList {
    pub fn new(mut hosts: Vec<String>, rng: &mut SplitMix64) -> HostList {
        rng.shuffle(&mut hosts);
        HostList {
            hosts,
            next: 0,
            attempts_since_success: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.hosts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    pub fn hosts(&self) -> &[String] {
        &self.hosts
    }

    /// The next host to try, and whether a whole round has failed since the last success
    /// (the caller then backs off before trying it).
    pub fn next_host(&mut self) -> (String, bool) {
        let host = self.hosts[self.next % self.hosts.len()].clone();
        self.next = (self.next + 1) % self.hosts.len();
        let round_done = self.attempts_since_success == self.hosts.len();
        if round_done {
            self.attempts_since_success = 0;
        }
        self.attempts_since_success += 1;
        (host, round_done)
    }

    pub fn on_connected(&mut self) {
        self.attempts_since_success = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_and_chroot() {
        let c = ConnectString::parse("h1:2181,h2:2182/app/x").unwrap();
        assert_eq!(c.hosts, vec!["h1:2181", "h2:2182"]);
        assert_eq!(c.chroot.as_str(), "/app/x");
        let c = ConnectString::parse("h1,[::1]:5,::1/").unwrap();
        assert_eq!(c.hosts, vec!["h1:2181", "[::1]:5", "[::1]:2181"]);
        assert!(c.chroot.is_none());
        assert!(ConnectString::parse("/app").is_err());
        assert!(ConnectString::parse("h1:x").is_err());
        assert!(ConnectString::parse("h1/app/").is_err());
    }

    #[test]
    fn chroot_round_trips() {
        let c = Chroot::new("/app").unwrap();
        assert_eq!(c.apply("/"), "/app");
        assert_eq!(c.apply("/a/b"), "/app/a/b");
        assert_eq!(c.strip("/app"), "/");
        assert_eq!(c.strip("/app/a/b"), "/a/b");
        assert_eq!(c.strip("/apple"), "/apple");
        for p in ["/", "/x", "/x/y"] {
            assert_eq!(c.strip(&c.apply(p)), p);
        }
    }

    #[test]
    fn validates_paths_with_javas_messages() {
        let msg = |p: &str, seq: bool| check_path(p, seq).err().unwrap_or_default();
        for ok in [
            "/",
            "/a/b",
            "/a/.b",
            "/a/...",
            "/a/b.",
            "/..a",
            "/a\u{f900}x",
        ] {
            assert_eq!(check_path(ok, false), Ok(()), "{ok:?}");
        }
        assert_eq!(msg("", false), "Path length must be > 0");
        assert_eq!(msg("a", false), "Path must start with / character");
        assert_eq!(msg("/a/", false), "Path must not end with / character");
        assert_eq!(
            msg("/e1//x", false),
            "Invalid path string \"/e1//x\" caused by empty node name specified @4"
        );
        assert_eq!(
            msg("/a/./b", false),
            "Invalid path string \"/a/./b\" caused by relative paths not allowed @3"
        );
        assert_eq!(
            msg("/a/..", false),
            "Invalid path string \"/a/..\" caused by relative paths not allowed @4"
        );
        assert_eq!(
            msg("/.", false),
            "Invalid path string \"/.\" caused by relative paths not allowed @1"
        );
        assert_eq!(
            msg("/a\u{0}", false),
            "Invalid path string \"/a\u{0}\" caused by null character not allowed @2"
        );
        assert_eq!(
            msg("/a\u{1}", false),
            "Invalid path string \"/a\u{1}\" caused by invalid character @2"
        );
        // Outside the BMP: a surrogate pair in Java, invalid at its first unit.
        assert_eq!(
            msg("/ab\u{1F600}c", false),
            "Invalid path string \"/ab\u{1F600}c\" caused by invalid character @3"
        );
        // Positions count UTF-16 units: "é" is one unit.
        assert_eq!(msg("/é//", false), "Path must not end with / character");
        assert_eq!(
            msg("/é//x", false),
            "Invalid path string \"/é//x\" caused by empty node name specified @3"
        );
        // Sequential paths are checked with the server's counter in place ("1").
        assert_eq!(check_path("/", true), Ok(()));
        assert_eq!(check_path("/a/", true), Ok(()));
        assert_eq!(check_path("/a/lock-", true), Ok(()));
        assert_eq!(
            msg("/a//", true),
            "Invalid path string \"/a//1\" caused by empty node name specified @3"
        );
        assert_eq!(msg("", true), "Path must start with / character");
        assert_eq!(
            validate_path("x", false),
            Err(Error::InvalidArgument(
                "Path must start with / character".into()
            ))
        );
    }

    #[test]
    fn host_order_is_seeded_and_complete() {
        let hosts: Vec<String> = (0..5).map(|i| format!("h{i}:1")).collect();
        let a = HostList::new(hosts.clone(), &mut SplitMix64::new(7));
        let b = HostList::new(hosts.clone(), &mut SplitMix64::new(7));
        assert_eq!(a.hosts(), b.hosts());
        let mut sorted = a.hosts().to_vec();
        sorted.sort();
        assert_eq!(sorted, hosts);
        let mut l = a;
        let mut rounds = 0;
        for i in 0..10 {
            let (_, round_done) = l.next_host();
            if round_done {
                rounds += 1;
                assert_eq!(i % 5, 0);
            }
        }
        assert_eq!(rounds, 1);
    }

    #[test]
    fn path_helpers() {
        assert_eq!(parent("/a/b"), "/a");
        assert_eq!(parent("/a"), "/");
        assert_eq!(basename("/a/b"), "b");
        assert_eq!(join("/", "a"), "/a");
        assert_eq!(join("/a", "b"), "/a/b");
    }
}

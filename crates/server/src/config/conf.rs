//! The `conf` four-letter word and the membership text, as ZooKeeper 3.8 prints them.
//!
//! Format (one `key=value` per line, "\n" line ends), captured from a real 3.8.0 server
//! (fixtures in `fixtures/`):
//!
//! ```text
//! clientPort=<port or -1>
//! secureClientPort=<port or -1>
//! dataDir=<absolute dataDir>/version-2
//! dataDirSize=<bytes>
//! dataLogDir=<absolute dataLogDir>/version-2
//! dataLogSize=<bytes>
//! tickTime=<ms>
//! maxClientCnxns=<n>
//! minSessionTimeout=<ms>
//! maxSessionTimeout=<ms>
//! clientPortListenBacklog=<n or -1>
//! serverId=<id; 0 when standalone, whatever myid says>
//! -- quorum mode only --
//! initLimit=<ticks>
//! syncLimit=<ticks>
//! electionAlg=3
//! electionPort=<port[|port...]>
//! quorumPort=<port[|port...]>
//! peerType=<0 participant | 1 observer>
//! membership: <- note the trailing space
//! server.<id>=<host:quorum:election:type[;clientHost:clientPort]>   (one per member, by id)
//! [group.<gid>=<sid:sid...>] [weight.<sid>=<w>]                     (hierarchical only)
//! version=<hex>                                                    <- no final newline
//! ```

use std::fmt::Write as _;
use std::path::Path;

use super::parse::group_members;
use super::Config;

/// A path as Java's `File.getAbsolutePath()` prints it: absolute (relative paths are
/// joined to the working directory), repeated separators collapsed, no trailing separator.
fn java_absolute(path: &Path) -> String {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
    };
    let text = absolute.to_string_lossy();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '/' && out.ends_with('/') {
            continue;
        }
        out.push(c);
    }
    while out.len() > 1 && out.ends_with('/') {
        out.pop();
    }
    out
}

pub(super) fn conf_text(
    config: &Config,
    data_dir_size_bytes: u64,
    data_log_size_bytes: u64,
) -> String {
    let port_or_minus_one = |a: &Option<super::HostPort>| match a {
        Some(a) => i64::from(a.port),
        None => -1,
    };
    let standalone = config.is_standalone();
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        out,
        "clientPort={}",
        port_or_minus_one(&config.client_address)
    );
    let _ = writeln!(
        out,
        "secureClientPort={}",
        port_or_minus_one(&config.secure_client_address)
    );
    let _ = writeln!(out, "dataDir={}", java_absolute(&config.snap_dir()));
    let _ = writeln!(out, "dataDirSize={data_dir_size_bytes}");
    let _ = writeln!(out, "dataLogDir={}", java_absolute(&config.txn_log_dir()));
    let _ = writeln!(out, "dataLogSize={data_log_size_bytes}");
    let _ = writeln!(out, "tickTime={}", config.tick_time_ms);
    let _ = writeln!(out, "maxClientCnxns={}", config.max_client_cnxns_per_host);
    let _ = writeln!(out, "minSessionTimeout={}", config.min_session_timeout_ms);
    let _ = writeln!(out, "maxSessionTimeout={}", config.max_session_timeout_ms);
    let backlog = config.client_port_listen_backlog.map_or(-1, i64::from);
    let _ = writeln!(out, "clientPortListenBacklog={backlog}");
    let server_id = if standalone {
        0
    } else {
        config.server_id.unwrap_or(0)
    };
    let _ = writeln!(out, "serverId={server_id}");
    if standalone {
        return out;
    }
    let _ = writeln!(out, "initLimit={}", config.init_limit_ticks);
    let _ = writeln!(out, "syncLimit={}", config.sync_limit_ticks);
    let _ = writeln!(out, "electionAlg={}", config.election_alg);
    let (election_ports, quorum_ports) = match config.my_server() {
        Some(me) => (
            join_ports(me.addresses.iter().map(|a| a.election_port)),
            join_ports(me.addresses.iter().map(|a| a.quorum_port)),
        ),
        None => (String::new(), String::new()),
    };
    let _ = writeln!(out, "electionPort={election_ports}");
    let _ = writeln!(out, "quorumPort={quorum_ports}");
    let _ = writeln!(out, "peerType={}", config.peer_type.ordinal());
    out.push_str("membership: \n");
    out.push_str(&membership_text(config));
    out
}

fn join_ports(ports: impl Iterator<Item = u16>) -> String {
    ports.map(|p| p.to_string()).collect::<Vec<_>>().join("|")
}

/// The order in which a `java.util.HashMap<Long, _>` holding `ids` iterates them: by bucket
/// (`Long.hashCode`, spread by `HashMap.hash`, masked by the table size, which starts at 16
/// and doubles whenever more than 3/4 full). ZooKeeper prints membership by iterating such
/// a map, so for sids below 16 this is ascending order. Within one bucket Java keeps
/// insertion order, which comes from the (hash-ordered) Properties the map was filled from;
/// ties are broken by id here, so only colliding sids (e.g. 1 and 17) may differ from Java.
pub(super) fn java_hash_map_order(ids: &[u64]) -> Vec<u64> {
    let mut capacity: u64 = 16;
    while ids.len() as u64 > capacity / 4 * 3 {
        capacity *= 2;
    }
    let bucket = |id: u64| {
        let h = (id ^ (id >> 32)) as u32;
        u64::from(h ^ (h >> 16)) & (capacity - 1)
    };
    let mut ordered = ids.to_vec();
    ordered.sort_by_key(|&id| (bucket(id), id));
    ordered
}

pub(super) fn membership_text(config: &Config) -> String {
    let mut out = String::new();
    let ids: Vec<u64> = config.servers.iter().map(|s| s.id).collect();
    for id in java_hash_map_order(&ids) {
        if let Some(spec) = config.server(id) {
            let _ = writeln!(out, "server.{}={}", spec.id, spec.to_config_value());
        }
    }
    if !config.groups.is_empty() || !config.weights.is_empty() {
        // ZooKeeper rebuilds these from its maps: members of a group in id order, and a
        // weight for every explicitly weighted server plus 1 for each other participant.
        for (gid, value) in &config.groups {
            let mut members = group_members(value).unwrap_or_default();
            members.sort_unstable();
            let members: Vec<String> = members.iter().map(u64::to_string).collect();
            let _ = writeln!(out, "group.{gid}={}", members.join(":"));
        }
        let mut weights: std::collections::BTreeMap<u64, String> = config
            .weights
            .iter()
            .map(|(sid, w)| (*sid, w.trim_start_matches('+').to_owned()))
            .collect();
        for spec in config.participants() {
            weights.entry(spec.id).or_insert_with(|| "1".to_owned());
        }
        for (sid, w) in weights {
            let _ = writeln!(
                out,
                "weight.{sid}={}",
                w.parse::<i64>().map_or(w, |v| v.to_string())
            );
        }
    }
    let _ = write!(out, "version={:x}", config.quorum_config_version);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_absolute_normalises_like_java_file() {
        assert_eq!(java_absolute(Path::new("/tmp//zk/")), "/tmp/zk");
        assert_eq!(java_absolute(Path::new("/")), "/");
        assert_eq!(java_absolute(Path::new("/a/./b")), "/a/./b");
        assert!(java_absolute(Path::new("rel")).starts_with('/'));
    }

    #[test]
    fn membership_follows_java_hash_map_order() {
        assert_eq!(java_hash_map_order(&[3, 1, 2]), vec![1, 2, 3]);
        // 17 shares bucket 1 with 1 in a 16-slot table; 16 lands in bucket 0.
        assert_eq!(java_hash_map_order(&[1, 2, 16, 17]), vec![16, 1, 17, 2]);
        // 13 entries grow the table to 32, where 17 has its own bucket.
        let ids: Vec<u64> = (1..=12).chain([17]).collect();
        assert_eq!(java_hash_map_order(&ids), ids);
        // The high half of the hash is folded in: 65536 lands in bucket 1.
        assert_eq!(java_hash_map_order(&[2, 65536]), vec![65536, 2]);
    }
}

//! The election-port transport on real sockets (127.0.0.1 only): corral instances electing
//! among themselves, scripted peers checking the connection rules byte by byte, and interop
//! with a real Apache ZooKeeper 3.8 ensemble (Debian's package; killed by PID).

use bytes::{Bytes, BytesMut};
use corral_proto::quorum::{
    check_election_frame, make_zxid, Check, ElectionHeader, Notification, ServerState, Sid,
    ELECTION_PROTOCOL_VERSION_V1, OBSERVER_ID,
};
use corral_server::election_net::{Decision, ElectionNet, ElectionNetConfig, ElectionPeer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Bound on every election and every wait for a socket event.
const WAIT: Duration = Duration::from_secs(20);

/// `QuorumMaj.toString()` for `(sid, quorum port, election port)` members.
fn config_text(members: &[(Sid, u16, u16)]) -> Bytes {
    let mut lines: Vec<String> = members
        .iter()
        .map(|(sid, q, e)| format!("server.{sid}=127.0.0.1:{q}:{e}:participant"))
        .collect();
    lines.push("version=0".into());
    Bytes::from(lines.join("\n"))
}

/// A port nothing listens on (bound, then released).
fn dead_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// Voters `sids`, each with its own election listener; `finalize_wait` as the server passes it.
async fn cluster(sids: &[Sid], finalize_wait: Duration) -> Vec<ElectionNet> {
    let mut listeners = Vec::new();
    for _ in sids {
        listeners.push(listener().await);
    }
    let peers: Vec<ElectionPeer> = sids
        .iter()
        .zip(&listeners)
        .map(|(&sid, l)| ElectionPeer {
            sid,
            election_addr: l.local_addr().expect("addr"),
            voter: true,
        })
        .collect();
    let text = config_text(
        &peers
            .iter()
            .map(|p| (p.sid, 0, p.election_addr.port()))
            .collect::<Vec<_>>(),
    );
    sids.iter()
        .zip(listeners)
        .map(|(&sid, l)| {
            let mut cfg = ElectionNetConfig::new(
                sid,
                l.local_addr().expect("addr"),
                peers.clone(),
                text.clone(),
            );
            cfg.finalize_wait = finalize_wait;
            ElectionNet::start_on(cfg, l).expect("start election net")
        })
        .collect()
}

async fn look(net: &ElectionNet, zxid: i64, epoch: i64) -> Decision {
    tokio::time::timeout(WAIT, net.look(zxid, epoch))
        .await
        .unwrap_or_else(|_| panic!("sid {}: no decision within {WAIT:?}", net.my_sid()))
        .expect("look")
}

fn role(leader: Sid, me: Sid) -> ServerState {
    if leader == me {
        ServerState::Leading
    } else {
        ServerState::Following
    }
}

/// Polls `cond` every 20 ms until it holds; false after `limit`.
async fn eventually(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Exactly one connection per pair, the same socket seen from both ends, initiated by the
/// larger sid (its local port is ephemeral, its remote is the smaller sid's listener).
fn one_connection_per_pair(nets: &[&ElectionNet]) -> Result<(), String> {
    for a in nets {
        for b in nets {
            if a.my_sid() >= b.my_sid() {
                continue;
            }
            let ab = a.connections(b.my_sid());
            let ba = b.connections(a.my_sid());
            if ab.len() != 1 || ba.len() != 1 {
                return Err(format!(
                    "{}→{}: {ab:?}, {}→{}: {ba:?}",
                    a.my_sid(),
                    b.my_sid(),
                    b.my_sid(),
                    a.my_sid()
                ));
            }
            if ab[0] != (ba[0].1, ba[0].0) {
                return Err(format!("not the same socket: {ab:?} vs {ba:?}"));
            }
            if ba[0].1 != a.local_addr() {
                return Err(format!(
                    "sid {} did not initiate: {ba:?}, listener of {} is {}",
                    b.my_sid(),
                    a.my_sid(),
                    a.local_addr()
                ));
            }
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_elect_the_highest_sid_then_two_reelect() {
    let mut nets = cluster(&[1, 2, 3], Duration::from_millis(200)).await;
    let (d1, d2, d3) = tokio::join!(
        look(&nets[0], 0, 0),
        look(&nets[1], 0, 0),
        look(&nets[2], 0, 0)
    );
    for (d, sid) in [(d1, 1), (d2, 2), (d3, 3)] {
        assert_eq!(d.leader, 3, "sid {sid}: {d:?}");
        assert_eq!(d.state, role(3, sid), "sid {sid}: {d:?}");
        assert!(d.round >= 1, "sid {sid}: {d:?}");
    }

    // One TCP connection per pair survives, whatever races happened while dialling.
    let all: Vec<&ElectionNet> = nets.iter().collect();
    let settled = eventually(Duration::from_secs(5), || {
        one_connection_per_pair(&all).is_ok()
    })
    .await;
    assert!(settled, "{:?}", one_connection_per_pair(&all));

    // The leader goes away; the two others elect again among themselves (how fast is for
    // the failover benchmark to say; `look` only bounds the wait against a hang).
    let leader = nets.pop().expect("three nets");
    leader.shutdown();
    drop(leader);
    let (d1, d2) = tokio::join!(look(&nets[0], 0, 0), look(&nets[1], 0, 0));
    assert_eq!((d1.leader, d1.state), (2, ServerState::Following), "{d1:?}");
    assert_eq!((d2.leader, d2.state), (2, ServerState::Leading), "{d2:?}");
    assert!(d1.round > 1 && d2.round > 1, "{d1:?} {d2:?}");
    let two: Vec<&ElectionNet> = nets.iter().collect();
    assert!(
        eventually(Duration::from_secs(5), || one_connection_per_pair(&two)
            .is_ok())
        .await,
        "{:?}",
        one_connection_per_pair(&two)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_zxid_beats_higher_sid_with_a_short_finalize_wait() {
    let nets = cluster(&[1, 2, 3], Duration::from_millis(20)).await;
    let (d1, d2, d3) = tokio::join!(
        look(&nets[0], make_zxid(1, 5), 1),
        look(&nets[1], make_zxid(1, 3), 1),
        look(&nets[2], make_zxid(1, 3), 1)
    );
    for (d, sid) in [(d1, 1), (d2, 2), (d3, 3)] {
        assert_eq!((d.leader, d.state), (1, role(1, sid)), "sid {sid}: {d:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_peer_does_not_hold_up_the_others() {
    // sid 3 is configured but never started: its connection attempts are refused.
    let l1 = listener().await;
    let l2 = listener().await;
    let peers = vec![
        peer(1, l1.local_addr().unwrap()),
        peer(2, l2.local_addr().unwrap()),
        peer(3, dead_addr()),
    ];
    let text = Bytes::from_static(b"version=0");
    let n1 = start(1, &peers, &text, l1);
    let n2 = start(2, &peers, &text, l2);
    let (d1, d2) = tokio::join!(look(&n1, 0, 0), look(&n2, 0, 0));
    assert_eq!((d1.leader, d1.state), (2, ServerState::Following));
    assert_eq!((d2.leader, d2.state), (2, ServerState::Leading));

    // Alone, no decision comes; a shutdown ends the wait with an error.
    let l = listener().await;
    let lone_peers = vec![
        peer(1, l.local_addr().unwrap()),
        peer(2, dead_addr()),
        peer(3, dead_addr()),
    ];
    let lone = start(1, &lone_peers, &text, l);
    let shut = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        lone.shutdown();
    };
    let (r, ()) = tokio::time::timeout(WAIT, async { tokio::join!(lone.look(0, 0), shut) })
        .await
        .expect("look ends at shutdown");
    assert!(r.is_err(), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_learns_the_leader_after_failover() {
    // Voters 1-3 and observer 4, with a short finalize wait as the server passes for a
    // small tickTime.
    let mut ls = Vec::new();
    for _ in 0..4 {
        ls.push(listener().await);
    }
    let peers: Vec<ElectionPeer> = ls
        .iter()
        .enumerate()
        .map(|(i, l)| ElectionPeer {
            sid: i as Sid + 1,
            election_addr: l.local_addr().unwrap(),
            voter: i < 3,
        })
        .collect();
    let text = Bytes::from_static(b"version=0");
    let mut nets: Vec<ElectionNet> = ls
        .into_iter()
        .enumerate()
        .map(|(i, l)| {
            let mut cfg = ElectionNetConfig::new(
                i as Sid + 1,
                l.local_addr().unwrap(),
                peers.clone(),
                text.clone(),
            );
            cfg.finalize_wait = Duration::from_millis(50);
            ElectionNet::start_on(cfg, l).expect("start")
        })
        .collect();
    let (d1, d2, d3, d4) = tokio::join!(
        look(&nets[0], 0, 0),
        look(&nets[1], 0, 0),
        look(&nets[2], 0, 0),
        look(&nets[3], 0, 0)
    );
    for (d, sid) in [(d1, 1), (d2, 2), (d3, 3)] {
        assert_eq!((d.leader, d.state), (3, role(3, sid)), "sid {sid}: {d:?}");
    }
    assert_eq!((d4.leader, d4.state), (3, ServerState::Observing), "{d4:?}");

    // The leader dies after discovery set epoch 1; the voters left elect 2, and the
    // observer, looking again, learns it from their answers.
    for n in &nets[..2] {
        n.update_election_vote(1);
    }
    drop(nets.remove(2));
    let (d1, d2) = tokio::join!(look(&nets[0], 0, 1), look(&nets[1], 0, 1));
    assert_eq!((d1.leader, d1.state), (2, ServerState::Following), "{d1:?}");
    assert_eq!((d2.leader, d2.state), (2, ServerState::Leading), "{d2:?}");
    for n in &nets[..2] {
        n.update_election_vote(2);
    }
    let d4 = look(&nets[2], 0, 1).await;
    assert_eq!((d4.leader, d4.state), (2, ServerState::Observing), "{d4:?}");
}

fn peer(sid: Sid, election_addr: SocketAddr) -> ElectionPeer {
    ElectionPeer {
        sid,
        election_addr,
        voter: true,
    }
}

fn start(sid: Sid, peers: &[ElectionPeer], text: &Bytes, l: TcpListener) -> ElectionNet {
    let cfg = ElectionNetConfig::new(sid, l.local_addr().unwrap(), peers.to_vec(), text.clone());
    ElectionNet::start_on(cfg, l).expect("start")
}

/// A scripted peer's end of one connection.
struct Wire {
    stream: TcpStream,
    buf: BytesMut,
}

impl Wire {
    async fn connect(to: SocketAddr, header: &[u8]) -> Wire {
        let mut stream = TcpStream::connect(to).await.expect("connect");
        stream.write_all(header).await.expect("write header");
        Wire {
            stream,
            buf: BytesMut::new(),
        }
    }

    async fn send(&mut self, n: &Notification) {
        self.stream.write_all(&n.to_frame()).await.expect("send");
    }

    /// The next notification, or None when the other side closed.
    async fn recv(&mut self) -> Option<Notification> {
        tokio::time::timeout(WAIT, async {
            loop {
                if let Check::Complete { len } = check_election_frame(&self.buf).expect("frame") {
                    let f = self.buf.split_to(len);
                    return Some(Notification::decode(&f[4..]).expect("notification"));
                }
                match self.stream.read_buf(&mut self.buf).await {
                    Ok(0) | Err(_) => return None,
                    Ok(_) => {}
                }
            }
        })
        .await
        .expect("nothing from the election port in time")
    }

    /// Waits until the other side closes (reading and discarding anything it sends).
    async fn closed(&mut self) -> bool {
        tokio::time::timeout(WAIT, async {
            let mut b = [0u8; 1024];
            loop {
                match self.stream.read(&mut b).await {
                    Ok(0) | Err(_) => return true,
                    Ok(_) => {}
                }
            }
        })
        .await
        .unwrap_or(false)
    }
}

fn looking(leader: Sid, zxid: i64, round: i64, epoch: i64) -> Notification {
    Notification::new(
        ServerState::Looking,
        leader,
        zxid,
        round,
        epoch,
        Bytes::from_static(b"version=0"),
    )
}

fn header(sid: Sid, addr: &str) -> Bytes {
    ElectionHeader::new(sid, addr).to_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_peers_see_the_connection_rules() {
    // corral is sid 2 of {1, 2, 3}; 1 and 3 are played by this test. Their configured
    // addresses are dead, so anything corral dials comes from a header's address.
    let l2 = listener().await;
    let addr2 = l2.local_addr().unwrap();
    let peers = vec![peer(1, dead_addr()), peer(2, addr2), peer(3, dead_addr())];
    let net = start(2, &peers, &Bytes::from_static(b"version=0"), l2);

    // Unknown sid, OBSERVER_ID, own sid, a bad protocol version, a bad address length:
    // each connection is closed, nothing else happens.
    for bad in [
        header(9, "127.0.0.1:1"),
        header(OBSERVER_ID, "127.0.0.1:1"),
        header(2, "127.0.0.1:1"),
        Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb]),
        {
            let mut b = BytesMut::new();
            b.extend_from_slice(&ELECTION_PROTOCOL_VERSION_V1.to_be_bytes());
            b.extend_from_slice(&3i64.to_be_bytes());
            b.extend_from_slice(&100_000i32.to_be_bytes());
            b.freeze()
        },
    ] {
        let mut w = Wire::connect(addr2, &bad).await;
        assert!(w.closed().await, "not closed after header {bad:?}");
    }

    // Sid 3 (larger) connects: the connection is kept. A bad frame length closes it only.
    let mut w3 = Wire::connect(addr2, &header(3, "127.0.0.1:1")).await;
    assert!(eventually(WAIT, || net.connections(3).len() == 1).await);
    w3.stream.write_all(&0i32.to_be_bytes()).await.unwrap();
    assert!(
        w3.closed().await,
        "a zero-length frame must close the connection"
    );
    assert!(eventually(WAIT, || net.connections(3).is_empty()).await);

    // An election with sid 3 as the scripted peer: corral (zxid 0) votes for itself, sees
    // 3's better vote, adopts it, and with both votes for 3 follows it after finalizeWait.
    let look = {
        let net = &net;
        async move { net.look(0, 0).await.expect("look") }
    };
    let script = async {
        let mut w3 = Wire::connect(addr2, &header(3, "127.0.0.1:1")).await;
        // A notification in the same segment as the header must not be lost.
        let mut first = w3.recv().await.expect("corral's vote");
        while first.leader != 2 {
            first = w3.recv().await.expect("corral's vote");
        }
        assert_eq!(first.state, ServerState::Looking);
        assert_eq!(first.election_epoch, 1);
        w3.send(&looking(3, 0, 1, 0)).await;
        let adopted = w3.recv().await.expect("corral adopts 3");
        assert_eq!(
            (adopted.leader, adopted.election_epoch),
            (3, 1),
            "{adopted:?}"
        );
        w3
    };
    let (d, mut w3) = tokio::time::timeout(WAIT, async { tokio::join!(look, script) })
        .await
        .expect("election with the scripted peer");
    assert_eq!((d.leader, d.state), (3, ServerState::Following), "{d:?}");

    // A newer connection from 3 replaces the older one (which corral closes), and the last
    // message sent to 3 is sent again on it although corral has decided since.
    let mut w3b = Wire::connect(addr2, &header(3, "127.0.0.1:1")).await;
    let again = w3b.recv().await.expect("last message re-sent");
    assert_eq!(
        (again.state, again.leader, again.election_epoch),
        (ServerState::Looking, 3, 1),
        "{again:?}"
    );
    assert!(
        w3.closed().await,
        "the older connection from 3 must be closed"
    );
    assert!(eventually(WAIT, || net.connections(3).len() == 1).await);

    // Decided, corral answers a LOOKING peer with its decision.
    w3b.send(&looking(3, 0, 2, 0)).await;
    let answer = w3b.recv().await.expect("answer while following");
    assert_eq!(
        (answer.state, answer.leader),
        (ServerState::Following, 3),
        "{answer:?}"
    );

    // Sid 1 (smaller) connects: corral closes it and dials back to the address in its
    // header (not the configured one), with a full header of its own.
    let l1 = listener().await;
    let addr1 = l1.local_addr().unwrap();
    let mut w1 = Wire::connect(addr2, &header(1, &addr1.to_string())).await;
    assert!(
        w1.closed().await,
        "connection from a smaller sid must be closed"
    );
    let (mut back, _) = tokio::time::timeout(WAIT, l1.accept())
        .await
        .expect("dial-back in time")
        .expect("accept");
    let mut got = BytesMut::new();
    let h = tokio::time::timeout(WAIT, async {
        loop {
            if let Some((h, _)) = ElectionHeader::decode(&got).expect("header") {
                return h;
            }
            assert!(back.read_buf(&mut got).await.expect("read") > 0, "closed");
        }
    })
    .await
    .expect("dial-back header");
    assert_eq!(
        h,
        ElectionHeader::new(2, &addr2.to_string()),
        "dial-back header"
    );
    assert!(eventually(WAIT, || net.connections(1).len() == 1).await);
    net.shutdown();
    assert!(
        eventually(WAIT, || net.connections(1).is_empty()
            && net.connections(3).is_empty())
        .await
    );
    let mut refused = false;
    for _ in 0..100 {
        if TcpStream::connect(addr2).await.is_err() {
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused, "listener still open after shutdown");
    let after = tokio::time::timeout(WAIT, net.look(0, 0)).await;
    assert!(
        matches!(after, Ok(Err(_))),
        "look after shutdown: {after:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Interop with Apache ZooKeeper 3.8 (Debian's `zookeeper` package).
// ---------------------------------------------------------------------------------------

/// How long ZooKeeper members get to start and elect (JVM start-up on a loaded machine).
const ZK_WAIT: Duration = Duration::from_secs(60);

/// ZooKeeper tests start JVMs: one test at a time.
static ZK_TESTS: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One `QuorumPeerMain` process, killed by PID on drop; its directory is removed then
/// (kept with `CORRAL_TEST_KEEP_DIRS`).
struct Zk {
    sid: Sid,
    child: std::process::Child,
    dir: std::path::PathBuf,
    client_port: u16,
}

impl Zk {
    /// Starts member `sid` of `servers` (`server.N=...` lines) with tickTime=200.
    fn start(sid: Sid, client_port: u16, servers: &str) -> Zk {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!(
            "corral-election-zk{sid}-{}-{nanos}",
            std::process::id()
        ));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create data dir");
        std::fs::write(data.join("myid"), format!("{sid}\n")).expect("write myid");
        let cfg = format!(
            "tickTime=200\ninitLimit=10\nsyncLimit=5\ndataDir={}\nclientPort={client_port}\n\
             clientPortAddress=127.0.0.1\n4lw.commands.whitelist=*\nadmin.enableServer=false\n\
             {servers}",
            data.display()
        );
        let cfg_path = dir.join("zoo.cfg");
        std::fs::write(&cfg_path, cfg).expect("write zoo.cfg");
        let out = std::fs::File::create(dir.join("stdout.log")).expect("stdout.log");
        let err = out.try_clone().expect("clone");
        let child = corral_client::testing::zookeeper_command(
            &dir,
            "org.apache.zookeeper.server.quorum.QuorumPeerMain",
            &cfg_path,
        )
        .current_dir(&dir)
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start java (apt-get install -y zookeeper)");
        Zk {
            sid,
            child,
            dir,
            client_port,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("zookeeper.log")).unwrap_or_default()
    }

    /// `leader` / `follower` from `srvr`, None while not serving.
    async fn mode(&self) -> Option<String> {
        let ask = async {
            let mut s = TcpStream::connect(("127.0.0.1", self.client_port))
                .await
                .ok()?;
            s.write_all(b"srvr").await.ok()?;
            let mut out = String::new();
            s.read_to_string(&mut out).await.ok()?;
            Some(out)
        };
        let out = tokio::time::timeout(Duration::from_secs(2), ask)
            .await
            .ok()??;
        out.lines()
            .find_map(|l| l.strip_prefix("Mode: ").map(|m| m.trim().to_string()))
    }

    fn log_tail(&self) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        let from = lines.len().saturating_sub(30);
        format!("=== zk {}\n{}\n", self.sid, lines[from..].join("\n"))
    }
}

impl Drop for Zk {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::env::var_os("CORRAL_TEST_KEEP_DIRS").is_none() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `n` distinct ports nothing listens on.
fn free_ports(n: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < n {
        let p = dead_addr().port();
        if !ports.contains(&p) {
            ports.push(p);
        }
    }
    ports
}

/// A 3-member ensemble layout where sid 3 is corral, listening on `corral`.
struct Layout {
    servers: String,
    text: Bytes,
    peers: Vec<ElectionPeer>,
    client_ports: [u16; 2],
    /// corral's quorum port in the config (nothing listens on it).
    quorum3: u16,
}

fn layout(corral: &TcpListener) -> Layout {
    let e3 = corral.local_addr().unwrap().port();
    let p = loop {
        let p = free_ports(7);
        if !p.contains(&e3) {
            break p;
        }
    };
    let members = [(1, p[0], p[1]), (2, p[2], p[3]), (3, p[4], e3)];
    Layout {
        servers: members
            .iter()
            .map(|(sid, q, e)| format!("server.{sid}=127.0.0.1:{q}:{e}\n"))
            .collect(),
        text: config_text(&members),
        peers: members
            .iter()
            .map(|&(sid, _, e)| peer(sid, SocketAddr::from(([127, 0, 0, 1], e))))
            .collect(),
        client_ports: [p[5], p[6]],
        quorum3: p[4],
    }
}

/// Waits until every member reports `leader` or `follower`; returns the leader's sid.
async fn zk_leader(zks: &[&Zk]) -> Sid {
    let deadline = Instant::now() + ZK_WAIT;
    loop {
        let mut modes = Vec::new();
        for z in zks {
            modes.push(z.mode().await);
        }
        if modes
            .iter()
            .all(|m| matches!(m.as_deref(), Some("leader" | "follower")))
        {
            let leaders: Vec<Sid> = zks
                .iter()
                .zip(&modes)
                .filter(|(_, m)| m.as_deref() == Some("leader"))
                .map(|(z, _)| z.sid)
                .collect();
            assert_eq!(leaders.len(), 1, "modes {modes:?}");
            return leaders[0];
        }
        if Instant::now() > deadline {
            let logs: String = zks.iter().map(|z| z.log_tail()).collect();
            panic!("ZooKeeper not serving within {ZK_WAIT:?} ({modes:?}):\n{logs}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corral_follows_the_leader_of_a_zookeeper_ensemble() {
    let _one_at_a_time = ZK_TESTS.lock().await;
    let l3 = listener().await;
    let lay = layout(&l3);
    let zk1 = Zk::start(1, lay.client_ports[0], &lay.servers);
    let zk2 = Zk::start(2, lay.client_ports[1], &lay.servers);
    let leader = zk_leader(&[&zk1, &zk2]).await;
    assert_eq!(leader, 2, "equal zxids: the higher sid leads");

    // corral joins late with an older history: it must follow ZooKeeper's leader.
    let net = start(3, &lay.peers, &lay.text, l3);
    let d = tokio::time::timeout(ZK_WAIT, net.look(0, 0))
        .await
        .unwrap_or_else(|_| panic!("no decision;\n{}{}", zk1.log_tail(), zk2.log_tail()))
        .expect("look");
    assert_eq!(
        (d.leader, d.state),
        (leader, ServerState::Following),
        "{d:?}"
    );
    // One connection to each ZooKeeper member, the one corral (the larger sid) initiated:
    // its remote end is the member's election listener.
    for (sid, p) in [(1, &lay.peers[0]), (2, &lay.peers[1])] {
        let ok = eventually(Duration::from_secs(5), || {
            let c = net.connections(sid);
            c.len() == 1 && c[0].1 == p.election_addr
        })
        .await;
        assert!(ok, "sid {sid}: {:?}", net.connections(sid));
    }
    // ZooKeeper answered corral's LOOKING notification with its decision.
    assert!(
        zk1.log()
            .contains("my state:FOLLOWING; n.sid:3, n.state:LOOKING"),
        "{}",
        zk1.log_tail()
    );
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_members_follow_corral_when_its_vote_is_best() {
    let _one_at_a_time = ZK_TESTS.lock().await;
    let l3 = listener().await;
    let lay = layout(&l3);
    // All fresh (zxid 0, epoch 0): sid 3 has the best vote. Nothing listens on corral's
    // quorum port, so ZooKeeper's followers fail to connect afterwards; only the election
    // is checked.
    let net = start(3, &lay.peers, &lay.text, l3);
    let zk1 = Zk::start(1, lay.client_ports[0], &lay.servers);
    let zk2 = Zk::start(2, lay.client_ports[1], &lay.servers);
    let d = tokio::time::timeout(ZK_WAIT, net.look(0, 0))
        .await
        .unwrap_or_else(|_| panic!("no decision;\n{}{}", zk1.log_tail(), zk2.log_tail()))
        .expect("look");
    assert_eq!((d.leader, d.state), (3, ServerState::Leading), "{d:?}");
    // Both ZooKeeper members decoded corral's notifications (config text included), decided
    // FOLLOWING and tried to reach sid 3's quorum port.
    let following = "FOLLOWING - LEADER ELECTION TOOK";
    let dialled = format!("connecting to /127.0.0.1:{}", lay.quorum3);
    let heard = "Notification: my state:LOOKING; n.sid:3, n.state:LOOKING, n.leader:3,";
    let deadline = Instant::now() + ZK_WAIT;
    for zk in [&zk1, &zk2] {
        loop {
            let log = zk.log();
            if log.contains(heard) && log.contains(following) && log.contains(&dialled) {
                assert!(
                    !log.contains("Something went wrong while processing config")
                        && !log.contains("malformed"),
                    "{}",
                    zk.log_tail()
                );
                break;
            }
            assert!(
                Instant::now() < deadline,
                "zk {} did not follow corral;\n{}",
                zk.sid,
                zk.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    net.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsent_notifications_collapse_to_the_newest() {
    // corral (sid 2) looks alone: its vote is queued for 3 at 0 ms and again at each re-send
    // (200, 600, 1400 ms, the next at 3000 ms; ticks may run late, never early). Sid 3
    // connects at 2000 ms and must get exactly one frame: the queue holds one message.
    let l2 = listener().await;
    let addr2 = l2.local_addr().unwrap();
    let peers = vec![peer(1, dead_addr()), peer(2, addr2), peer(3, dead_addr())];
    let net = start(2, &peers, &Bytes::from_static(b"version=0"), l2);
    let looking = net.look(0, 0);
    let script = async {
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let mut w3 = Wire::connect(addr2, &header(3, "127.0.0.1:1")).await;
        let n = w3.recv().await.expect("the queued vote");
        assert_eq!(
            (n.state, n.leader, n.election_epoch),
            (ServerState::Looking, 2, 1),
            "{n:?}"
        );
        let t = Instant::now();
        let more = tokio::time::timeout(Duration::from_millis(600), w3.recv()).await;
        assert!(
            more.is_err(),
            "a second frame arrived after {:?}: {more:?}",
            t.elapsed()
        );
    };
    tokio::select! {
        r = looking => panic!("decided alone: {r:?}"),
        () = script => {}
    }
    net.shutdown();
}

// End-to-end scenarios for the ZooKeeper Java client (3.8) against a server under test.
//
// Compiled and run by tests/test_java_client.py. It prints a transcript of `key=value`
// lines that the Python test asserts on; it does not judge anything itself. Where the test
// has to act (pause or resume the TCP proxy between this program and the server) the
// program prints `SYNC <what>` and waits for a line on stdin.
//
// Usage: CorralE2E main <direct host:port> <proxied host:port> <base path>
//        CorralE2E reap <direct host:port> <base path>
//        CorralE2E ensemble <host:port,host:port,...> <base path>
//          (clients try the members in the order given: `zk` starts at the first,
//          `other` at the last; see ensemble())
//
// Every wait is bounded; the program exits by itself.

import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.LinkedBlockingQueue;
import java.util.concurrent.TimeUnit;

import org.apache.zookeeper.AddWatchMode;
import org.apache.zookeeper.CreateMode;
import org.apache.zookeeper.KeeperException;
import org.apache.zookeeper.Op;
import org.apache.zookeeper.OpResult;
import org.apache.zookeeper.WatchedEvent;
import org.apache.zookeeper.Watcher;
import org.apache.zookeeper.ZooDefs;
import org.apache.zookeeper.ZooKeeper;
import org.apache.zookeeper.client.HostProvider;
import org.apache.zookeeper.data.ACL;
import org.apache.zookeeper.data.ClientInfo;
import org.apache.zookeeper.data.Stat;

public class CorralE2E {
    static final List<ACL> OPEN = ZooDefs.Ids.OPEN_ACL_UNSAFE;
    static final long EVENT_WAIT_MS = 10_000;
    static final long QUIET_MS = 300;
    static String direct;
    static BufferedReader stdin = new BufferedReader(new InputStreamReader(System.in));

    static void p(String key, Object value) {
        System.out.println(key + "=" + value);
        System.out.flush();
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] data) {
        return data == null ? "<null>" : new String(data, StandardCharsets.UTF_8);
    }

    /** Ask the Python side to do something, wait for its "ok". */
    static void sync(String what) throws Exception {
        System.out.println("SYNC " + what);
        System.out.flush();
        String line = stdin.readLine();
        if (line == null || !line.trim().equals("ok")) {
            throw new IllegalStateException("no ok for " + what + ": " + line);
        }
    }

    /** A watcher that records node events (and, separately, connection states). */
    static class Rec implements Watcher {
        final BlockingQueue<WatchedEvent> events = new LinkedBlockingQueue<>();
        final BlockingQueue<Event.KeeperState> states = new LinkedBlockingQueue<>();

        @Override
        public void process(WatchedEvent e) {
            if (e.getType() == Event.EventType.None) {
                states.add(e.getState());
            } else {
                events.add(e);
            }
        }

        String next(long ms) throws InterruptedException {
            WatchedEvent e = events.poll(ms, TimeUnit.MILLISECONDS);
            return e == null ? "TIMEOUT" : fmt(e);
        }

        /** All events until none arrives for QUIET_MS (at most `max` events). */
        String drain(int max) throws InterruptedException {
            List<String> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + EVENT_WAIT_MS;
            while (got.size() < max && System.currentTimeMillis() < deadline) {
                WatchedEvent e = events.poll(QUIET_MS, TimeUnit.MILLISECONDS);
                if (e == null) {
                    break;
                }
                got.add(fmt(e));
            }
            return String.join("; ", got);
        }

        /** Wait for `count` events (bounded), then for quiet; return them all. */
        String take(int count) throws InterruptedException {
            List<String> got = new ArrayList<>();
            long deadline = System.currentTimeMillis() + EVENT_WAIT_MS;
            while (got.size() < count && System.currentTimeMillis() < deadline) {
                WatchedEvent e = events.poll(100, TimeUnit.MILLISECONDS);
                if (e != null) {
                    got.add(fmt(e));
                }
            }
            String rest = drain(50);
            if (!rest.isEmpty()) {
                got.add(rest);
            }
            return String.join("; ", got);
        }

        boolean waitState(Event.KeeperState want, long ms) throws InterruptedException {
            long deadline = System.currentTimeMillis() + ms;
            while (System.currentTimeMillis() < deadline) {
                Event.KeeperState st = states.poll(50, TimeUnit.MILLISECONDS);
                if (st == want) {
                    return true;
                }
            }
            return false;
        }

        static String fmt(WatchedEvent e) {
            return e.getType() + " " + e.getPath();
        }
    }

    static ZooKeeper connect(String hosts, int timeoutMs, Rec rec) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, timeoutMs, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
            if (rec != null) {
                rec.process(e);
            }
        });
        if (!connected.await(15, TimeUnit.SECONDS)) {
            throw new IllegalStateException("could not connect to " + hosts);
        }
        return zk;
    }

    static String err(KeeperException e) {
        return e.code() + "(" + e.code().intValue() + ")";
    }

    static String results(List<OpResult> results) {
        List<String> out = new ArrayList<>();
        for (OpResult r : results) {
            out.add(result(r));
        }
        return String.join("; ", out);
    }

    static String result(OpResult r) {
        if (r instanceof OpResult.CreateResult) {
            OpResult.CreateResult c = (OpResult.CreateResult) r;
            return "create " + c.getPath() + (c.getStat() == null ? " nostat" : " stat.version=" + c.getStat().getVersion());
        } else if (r instanceof OpResult.SetDataResult) {
            return "setData version=" + ((OpResult.SetDataResult) r).getStat().getVersion();
        } else if (r instanceof OpResult.DeleteResult) {
            return "delete";
        } else if (r instanceof OpResult.CheckResult) {
            return "check";
        } else if (r instanceof OpResult.GetDataResult) {
            OpResult.GetDataResult g = (OpResult.GetDataResult) r;
            return "getData " + s(g.getData()) + " version=" + g.getStat().getVersion();
        } else if (r instanceof OpResult.GetChildrenResult) {
            List<String> kids = new ArrayList<>(((OpResult.GetChildrenResult) r).getChildren());
            Collections.sort(kids);
            return "getChildren " + kids;
        } else if (r instanceof OpResult.ErrorResult) {
            return "error " + ((OpResult.ErrorResult) r).getErr();
        }
        return "unknown " + r.getClass().getName();
    }

    static String stat(Stat st) {
        return "version=" + st.getVersion() + ",cversion=" + st.getCversion() + ",aversion=" + st.getAversion()
            + ",ephemeralOwner=" + st.getEphemeralOwner() + ",dataLength=" + st.getDataLength()
            + ",numChildren=" + st.getNumChildren();
    }

    // ---------------------------------------------------------------------------------

    static void createModes(ZooKeeper zk, String base) throws Exception {
        Stat st = new Stat();
        p("create2.path", zk.create(base + "/c2", b("abc"), OPEN, CreateMode.PERSISTENT, st));
        p("create2.stat", stat(st));

        st = new Stat();
        p("container.path", zk.create(base + "/cont", b("c"), OPEN, CreateMode.CONTAINER, st));
        p("container.stat", stat(st));
        p("container.exists", stat(zk.exists(base + "/cont", false)));
        zk.create(base + "/cont/child", b(""), OPEN, CreateMode.PERSISTENT);
        p("container.children", zk.getChildren(base + "/cont", false));

        st = new Stat();
        p("ttl.path", zk.create(base + "/ttl", b("t"), OPEN, CreateMode.PERSISTENT_WITH_TTL, st, 60_000));
        p("ttl.stat", stat(st));
        st = new Stat();
        p("ttlseq.path", zk.create(base + "/ttlseq-", b(""), OPEN, CreateMode.PERSISTENT_SEQUENTIAL_WITH_TTL, st, 60_000));
        try {
            zk.create(base + "/ttlbad", b(""), OPEN, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 0);
            p("ttl.zero", "created");
        } catch (IllegalArgumentException e) {
            p("ttl.zero", "IllegalArgumentException(client)");
        } catch (KeeperException e) {
            p("ttl.zero", err(e));
        }
        zk.create(base + "/eph", b(""), OPEN, CreateMode.EPHEMERAL);
        try {
            zk.create(base + "/eph/cont", b(""), OPEN, CreateMode.CONTAINER);
            p("container.under_ephemeral", "created");
        } catch (KeeperException e) {
            p("container.under_ephemeral", err(e));
        }
        try {
            zk.create(base + "/cont", b(""), OPEN, CreateMode.CONTAINER);
            p("container.exists_again", "created");
        } catch (KeeperException e) {
            p("container.exists_again", err(e));
        }
        try {
            zk.create(base + "/nope/ttl", b(""), OPEN, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 1000);
            p("ttl.no_parent", "created");
        } catch (KeeperException e) {
            p("ttl.no_parent", err(e));
        }
        st = new Stat();
        p("ephseq.path", zk.create(base + "/es-", b(""), OPEN, CreateMode.EPHEMERAL_SEQUENTIAL, st));
        p("ephseq.owner_is_session", st.getEphemeralOwner() == zk.getSessionId());
    }

    static void persistentWatches(ZooKeeper a, ZooKeeper other, String base) throws Exception {
        Rec pw = new Rec();
        Rec rw = new Rec();
        a.addWatch(base + "/pw", pw, AddWatchMode.PERSISTENT);  // on a missing node
        a.addWatch(base + "/rw", rw, AddWatchMode.PERSISTENT_RECURSIVE);
        other.create(base + "/pw", b("0"), OPEN, CreateMode.PERSISTENT);
        other.setData(base + "/pw", b("1"), -1);
        other.create(base + "/pw/c", b(""), OPEN, CreateMode.PERSISTENT);
        other.setData(base + "/pw/c", b("x"), -1);
        other.create(base + "/pw/c/gc", b(""), OPEN, CreateMode.PERSISTENT);
        other.delete(base + "/pw/c/gc", -1);
        other.delete(base + "/pw/c", -1);
        other.delete(base + "/pw", -1);
        other.create(base + "/pw", b("again"), OPEN, CreateMode.PERSISTENT);
        p("persistent.events", pw.take(6));

        other.create(base + "/rw", b(""), OPEN, CreateMode.PERSISTENT);
        other.create(base + "/rw/a", b(""), OPEN, CreateMode.PERSISTENT);
        other.create(base + "/rw/a/b", b(""), OPEN, CreateMode.PERSISTENT);
        other.setData(base + "/rw/a/b", b("x"), -1);
        other.setData(base + "/rw", b("y"), -1);
        other.delete(base + "/rw/a/b", -1);
        other.create(base + "/rwx", b(""), OPEN, CreateMode.PERSISTENT);  // a sibling prefix: no event
        p("recursive.events", rw.take(6));

        // one-shot and persistent watches on the same node from one client: the server sends
        // one notification; the Java client hands it to both watchers
        Rec once = new Rec();
        a.getData(base + "/pw", once, null);
        other.setData(base + "/pw", b("both"), -1);
        p("mixed.persistent", pw.take(1));
        p("mixed.oneshot", once.take(1));
        other.setData(base + "/pw", b("again"), -1);
        // 3.8.0 lets the one-shot registration replace the persistent one (ZOOKEEPER-4466,
        // fixed later): then this is empty
        p("mixed.persistent2", pw.drain(5));
        p("mixed.oneshot2", once.drain(5));

        // a persistent watch on the default watcher works too (addWatch without a watcher)
        try {
            a.addWatch(base + "/missing/deep", AddWatchMode.PERSISTENT_RECURSIVE);
            p("addwatch.missing_parent", "ok");
        } catch (KeeperException e) {
            p("addwatch.missing_parent", err(e));
        }
    }

    static void removeWatches(ZooKeeper a, ZooKeeper other, String base) throws Exception {
        String n = base + "/rm";
        a.create(n, b(""), OPEN, CreateMode.PERSISTENT);

        Rec dw = new Rec();
        a.getData(n, dw, null);
        a.removeWatches(n, dw, Watcher.WatcherType.Data, false);  // sends checkWatches(17)
        p("remove.data.event", dw.take(1));
        other.setData(n, b("1"), -1);
        p("remove.data.after", dw.drain(5));

        Rec cw = new Rec();
        a.getChildren(n, cw);
        a.removeWatches(n, cw, Watcher.WatcherType.Children, false);
        p("remove.children.event", cw.take(1));

        Rec none = new Rec();
        try {
            a.removeWatches(n, none, Watcher.WatcherType.Any, false);
            p("remove.unknown", "ok");
        } catch (KeeperException e) {
            p("remove.unknown", err(e));
        }

        Rec both = new Rec();
        a.getData(n, both, null);
        a.getChildren(n, both);
        a.removeAllWatches(n, Watcher.WatcherType.Any, false);  // sends removeWatches(18)
        p("removeall.any.events", both.take(2));

        // 3.8's WatcherType has only Children, Data and Any; persistent watches go with Any
        Rec pers = new Rec();
        a.addWatch(n, pers, AddWatchMode.PERSISTENT);
        try {
            a.removeWatches(n, pers, Watcher.WatcherType.Data, false);
            p("remove.persistent_as_data", "ok " + pers.drain(5));
        } catch (KeeperException e) {
            p("remove.persistent_as_data", err(e));
        }
        a.removeAllWatches(n, Watcher.WatcherType.Any, false);
        p("removeall.persistent.event", pers.take(1));
        other.setData(n, b("2"), -1);
        p("removeall.persistent.after", pers.drain(5));

        Rec rec = new Rec();
        a.addWatch(n, rec, AddWatchMode.PERSISTENT_RECURSIVE);
        a.removeWatches(n, rec, Watcher.WatcherType.Any, false);
        p("remove.recursive.event", rec.take(1));
        other.create(n + "/kid", b(""), OPEN, CreateMode.PERSISTENT);
        p("remove.recursive.after", rec.drain(5));

        try {
            a.removeAllWatches(n, Watcher.WatcherType.Data, false);
            p("removeall.nothing", "ok");
        } catch (KeeperException e) {
            p("removeall.nothing", err(e));
        }
        // a watch the server holds for a node that never existed
        Rec ex = new Rec();
        a.exists(base + "/rm-missing", ex);
        a.removeWatches(base + "/rm-missing", ex, Watcher.WatcherType.Data, false);
        p("remove.exists.event", ex.take(1));
        other.create(base + "/rm-missing", b(""), OPEN, CreateMode.PERSISTENT);
        p("remove.exists.after", ex.drain(5));
    }

    static void multi(ZooKeeper zk, ZooKeeper other, String base) throws Exception {
        String m = base + "/multi";
        zk.create(m, b("m"), OPEN, CreateMode.PERSISTENT);
        List<OpResult> ok = zk.multi(Arrays.asList(
            Op.create(m + "/a", b("a"), OPEN, CreateMode.PERSISTENT),
            Op.create(m + "/s-", b(""), OPEN, CreateMode.PERSISTENT_SEQUENTIAL),
            Op.create(m + "/cont", b(""), OPEN, CreateMode.CONTAINER),
            Op.create(m + "/ttl", b(""), OPEN, CreateMode.PERSISTENT_WITH_TTL, 60_000),
            Op.setData(m + "/a", b("a2"), 0),
            Op.check(m + "/a", 1),
            Op.delete(m + "/a", 1)));
        p("multi.ok", results(ok));
        p("multi.empty", results(zk.multi(new ArrayList<>())));

        try {
            zk.multi(Arrays.asList(
                Op.create(m + "/x", b(""), OPEN, CreateMode.PERSISTENT),
                Op.check(m, 7),
                Op.delete(m + "/nope", -1)));
            p("multi.fail", "no exception");
        } catch (KeeperException e) {
            p("multi.fail.code", err(e));
            p("multi.fail.path", e.getPath());
            p("multi.fail.results", results(e.getResults()));
        }
        p("multi.fail.rolled_back", zk.exists(m + "/x", false) == null);

        try {
            zk.multi(Arrays.asList(
                Op.create(m + "/y", b(""), OPEN, CreateMode.PERSISTENT),
                Op.create(m + "/y", b(""), OPEN, CreateMode.PERSISTENT)));
        } catch (KeeperException e) {
            p("multi.dup.code", err(e));
            p("multi.dup.results", results(e.getResults()));
        }

        zk.create(m + "/locked", b("secret"), Arrays.asList(new ACL(ZooDefs.Perms.ALL,
            new org.apache.zookeeper.data.Id("digest", "nobody:AAAAAAAAAAAAAAAAAAAAAAAAAAA="))), CreateMode.PERSISTENT);
        List<OpResult> reads = zk.multi(Arrays.asList(
            Op.getData(m),
            Op.getChildren(m),
            Op.getData(m + "/missing"),
            Op.getData(m + "/locked"),
            Op.getChildren(m + "/missing")));
        p("multiread", results(reads));  // not atomic: every op answers for itself

        // one-shot watches fire for multi changes like for single ops
        Rec w = new Rec();
        zk.getChildren(m, w);
        other.multi(Arrays.asList(
            Op.create(m + "/w1", b(""), OPEN, CreateMode.PERSISTENT),
            Op.create(m + "/w2", b(""), OPEN, CreateMode.PERSISTENT)));
        p("multi.watch", w.take(1));
    }

    static void misc(ZooKeeper zk, ZooKeeper other, String base) throws Exception {
        String e = base + "/misc";
        zk.create(e, b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(e + "/e1", b(""), OPEN, CreateMode.EPHEMERAL);
        zk.create(e + "/p", b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(e + "/p/e2", b(""), OPEN, CreateMode.EPHEMERAL);
        other.create(e + "/other-eph", b(""), OPEN, CreateMode.EPHEMERAL);
        List<String> eph = new ArrayList<>(zk.getEphemerals(e));
        Collections.sort(eph);
        p("ephemerals.prefix", eph);
        List<String> prefixed = new ArrayList<>(zk.getEphemerals(e + "/p"));
        p("ephemerals.subprefix", prefixed);
        List<String> partial = new ArrayList<>(zk.getEphemerals(e + "/e"));
        p("ephemerals.stringprefix", partial);
        List<String> mine = new ArrayList<>();
        for (String path : zk.getEphemerals()) {
            if (path.startsWith(base)) {
                mine.add(path);
            }
        }
        Collections.sort(mine);
        p("ephemerals.all_under_base", mine);
        p("allchildren.base_misc", zk.getAllChildrenNumber(e));
        p("allchildren.leaf", zk.getAllChildrenNumber(e + "/e1"));
        try {
            p("allchildren.missing", zk.getAllChildrenNumber(e + "/missing"));
        } catch (KeeperException ex) {
            p("allchildren.missing", err(ex));
        }

        List<String> who = new ArrayList<>();
        for (ClientInfo ci : zk.whoAmI()) {
            who.add(ci.getAuthScheme() + ":" + ci.getUser());
        }
        Collections.sort(who);
        p("whoami.before", who);
        zk.addAuthInfo("digest", b("alice:secret"));
        who.clear();
        for (ClientInfo ci : zk.whoAmI()) {
            who.add(ci.getAuthScheme() + ":" + ci.getUser());
        }
        Collections.sort(who);
        p("whoami.after", who);

        Stat cst = new Stat();
        byte[] config = zk.getConfig(false, cst);
        p("config.data", s(config).replace("\n", "\\n"));
        p("config.stat", stat(cst));

        // a watch event reaches the client before the reply of the write that fired it
        List<String> order = Collections.synchronizedList(new ArrayList<>());
        CountDownLatch done = new CountDownLatch(1);
        zk.getData(e, ev -> order.add("event " + ev.getType()), null);
        zk.setData(e, b("x"), -1, (rc, path, ctx, st) -> {
            order.add("reply " + rc);
            done.countDown();
        }, null);
        done.await(10, TimeUnit.SECONDS);
        Thread.sleep(100);
        p("order.watch_vs_reply", order);

        // the server clamps the requested session timeout to [2, 20] x tickTime
        ZooKeeper shortZk = connect(direct, 1_000, null);
        p("timeout.requested_1000", shortZk.getSessionTimeout());
        shortZk.close();
        ZooKeeper longZk = connect(direct, 100_000, null);
        p("timeout.requested_100000", longZk.getSessionTimeout());
        longZk.close();

        CountDownLatch synced = new CountDownLatch(1);
        String[] syncPath = new String[1];
        zk.sync(e, (rc, path, ctx) -> {
            syncPath[0] = rc + " " + path;
            synced.countDown();
        }, null);
        synced.await(10, TimeUnit.SECONDS);
        p("sync", syncPath[0]);

        try {
            zk.setData(e + "/missing", b(""), 3);
        } catch (KeeperException ex) {
            p("error.setData_missing", err(ex));
        }
        try {
            zk.getData("/zookeeper/config", false, new Stat());
            p("zookeeper_config.readable", true);
        } catch (KeeperException ex) {
            p("zookeeper_config.readable", err(ex));
        }
    }

    static void reconnect(String direct, String proxied, String base) throws Exception {
        String r = base + "/reconnect";
        Rec state = new Rec();
        ZooKeeper other = connect(direct, 10_000, null);
        ZooKeeper zk = connect(proxied, 10_000, state);
        long session = zk.getSessionId();
        other.create(r, b(""), OPEN, CreateMode.PERSISTENT);
        other.create(r + "/data", b("0"), OPEN, CreateMode.PERSISTENT);
        other.create(r + "/quiet", b("0"), OPEN, CreateMode.PERSISTENT);
        other.create(r + "/gone", b("0"), OPEN, CreateMode.PERSISTENT);
        other.create(r + "/pers", b("0"), OPEN, CreateMode.PERSISTENT);
        other.create(r + "/rec", b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(r + "/eph", b("mine"), OPEN, CreateMode.EPHEMERAL);

        Rec data = new Rec(), exist = new Rec(), child = new Rec(), quiet = new Rec(), gone = new Rec();
        Rec pers = new Rec(), rec = new Rec();
        zk.getData(r + "/data", data, null);
        zk.exists(r + "/missing", exist);
        zk.getChildren(r, child);
        zk.getData(r + "/quiet", quiet, null);
        zk.getData(r + "/gone", gone, null);
        zk.addWatch(r + "/pers", pers, AddWatchMode.PERSISTENT);
        zk.addWatch(r + "/rec", rec, AddWatchMode.PERSISTENT_RECURSIVE);

        sync("pause-proxy");
        p("reconnect.disconnected", state.waitState(Watcher.Event.KeeperState.Disconnected, EVENT_WAIT_MS));
        other.setData(r + "/data", b("1"), -1);
        other.create(r + "/missing", b(""), OPEN, CreateMode.PERSISTENT);
        other.delete(r + "/gone", -1);
        other.setData(r + "/pers", b("1"), -1);
        other.create(r + "/rec/x", b(""), OPEN, CreateMode.PERSISTENT);
        p("reconnect.eph_while_away", other.exists(r + "/eph", false) != null);
        sync("resume-proxy");
        p("reconnect.connected", state.waitState(Watcher.Event.KeeperState.SyncConnected, 20_000));
        p("reconnect.same_session", zk.getSessionId() == session);

        // setWatches: the server fires what changed since the client's last zxid
        p("reconnect.data", data.take(1));
        p("reconnect.exist", exist.take(1));
        p("reconnect.child", child.take(1));
        p("reconnect.gone", gone.take(1));
        p("reconnect.quiet", quiet.drain(5));
        // persistent watches are re-registered but missed changes are not replayed
        p("reconnect.pers_missed", pers.drain(5));
        p("reconnect.rec_missed", rec.drain(5));

        other.setData(r + "/quiet", b("1"), -1);
        other.setData(r + "/pers", b("2"), -1);
        other.create(r + "/rec/y", b(""), OPEN, CreateMode.PERSISTENT);
        p("reconnect.quiet_after", quiet.take(1));
        p("reconnect.pers_after", pers.take(1));
        p("reconnect.rec_after", rec.take(1));
        Stat st = other.exists(r + "/eph", false);
        p("reconnect.eph_owner_same", st != null && st.getEphemeralOwner() == session);
        p("reconnect.eph_data", s(zk.getData(r + "/eph", false, null)));

        zk.close();
        p("reconnect.eph_after_close", other.exists(r + "/eph", false) == null);
        other.close();
    }

    // ---------------------------------------------------------------------------------
    // ensemble: one session moving between members

    static final long MOVE_WAIT_MS = 60_000;
    static final long RETRY_MS = 60_000;

    /** Tries the members in the given order, starting at `first`, round and round (the
     *  stock provider shuffles them); sleeps `spinDelay` after a whole round in vain. */
    static class OrderedHosts implements HostProvider {
        final List<InetSocketAddress> hosts = new ArrayList<>();
        int index, lastConnected;

        OrderedHosts(String[] hostPorts, int first) {
            for (String hp : hostPorts) {
                int colon = hp.lastIndexOf(':');
                hosts.add(new InetSocketAddress(hp.substring(0, colon), Integer.parseInt(hp.substring(colon + 1))));
            }
            index = first - 1;
            lastConnected = -1;
        }

        @Override
        public int size() {
            return hosts.size();
        }

        @Override
        public InetSocketAddress next(long spinDelay) {
            boolean sleep;
            synchronized (this) {
                index = (index + 1) % hosts.size();
                sleep = index == lastConnected && spinDelay > 0;
            }
            if (sleep) {
                try {
                    Thread.sleep(Math.min(spinDelay, 1000));
                } catch (InterruptedException e) {
                    Thread.currentThread().interrupt();
                }
            }
            return hosts.get(index);
        }

        @Override
        public synchronized void onConnected() {
            lastConnected = index;
        }

        @Override
        public boolean updateServerList(Collection<InetSocketAddress> serverAddresses, InetSocketAddress currentHost) {
            return false;
        }
    }

    static ZooKeeper connectOrdered(String hosts, int first, Rec states) throws Exception {
        CountDownLatch connected = new CountDownLatch(1);
        ZooKeeper zk = new ZooKeeper(hosts, 20_000, e -> {
            if (e.getState() == Watcher.Event.KeeperState.SyncConnected) {
                connected.countDown();
            }
            states.process(e);
        }, false, new OrderedHosts(hosts.split(","), first));
        if (!connected.await(30, TimeUnit.SECONDS)) {
            throw new IllegalStateException("could not connect to " + hosts);
        }
        return zk;
    }

    /** The client port of the member the client is connected to (ZooKeeper.toString() has
     *  "remoteserver:/127.0.0.1:<port>"), or -1. */
    static int remotePort(ZooKeeper zk) {
        String t = zk.toString();
        int at = t.indexOf("remoteserver:");
        if (at < 0) {
            return -1;
        }
        String rest = t.substring(at + "remoteserver:".length()).split(" ")[0];
        int colon = rest.lastIndexOf(':');
        try {
            return Integer.parseInt(rest.substring(colon + 1));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    interface Call<T> {
        T call() throws Exception;
    }

    /** Runs `c` again while the connection is lost (the client reconnects by itself). */
    static <T> T retry(Call<T> c) throws Exception {
        long deadline = System.currentTimeMillis() + RETRY_MS;
        while (true) {
            try {
                return c.call();
            } catch (KeeperException.ConnectionLossException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
                Thread.sleep(100);
            }
        }
    }

    /** A create retried across connection losses: NODEEXISTS after a lost attempt is ours. */
    static void createRetry(ZooKeeper zk, String path, byte[] data, CreateMode mode) throws Exception {
        boolean lost = false;
        long deadline = System.currentTimeMillis() + RETRY_MS;
        while (true) {
            try {
                zk.create(path, data, OPEN, mode);
                return;
            } catch (KeeperException.ConnectionLossException e) {
                if (System.currentTimeMillis() > deadline) {
                    throw e;
                }
                lost = true;
                Thread.sleep(100);
            } catch (KeeperException.NodeExistsException e) {
                if (!lost) {
                    throw e;
                }
                return;
            }
        }
    }

    static String syncAndWait(ZooKeeper zk, String path) throws Exception {
        return retry(() -> {
            CountDownLatch done = new CountDownLatch(1);
            int[] rc = {Integer.MIN_VALUE};
            String[] synced = new String[1];
            zk.sync(path, (code, p, ctx) -> {
                rc[0] = code;
                synced[0] = p;
                done.countDown();
            }, null);
            if (!done.await(EVENT_WAIT_MS, TimeUnit.MILLISECONDS)) {
                return "TIMEOUT";
            }
            if (rc[0] == KeeperException.Code.CONNECTIONLOSS.intValue()) {
                throw new KeeperException.ConnectionLossException();
            }
            return rc[0] + " " + synced[0];
        });
    }

    static String fullStat(Stat st) {
        return "czxid=" + st.getCzxid() + ",mzxid=" + st.getMzxid() + ",ctime=" + st.getCtime()
            + ",mtime_set=" + (st.getMtime() > 0) + ",pzxid=" + st.getPzxid() + "," + stat(st);
    }

    /** The Python side takes `zk`'s member down (`what` = kill or stop, with its client
     *  port); the session must come back on another member with everything it had. */
    static void move(ZooKeeper zk, Rec zs, ZooKeeper other, String base, String m, String what) throws Exception {
        String dir = base + "/" + m;
        long session = zk.getSessionId();
        zk.create(dir, b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(dir + "/data", b("0"), OPEN, CreateMode.PERSISTENT);
        zk.create(dir + "/eph", b(m), OPEN, CreateMode.EPHEMERAL);
        long seen = zk.setData(base + "/seen", b(m), -1).getMzxid();
        Rec data = new Rec(), exist = new Rec(), child = new Rec();
        zk.getData(dir + "/data", data, null);
        zk.exists(dir + "/missing", exist);
        zk.getChildren(dir, child);
        int before = remotePort(zk);
        p(m + ".from", before);
        zs.states.clear();
        sync(what + " " + before);
        p(m + ".disconnected", zs.waitState(Watcher.Event.KeeperState.Disconnected, MOVE_WAIT_MS));
        p(m + ".reconnected", zs.waitState(Watcher.Event.KeeperState.SyncConnected, MOVE_WAIT_MS));
        p(m + ".expired", zs.states.contains(Watcher.Event.KeeperState.Expired));
        p(m + ".same_session", zk.getSessionId() == session);
        p(m + ".to", remotePort(zk));
        // read at once, without sync: the new member is not behind what this session saw
        Stat st = new Stat();
        p(m + ".own_write", s(retry(() -> zk.getData(base + "/seen", false, st))));
        p(m + ".own_write_not_older", st.getMzxid() >= seen);
        // the watches came along (setWatches): changes made now fire them
        retry(() -> other.setData(dir + "/data", b("1"), -1));
        createRetry(other, dir + "/missing", b(""), CreateMode.PERSISTENT);
        p(m + ".data", data.take(1));
        p(m + ".exist", exist.take(1));
        p(m + ".child", child.take(1));
        syncAndWait(other, dir);
        Stat es = retry(() -> other.exists(dir + "/eph", false));
        p(m + ".eph_kept", es != null && es.getEphemeralOwner() == session);
        Stat first = retry(() -> other.exists(base + "/eph", false));
        p(m + ".first_eph_kept", first != null && first.getEphemeralOwner() == session);
        p(m + ".eph_data", s(retry(() -> zk.getData(dir + "/eph", false, null))));
    }

    static void ensemble(String hosts, String base) throws Exception {
        int n = hosts.split(",").length;
        Rec zs = new Rec(), os = new Rec();
        ZooKeeper zk = connectOrdered(hosts, 0, zs);
        ZooKeeper other = connectOrdered(hosts, n - 1, os);
        p("ens.zk.port", remotePort(zk));
        p("ens.other.port", remotePort(other));

        // create / read / update / delete through `zk`'s member, seen on `other`'s after sync
        zk.create(base, b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(base + "/seen", b(""), OPEN, CreateMode.PERSISTENT);
        Stat st = new Stat();
        p("ens.create", zk.create(base + "/a", b("1"), OPEN, CreateMode.PERSISTENT, st));
        p("ens.create.stat", stat(st));
        p("ens.setData.version", zk.setData(base + "/a", b("2"), 0).getVersion());
        p("ens.sync", syncAndWait(other, base + "/a"));
        p("ens.other.read", s(other.getData(base + "/a", false, null)));
        zk.create(base + "/gone", b(""), OPEN, CreateMode.PERSISTENT);
        zk.delete(base + "/gone", -1);
        p("ens.other.deleted", other.exists(base + "/gone", false) == null);
        try {
            zk.setData(base + "/a", b("x"), 0);
            p("ens.badversion", "accepted");
        } catch (KeeperException e) {
            p("ens.badversion", err(e));
        }

        // watches set on one member fire for writes through another
        Rec w = new Rec();
        other.getData(base + "/a", w, null);
        zk.setData(base + "/a", b("3"), -1);
        p("ens.watch.data", w.take(1));
        other.getChildren(base, w);
        zk.create(base + "/b", b(""), OPEN, CreateMode.PERSISTENT);
        p("ens.watch.child", w.take(1));
        other.exists(base + "/c", w);
        zk.create(base + "/c", b(""), OPEN, CreateMode.PERSISTENT);
        p("ens.watch.exists", w.take(1));
        other.exists(base + "/c", w);
        zk.delete(base + "/c", -1);
        p("ens.watch.deleted", w.take(1));

        // multi: atomic, on every member
        p("ens.multi", results(zk.multi(Arrays.asList(
            Op.create(base + "/m", b(""), OPEN, CreateMode.PERSISTENT),
            Op.setData(base + "/a", b("4"), -1),
            Op.check(base + "/a", 3),
            Op.create(base + "/m/s-", b(""), OPEN, CreateMode.PERSISTENT_SEQUENTIAL)))));
        try {
            zk.multi(Arrays.asList(
                Op.create(base + "/m2", b(""), OPEN, CreateMode.PERSISTENT),
                Op.check(base + "/a", 99)));
            p("ens.multi.fail", "committed");
        } catch (KeeperException e) {
            p("ens.multi.fail", err(e) + " " + results(e.getResults()));
        }
        syncAndWait(other, base);
        p("ens.multi.other", other.exists(base + "/m/s-0000000000", false) != null
            && other.exists(base + "/m2", false) == null);

        // ephemerals, seen with their owner on the other member
        zk.create(base + "/eph", b("mine"), OPEN, CreateMode.EPHEMERAL);
        p("ens.ephseq", zk.create(base + "/es-", b(""), OPEN, CreateMode.EPHEMERAL_SEQUENTIAL));
        syncAndWait(other, base);
        Stat es = other.exists(base + "/eph", false);
        p("ens.eph.owner", es != null && es.getEphemeralOwner() == zk.getSessionId());

        // getConfig: each member's own membership text
        Stat cst = new Stat();
        p("ens.config.zk", s(zk.getConfig(false, cst)).replace("\n", "\\n"));
        p("ens.config.zk.stat", fullStat(cst));
        cst = new Stat();
        p("ens.config.other", s(other.getConfig(false, cst)).replace("\n", "\\n"));
        p("ens.config.other.stat", fullStat(cst));

        // the session moves: its member is killed (the leader, first), then stopped
        move(zk, zs, other, base, "move1", "kill");
        sync("restart move1");
        move(zk, zs, other, base, "move2", "stop");

        zk.close();
        syncAndWait(other, base);
        p("ens.eph_after_close", retry(() -> other.exists(base + "/eph", false)) == null);
        other.close();
    }

    static void reap(String direct, String base) throws Exception {
        ZooKeeper zk = connect(direct, 10_000, null);
        zk.create(base, b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(base + "/used", b(""), OPEN, CreateMode.CONTAINER);
        zk.create(base + "/used/kid", b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(base + "/unused", b(""), OPEN, CreateMode.CONTAINER);
        zk.create(base + "/ttl", b(""), OPEN, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 300);
        zk.create(base + "/ttlkid", b(""), OPEN, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 300);
        zk.create(base + "/ttlkid/kid", b(""), OPEN, CreateMode.PERSISTENT);
        zk.create(base + "/ttllong", b(""), OPEN, CreateMode.PERSISTENT_WITH_TTL, new Stat(), 3_600_000);
        Rec w = new Rec();
        zk.exists(base + "/used", w);
        zk.delete(base + "/used/kid", -1);
        p("reap.used", w.next(20_000));
        long deadline = System.currentTimeMillis() + 20_000;
        while (zk.exists(base + "/ttl", false) != null && System.currentTimeMillis() < deadline) {
            Thread.sleep(100);
        }
        p("reap.ttl_gone", zk.exists(base + "/ttl", false) == null);
        p("reap.unused_kept", zk.exists(base + "/unused", false) != null);
        p("reap.ttl_with_child_kept", zk.exists(base + "/ttlkid", false) != null);
        p("reap.ttl_long_kept", zk.exists(base + "/ttllong", false) != null);
        zk.close();
    }

    public static void main(String[] args) throws Exception {
        String mode = args[0];
        if (mode.equals("reap")) {
            reap(args[1], args[2]);
        } else if (mode.equals("ensemble")) {
            try {
                ensemble(args[1], args[2]);
                p("scenario.ensemble", "done");
            } catch (Exception e) {
                p("scenario.ensemble", "FAILED " + e);
                e.printStackTrace(System.out);
            }
        } else {
            direct = args[1];
            String proxied = args[2], base = args[3];
            ZooKeeper zk = connect(direct, 10_000, null);
            ZooKeeper other = connect(direct, 10_000, null);
            zk.create(base, b(""), OPEN, CreateMode.PERSISTENT);
            String[] names = {"create", "persistent", "remove", "multi", "misc", "reconnect"};
            for (String name : names) {
                try {
                    switch (name) {
                        case "create": createModes(zk, base); break;
                        case "persistent": persistentWatches(zk, other, base); break;
                        case "remove": removeWatches(zk, other, base); break;
                        case "multi": multi(zk, other, base); break;
                        case "misc": misc(zk, other, base); break;
                        default: reconnect(direct, proxied, base); break;
                    }
                    p("scenario." + name, "done");
                } catch (Exception e) {
                    p("scenario." + name, "FAILED " + e);
                    e.printStackTrace(System.out);
                }
            }
            zk.close();
            other.close();
        }
        p("end", "ok");
        System.exit(0);
    }
}

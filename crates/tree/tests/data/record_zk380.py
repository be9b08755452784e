"""Drive a real ZooKeeper with a fixed workload and record a transcript.

Transcript lines (fields separated by one space, byte strings in hex, '-' for empty):
  S <idx> <session_id>                 session idx connected (a createSession txn follows in the log)
  A <idx> <scheme> <auth_hex> <err>    auth packet
  R <idx> <op> <req_hex> <err> <body>  one request and its reply
  E <idx> <type> <path_hex>            an event session idx received, attributed to the last R
"""
import sys, time
sys.path.insert(0, '/tmp/zkprobe')
from zkwire import *

PORT = int(open(sys.argv[1]).read())
OUT = open(sys.argv[2], 'w')
H = '127.0.0.1'
conns = []


def hx(b):
    return b.hex() if b else '-'


def connect_session():
    c = connect(H, PORT, timeout_ms=200000)
    idx = len(conns)
    conns.append(c)
    OUT.write(f"S {idx} {c.session_id}\n")
    return idx


def drain(skip=None):
    for i, c in enumerate(conns):
        if c is None:
            continue
        for e in c.drain_events(0.03):
            OUT.write(f"E {i} {e.type} {hx(e.path.encode())}\n")


def req(idx, op, body):
    c = conns[idx]
    events, rep = c.call(op, body)
    OUT.write(f"R {idx} {op} {hx(body)} {rep.err} {hx(rep.raw[16:])}\n")
    for e in events:
        OUT.write(f"E {idx} {e.type} {hx(e.path.encode())}\n")
    drain()
    return rep


def auth(idx, scheme, data):
    c = conns[idx]
    rep = c.add_auth(scheme, data)
    OUT.write(f"A {idx} {scheme} {hx(data)} {rep.err}\n")


def close(idx):
    c = conns[idx]
    events, rep = c.call(Op.CLOSE_SESSION, b'')
    OUT.write(f"R {idx} {Op.CLOSE_SESSION} - {rep.err} {hx(rep.raw[16:])}\n")
    for e in events:
        OUT.write(f"E {idx} {e.type} {hx(e.path.encode())}\n")
    c.close()
    conns[idx] = None
    drain()


def cr(idx, path, data=b'', acl=None, flags=0, op=Op.CREATE, ttl=None):
    return req(idx, op, create_body(path, data, acl, flags, ttl))


def cr_nullacl(idx, path):
    return req(idx, Op.CREATE, Writer().ustring(path).buffer(b'').int32(-1).int32(0).bytes())


def multi(idx, ops):
    return req(idx, Op.MULTI, multi_body(ops))


ALICE = digest_id('alice', 'secret')
s0 = connect_session()   # main writer
s1 = connect_session()   # watcher
s2 = connect_session()   # alice
s3 = connect_session()   # ephemeral owner, closed later
s4 = connect_session()   # super
auth(s2, 'digest', b'alice:secret')
auth(s4, 'digest', b'super:secret')

# --- creates of every kind ---------------------------------------------------------
cr(s0, '/w', b'root-data')
req(s0, Op.CREATE2, create_body('/w/a', None))
cr(s0, '/w/e', b'eph', flags=1)
for _ in range(3):
    cr(s0, '/w/seq-', b's', flags=2)
cr(s3, '/w/es-', b'', flags=3)
cr(s3, '/w/es-', b'x', flags=3)
cr(s3, '/w/eph3', b'3', flags=1)
cr(s0, '/w/\u00e9')
cr(s0, '/w/\u00e9/\u00f1', b'\xff\x00')
req(s0, Op.CREATE_CONTAINER, create_body('/w/c', b'', None, 4))
cr(s0, '/w/c/x')
req(s0, Op.DELETE, path_version_body('/w/c/x'))
req(s0, Op.CREATE_TTL, create_body('/w/t', b'ttl', None, 5, 5000))
req(s0, Op.CREATE_TTL, create_body('/w/ts-', b'', None, 6, 12345))
cr(s0, '/w/t/child')
cr(s3, '/w/c/e', flags=1)
cr(s0, '/zookeeper/x')

# --- errors ------------------------------------------------------------------------
cr(s0, '/w/a')                       # NodeExists
cr(s0, '/w/x/y')                     # NoNode
cr(s0, '/w/a/')                      # NoNode? no: parent /w/a exists -> BadArguments
cr(s0, '/w/.')                       # BadArguments
cr(s0, '/w//z')                      # NoNode
cr(s0, '/')                          # NodeExists
cr(s0, 'abc')                        # BadArguments
cr(s0, '/w/f', flags=9)              # BadArguments
cr(s0, '/w/f', acl=[])               # InvalidACL
cr_nullacl(s0, '/w/f')               # InvalidACL
cr(s0, '/w/f', acl=[ACL(31, 'world', 'x')])
cr(s0, '/w/f', acl=[ACL(31, 'auth', '')])
cr(s0, '/w/e/child')                 # NoChildrenForEphemerals
cr(s0, '/w/e/child', flags=2)
req(s0, Op.CREATE_TTL, create_body('/w/tt', b'', None, 5, 0))
req(s0, Op.CREATE_TTL, create_body('/w/tt', b'', None, 5, 1 << 40))
req(s0, Op.CREATE_TTL, create_body('/w/tt', b'', None, 0, 5))
cr(s0, '/w/tt', flags=5)
req(s0, Op.DELETE, path_version_body('/w'))          # NotEmpty
req(s0, Op.DELETE, path_version_body('/w/a', 7))     # BadVersion
req(s0, Op.DELETE, path_version_body('/w/nope'))     # NoNode
req(s0, Op.DELETE, path_version_body('/zookeeper'))  # BadArguments
req(s0, Op.DELETE, path_version_body('/'))
req(s0, Op.DELETE, path_version_body('/w/a/'))
req(s0, Op.SET_DATA, set_data_body('/w/a', b'v', 3))  # BadVersion
req(s0, Op.SET_DATA, set_data_body('/w/a/', b'v'))    # BadArguments
req(s0, Op.SET_DATA, set_data_body('/zookeeper/config', b'v'))  # NoAuth
req(s0, Op.SET_ACL, set_acl_body('/w/a', OPEN_ACL_UNSAFE, 5))   # BadVersion

# --- ACLs --------------------------------------------------------------------------
cr(s2, '/w/alice', b'secret-data', acl=[ACL(31, 'auth', ''), ACL(1, 'world', 'anyone')])
cr(s2, '/w/alice2', acl=[ACL(31, 'auth', ''), ACL(31, 'digest', ALICE)])
cr(s0, '/w/ipnode', acl=[ACL(31, 'ip', '127.0.0.0/8'), ACL(1, 'ip', '10.0.0.1')])
req(s0, Op.GET_ACL, path_body('/w/alice'))
req(s2, Op.GET_ACL, path_body('/w/alice'))
req(s0, Op.SET_DATA, set_data_body('/w/alice', b'no'))          # NoAuth
req(s2, Op.SET_DATA, set_data_body('/w/alice', b'yes', 0))
req(s0, Op.DELETE, path_version_body('/w/alice2/none'))        # NoAuth (ACL before existence)
req(s0, Op.GET_DATA, path_watch_body('/w/alice2'))             # NoAuth
req(s4, Op.GET_DATA, path_watch_body('/w/alice2'))             # super
req(s4, Op.SET_ACL, set_acl_body('/w/alice2', [ACL(31, 'world', 'anyone'), ACL(31, 'world', 'anyone')], 0))
req(s2, Op.SET_ACL, set_acl_body('/w/alice', [ACL(5, 'digest', ALICE), ACL(16, 'world', 'anyone')], -1))
req(s0, Op.GET_ACL, path_body('/w/alice'))                     # ADMIN via world: unmasked
req(s0, Op.SET_DATA, set_data_body('/w/ipnode', b'ip-ok'))
req(s0, Op.GET_ACL, path_body('/w/ipnode'))

# --- watches -----------------------------------------------------------------------
req(s1, Op.EXISTS, path_watch_body('/w/new', True))
req(s1, Op.GET_DATA, path_watch_body('/w/a', True))
req(s1, Op.GET_CHILDREN, path_watch_body('/w', True))
req(s1, Op.GET_CHILDREN2, path_watch_body('/w/\u00e9', True))
req(s1, Op.ADD_WATCH, path_int_body('/w/p', 0))
req(s1, Op.ADD_WATCH, path_int_body('/w/r', 1))
req(s1, Op.EXISTS, path_watch_body('/w/a', True))
req(s1, Op.GET_CHILDREN, path_watch_body('/w/a', True))
cr(s0, '/w/new', b'n')
req(s0, Op.SET_DATA, set_data_body('/w/a', b'A', 0))
req(s0, Op.SET_DATA, set_data_body('/w/a', None, -1))
cr(s0, '/w/p')
cr(s0, '/w/p/kid')
req(s0, Op.SET_DATA, set_data_body('/w/p', b'pp'))
req(s0, Op.DELETE, path_version_body('/w/p/kid'))
req(s0, Op.DELETE, path_version_body('/w/p'))
cr(s0, '/w/r')
cr(s0, '/w/r/x')
cr(s0, '/w/r/x/y', b'deep')
req(s0, Op.SET_DATA, set_data_body('/w/r/x/y', b'deeper'))
req(s0, Op.DELETE, path_version_body('/w/r/x/y'))
req(s1, Op.GET_DATA, path_watch_body('/w/\u00e9/\u00f1', True))
req(s1, Op.GET_CHILDREN, path_watch_body('/w/\u00e9/\u00f1', True))
req(s1, Op.EXISTS, path_watch_body('/w/\u00e9/\u00f1', True))
req(s0, Op.DELETE, path_version_body('/w/\u00e9/\u00f1'))
req(s1, Op.CHECK_WATCHES, path_int_body('/w/r', 3))
req(s1, Op.CHECK_WATCHES, path_int_body('/w/nothing', 3))
req(s1, Op.REMOVE_WATCHES, path_int_body('/w/r', 1))
req(s1, Op.REMOVE_WATCHES, path_int_body('/w/r', 1))
req(s1, Op.REMOVE_WATCHES, path_int_body('/w/r', 2))
req(s1, Op.EXISTS, path_watch_body('/w/gone', True))
req(s1, Op.REMOVE_WATCHES, path_int_body('/w/gone', 2))
req(s1, Op.ADD_WATCH, path_int_body('/w', 1))

# --- multi -------------------------------------------------------------------------
multi(s0, [(Op.CREATE, create_body('/w/m1', b'1')),
           (Op.SET_DATA, set_data_body('/w/m1', b'2')),
           (Op.CHECK, path_version_body('/w/m1', 1)),
           (Op.CREATE, create_body('/w/m1/k', None)),
           (Op.CREATE, create_body('/w/ms-', b'', None, 2)),
           (Op.CREATE, create_body('/w/ms-', b'', None, 2)),
           (Op.DELETE, path_version_body('/w/seq-0000000004'))])
multi(s0, [(Op.CREATE, create_body('/w/m2')),
           (Op.SET_DATA, set_data_body('/w/m2', b'x', 5)),
           (Op.DELETE, path_version_body('/w/a'))])
multi(s0, [(Op.DELETE, path_version_body('/w/m1/k')),
           (Op.DELETE, path_version_body('/w/m1')),
           (Op.CREATE_CONTAINER, create_body('/w/mc', b'', None, 4)),
           (Op.CREATE_TTL, create_body('/w/mt', b'', None, 5, 999))])
multi(s0, [(Op.CHECK, path_version_body('/w/nope', -1)),
           (Op.CREATE, create_body('/w/m3'))])
multi(s0, [])
req(s0, Op.MULTI_READ, multi_body([(Op.GET_DATA, path_watch_body('/w/a')),
                                   (Op.GET_CHILDREN, path_watch_body('/w/\u00e9')),
                                   (Op.GET_DATA, path_watch_body('/w/none')),
                                   (Op.GET_DATA, path_watch_body('/w/alice2'))]))

# --- quota -------------------------------------------------------------------------
cr(s0, '/zookeeper/quota/w')
cr(s0, '/zookeeper/quota/w/zookeeper_limits', b'count=100,bytes=-1')
cr(s0, '/zookeeper/quota/w/zookeeper_stats', b'count=0,bytes=0')
req(s0, Op.GET_DATA, path_watch_body('/zookeeper/quota/w/zookeeper_stats'))
cr(s0, '/w/q', b'12345')
req(s0, Op.SET_DATA, set_data_body('/w/q', b'1234567'))
req(s0, Op.DELETE, path_version_body('/w/q'))
req(s0, Op.GET_DATA, path_watch_body('/zookeeper/quota/w/zookeeper_stats'))

# --- misc reads --------------------------------------------------------------------
for p in ['/', '', '/w', '/w/a', '/w/nope', '/zookeeper', '/zookeeper/config', '/w/\u00e9']:
    req(s0, Op.GET_DATA, path_watch_body(p))
    req(s0, Op.EXISTS, path_watch_body(p))
    req(s0, Op.GET_CHILDREN2, path_watch_body(p))
    req(s0, Op.GET_ACL, path_body(p))
    req(s0, Op.GET_ALL_CHILDREN_NUMBER, path_body(p))
req(s3, Op.GET_EPHEMERALS, Writer().ustring(None).bytes())
req(s3, Op.GET_EPHEMERALS, Writer().ustring('/w/es').bytes())
req(s3, Op.GET_EPHEMERALS, Writer().ustring(' / ').bytes())
req(s0, Op.GET_EPHEMERALS, Writer().ustring('/').bytes())

# --- setWatches from the watcher after changes -------------------------------------
req(s1, Op.SET_WATCHES, set_watches_body(3, ['/w/a', '/w/gone2', '/w/new'], ['/w/a', '/w/none2'], ['/w', '/w/none3', '/w/t']))
# (3.8 keeps one mode per (watcher, path, table): mixing recursive with other modes on one
# path downgrades/overrides them, ZOOKEEPER-4466; corral keeps them apart, so avoid it here.)
req(s1, Op.SET_WATCHES2, set_watches_body(10**9, ['/w/a'], ['/w/none4'], ['/w/t'], ['/w/t'], ['/w/c']))
cr(s0, '/w/t/child2')
req(s0, Op.SET_DATA, set_data_body('/w/t', b'ttl2'))

# --- session close -----------------------------------------------------------------
req(s1, Op.EXISTS, path_watch_body('/w/eph3', True))
req(s1, Op.GET_CHILDREN, path_watch_body('/w/c', True))
close(s3)
cr(s0, '/w/after-close-', flags=2)
req(s0, Op.GET_CHILDREN2, path_watch_body('/w'))
req(s0, Op.GET_CHILDREN2, path_watch_body('/w/c'))
close(s0)
req(s1, Op.GET_CHILDREN2, path_watch_body('/w'))
req(s1, Op.EXISTS, path_watch_body('/w/e'))
OUT.close()

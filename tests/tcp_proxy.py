"""A tiny TCP proxy on 127.0.0.1 used by the end-to-end tests to cut client connections.

The client connects to the proxy, the proxy connects to the server and copies bytes both
ways. `drop_all()` closes every proxied connection at once (the client sees a connection
loss and reconnects with the same session); `pause()` also drops them and then refuses new
ones (accepts and closes at once) until `resume()`, which looks like a network partition.

With `record=True` the proxy also parses the client-to-server byte stream into frames and
keeps `(xid, opcode)` of every request after the ConnectRequest in `requests` (used to see
which opcodes a client sends for which API call).

Threads are daemons; `close()` stops the listener and drops every connection. All waits are
bounded.
"""

import select
import socket
import struct
import threading


class TcpProxy:
    def __init__(self, target_host, target_port, listen_host="127.0.0.1", record=False):
        self.target = (target_host, target_port)
        self.record = record
        self.requests = []  # (xid, opcode) of client requests, when recording
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((listen_host, 0))
        self._listener.listen(64)
        self._listener.settimeout(0.2)
        self.host = listen_host
        self.port = self._listener.getsockname()[1]
        self.connect_string = f"{self.host}:{self.port}"
        self._lock = threading.Lock()
        self._pairs = []
        self._paused = False
        self._closed = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _accept_loop(self):
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                paused = self._paused
                self.accepted += 1
            if paused:
                _close_quietly(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _close_quietly(client)
                continue
            pair = (client, upstream)
            with self._lock:
                self._pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair,), daemon=True).start()

    def _pump(self, pair):
        client, upstream = pair
        peers = {client: upstream, upstream: client}
        pending = bytearray()  # client bytes not yet parsed into frames
        frames_seen = 0
        try:
            while not self._closed:
                readable, _, _ = select.select([client, upstream], [], [], 0.2)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    peers[sock].sendall(data)
                    if self.record and sock is client:
                        pending += data
                        while len(pending) >= 4:
                            (n,) = struct.unpack(">i", pending[:4])
                            if n < 0 or len(pending) < 4 + n:
                                break
                            frame = bytes(pending[4 : 4 + n])
                            del pending[: 4 + n]
                            frames_seen += 1
                            if frames_seen > 1 and n >= 8:  # skip the ConnectRequest
                                with self._lock:
                                    self.requests.append(struct.unpack(">ii", frame[:8]))
        except (OSError, ValueError):
            pass
        finally:
            _close_quietly(client)
            _close_quietly(upstream)
            with self._lock:
                if pair in self._pairs:
                    self._pairs.remove(pair)

    def opcodes(self, include_pings=False):
        """Opcodes of the recorded requests, in order (pings left out unless asked)."""
        with self._lock:
            return [op for xid, op in self.requests if include_pings or op != 11]

    def clear_record(self):
        with self._lock:
            self.requests.clear()

    def connection_count(self):
        with self._lock:
            return len(self._pairs)

    def drop_all(self):
        """Close every proxied connection (both sides) now."""
        with self._lock:
            pairs = list(self._pairs)
        for client, upstream in pairs:
            for s in (client, upstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                _close_quietly(s)

    def pause(self):
        """Drop every connection and refuse new ones until resume()."""
        with self._lock:
            self._paused = True
        self.drop_all()

    def resume(self):
        with self._lock:
            self._paused = False

    def close(self):
        self._closed = True
        self.drop_all()
        _close_quietly(self._listener)
        self._thread.join(timeout=2)


def _close_quietly(sock):
    try:
        sock.close()
    except OSError:
        pass

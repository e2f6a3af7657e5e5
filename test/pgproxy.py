"""A TCP proxy on loopback between a PostgreSQL client and server that can
reset a connection just after the server committed.

It forwards bytes both ways.  The server's replies are cut at the protocol's
message framing only (a type byte and a length, after the single-byte
answers to SSLRequest/GSSENCRequest): when arm() was called and the server's
CommandComplete with tag COMMIT passes, the proxy forwards what came before
it, then resets both sides (SO_LINGER 0, so the peers get RST) without
forwarding it.  The server has committed; the client never learns it.

A test tool, not product code: it reads nothing but the framing and the tag.
"""

import select
import socket
import struct
import threading

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def _reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class _Pair:
    """One client connection and its connection to the server."""

    def __init__(self, proxy, client, server):
        self.proxy = proxy
        self.client = client
        self.server = server
        self.from_client = b""     # client bytes not yet parsed (startup only)
        self.startup_done = False
        self.single_bytes = 0      # answers to SSL/GSSENC requests to come
        self.from_server = b""     # server bytes not yet forwarded

    def _client_data(self, data):
        """Follow the client's untyped startup packets, to know how many
        single-byte answers the server sends before its framed messages."""
        if self.startup_done:
            return
        self.from_client += data
        while len(self.from_client) >= 8 and not self.startup_done:
            length, code = struct.unpack("!ii", self.from_client[:8])
            if len(self.from_client) < length:
                break
            self.from_client = self.from_client[length:]
            if code in (SSL_REQUEST, GSSENC_REQUEST):
                self.single_bytes += 1
            else:
                self.startup_done = True   # StartupMessage (or cancel)

    def _server_data(self, data):
        """Forward the server's complete messages; False after a reset."""
        self.from_server += data
        out = b""
        while self.from_server:
            if self.single_bytes > 0:
                answer = self.from_server[:1]
                out += answer
                self.from_server = self.from_server[1:]
                self.single_bytes -= 1
                if answer in (b"S", b"G"):
                    # encrypted from here on: no more framing to read
                    self.single_bytes = -1
                continue
            if self.single_bytes < 0:
                out += self.from_server
                self.from_server = b""
                break
            if len(self.from_server) < 5:
                break
            kind = self.from_server[:1]
            length = struct.unpack("!i", self.from_server[1:5])[0]
            if len(self.from_server) < 1 + length:
                break
            msg = self.from_server[:1 + length]
            if kind == b"C" and msg[5:] == b"COMMIT\x00" and self.proxy._take_arm():
                if out:
                    self.client.sendall(out)
                _reset(self.client)
                _reset(self.server)
                return False
            out += msg
            self.from_server = self.from_server[1 + length:]
        if out:
            self.client.sendall(out)
        return True

    def run(self):
        socks = [self.client, self.server]
        try:
            while not self.proxy.stopping:
                ready, _, _ = select.select(socks, [], [], 0.2)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is self.client:
                        self._client_data(data)
                        self.server.sendall(data)
                    elif not self._server_data(data):
                        return
        except OSError:
            return
        finally:
            for s in socks:
                try:
                    s.close()
                except OSError:
                    pass


class CommitResetProxy:
    """Listens on 127.0.0.1:port, forwards to 127.0.0.1:target_port."""

    def __init__(self, target_port):
        self.target_port = target_port
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.port = self.listener.getsockname()[1]
        self.stopping = False
        self.lock = threading.Lock()
        self.armed = False
        self.skip = 0
        self.resets = 0            # COMMITs withheld so far
        self.connections = 0
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def arm(self, skip=0):
        """Reset the connection at the COMMIT after the next skip ones."""
        with self.lock:
            self.armed = True
            self.skip = skip

    def _take_arm(self):
        with self.lock:
            if not self.armed:
                return False
            if self.skip > 0:
                self.skip -= 1
                return False
            self.armed = False
            self.resets += 1
            return True

    def _accept(self):
        while not self.stopping:
            ready, _, _ = select.select([self.listener], [], [], 0.2)
            if not ready:
                continue
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                server.settimeout(None)
            except OSError:
                _reset(client)
                continue
            self.connections += 1
            t = threading.Thread(target=_Pair(self, client, server).run, daemon=True)
            t.start()
            self.threads.append(t)

    def close(self):
        self.stopping = True
        self.acceptor.join(5)
        self.listener.close()
        for t in self.threads:
            t.join(5)

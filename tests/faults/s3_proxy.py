"""A fault-injecting HTTP proxy in front of an S3-compatible server, for the S3 fault tests.

The lake's boto3 client talks to the proxy's URL as its endpoint; the proxy forwards each
request to the real server (moto's, on 127.0.0.1) unless a fault is switched on, from the
test, at run time:

    proxy.fail_500(n)        answer the next ``n`` requests (default: all) with an S3-style
                             500 InternalError, without forwarding them
    proxy.delay(seconds)     wait before forwarding each request (a slow server)
    proxy.reset()            read each request, then drop the connection without an answer
    proxy.truncate_bodies(n) forward, then send only half of the next ``n`` response bodies
                             (default: all) and hang up
    proxy.stop()             close the listening socket and every open connection (a stopped
                             server: connections are refused); ``start()`` brings it back on
                             the same port
    proxy.stop_after(n, method, path_part)
                             forward normally, but stop right after answering the ``n``-th
                             request of ``method`` whose path holds ``path_part`` (a fault that
                             lands at one exact point of a multi-request operation)
    proxy.clear()            pass everything through again

``proxy.requests`` records every request seen (method, path), faulted or not, so that a test
can count the client's attempts.
"""

from __future__ import annotations

import contextlib
import http.client
import math
import socket
import struct
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

_INTERNAL_ERROR = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>InternalError</Code>"
    b"<Message>We encountered an internal error. Please try again.</Message>"
    b"<RequestId>fault-proxy</RequestId></Error>"
)
# Hop-by-hop headers: the proxy frames each message itself.
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class FaultProxy:
    def __init__(self, upstream: str):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self.clear()
        self.port = 0
        self.start()
        self.url = f"http://127.0.0.1:{self.port}"

    # ---- switches -----------------------------------------------------------------------------
    def clear(self) -> None:
        with self._lock:
            self._fail_left = 0.0
            self._delay = 0.0
            self._reset = False
            self._truncate_left = 0.0
            self._stop_rule: list | None = None

    def fail_500(self, n: float = math.inf) -> None:
        with self._lock:
            self._fail_left = n

    def delay(self, seconds: float) -> None:
        with self._lock:
            self._delay = seconds

    def reset(self) -> None:
        with self._lock:
            self._reset = True

    def truncate_bodies(self, n: float = math.inf) -> None:
        with self._lock:
            self._truncate_left = n

    def stop_after(self, n: int, method: str, path_part: str) -> None:
        with self._lock:
            self._stop_rule = [n, method, path_part]

    # ---- the listening socket -----------------------------------------------------------------
    def start(self) -> None:
        proxy = self

        class Handler(_Handler):
            pass

        Handler.proxy = proxy
        server = _QuietServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        """Refuse new connections and cut every open one, as a server process that died."""
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        with self._lock:
            conns, self._conns = set(self._conns), set()
        for conn in conns:
            _abort(conn)

    @property
    def running(self) -> bool:
        return self._server is not None

    def close(self) -> None:
        self.stop()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that hung up (timed out, retried): expected here, and not for stderr


def _abort(conn: socket.socket) -> None:
    """Close with a TCP reset (SO_LINGER 0), as a crashed peer does."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    proxy: FaultProxy

    def setup(self):
        super().setup()
        with self.proxy._lock:
            self.proxy._conns.add(self.connection)

    def finish(self):
        with contextlib.suppress(OSError):  # the client may be gone
            super().finish()
        with self.proxy._lock:
            self.proxy._conns.discard(self.connection)

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's name
        pass  # quiet: the tests read stderr for secrets and tracebacks

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _handle(self):
        proxy = self.proxy
        body = self._body()
        with proxy._lock:
            proxy.requests.append((self.command, self.path))
            fail = proxy._fail_left > 0
            if fail:
                proxy._fail_left -= 1
            delay, reset = proxy._delay, proxy._reset
            stop_now = False
            rule = proxy._stop_rule
            if rule and self.command == rule[1] and rule[2] in self.path:
                rule[0] -= 1
                stop_now = rule[0] <= 0
                if stop_now:
                    proxy._stop_rule = None  # once: start() brings back a healthy server
        if reset:
            self.close_connection = True
            _abort(self.connection)
            return
        if delay:
            time.sleep(delay)
        if fail:
            payload = b"" if self.command == "HEAD" else _INTERNAL_ERROR
            self._send(500, "Internal Server Error", [("Content-Type", "application/xml")], payload)
            return
        status, reason, headers, payload = self._forward(body)
        with proxy._lock:
            truncate = proxy._truncate_left > 0 and self.command != "HEAD" and len(payload) > 1
            if truncate:
                proxy._truncate_left -= 1
        if stop_now:
            # The request took effect upstream and is answered, but the listener is closed
            # first: the client's next request, on this connection or a new one, is refused.
            with proxy._lock:
                proxy._conns.discard(self.connection)
            proxy.stop()
            self.close_connection = True
        self._send(status, reason, headers, payload, truncate=truncate)

    def _forward(self, body: bytes):
        upstream = http.client.HTTPConnection(*self.proxy.upstream, timeout=30)
        try:
            upstream.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
            for name, value in self.headers.items():
                if name.lower() not in _HOP:
                    upstream.putheader(name, value)
            upstream.putheader("Content-Length", str(len(body)))
            upstream.endheaders(body)
            resp = upstream.getresponse()
            payload = resp.read()
            return resp.status, resp.reason, resp.getheaders(), payload
        finally:
            upstream.close()

    def _send(self, status, reason, headers, payload: bytes, truncate: bool = False) -> None:
        self.send_response_only(status, reason)
        length = None
        for name, value in headers:
            if name.lower() == "content-length":
                length = value
            if name.lower() not in _HOP:
                self.send_header(name, value)
        # A HEAD answer states the object's length and carries no body.
        if self.command != "HEAD" or length is None:
            length = str(len(payload))
        self.send_header("Content-Length", length)
        self.end_headers()
        if self.command == "HEAD":
            return
        if truncate and len(payload) > 1:
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            _abort(self.connection)
            return
        self.wfile.write(payload)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

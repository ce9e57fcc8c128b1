"""A fault-injecting reverse proxy in front of the moto S3 server, for storage fault tests.

:class:`FaultProxy` listens on ``127.0.0.1:0`` and forwards every request byte for byte
(method, path and query, headers, body) to an upstream S3 endpoint, and relays the answer.
The ``Host`` header goes upstream as the client sent it, so SigV4 signatures computed for
the proxy's address still verify. A programmable plan of :class:`Fault` rules answers
matching requests itself instead: an S3 XML error (``503 SlowDown``, ``500 InternalError``)
or a connection closed without any answer. Every request is recorded, so tests can count
exactly what the client sent and what it was served.
"""

from __future__ import annotations

import http.client
import socket
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Literal
from urllib.parse import urlsplit

Action = Literal["slowdown", "internal", "drop"]

# Answered per RFC 9110 section 7.6.1: these describe one hop, never the end-to-end exchange.
_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

# Headers the proxy's own response writer sets (send_response) or computes itself.
_OWN_HEADERS = frozenset({"content-length", "date", "server"})

_ERRORS: dict[str, tuple[int, str, str]] = {
    "slowdown": (503, "SlowDown", "Please reduce your request rate."),
    "internal": (500, "InternalError", "We encountered an internal error. Please try again."),
}


@dataclass
class Fault:
    """One rule of the plan: answer matching requests with ``action`` instead of forwarding.

    Attributes:
        action: ``"slowdown"`` (503 SlowDown), ``"internal"`` (500 InternalError) or
            ``"drop"`` (read the request, then close the connection without answering).
        method: Only requests with this HTTP method (``"PUT"``...); ``None`` matches any.
        path_contains: Only requests whose path (query excluded) contains this text.
        times: How many matching requests this rule answers; ``None`` means every one.
    """

    action: Action
    method: str | None = None
    path_contains: str | None = None
    times: int | None = None
    served: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times is not None and self.served >= self.times:
            return False
        if self.method is not None and method != self.method:
            return False
        return self.path_contains is None or self.path_contains in path


@dataclass(frozen=True)
class Seen:
    """One request as the proxy saw it, and what it did with it."""

    method: str
    path: str
    outcome: str  # "forwarded" or the action of the fault that answered it
    status: int | None  # the status sent back; None when the connection was dropped


@dataclass
class _State:
    upstream: tuple[str, int]
    faults: list[Fault] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class FaultProxy:
    """A threaded HTTP reverse proxy with a fault plan; use it as a context manager.

    Args:
        upstream: Base URL of the real server, e.g. ``http://127.0.0.1:5000``.
    """

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ValueError(f"upstream must be http://host:port, got {upstream!r}")
        self._state = _State((parts.hostname, parts.port))
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self._state))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """The proxy's base URL, for ``RYTHMIQ_S3_ENDPOINT``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def add(
        self,
        action: Action,
        *,
        method: str | None = None,
        path_contains: str | None = None,
        times: int | None = None,
    ) -> Fault:
        """Add a rule to the plan (earlier rules are tried first) and return it."""
        fault = Fault(action, method, path_contains, times)
        with self._state.lock:
            self._state.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every rule: from now on each request is forwarded."""
        with self._state.lock:
            self._state.faults.clear()

    def reset_log(self) -> None:
        with self._state.lock:
            self._state.seen.clear()

    @property
    def seen(self) -> list[Seen]:
        """Every request so far, in the order the proxy decided on it."""
        with self._state.lock:
            return list(self._state.seen)

    def count(
        self, outcome: str | None = None, *, method: str | None = None, path_contains: str = ""
    ) -> int:
        """How many recorded requests match all of the given filters."""
        return sum(
            (outcome is None or s.outcome == outcome)
            and (method is None or s.method == method)
            and path_contains in s.path
            for s in self.seen
        )


def _error_body(code: str, message: str, resource: str) -> bytes:
    request_id = uuid.uuid4().hex[:16].upper()
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{message}</Message>"
        f"<Resource>{resource}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()


def _handler(state: _State) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 keeps botocore's pooled connections alive, as a real endpoint does.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass  # quiet: tests read the log from FaultProxy.seen

        def _read_body(self) -> bytes:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                chunks = []
                while True:
                    size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass  # trailers
                        return b"".join(chunks)
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _handle(self) -> None:
            body = self._read_body()
            path = urlsplit(self.path).path
            with state.lock:
                fault = next((f for f in state.faults if f.matches(self.command, path)), None)
                if fault is not None:
                    fault.served += 1
                # Recorded in arrival order: a client may send its next request before this
                # handler thread gets to run again after replying.
                index = len(state.seen)
                state.seen.append(Seen(self.command, path, "pending", None))
            if fault is None:
                status = self._forward(body)
                outcome = "forwarded"
            elif fault.action == "drop":
                self.close_connection = True
                # An RST rather than a FIN, like a peer that went away mid-exchange.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                status, outcome = None, "drop"
            else:
                status, code, message = _ERRORS[fault.action]
                self._reply(status, _error_body(code, message, path), "application/xml")
                outcome = fault.action
            with state.lock:
                state.seen[index] = Seen(self.command, path, outcome, status)

        def _forward(self, body: bytes) -> int:
            conn = http.client.HTTPConnection(*state.upstream, timeout=30)
            try:
                conn.putrequest(self.command, self.path, skip_host=True, skip_accept_encoding=True)
                for name, value in self.headers.items():
                    if name.lower() not in _HOP_BY_HOP and name.lower() != "content-length":
                        conn.putheader(name, value)  # Host included, exactly as sent
                if body or self.command in ("PUT", "POST"):
                    conn.putheader("Content-Length", str(len(body)))
                conn.endheaders(body)
                response = conn.getresponse()
                data = response.read()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_BY_HOP | _OWN_HEADERS:
                        self.send_header(name, value)
                if self.command == "HEAD":
                    # A HEAD answer describes the body it does not carry.
                    length = response.getheader("Content-Length")
                    if length is not None:
                        self.send_header("Content-Length", length)
                    self.end_headers()
                else:
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                return response.status
            finally:
                conn.close()

        def _reply(self, status: int, body: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    return Handler

"""faaso's Python runtime: serves the funko's handle(request) over HTTP on $PORT.

GET /ping is answered here (readiness); every other request goes to handle().
A funko may ship its own faaso_server.py to replace this file.
"""

import importlib.util
import json
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DRAIN_SECONDS = 5  # after SIGTERM, how long in-flight requests may still run


@dataclass
class Request:
    """What handle() receives. Header names are lowercase."""

    method: str
    path: str
    query: dict = field(default_factory=dict)  # name -> last value; all values in query_all
    query_all: dict = field(default_factory=dict)  # name -> [values]
    headers: dict = field(default_factory=dict)
    body: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self):
        return json.loads(self.body or b"null")


def load_handler():
    path = os.environ.get("FAASO_HANDLER", "/app/handler.py")
    spec = importlib.util.spec_from_file_location("handler", path)
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(path))  # so the handler can import its neighbours
    spec.loader.exec_module(module)
    if not callable(getattr(module, "handle", None)):
        sys.exit(f"faaso: {path} defines no handle(request) function")
    return module.handle


def to_response(result):
    """Turn what handle() returned into (status, headers, body bytes)."""
    status, headers = 200, {}
    if isinstance(result, tuple):
        if len(result) == 3:
            status, headers, result = result
        elif len(result) == 2:
            status, result = result
        else:
            raise TypeError("a tuple response is (status, body) or (status, headers, body)")
    headers = {k.lower(): str(v) for k, v in (headers or {}).items()}
    if result is None:
        body = b""
    elif isinstance(result, (bytes, bytearray)):
        body = bytes(result)
        headers.setdefault("content-type", "application/octet-stream")
    elif isinstance(result, str):
        body = result.encode()
        headers.setdefault("content-type", "text/plain; charset=utf-8")
    else:
        body = json.dumps(result).encode()
        headers.setdefault("content-type", "application/json")
    return int(status), headers, body


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # The listen backlog (socketserver's default is 5): a woken funko gets every held request
    # at once, and connections beyond the backlog would wait for a SYN retry.
    request_queue_size = 256

    def __init__(self, address, handle):
        super().__init__(address, Handler)
        self.handle_request_fn = handle
        self.in_flight = 0
        self.lock = threading.Lock()
        self.stopping = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: every response carries Content-Length

    def dispatch(self):
        with self.server.lock:
            self.server.in_flight += 1
        try:
            url = urlsplit(self.path)
            if url.path == "/ping" and self.command in ("GET", "HEAD"):
                return self.reply(200, {"content-type": "text/plain"}, b"pong\n")
            query_all = parse_qs(url.query, keep_blank_values=True)
            request = Request(
                method=self.command,
                path=url.path,
                query={k: v[-1] for k, v in query_all.items()},
                query_all=query_all,
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.read_body(),
            )
            try:
                self.reply(*to_response(self.server.handle_request_fn(request)))
            except Exception as err:  # the handler's bug must not kill the server
                traceback.print_exc()
                body = json.dumps({"error": f"{type(err).__name__}: {err}"}).encode()
                self.reply(500, {"content-type": "application/json"}, body)
        finally:
            with self.server.lock:
                self.server.in_flight -= 1

    def read_body(self):
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def reply(self, status, headers, body):
        self.send_response(status)
        for name, value in headers.items():
            if name not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        if self.server.stopping:
            self.send_header("Connection", "close")  # so the client sends no more on it
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = dispatch

    def log_message(self, format, *args):
        pass  # no access log; errors still go to stderr via traceback


def main():
    server = Server(("0.0.0.0", int(os.environ.get("PORT", "3000"))), load_handler())
    stop = threading.Event()
    # We are often PID 1, which gets no default signal action: handle TERM/INT ourselves.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    threading.Thread(target=server.serve_forever, args=(0.1,), daemon=True).start()
    stop.wait()
    server.stopping = True
    server.shutdown()  # no new connections; requests already running may finish
    # Refuse new connections at once rather than leave them waiting in the listen backlog
    # until exit: a refused connect goes to another instance, an unanswered one fails.
    server.socket.close()
    deadline = time.monotonic() + DRAIN_SECONDS
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.05)
    server.server_close()


if __name__ == "__main__":
    main()

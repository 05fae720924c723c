"""``pts view --serve``: the report on http://127.0.0.1:PORT/, for the one person at this machine.

Read-only and local by construction: the server binds the loopback address
only, answers GET (and HEAD) of the page and nothing else, holds the page in
memory (no file under it is reachable), and refuses requests whose Host header
is not this loopback address, so a web page elsewhere cannot reach it through
DNS rebinding. Each connection gets a thread of its own and a read timeout, so
a connection left open and idle (a browser's preconnect, a stalled client)
neither blocks other requests nor holds a thread for ever.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer

from pts.errors import PTSError
from pts.view.page import CONTENT_SECURITY_POLICY

HOST = "127.0.0.1"
DEFAULT_PORT = 8765
PAGE_PATHS = ("/", "/index.html", "/report.html")
# Seconds a connection may stay silent (before its request, or between keep-alive requests) before it is closed.
IDLE_TIMEOUT = 10.0


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True  # stopping the server does not wait for connections still open

    def handle_error(self, request, client_address) -> None:
        # A client that hung up or went silent is its own business; the terminal shows only the URL.
        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


def make_server(page: str, port: int = DEFAULT_PORT, idle_timeout: float = IDLE_TIMEOUT) -> HTTPServer:
    """A server of ``page`` bound to 127.0.0.1:``port`` (0: any free port), not yet serving.

    Connections are served in threads of their own (daemon threads: stopping the
    server does not wait for them); one silent for ``idle_timeout`` seconds is closed.
    """
    body = page.encode("utf-8")

    class PageHandler(BaseHTTPRequestHandler):
        server_version = "pts-view"
        sys_version = ""
        timeout = idle_timeout  # StreamRequestHandler sets it on the connection's socket

        def _allowed_host(self) -> bool:
            port_now = self.server.server_address[1]
            return self.headers.get("Host", "") in (f"{HOST}:{port_now}", f"localhost:{port_now}")

        def _answer(self, with_body: bool) -> None:
            if not self._allowed_host():
                self.send_error(421, "Misdirected Request")
                return
            if self.path.split("?", 1)[0] not in PAGE_PATHS:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
            self.send_header("X-Content-Type-Options", "nosniff")
            self.end_headers()
            if with_body:
                self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 -- the name http.server dispatches to
            self._answer(True)

        def do_HEAD(self) -> None:  # noqa: N802
            self._answer(False)

        def _refuse(self) -> None:
            self.send_error(405, "Method Not Allowed: this report is read-only")

        do_POST = do_PUT = do_DELETE = do_PATCH = _refuse

        def log_message(self, format: str, *args) -> None:  # noqa: A002 -- quiet: the terminal shows only the URL
            pass

    try:
        return _PageServer((HOST, port), PageHandler)
    except OSError as e:
        raise PTSError(f"cannot serve on {HOST}:{port} ({e.strerror or e})") from None


def serve(page: str, port: int = DEFAULT_PORT, announce: Callable[[str], None] = print) -> None:
    """Serve ``page`` until interrupted; ``announce`` gets the URL once the server listens."""
    server = make_server(page, port)
    try:
        announce(f"serving the report on http://{HOST}:{server.server_address[1]}/ (Ctrl-C to stop)")
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()

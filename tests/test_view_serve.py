"""`pts view --serve` under clients that do not play along: idle connections must not block anyone else."""

import contextlib
import socket
import threading
import urllib.request

from pts.view.serve import make_server

PAGE = "<!doctype html><title>report</title><p>the report</p>"


@contextlib.contextmanager
def serving(**options):
    """A server of PAGE on a free loopback port (``options`` go to make_server); yields its port."""
    server = make_server(PAGE, port=0, **options)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def get(port: int) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
        return response.read()


def test_an_idle_connection_does_not_block_other_requests():
    with serving() as port:  # the default idle timeout, longer than a request's own
        idle, half = socket.create_connection(("127.0.0.1", port)), socket.create_connection(("127.0.0.1", port))
        try:
            half.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1")  # a request line, then silence
            # Each request would wait for the silent connections to close if they were served one at a time.
            assert [get(port) for _ in range(3)] == [PAGE.encode()] * 3
        finally:
            idle.close()
            half.close()


def test_an_idle_connection_is_closed_by_the_server():
    with serving(idle_timeout=1.0) as port, socket.create_connection(("127.0.0.1", port)) as idle:
        idle.settimeout(30)
        # The server closes it after its idle timeout: the read ends with EOF instead of waiting for ever.
        assert idle.recv(1024) == b""
        assert get(port) == PAGE.encode()

"""The fault toolkit does what it says, for real: the TCP proxy in each mode in front of a small
HTTP server (and of a `git daemon`), seen by `requests` and by `git` (no Flink; a few seconds)."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from faults import Fault, GitDaemon, TcpProxy

BODY = b"x" * 2000


class Recording(BaseHTTPRequestHandler):
    """Answers every request with BODY (HTTP/1.1, keep-alive) and records its request line."""
    protocol_version = "HTTP/1.1"
    received: list[str]

    def _answer(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.received.append(self.requestline)
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    do_GET = do_POST = _answer

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server():
    handler = type("Handler", (Recording,), {"received": []})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def proxy(server):
    with TcpProxy("127.0.0.1", server.server_address[1], delay_s=0.3,
                  truncate_bytes=500) as proxy:
        yield proxy


def received(server) -> list[str]:
    return server.RequestHandlerClass.received


def test_a_passing_proxy_answers_as_the_server_does(proxy, server):
    answer = requests.get(f"{proxy.url}/jobs/overview", timeout=2)
    assert answer.status_code == 200 and answer.content == BODY
    assert received(server) == ["GET /jobs/overview HTTP/1.1"]
    assert (proxy.connections, proxy.requests, proxy.forwarded) == \
        (1, ["GET /jobs/overview HTTP/1.1"], 1)


def test_each_request_on_a_kept_alive_connection_is_seen(proxy):
    with requests.Session() as session:
        for path in ("/jobs", "/overview", "/config"):
            assert session.get(f"{proxy.url}{path}", timeout=2).content == BODY
    assert proxy.connections == 1
    assert proxy.requests == [f"GET {p} HTTP/1.1" for p in ("/jobs", "/overview", "/config")]


def test_a_delayed_answer_arrives_late_but_whole(proxy):
    proxy.mode = Fault.DELAY
    started = time.monotonic()
    answer = requests.get(f"{proxy.url}/jobs", timeout=2)
    assert time.monotonic() - started >= proxy.delay_s
    assert answer.content == BODY


def test_a_blackholed_connection_never_answers(proxy, server):
    proxy.mode = Fault.BLACKHOLE
    with pytest.raises(requests.ReadTimeout):
        requests.get(f"{proxy.url}/jobs", timeout=(1, 0.3))
    assert received(server) == [] and proxy.connections == 1


def test_a_reset_connection_fails_at_once(proxy, server):
    proxy.mode = Fault.RESET
    started = time.monotonic()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/jobs", timeout=2)
    assert time.monotonic() - started < 1
    assert received(server) == []


def test_a_truncated_answer_is_incomplete(proxy):
    proxy.mode = Fault.TRUNCATE
    with pytest.raises(requests.exceptions.ChunkedEncodingError, match="IncompleteRead"):
        requests.get(f"{proxy.url}/jobs", timeout=2)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as sock:
        sock.sendall(b"GET /jobs HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b"".join(iter(lambda: sock.recv(4096), b""))
    assert len(answer) == proxy.truncate_bytes and answer.startswith(b"HTTP/1.")


def test_a_lost_answer_reaches_the_server_but_not_the_client(proxy, server):
    proxy.fault_when(Fault.RESET, pattern=rb"POST /jars/.*/run", after_forwarding=True)
    assert requests.get(f"{proxy.url}/jars", timeout=2).status_code == 200
    with pytest.raises(requests.ConnectionError):
        requests.post(f"{proxy.url}/jars/counter.jar/run", json={"parallelism": 1}, timeout=2)
    assert received(server) == ["GET /jars HTTP/1.1", "POST /jars/counter.jar/run HTTP/1.1"]
    # armed for one request: the retry is answered
    assert requests.post(f"{proxy.url}/jars/counter.jar/run", json={}, timeout=2).ok


def test_a_fault_armed_after_some_requests_hits_the_ones_after_them(proxy, server):
    proxy.fault_when(Fault.RESET, after_requests=2, times=None)
    with requests.Session() as session:
        for _ in range(2):
            assert session.get(f"{proxy.url}/jobs", timeout=2).ok
        with pytest.raises(requests.ConnectionError):
            session.get(f"{proxy.url}/jobs", timeout=2)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/jobs", timeout=2)
    assert len(received(server)) == 2
    proxy.heal()
    assert requests.get(f"{proxy.url}/jobs", timeout=2).ok


def test_closing_the_proxy_ends_its_held_connections_promptly(server):
    proxy = TcpProxy("127.0.0.1", server.server_address[1], mode=Fault.BLACKHOLE).start()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=2) as held:
        held.sendall(b"GET /jobs HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.1)
        started = time.monotonic()
        proxy.close()
        assert time.monotonic() - started < 1
        assert held.recv(10) == b""     # closed, no answer
    assert not any(thread.is_alive() for thread in proxy._threads)
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{proxy.url}/jobs", timeout=1)


@pytest.fixture
def git_daemon(spec_repo, tmp_path):
    spec_repo.push("first")
    with GitDaemon(tmp_path) as daemon:
        yield daemon


def ls_remote(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", "ls-remote", url], capture_output=True, text=True, timeout=20,
                          env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"})


def test_git_through_a_passing_proxy_lists_the_remote_refs(git_daemon, spec_repo):
    with TcpProxy("127.0.0.1", git_daemon.port) as proxy:
        listed = ls_remote(git_daemon.url("specs", via=proxy))
    assert listed.returncode == 0, listed.stderr
    assert f"{spec_repo.remote_ref('main')}\trefs/heads/main" in listed.stdout
    assert proxy.requests[0].endswith("git-upload-pack /specs.git")


def test_git_through_a_resetting_proxy_fails_fast(git_daemon):
    with TcpProxy("127.0.0.1", git_daemon.port, mode=Fault.RESET) as proxy:
        started = time.monotonic()
        listed = ls_remote(git_daemon.url("specs", via=proxy))
    assert listed.returncode != 0
    assert time.monotonic() - started < 2

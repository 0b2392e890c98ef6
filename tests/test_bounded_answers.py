"""Answers from a server the agent does not control are bounded: a server that trickles its
answer a byte at a time, or sends more than the agent will read, ends the call within its
deadline with a typed error (real sockets, a real misbehaving server)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent.errors import FlinkAnswerInvalid, FlinkUnavailable
from agent.flink import rest
from agent.flink.rest import FlinkClient


class Misbehaving(BaseHTTPRequestHandler):
    mode = "trickle-body"

    def do_GET(self):
        try:
            self._misbehave()
        except (BrokenPipeError, ConnectionResetError):
            pass   # the agent hung up, as it should

    def _misbehave(self):
        if self.mode == "trickle-headers":
            for byte in b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n":
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.5)
            return
        body = b'{"jobs": [' + b'{"jid": "x"},' * 3_000_000 + b'{}]}' \
            if self.mode == "huge" else b'{"jobs": []}' + b" " * 10_000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.mode == "huge":
            self.wfile.write(body)
            return
        for index in range(len(body)):
            self.wfile.write(body[index:index + 1])
            self.wfile.flush()
            time.sleep(0.5)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    running = ThreadingHTTPServer(("127.0.0.1", 0), Misbehaving)
    running.daemon_threads = True
    threading.Thread(target=running.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{running.server_address[1]}"
    running.shutdown()


@pytest.mark.parametrize("mode", ["trickle-body", "trickle-headers"])
def test_a_trickling_answer_ends_at_the_calls_deadline(server, mode):
    Misbehaving.mode = mode
    started = time.monotonic()
    with pytest.raises(FlinkUnavailable, match=r"within 6s \(the limit\)"):
        FlinkClient(server, timeout=2).jobs()
    assert time.monotonic() - started < 9


def test_an_answer_over_the_size_limit_is_refused(server, monkeypatch):
    monkeypatch.setattr(rest, "MAX_ANSWER_BYTES", 1 << 20)
    Misbehaving.mode = "huge"
    with pytest.raises(FlinkAnswerInvalid, match=r"over 1,048,576 bytes \(the limit\)"):
        FlinkClient(server).jobs()


def test_a_trickling_jar_download_ends_at_its_deadline(server, monkeypatch, tmp_path):
    from agent.errors import ArtifactUnavailable
    from agent.flink import artifacts
    monkeypatch.setattr(artifacts, "DOWNLOAD_DEADLINE_S", 2.0)
    Misbehaving.mode = "trickle-body"
    started = time.monotonic()
    with pytest.raises(ArtifactUnavailable, match=r"download took over 2s \(the limit\)"):
        artifacts.fetch_jar(f"{server}/slow.jar", tmp_path / "cache", lambda path: None)
    assert time.monotonic() - started < 5
    assert list((tmp_path / "cache").iterdir()) == []

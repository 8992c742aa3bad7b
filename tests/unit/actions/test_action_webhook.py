"""Webhook against a local HTTP server: body, token, retries, timeouts, give-up."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import orjson
import pytest

from actionevents import make_event
from sipwatch.actions.webhook import WebhookSink


class Receiver:
    """127.0.0.1 HTTP server answering with scripted status codes (then 200)."""

    def __init__(self, statuses=(), delay: float = 0.0, headers=None) -> None:
        self.statuses = list(statuses)
        self.delay = delay
        self.extra = headers or {}
        self.requests: list[tuple[str, dict, bytes]] = []
        self.answered: list[int] = []
        rx = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                rx.requests.append((self.path, dict(self.headers), body))
                status = rx.statuses.pop(0) if rx.statuses else 200
                if rx.delay:
                    time.sleep(rx.delay)
                rx.answered.append(status)
                try:
                    self.send_response(status)
                    for k, v in rx.extra.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"ok")
                except OSError:  # the client timed out and left: what the test wanted
                    pass

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(request):
    rx = Receiver(**getattr(request, "param", {}))
    yield rx
    rx.close()


def _sink(url: str, **kw) -> WebhookSink:
    kw.setdefault("backoff", 0.01)
    return WebhookSink(url, use_env_proxy=False, **kw)


def test_batch_post_with_bearer_token(receiver):
    sink = _sink(receiver.url, bearer_token="s3cret", headers={"X-Sensor": "lab"})
    events = [make_event(), make_event(src="198.51.100.9")]
    sink.emit(events)
    sink.close()
    ((path, headers, body),) = receiver.requests
    assert path == "/hook"
    assert headers["Authorization"] == "Bearer s3cret" and headers["X-Sensor"] == "lab"
    assert headers["Content-Type"] == "application/json"
    doc = orjson.loads(body)
    assert [e["id"] for e in doc["events"]] == [e.id for e in events]
    assert doc["events"][1]["src"] == "198.51.100.9"
    assert sink.stats.delivered == 2 and sink.posts == 1


def test_one_post_per_event_and_max_batch(receiver):
    sink = _sink(receiver.url, batch=False)
    sink.emit([make_event(), make_event()])
    assert sink.flush(10)
    assert [orjson.loads(b)["rule"] for _, _, b in receiver.requests] == ["es.extension-scan"] * 2
    sink.close()
    receiver.requests.clear()
    sink = _sink(receiver.url, max_batch=2)
    sink.emit([make_event() for _ in range(5)])
    sink.close()
    assert [len(orjson.loads(b)["events"]) for _, _, b in receiver.requests] == [2, 2, 1]


@pytest.mark.parametrize("receiver", [{"statuses": [503, 429, 500]}], indirect=True)
def test_retries_server_errors_then_delivers(receiver):
    sink = _sink(receiver.url, retries=3)
    sink.emit([make_event()])
    sink.close()
    assert receiver.answered == [503, 429, 500, 200]
    st = sink.stats
    assert (st.delivered, st.failed, sink.attempts) == (1, 0, 4)


@pytest.mark.parametrize("receiver", [{"statuses": [503] * 10}], indirect=True)
def test_gives_up_after_bounded_retries(receiver):
    sink = _sink(receiver.url, retries=2)
    sink.emit([make_event(), make_event()])
    sink.close()
    assert len(receiver.requests) == 3
    st = sink.stats
    assert (st.delivered, st.failed, st.errors) == (0, 2, 1)
    assert "gave up after 3 attempts: HTTP 503" in st.last_error


@pytest.mark.parametrize("receiver", [{"statuses": [401, 200]}], indirect=True)
def test_client_errors_are_not_retried(receiver):
    sink = _sink(receiver.url, retries=5)
    sink.emit([make_event()])
    sink.close()
    assert receiver.answered == [401]
    assert sink.stats.failed == 1 and "HTTP 401" in sink.stats.last_error


@pytest.mark.parametrize("receiver", [{"statuses": [302], "headers": {"Location": "/x"}}],
                         indirect=True)  # fmt: skip
def test_redirect_is_a_failure_not_a_silent_get(receiver):
    sink = _sink(receiver.url)
    sink.emit([make_event()])
    sink.close()
    assert [p for p, _, _ in receiver.requests] == ["/hook"]
    assert "HTTP 302" in sink.stats.last_error


@pytest.mark.parametrize("receiver", [{"delay": 1.0}], indirect=True)
def test_timeout_counts_as_a_retryable_failure(receiver):
    sink = _sink(receiver.url, timeout=0.2, retries=1)
    sink.emit([make_event()])
    assert sink.flush(30)
    assert sink.attempts == 2 and sink.stats.failed == 1
    assert "timed out" in sink.stats.last_error
    sink.close()


def test_connection_refused_and_shutdown_cuts_the_backoff():
    with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as srv:
        port = srv.server_address[1]  # closed below: nothing listens there
    sink = _sink(f"http://127.0.0.1:{port}/", retries=5, backoff=600)
    sink.emit([make_event() for _ in range(3)])  # one batch: one POST
    sink.close(timeout=0.2)  # refused, then a 600 s backoff that close() must cut short
    st = sink.stats
    assert sink.attempts == 1 and st.failed == 3 and st.dropped == 0
    assert "gave up at shutdown" in st.last_error

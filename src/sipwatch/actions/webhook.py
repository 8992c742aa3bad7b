"""Webhook: events as JSON POSTs to an HTTP(S) endpoint (chat bots, SOAR, ticketing).

Body: ``{"events": [event, ...]}`` per batch (at most ``max_batch`` events), or with
``batch = false`` one event object per request. A failed POST is retried with exponential
backoff when it may succeed later (connection errors, timeouts, 408, 429, 5xx), at most
``retries`` times; anything else (other 4xx, redirects) fails at once. Failed events are
counted, never re-queued, so a dead endpoint cannot grow memory. Plain urllib: no new
dependency.
"""

from __future__ import annotations

import os
import ssl
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import orjson

from sipwatch.actions.base import QueuedSink, parse_common
from sipwatch.actions.config import Section
from sipwatch.detect.events import Event

_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})
_MAX_BODY_READ = 65536


class WebhookError(RuntimeError):
    pass


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """urllib would turn a redirected POST into a GET without body: refuse instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


class WebhookSink(QueuedSink):
    kind = "webhook"

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 5.0,
        retries: int = 3,
        backoff: float = 1.0,
        backoff_max: float = 30.0,
        bearer_token: str | None = None,
        headers: dict[str, str] | None = None,
        batch: bool = True,
        max_batch: int = 100,
        ca_file: str | None = None,
        use_env_proxy: bool = True,
        **common,
    ) -> None:
        super().__init__(**common)
        if urlsplit(url).scheme not in ("http", "https"):
            raise ValueError("url must be http(s)://...")
        self.url = url
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.batch = batch
        self.max_batch = max_batch
        self._server_delay = 0.0  # Retry-After of the last answer
        self.posts = 0  # requests that succeeded
        self.attempts = 0  # requests tried, retries included
        self._headers = {"Content-Type": "application/json", "User-Agent": "sipwatch"}
        self._headers.update(headers or {})
        if bearer_token:
            self._headers["Authorization"] = f"Bearer {bearer_token}"
        handlers: list[urllib.request.BaseHandler] = [_NoRedirect()]
        if not use_env_proxy:
            handlers.append(urllib.request.ProxyHandler({}))
        if ca_file:
            handlers.append(
                urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=ca_file))
            )
        self._opener = urllib.request.build_opener(*handlers)
        self._start()

    def _process(self, batch: list[Event]) -> None:
        if not self.batch:
            bodies = [orjson.dumps(e.to_dict(), default=str) for e in batch]
        else:
            step = self.max_batch
            bodies = [
                orjson.dumps({"events": [e.to_dict() for e in batch[i : i + step]]}, default=str)
                for i in range(0, len(batch), step)
            ]
        for body in bodies:
            self._post(body)

    def _post(self, body: bytes) -> None:
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                delay = min(self.backoff * 2 ** (attempt - 1), self.backoff_max)
                if self._sleep(max(delay, self._server_delay)):
                    raise WebhookError(f"gave up at shutdown after {attempt} attempts: {last}")
            self._server_delay = 0.0
            self.attempts += 1
            req = urllib.request.Request(self.url, data=body, headers=self._headers, method="POST")
            try:
                with self._opener.open(req, timeout=self.timeout) as resp:
                    resp.read(_MAX_BODY_READ)
                self.posts += 1
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code} {exc.reason}"
                exc.close()
                if exc.code not in _RETRY_STATUS:
                    raise WebhookError(last) from None
                self._server_delay = _retry_after(exc.headers.get("Retry-After"), self.backoff_max)
            except (urllib.error.URLError, OSError) as exc:  # refused, reset, timeout, DNS
                last = f"{type(exc).__name__}: {getattr(exc, 'reason', exc)}"
        raise WebhookError(f"gave up after {self.retries + 1} attempts: {last}")


def _retry_after(value: str | None, cap: float) -> float:
    """Seconds from a Retry-After header (delta form only), capped."""
    try:
        return min(max(float(value or 0), 0.0), cap)
    except ValueError:
        return 0.0


def parse_config(sec: Section) -> dict[str, object]:
    """Keyword arguments for WebhookSink from ``[actions.webhook]``."""
    kwargs = parse_common(sec)
    url = sec.str("url", "", required=True) or ""
    if sec.has("url") and isinstance(sec.table.get("url"), str):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            sec.fail("url", f"must be http(s)://host[:port]/path, not {url!r}")
    kwargs["url"] = url
    kwargs["timeout"] = sec.float("timeout", 5.0, minimum=0.1, maximum=300)
    kwargs["retries"] = sec.int("retries", 3, minimum=0, maximum=20)
    kwargs["backoff"] = sec.float("backoff", 1.0, minimum=0, maximum=600)
    kwargs["backoff_max"] = sec.float("backoff_max", 30.0, minimum=0, maximum=3600)
    kwargs["batch"] = sec.bool("batch", True)
    kwargs["max_batch"] = sec.int("max_batch", 100, minimum=1, maximum=10_000)
    kwargs["ca_file"] = sec.str("ca_file")
    kwargs["use_env_proxy"] = sec.bool("use_env_proxy", True)
    headers = sec.str_dict("headers")
    for name, value in headers.items():
        if not name or any(c in name + value for c in "\r\n\0") or ":" in name:
            sec.fail("headers", f"bad header {name!r}")
    token = sec.str("bearer_token")
    env = sec.str("bearer_token_env")
    if token and env:
        sec.fail("bearer_token", "give bearer_token or bearer_token_env, not both")
    if env:
        token = os.environ.get(env)
        if not token:
            sec.fail("bearer_token_env", f"environment variable {env} is not set")
    if token and any(c in token for c in "\r\n\0"):
        sec.fail("bearer_token", "must be one line")
    kwargs["headers"] = headers
    kwargs["bearer_token"] = token
    return kwargs

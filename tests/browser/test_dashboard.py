"""The dashboard as a person sees it: a live central service, headless Chromium, no Internet.

Three sensors (one node each) send batches through the real ingest endpoint, following a plan
this test knows: some attackers hit one node, one hits two, two hit all three. Every page must
load without a console or page error, load nothing from outside 127.0.0.1, and show the numbers
the test computes from its own plan. A screenshot of each page is kept under the pytest tmp dir.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from collections import Counter
from itertools import combinations
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest
import uvicorn

from sipwatch.central.app import create_app
from sipwatch.central.batchcodec import encode
from sipwatch.central.config import CentralConfig, NodeSite
from sipwatch.detect.events import Event, event_id
from sipwatch.record import Record
from sipwatch.report import geo
from sipwatch.store.base import open_store
from sipwatch.store.eventrows import event_row
from sipwatch.store.rows import message_row
from unit.storedata import EVIL_UA, request, response

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
USER, PASSWORD = "watcher", "correct horse battery"
T0 = 1_763_000_000.0  # 2025-11-13 UTC
NODES = {"oslo": "127.0.0.2", "essen": "127.0.0.3", "tromso": "127.0.0.4"}
SITES = {
    "oslo": NodeSite(59.91, 10.75, "Oslo"),
    "essen": NodeSite(51.46, 7.01, "Essen"),
    "tromso": NodeSite(69.65, 18.96, "Tromsø"),
}
# attacker -> the nodes it probes, in this order, 30 s apart
PLAN = {
    "203.0.113.1": ["oslo"],
    "203.0.113.2": ["essen"],
    "203.0.113.3": ["tromso"],
    "8.8.8.8": ["oslo"],
    "198.51.100.20": ["oslo", "essen"],
    "198.51.100.10": ["oslo", "essen", "tromso"],
    "198.51.100.11": ["tromso", "essen", "oslo"],
}
CRACKER = "198.51.100.11"  # also tries a password at every node, with a hostile User-Agent
PAGES = ["/", "/nodes", "/attackers", f"/attackers/{CRACKER}", "/correlation", "/sensors", "/rules"]


def pair(node, ts, src, method, n, code, reason, stage, ua="", auth="") -> list[Record]:
    """A request to a node and the node's answer, labelled with a stage."""
    dst = NODES[node]
    req = Record.from_bytes(
        request(method, f"sip:100@{dst}", "100", n, src, ua, auth), ts, "udp", src, 5060, dst, 5060
    )
    rsp = Record.from_bytes(
        response(code, reason, method, "100", n, src), ts + 0.01, "udp", dst, 5060, src, 5060
    )
    req.stage = rsp.stage = stage
    rsp.request_id = req.id
    return [req, rsp]


def records_for(node: str) -> list[Record]:
    """The plan's messages at one node: an OPTIONS probe (SS) per attacker and its answer; the
    cracker's REGISTER with credentials (RHJ) after its probe."""
    out: list[Record] = []
    for i, (src, nodes) in enumerate(PLAN.items()):
        if node not in nodes:
            continue
        ts = T0 + 30 * nodes.index(node) + i
        n = 1000 * i + list(NODES).index(node)
        out += pair(node, ts, src, "OPTIONS", n, 200, "OK", "SS", ua="friendly-scanner")
        if src == CRACKER:
            out += pair(
                node, ts + 5, src, "REGISTER", n + 500, 403, "Forbidden", "RHJ", EVIL_UA, "100"
            )
    return out


def late_probes(node: str, count: int) -> list[Record]:
    """Probes from a new source an hour later (the live-refresh step)."""
    out: list[Record] = []
    for k in range(count):
        out += pair(node, T0 + 3600 + k, "203.0.113.99", "OPTIONS", 90_000 + k, 200, "OK", "SS")
    return out


def sweep_event(node: str) -> tuple:
    first = T0 + 30 * PLAN[CRACKER].index(node)
    return event_row(
        Event(
            id=event_id("rhj.password-guess", f"{CRACKER}/{node}", first), rule="rhj.password-guess",
            kind="signature", severity="high", stage="RHJ", src=CRACKER, targets=("100",),
            node=node, sensor="", first=first, last=first + 5, count=1,
            summary=f"{CRACKER} tried a password on 100 with User-Agent {EVIL_UA}",
        )
    )  # fmt: skip


def ingest(base: str, token: str, seq: int, rows: list[Record], events: list[tuple]) -> None:
    body = encode(seq, [list(message_row(r)) for r in rows], events)
    reply = httpx.post(
        f"{base}/api/v1/ingest",
        content=body,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/msgpack",
            "Content-Encoding": "gzip",
        },
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["stored"] is True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Live:
    """A central service on uvicorn in a thread, filled with the plan."""

    def __init__(self, folder: Path) -> None:
        db = folder / "central.sqlite"
        self.store = open_store(db)
        config = CentralConfig(
            db=str(db), stale_after=120, nodes=SITES,
            deployments={"distributed": ("oslo", "essen"), "central": ("tromso",)},
        )  # fmt: skip
        self.app = create_app(config, self.store, secret="s" * 48)
        self.central = self.app.state.central
        self.central.registry.add_user(USER, PASSWORD, "viewer")
        self.tokens = {
            node: self.central.registry.add_sensor(f"s-{node}", [node]) for node in NODES
        }
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> None:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.05)
        for node, token in self.tokens.items():
            events = [sweep_event(node)]
            ingest(self.base, token, 1, records_for(node), events)
            beat = {"version": "9.9-test", "rule_pack": "central:1", "spool_batches": 2,
                    "spool_bytes": 4096, "dropped": 7 if node == "essen" else 0}  # fmt: skip
            r = httpx.post(
                f"{self.base}/api/v1/heartbeat", json=beat,
                headers={"Authorization": f"Bearer {token}"}, timeout=30,
            )  # fmt: skip
            assert r.status_code == 200, r.text
        # tromso's sensor went quiet an hour ago
        self.central.db(
            self.store.execute,
            "UPDATE sensors SET last_seen = ? WHERE name = ?",
            (time.time() - 3600, "s-tromso"),
        )

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.store.close()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    service = Live(tmp_path_factory.mktemp("central"))
    service.start()
    yield service
    service.stop()


# --- what the plan says, computed here without the report code --------------------------------
def expected_nodes() -> dict[str, int]:
    return dict(Counter(node for nodes in PLAN.values() for node in nodes))


def expected_distribution() -> list[list[str]]:
    reached = Counter(len(nodes) for nodes in PLAN.values())
    total = len(PLAN)
    return [
        [str(k), str(reached[k]), f"{100 * reached[k] / total:.1f}"]
        for k in range(1, len(NODES) + 1)
    ]


def expected_matrix() -> dict[tuple[str, str], int]:
    cells: Counter[tuple[str, str]] = Counter()
    for nodes in PLAN.values():
        if len(nodes) == 1:
            cells[(nodes[0], nodes[0])] += 1
        for a, b in combinations(nodes, 2):
            cells[(a, b)] += 1
            cells[(b, a)] += 1
    return cells


# --- HTTP-level checks -------------------------------------------------------------------------
def test_every_page_sends_strangers_to_login(live: Live) -> None:
    for path in [*PAGES, "/attackers?q=198"]:
        r = httpx.get(live.base + path, follow_redirects=False, timeout=30)
        assert r.status_code == 303, path
        location = urlsplit(r.headers["location"])
        assert location.path == "/login", path
        assert httpx.get(live.base + r.headers["location"], timeout=30).status_code == 200


def test_login_form_needs_its_csrf_token(live: Live) -> None:
    with httpx.Client(base_url=live.base, timeout=30) as client:
        form = {"username": USER, "password": PASSWORD, "next": "/"}
        refused = client.post("/login", data={**form, "csrf": "forged"})
        assert refused.status_code == 403
        assert client.get("/", follow_redirects=False).status_code == 303
        page = client.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
        ok = client.post("/login", data={**form, "csrf": token, "next": "//evil.example/"})
        assert ok.status_code == 303 and ok.headers["location"] == "/"
        assert client.get("/sensors").status_code == 200
        wrong = client.post("/logout", data={"csrf": "forged"})
        assert wrong.status_code == 403


def test_hostile_user_agent_is_shown_as_text(live: Live) -> None:
    r = httpx.get(live.base + f"/attackers/{CRACKER}", auth=(USER, PASSWORD), timeout=30)
    assert r.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in r.text
    assert "<script>alert(1)" not in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]


# --- in Chromium -------------------------------------------------------------------------------
def table(page, section: str) -> list[list[str]]:
    """The body cells of the table in section `section`, as the browser shows them."""
    return page.eval_on_selector_all(
        f"#{section} tbody tr",
        "rows => rows.map(r => Array.from(r.cells).map(c => c.textContent.trim()))",
    )


def wait_for_plots(page) -> int:
    """Wait until every plot of the page is drawn; returns how many there are."""
    page.wait_for_function(
        "() => Array.from(document.querySelectorAll('div.plot'))"
        ".every(d => d.querySelector('svg.main-svg'))",
        timeout=30_000,
    )
    return page.locator("div.plot").count()


def test_dashboard_in_chromium(live: Live, tmp_path_factory: pytest.TempPathFactory) -> None:
    if not CHROMIUM.exists():
        print(f"SKIP: {CHROMIUM} is missing (Debian package chromium)")
        pytest.skip(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    shots = tmp_path_factory.mktemp("dashboard-screenshots")
    problems: list[str] = []
    outside: list[str] = []
    dialogs: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "request",
            lambda r: (
                outside.append(r.url)
                if urlsplit(r.url).hostname not in ("127.0.0.1", None)
                else None
            ),
        )
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))

        def visit(path: str, name: str) -> int:
            page.goto(live.base + path)
            plots = wait_for_plots(page)
            shot = shots / f"{name}.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"screenshot {path}: {shot}")
            return plots

        # log in: the form sends us on to the page we asked for
        page.goto(live.base + "/nodes")
        assert urlsplit(page.url).path == "/login"
        page.fill("input[name=username]", USER)
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r"/nodes$"))

        # overview: counters and the newest events
        assert visit("/", "overview") == 1
        requests = sum(len(n) for n in PLAN.values()) + len(PLAN[CRACKER])
        assert page.inner_text('[data-counter="messages"]') == str(2 * requests)
        assert page.inner_text('[data-counter="attackers"]') == str(len(PLAN))
        assert page.inner_text('[data-counter="nodes"]') == "3"
        assert page.inner_text('[data-counter="events"]') == "3"
        assert page.inner_text('[data-counter="sensors-up"]') == "2"
        assert page.inner_text('[data-counter="sensors-stale"]') == "1"
        events = table(page, "t-newest_events")
        assert len(events) == 3 and all(row[4] == CRACKER for row in events)
        assert EVIL_UA in events[0][7]  # shown as text, never run
        page.screenshot(path=str(shots / "overview.png"), full_page=True)

        # nodes: attackers per node from the plan; a map because sites are configured
        assert visit("/nodes", "nodes") == 2
        rows = {r[0]: r for r in table(page, "t-nodes")}
        for node, n in expected_nodes().items():
            assert rows[node][1] == str(n), node
        assert rows["(all nodes)"][1] == str(len(PLAN))
        sites = {r[0]: r[4] for r in table(page, "t-sites")}
        assert sites == {k: str(v) for k, v in expected_nodes().items()}

        # correlation: distribution and matrix equal the plan
        assert visit("/correlation", "correlation") == 3
        assert table(page, "t-distribution") == expected_distribution()
        header = page.eval_on_selector_all(
            "#t-matrix thead th", "hs => hs.map(h => h.textContent.trim())"
        )
        want = expected_matrix()
        for row in table(page, "t-matrix"):
            for col, value in zip(header[1:], row[1:], strict=True):
                assert value == str(want[(row[0], col)]), (row[0], col)
        timing = {r[0]: r for r in table(page, "t-scan_timing")}
        assert set(timing) == {s for s, n in PLAN.items() if len(n) >= 2}
        assert timing[CRACKER][3] == " > ".join(PLAN[CRACKER])
        deployments = {r[0]: r for r in table(page, "t-deployments")}
        assert deployments["central"][2] == "3"  # the attackers seen at tromso

        # sensors: tromso's is stale, the others are fine
        assert visit("/sensors", "sensors") == 0
        sensors = {r[0]: r for r in table(page, "t-sensors")}
        assert sensors["s-tromso"][1] == "stale"
        assert sensors["s-oslo"][1] == sensors["s-essen"][1] == "ok"
        assert sensors["s-essen"][10] == "7" and sensors["s-oslo"][5] == "9.9-test"
        assert page.locator("#t-sensors tr.stale").count() == 1

        # rules: the active pack and its text
        assert visit("/rules", "rules") == 0
        pack = page.eval_on_selector_all(
            "#active-pack dd", "ds => ds.map(d => d.textContent.trim())"
        )
        assert pack[1] == "1" and re.fullmatch(r"[0-9a-f]{64}", pack[2])
        assert "rules:" in page.locator("pre.pack").inner_text()

        # attackers: search by prefix, stage and country; then the detail page
        assert visit("/attackers", "attackers") == 0
        assert {r[0] for r in table(page, "t-attackers")} == set(PLAN)
        page.fill("input[name=q]", "198.51.100.1")
        page.click("form.search button")
        page.wait_for_url(re.compile(r"q=198"))
        assert {r[0] for r in table(page, "t-attackers")} == {"198.51.100.10", CRACKER}
        page.goto(live.base + "/attackers?stage=RHJ")
        assert [r[0] for r in table(page, "t-attackers")] == [CRACKER]
        country = geo.lookup("8.8.8.8")[0]
        if country:  # the offline geo data knows it
            page.goto(live.base + f"/attackers?country={country}")
            assert [r[0] for r in table(page, "t-attackers")] == ["8.8.8.8"]
        page.goto(live.base + "/attackers?q=198.51.100.1")
        page.click(f"a[href='/attackers/{CRACKER}']")
        page.wait_for_url(re.compile(re.escape(CRACKER)))
        assert visit(f"/attackers/{CRACKER}", "attacker") == 1
        timeline = table(page, "t-attacker_timeline")
        assert [r[0] for r in timeline if r[1] == "SS"] == PLAN[CRACKER]
        tools = [r[1] for r in table(page, "t-attacker_tools")]
        assert EVIL_UA in tools

        # live refresh: a new batch shows up on the open overview without a reload
        visit("/", "overview")
        page.evaluate("window.__sameDocument = true")
        ingest(live.base, live.tokens["oslo"], 2, late_probes("oslo", 3), [])
        page.wait_for_function(
            "want => document.querySelector('[data-counter=\"messages\"]').textContent === want",
            arg=str(2 * requests + 6),
            timeout=60_000,
        )
        assert page.evaluate("window.__sameDocument") is True  # no full reload happened
        assert page.inner_text('[data-counter="attackers"]') == str(len(PLAN) + 1)

        # logging out ends the session
        page.click("header form button")
        page.wait_for_url(re.compile(r"/login$"))
        page.goto(live.base + "/sensors")
        assert urlsplit(page.url).path == "/login"
        browser.close()
    print(f"screenshots in {shots}")
    assert not dialogs, dialogs
    assert not problems, problems
    assert not outside, outside


def test_empty_store_renders_every_page(tmp_path: Path) -> None:
    """A new central (no sensors, no messages) shows every page, with nothing to chart."""
    from fastapi.testclient import TestClient

    store = open_store(tmp_path / "empty.sqlite")
    try:
        app = create_app(CentralConfig(db=str(tmp_path / "empty.sqlite")), store, "k" * 48)
        app.state.central.registry.add_user(USER, PASSWORD, "admin")
        client = TestClient(app)
        for path in PAGES[:3] + PAGES[4:]:
            r = client.get(path, auth=(USER, PASSWORD))
            assert r.status_code == 200, path
            assert 'class="plot"' not in r.text, path
        assert client.get(f"/attackers/{CRACKER}", auth=(USER, PASSWORD)).status_code == 404
        assert client.get("/attackers/not-an-ip", auth=(USER, PASSWORD)).status_code == 404
        bad = client.get("/attackers?country=ZZZ", auth=(USER, PASSWORD))
        assert bad.status_code == 422 and "two-letter" in bad.text
    finally:
        store.close()

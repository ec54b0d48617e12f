"""The web page in a real headless Chromium (Debian's package, driven by Playwright): search
with good and bad queries, a run's plot drawn on its canvas, the image viewer, a live run
written by a RunEngine through the service, login and a denied run, HTML in metadata shown as
text, a run that disappears while shown, ``/docs`` offline, no request leaving 127.0.0.1 and no
console error. Screenshots go to each test's tmp_path (and ``test-artifacts/web`` when ``CI``
is set). One browser for the module; a fresh context (profile) per test."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from intake_broker.access import ProposalPolicy
from intake_broker.store.annotations import annotation_change
from intake_broker.store.memory import MemoryStore
from intake_broker.testing import factories, insert_all

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="Playwright is not installed (pip install playwright; the server's test extra)",
)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no chromium on PATH (Debian: apt-get install chromium; .ci/run installs it)",
        allow_module_level=True,
    )

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
XSS = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def world(live_server):
    """A memory store of a scalar run, an image run, a run with HTML in its metadata, and
    five runs a real RunEngine recorded, served without auth."""
    from intake_broker.testing.recorded import recorded_runs

    store = MemoryStore(chunk_rows=4)
    runs = {
        "scalar": factories.scalar_run(n=40, scan_id=1),
        "frames": factories.image_run(n=6, shape=(16, 20), scan_id=2),
        "xss": factories.scalar_run(
            n=3, scan_id=3, time=1_700_000_900.0, plan_name=XSS, sample={"name": XSS}, note=XSS
        ),
    }
    runs.update(recorded_runs())
    for docs in runs.values():
        insert_all(store, docs)
    xss = runs["xss"][0][1]["uid"]  # HTML in a tag and a note too
    change = annotation_change(
        store, xss, author="ada", add_tags=["good", XSS[:40]], note=XSS, visibility="public"
    )
    store.change_annotation(xss, change)
    url = live_server.mount(store)
    yield {"url": url, "store": store, "uid": {k: d[0][1]["uid"] for k, d in runs.items()}}
    live_server.unmount(url)


class Watched:
    """A page whose every request must stay on 127.0.0.1 and whose console must stay free
    of errors (checked when the test ends)."""

    def __init__(self, context, name: str, folder: Path):
        self.page = context.new_page()
        self.name, self.folder = name, folder
        self.outside: list[str] = []
        self.errors: list[str] = []
        self.page.route("**/*", self._route)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda err: self.errors.append(f"pageerror: {err}"))

    def _route(self, route):
        host = urlsplit(route.request.url).hostname or ""
        if route.request.url.startswith(("data:", "blob:")) or host in LOOPBACK:
            route.continue_()
        else:
            self.outside.append(route.request.url)
            route.abort()

    def _console(self, message):
        if message.type == "error":
            self.errors.append(message.text)

    def shot(self, label: str) -> None:
        targets = [self.folder]
        if os.environ.get("CI"):
            targets.append(Path("test-artifacts") / "web")
        for folder in targets:
            folder.mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(folder / f"{self.name}-{label}.png"), full_page=True)


@pytest.fixture
def watched(browser, request, tmp_path):
    context = browser.new_context(viewport={"width": 1200, "height": 900})
    holder: list[Watched] = []

    def make(expected_errors: int = 0) -> Watched:
        page = Watched(context, request.node.name, tmp_path)
        page.expected_errors = expected_errors  # type: ignore[attr-defined]
        holder.append(page)
        return page

    yield make
    for page in holder:
        try:
            page.shot("end")
        finally:
            pass
    context.close()
    for page in holder:
        assert page.outside == [], f"requests left the machine: {page.outside}"
        allowed = page.expected_errors  # type: ignore[attr-defined]
        # a refused request (a 4xx the page handles) is logged by Chromium as a console error
        unexpected = [e for e in page.errors if not re.search(r"status of 4\d\d", e)]
        assert unexpected == [], unexpected
        assert len(page.errors) <= allowed, page.errors


def painted(page, selector: str) -> int:
    """How many pixels of a canvas are not its background (white) nor transparent."""
    return page.evaluate(
        """(selector) => {
            const c = document.querySelector(selector);
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                if (d[i + 3] !== 0 && !(d[i] === 255 && d[i + 1] === 255 && d[i + 2] === 255)) n++;
            }
            return n;
        }""",
        selector,
    )


def line_pixels(page, series: int = 0) -> int:
    """Pixels of the plot in (antialiased shades of) the colour of a series (the first's blue
    #0b5cad, the second's red #c0392b): a line, not the grey grid or the black axes."""
    return page.evaluate(
        """(series) => {
            const c = document.getElementById('plot');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0;
            for (let i = 0; i < d.length; i += 4) {
                const [r, g, b] = [d[i], d[i + 1], d[i + 2]];
                if (series === 0 ? b - r > 60 && b > g : r - b > 60 && r > g) n++;
            }
            return n;
        }""",
        series,
    )


def test_search_with_a_good_and_a_bad_query(world, watched):
    w = watched(expected_errors=2)
    page = w.page
    page.goto(world["url"] + "/")
    page.wait_for_selector("body[data-ready=runs]")
    assert page.locator("#runs-table tbody tr").count() == 8
    page.fill("#q", 'plan_name == "scan"')
    page.press("#q", "Enter")
    page.wait_for_function("() => document.querySelector('#count').textContent.includes('of 2 ')")
    plans = page.locator("#runs-table tbody td:nth-child(3)").all_text_contents()
    assert plans == ["scan", "scan"]
    assert "q=plan_name" in page.url  # the search is in the URL: shareable
    shared = page.url
    w.shot("good")

    page.fill("#q", "scan_id > ")
    page.press("#q", "Enter")
    error = page.locator("#q-error")
    error.wait_for(state="visible")
    assert "syntax error at column 10" in error.text_content()
    assert error.text_content().rstrip().endswith("^")  # the caret under the problem
    assert page.get_attribute("#q", "aria-invalid") == "true"
    assert page.evaluate("document.getElementById('q').selectionStart") == 9
    w.shot("bad")

    page.fill("#q", "scan_id == " + "9" * 20_000)  # huge: refused with what the limit is
    page.press("#q", "Enter")
    page.wait_for_function(
        "() => document.querySelector('#q-error').textContent.includes('at most 4000 characters')"
    )

    page.goto(shared)  # the shared link shows the same search
    page.wait_for_selector("body[data-ready=runs]")
    assert page.input_value("#q") == 'plan_name == "scan"'
    assert page.locator("#runs-table tbody tr").count() == 2

    page.click("#runs-table th button:has-text('Scan')")  # sort by scan id
    page.wait_for_function("() => location.search.includes('sort=scan_id')")
    page.wait_for_selector("th[aria-sort=ascending]")


def test_a_run_page_draws_its_plot(world, watched):
    w = watched()
    page = w.page
    page.goto(world["url"] + "/?q=scan_id%20%3D%3D%201")
    page.wait_for_selector("body[data-ready=runs]")
    page.click(f"#runs-table a[title='{world['uid']['scalar']}']")  # open it from the table
    page.wait_for_selector("body[data-ready=run]")
    page.wait_for_function("() => document.getElementById('plot').dataset.drawn >= 1")
    assert page.get_attribute("#plot", "data-rows") == "40"
    assert line_pixels(page) > 200  # a line was drawn, not only axes
    assert "det" in page.locator("#streams").text_content()
    assert "SIM:det" in page.locator("#streams").text_content()
    page.wait_for_selector("#baseline:not([hidden])")  # two readings of the temperature
    assert page.locator("#baseline-table tbody tr").all_text_contents() == ["temperature290291.5"]
    assert page.locator("#metadata").text_content().count("scan_id") >= 1
    # overlay a second field: a second colour appears
    assert line_pixels(page, 1) == 0
    drawn = int(page.get_attribute("#plot", "data-drawn"))
    page.check("#plot-y input[value=motor]")
    page.wait_for_function(f"() => document.getElementById('plot').dataset.drawn > {drawn}")
    assert line_pixels(page, 1) > 200 and line_pixels(page, 0) > 100
    # zoom from the keyboard: seconds 0 to 10 after the start hold events 1 to 10, exactly
    page.fill("#zoom-from", "0")
    page.fill("#zoom-to", "10")
    page.press("#zoom-to", "Enter")
    page.wait_for_selector("#plot[data-rows='10']")
    assert page.is_visible("#plot-reset")
    page.click("#plot-reset")
    page.wait_for_selector("#plot[data-rows='40']")
    w.shot("plot")


def test_the_image_viewer_changes_frame(world, watched):
    w = watched()
    page = w.page
    page.goto(f"{world['url']}/?run={world['uid']['frames']}")
    page.wait_for_selector("#image[data-frame='0']")
    first = page.evaluate(
        "Array.from(document.getElementById('image').getContext('2d')"
        ".getImageData(0, 0, 20, 16).data).join(',')"
    )
    assert painted(page, "#image") > 0
    page.evaluate(
        "() => { const f = document.getElementById('frame'); f.value = '4';"
        " f.dispatchEvent(new Event('input')); }"
    )
    page.wait_for_selector("#image[data-frame='4']")
    assert "5 of 6" in page.locator("#frame-label").text_content()
    page.select_option("#cmap", "viridis")
    pixels = (
        "Array.from(document.getElementById('image').getContext('2d')"
        ".getImageData(0, 0, 20, 16).data).join(',')"
    )
    # the frame is read again and recoloured (waited for: no fixed sleep)
    page.wait_for_function(f"(first) => {pixels} !== first", arg=first)
    later = page.evaluate(pixels)
    assert later != first
    w.shot("image")


def test_html_in_metadata_is_shown_as_text(world, watched):
    w = watched()
    page = w.page
    page.goto(world["url"] + "/?q=scan_id%20%3D%3D%203")
    page.wait_for_selector("body[data-ready=runs]")
    assert XSS in page.locator("#runs-table tbody").text_content()
    assert XSS[:40] in page.locator("#runs-table .tag").all_text_contents()
    page.goto(f"{world['url']}/?run={world['uid']['xss']}")
    page.wait_for_selector("body[data-ready=run]")
    assert XSS in page.locator("#run-title").text_content()
    shown = page.locator("#metadata").text_content()  # (as JSON strings)
    assert "<script>window.__xss=2</script>" in shown and "<img src=x onerror=" in shown
    page.wait_for_selector("#annotations:not([hidden])")
    assert page.locator("#annotation-list .note").text_content() == XSS
    assert XSS[:40] in page.locator("#annotation-list .tag").all_text_contents()
    assert page.evaluate("window.__xss") is None
    assert page.locator("main img").count() == 0 and page.locator("main script").count() == 0
    w.shot("xss")


def test_a_live_run_grows_while_a_runengine_writes(live_server, watched):
    pytest.importorskip("bluesky")
    import bluesky.plans as bp
    from bluesky import RunEngine
    from ophyd.sim import det

    store = MemoryStore(chunk_rows=4)
    url = live_server.mount(store)
    started = threading.Event()
    failures: list[BaseException] = []
    http = httpx.Client(base_url=url, timeout=30)

    def post(name, doc):
        response = http.post(
            "/api/v1/documents",
            content=json.dumps([name, doc], default=lambda o: o.tolist()),
            headers={"Content-Type": "application/json"},
        )
        response.raise_for_status()
        if name == "start":
            started.set()

    def acquire():
        try:
            RE = RunEngine({}, context_managers=[])
            RE(bp.count([det], num=25, delay=0.25), post)
        except BaseException as err:  # noqa: BLE001 - reported by the test
            failures.append(err)
            started.set()

    writer = threading.Thread(target=acquire, daemon=True)
    try:
        writer.start()
        assert started.wait(30) and not failures, failures
        uid = http.get("/api/v1/runs").json()["data"][0]["uid"]
        w = watched()
        page = w.page
        page.goto(f"{url}/?run={uid}")
        page.wait_for_function("() => Number(document.getElementById('plot').dataset.rows) >= 1")
        first = int(page.get_attribute("#plot", "data-rows"))
        assert "still acquiring" in page.locator("#run-state").text_content()
        page.evaluate(  # every row count the plot shows from now on
            """() => { window.__rows = [];
                const plot = document.getElementById('plot');
                new MutationObserver(() => window.__rows.push(Number(plot.dataset.rows)))
                    .observe(plot, {attributes: true, attributeFilter: ['data-rows']}); }"""
        )
        page.wait_for_function(
            f"() => Number(document.getElementById('plot').dataset.rows) > {first}", timeout=20_000
        )
        w.shot("growing")
        # (wait in Playwright, not in writer.join: the route handler runs in this thread)
        page.wait_for_selector("#plot[data-rows='25']", timeout=30_000)
        page.wait_for_function(
            "() => document.getElementById('run-state').textContent.includes('success')",
            timeout=20_000,
        )
        writer.join(60)
        assert not failures, failures
        assert page.get_attribute("body", "data-live") == "sse"  # pushed, not polled
        seen = page.evaluate("() => window.__rows")
        assert len(set(seen)) >= 3 and seen == sorted(seen), seen  # it grew, step by step
        assert line_pixels(page) > 100
    finally:
        writer.join(60)
        http.close()
        live_server.unmount(url)


@pytest.fixture
def guarded(live_server, tmp_path):
    from intake_broker_server.auth import ApiKeyStore, AuthConfig, FileProvider

    store = MemoryStore(chunk_rows=4)
    runs = {
        "ada": factories.scalar_run(n=8, scan_id=1, proposal_id="p-1"),
        "bob": factories.scalar_run(n=8, scan_id=2, proposal_id="p-2"),
    }
    for docs in runs.values():
        insert_all(store, docs)
    users = tmp_path / "users.json"
    users.write_text(json.dumps({"users": {"ada": {"proposals": ["p-1"]}}}))
    keys = ApiKeyStore(tmp_path / "keys.json")
    config = AuthConfig(policy=ProposalPolicy(), api_keys=keys, provider=FileProvider(users))
    url = live_server.mount(store, auth=config)
    yield {
        "url": url,
        "store": store,
        "users": users,
        "key": keys.create("ada", ["read"])[1],
        "writer": keys.create("ada", ["read", "write"])[1],
        "uid": {k: d[0][1]["uid"] for k, d in runs.items()},
    }
    live_server.unmount(url)


def test_login_and_a_denied_run(guarded, watched):
    w = watched(expected_errors=8)
    page = w.page
    page.goto(guarded["url"] + "/")
    page.wait_for_selector("body[data-ready=login]")
    page.fill("#apikey", "not-a-key")
    page.press("#apikey", "Enter")
    page.wait_for_function(
        "() => document.getElementById('login-error').textContent.includes('Not')"
    )
    page.fill("#apikey", guarded["key"])
    page.press("#apikey", "Enter")
    page.wait_for_selector("body[data-ready=runs]")
    uids = page.locator("#runs-table td.uid a").evaluate_all("links => links.map(a => a.title)")
    assert uids == [guarded["uid"]["ada"]]  # exactly what the API lets ada see
    assert guarded["key"] not in page.url
    w.shot("listed")
    page.click("#runs-table td.uid a")  # her run: no annotate controls with a read-only key
    page.wait_for_selector("body[data-ready=run]")
    assert page.is_hidden("#annotate") and page.locator("button.untag").count() == 0
    change = {"visibility": "public", "add_tags": ["sneaky"]}
    refused = httpx.post(
        f"{guarded['url']}/api/v1/runs/{guarded['uid']['ada']}/annotations",
        json=change,
        headers={"Authorization": f"Apikey {guarded['key']}"},
        timeout=30,
    )
    assert refused.status_code == 403 and refused.json()["error"] == "Forbidden"
    page.goto(f"{guarded['url']}/?run={guarded['uid']['bob']}")  # bob's run: as if missing
    page.wait_for_selector("body[data-gone=true]")
    assert "not available" in page.locator("#run-gone").text_content()
    assert page.locator("#metadata").text_content() == ""
    w.shot("denied")


def test_a_run_that_disappears_while_shown(guarded, watched):
    w = watched(expected_errors=2)
    page = w.page
    page.goto(guarded["url"] + "/")
    page.wait_for_selector("body[data-ready=login]")
    page.fill("#apikey", guarded["key"])
    page.press("#apikey", "Enter")
    page.wait_for_selector("body[data-ready=runs]")
    page.click("#runs-table td.uid a")
    page.wait_for_selector("body[data-ready=run]")
    # ada loses the proposal while she looks at its run
    users = guarded["users"]
    users.write_text(json.dumps({"users": {"ada": {"proposals": []}}}))
    later = time.time() + 5
    os.utime(users, (later, later))
    page.check("#plot-y input[value=motor]")  # the next read of the run
    page.wait_for_selector("body[data-gone=true]")
    assert "not available" in page.locator("#run-gone").text_content()
    w.shot("gone")


def test_docs_work_offline(world, watched):
    w = watched()
    page = w.page
    page.goto(world["url"] + "/docs")
    page.wait_for_selector(".swagger-ui .info .title", timeout=20_000)
    assert "intake-broker" in page.locator(".swagger-ui .info .title").text_content()
    page.get_by_text("/api/v1/web/runs", exact=True).first.wait_for()
    w.shot("docs")


def test_columns_change_and_persist_and_a_saved_search_runs(world, watched):
    w = watched()
    page = w.page
    page.goto(world["url"] + "/?q=scan_id%20%3D%3D%203")
    page.wait_for_selector("body[data-ready=runs]")
    page.click("#columns-box summary")
    page.fill("#column-key", "sample.name")
    page.press("#column-key", "Enter")
    page.wait_for_function("() => location.search.includes('cols=')")
    page.wait_for_selector("body[data-ready=runs]")
    headers = page.locator("#runs-table thead th").all_text_contents()
    assert headers[-1] == "sample.name"
    assert page.locator("#runs-table tbody td").last.text_content() == XSS  # as text
    page.uncheck("#column-choices input[value=tags]")  # a built-in column goes
    page.wait_for_selector("body[data-ready=runs]")
    page.wait_for_function(
        "() => ![...document.querySelectorAll('#runs-table th')]"
        ".some((th) => th.textContent === 'Tags')"
    )
    page.goto(world["url"] + "/")  # no cols in the URL: the ones chosen here (localStorage)
    page.wait_for_selector("body[data-ready=runs]")
    headers = page.locator("#runs-table thead th").all_text_contents()
    assert "sample.name" in headers and "Tags" not in headers
    w.shot("columns")

    page.click("#saved-box summary")
    page.fill("#q", 'plan_name == "scan"')
    page.fill("#save-name", "scans")
    page.click("#save-query")
    page.wait_for_selector("#saved-list a:has-text('scans')")
    page.goto(world["url"] + "/")
    page.wait_for_selector("body[data-ready=runs]")
    page.click("#saved-box summary")
    page.click("#saved-list a:has-text('scans')")  # runs it
    page.wait_for_function("() => document.querySelector('#count').textContent.includes('of 2 ')")
    assert page.input_value("#q") == 'plan_name == "scan"' and "q=plan_name" in page.url
    page.click("#columns-box summary")
    page.click("#columns-reset")
    page.wait_for_selector("body[data-ready=runs]")
    assert "Tags" in page.locator("#runs-table thead th").all_text_contents()


def test_annotate_and_download_from_the_run_page(live_server, watched, tmp_path):
    from intake_broker.views.catalog import BrokerCatalog

    store = MemoryStore(chunk_rows=4)
    docs = factories.scalar_run(n=6, scan_id=5)
    insert_all(store, docs)
    uid = docs[0][1]["uid"]
    url = live_server.mount(store)
    try:
        w = watched(expected_errors=2)  # the conflict (409) and the long note (422)
        page = w.page
        page.goto(f"{url}/?run={uid}")
        page.wait_for_selector("body[data-ready=run]")
        page.wait_for_selector("#annotate:not([hidden])")
        page.select_option("#annotate-visibility", "public")
        page.fill("#tag-input", "good")
        page.press("#tag-input", "Enter")
        page.wait_for_selector("#annotation-list .tag:has-text('good')")
        page.fill("#note-input", "<b>looks</b> fine")
        page.click("#save-note")
        page.wait_for_selector("#annotation-list .note")
        assert page.locator("#annotation-list .note").text_content() == "<b>looks</b> fine"
        (stored,) = store.annotations(uid)
        assert stored["tags"] == ["good"] and stored["note"] == "<b>looks</b> fine"
        assert stored["visibility"] == "public" and stored["version"] == 2
        page.click("button[aria-label='Remove tag good']")
        page.wait_for_function("() => !document.querySelector('#annotation-list .tag')")
        assert store.annotations(uid)[0]["tags"] == []
        w.shot("annotated")

        # someone else changes it meanwhile: the page's version is stale
        store.change_annotation(
            uid,
            annotation_change(store, uid, author="bob", add_tags=["other"], visibility="public"),
        )
        page.fill("#tag-input", "late")
        page.click("#add-tag")
        page.wait_for_function(
            "() => document.getElementById('annotate-error').dataset.status === '409'"
        )
        assert "someone changed" in page.locator("#annotate-error").text_content()
        page.wait_for_selector("#annotation-list .tag:has-text('other')")  # shown as it is now
        assert "late" not in store.annotations(uid)[0]["tags"]
        page.fill("#note-input", "x" * 20_001)
        page.click("#save-note")
        page.wait_for_function(
            "() => document.getElementById('annotate-error').dataset.status === '422'"
        )
        assert "at most 20,000" in page.locator("#annotate-error").text_content()
        w.shot("refused")

        page.select_option("#export-format", "jsonl")
        with page.expect_download() as info:
            page.click("#export-form button[type=submit]")
        download = info.value
        assert download.suggested_filename == f"{uid}.jsonl"
        folder = tmp_path / "by-python"
        BrokerCatalog(store)[uid].export("jsonl", str(folder), progress=False)
        assert Path(download.path()).read_bytes() == (folder / f"{uid}.jsonl").read_bytes()
    finally:
        live_server.unmount(url)


def test_a_live_run_is_polled_when_the_server_refuses_a_stream(live_server, watched, monkeypatch):
    from intake_broker_server.web import actions

    monkeypatch.setattr(actions, "LIVE_PER_USER", 0)
    store = MemoryStore(chunk_rows=4)
    docs = factories.scalar_run(n=8)
    events = [d for d in docs if d[0] == "event"]
    first = [d for d in docs if d[0] not in ("event", "stop")] + events[:4]
    insert_all(store, first)
    url = live_server.mount(store)
    uid = docs[0][1]["uid"]
    try:
        w = watched(expected_errors=1)  # the 429
        page = w.page
        page.goto(f"{url}/?run={uid}")
        page.wait_for_selector("body[data-live=poll]")
        assert "updated every second" in page.locator("#run-state").text_content()
        rows = int(page.get_attribute("#plot", "data-rows"))
        insert_all(store, [d for d in docs if d not in first])
        page.wait_for_function(
            f"() => Number(document.getElementById('plot').dataset.rows) > {rows}"
        )
        page.wait_for_function(
            "() => document.getElementById('run-state').textContent.includes('success')"
        )
    finally:
        live_server.unmount(url)


def test_a_writer_annotates_as_herself(guarded, watched):
    """Through the guard: the annotation's author is the key's user, whatever the page sends."""
    w = watched(expected_errors=1)  # the 401 before the login
    page = w.page
    page.goto(guarded["url"] + "/")
    page.wait_for_selector("body[data-ready=login]")
    page.fill("#apikey", guarded["writer"])
    page.press("#apikey", "Enter")
    page.wait_for_selector("body[data-ready=runs]")
    page.click("#runs-table td.uid a")
    page.wait_for_selector("#annotate:not([hidden])")
    page.select_option("#annotate-visibility", "proposal")
    page.fill("#tag-input", "checked")
    page.click("#add-tag")
    page.wait_for_selector("#annotation-list .tag:has-text('checked')")
    (stored,) = guarded["store"].annotations(guarded["uid"]["ada"])
    assert stored["author"] == "ada" and stored["proposals"] == ["p-1"]
    assert stored["tags"] == ["checked"]


@pytest.fixture(params=["query"])
def oidc_world(live_server, tmp_path, identity_provider, request):
    """ada's run (p-1) and bob's (p-2), served with an auth file whose ``oidc:`` block
    discovers the test identity provider, which logs in ada."""
    from intake_broker_server.auth.file import load_auth_file

    store = MemoryStore(chunk_rows=4)
    runs = {
        "ada": factories.scalar_run(n=8, scan_id=1, proposal_id="p-1"),
        "bob": factories.scalar_run(n=8, scan_id=2, proposal_id="p-2"),
    }
    for docs in runs.values():
        insert_all(store, docs)
    (tmp_path / "users.yml").write_text("users:\n  ada: {proposals: [p-1]}\n")
    config = load_auth_file(
        identity_provider.write_auth_file(tmp_path, response_mode=request.param)
    )
    url = live_server.mount(store, auth=config)
    yield {
        "url": url,
        "idp": identity_provider,
        "uid": {k: d[0][1]["uid"] for k, d in runs.items()},
        "mode": request.param,
    }
    live_server.unmount(url)


CREDENTIAL = "() => sessionStorage.getItem('intake-broker-credential')"


@pytest.mark.parametrize("oidc_world", ["query", "fragment"], indirect=True)
def test_log_in_with_the_identity_provider(oidc_world, watched):
    """The code flow with PKCE: the button, the issuer's login, the code exchanged for a token
    kept in the tab; the user sees exactly her runs; no code or token stays in the URL;
    logging out forgets the token."""
    w = watched(expected_errors=2)  # the 401s before the login and after the logout
    page, idp = w.page, oidc_world["idp"]
    page.goto(oidc_world["url"] + "/?q=")
    page.wait_for_selector("body[data-ready=login]")
    assert page.locator("#oidc-button").text_content() == "Log in with Test Login"
    page.click("#oidc-button")
    page.wait_for_selector("body[data-ready=runs]")
    assert idp.asked == {"authorize": 1, "token": 1} and idp.refused == []
    assert idp.response_modes == [oidc_world["mode"]]
    uids = page.locator("#runs-table td.uid a").evaluate_all("links => links.map(a => a.title)")
    assert uids == [oidc_world["uid"]["ada"]]  # hers, not p-2's
    token = page.evaluate(CREDENTIAL)
    assert token.startswith("Bearer ey")
    assert "code=" not in page.url and "state=" not in page.url and token[7:] not in page.url
    assert page.url.endswith("/?q=")  # back where the login started
    assert page.evaluate("() => sessionStorage.getItem('intake-broker-oidc-pending')") is None
    w.shot("logged-in")
    page.click("#logout")
    page.wait_for_selector("body[data-ready=login]")
    assert page.evaluate(CREDENTIAL) is None
    assert page.is_hidden("#runs")


def test_a_login_answer_with_a_wrong_state_is_refused(oidc_world, watched):
    w = watched(expected_errors=2)
    page, idp = w.page, oidc_world["idp"]
    idp.forge_state = True
    page.goto(oidc_world["url"] + "/")
    page.wait_for_selector("body[data-ready=login]")
    page.click("#oidc-button")
    page.wait_for_function(
        "() => document.getElementById('login-error').textContent.includes('wrong state')"
    )
    page.wait_for_selector("body[data-ready=login]")
    assert idp.asked == {"authorize": 1, "token": 0}  # the code was never exchanged
    assert page.evaluate(CREDENTIAL) is None
    assert "code=" not in page.url and "state=" not in page.url
    w.shot("wrong-state")


def test_a_code_bound_to_another_verifier_gets_no_token(oidc_world, watched):
    w = watched(expected_errors=3)  # the 401s and the token endpoint's 400
    page, idp = w.page, oidc_world["idp"]
    idp.swap_challenge = True
    page.goto(oidc_world["url"] + "/")
    page.wait_for_selector("body[data-ready=login]")
    page.click("#oidc-button")
    page.wait_for_function(
        "() => document.getElementById('login-error').textContent.includes('gave no token')"
    )
    page.wait_for_selector("body[data-ready=login]")
    assert idp.asked == {"authorize": 1, "token": 1} and idp.refused == ["token"]
    assert "PKCE verification failed" in page.locator("#login-error").text_content()
    assert page.evaluate(CREDENTIAL) is None
    assert "code=" not in page.url


def test_a_refused_login_is_told_where_anonymous_requests_are_served(
    live_server, tmp_path, identity_provider, watched
):
    from intake_broker_server.auth.file import load_auth_file

    store = MemoryStore(chunk_rows=4)
    insert_all(store, factories.scalar_run(n=4, scan_id=1, proposal_id="p-1"))
    (tmp_path / "users.yml").write_text("users:\n  ada: {proposals: [p-1]}\n")
    path = identity_provider.write_auth_file(tmp_path, extra="anonymous: true\n")
    url = live_server.mount(store, auth=load_auth_file(path))
    try:
        identity_provider.forge_state = True
        w = watched()
        page = w.page
        page.goto(url + "/")
        page.wait_for_selector("body[data-ready=runs]")  # anonymous: no login asked
        page.evaluate(
            "() => import('./static/web/oidc.js').then(async (m) => "
            "m.startLogin((await m.loginOptions()).oidc))"
        )
        page.wait_for_function(
            "() => document.getElementById('status').textContent.includes('wrong state')"
        )
        assert page.evaluate(CREDENTIAL) is None and "code=" not in page.url
    finally:
        live_server.unmount(url)

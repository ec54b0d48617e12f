"""Web page: time to first paint of the runs page over 100,000 runs, and of a
1,000,000-point stream's plot, in a real headless Chromium (Debian's, driven by Playwright).

A native store (SQLite index + zarr columns, ``intake-broker-native``) in a temporary folder
holds ``--runs`` small runs (two events each) and one run of ``--points`` events of scalar
fields (written as event pages). The service runs in this process on a loopback port
(``LiveServer``: uvicorn in a thread, one worker). For each of ``--repeat`` rounds a fresh
browser context (no cache) opens:

- the runs page (``/``: the first 50 runs, newest first, with the total count): the time from
  navigation to the first animation frame after the table is filled (``data-ready=runs``);
- the run page of the long run: the time to the first animation frame after its plot is drawn
  (``data-drawn``), the server reducing 1,000,000 points to min/max per pixel bucket.

Beside each figure is its floor on this machine: the time to paint the page's static files
(the runs page over an empty store) plus the API request(s) the page makes, timed alone with
httpx (the same server). Ratios are figure / floor. Printed: median and range over the rounds.

Run:  python benchmarks/web_page.py [--runs 100000] [--points 1000000] [--repeat 5]
(needs chromium on PATH and ``pip install playwright``)
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
import uuid

import httpx
import numpy as np

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


def fill(store, runs: int, points: int) -> str:
    """``runs`` small runs and one run of ``points`` events; the long run's uid."""
    import event_model

    from intake_broker.store.abilities import flush
    from intake_broker.testing import factories

    started = time.perf_counter()
    for i, docs in enumerate(factories.many_runs(runs)):
        for name, doc in docs:
            store.insert(name, doc)
        if i % 10_000 == 9_999:
            flush(store)
            print(f"  {i + 1} runs written ({time.perf_counter() - started:.0f} s)", flush=True)
    bundle = event_model.compose_run(
        time=1_700_000_000.0, metadata={"scan_id": runs + 1, "plan_name": "fly"}
    )
    desc = bundle.compose_descriptor(
        name="primary",
        data_keys={
            "x": {"dtype": "number", "shape": [], "source": "sim:x"},
            "det": {"dtype": "number", "shape": [], "source": "sim:det"},
        },
    )
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    step = 100_000
    rng = np.random.default_rng(1)
    for lo in range(0, points, step):
        n = min(step, points - lo)
        x = np.arange(lo, lo + n, dtype=float)
        t = 1_700_000_001.0 + x * 1e-3
        det = np.sin(x / 5e4) + rng.normal(0, 0.05, n)
        page = desc.compose_event_page(
            data={"x": x.tolist(), "det": det.tolist()},
            timestamps={"x": t.tolist(), "det": t.tolist()},
            time=t.tolist(),
            seq_num=list(range(lo + 1, lo + n + 1)),
            uid=[str(uuid.uuid4()) for _ in range(n)],
            validate=False,
        )
        store.insert("event_page", page)
    store.insert("stop", bundle.compose_stop(time=1_700_000_001.0 + points * 1e-3))
    flush(store)
    print(f"  written in {time.perf_counter() - started:.0f} s", flush=True)
    return bundle.start_doc["uid"]


def first_paint(context, url: str, ready: str) -> float:
    """Milliseconds from navigation start to the animation frame after ``ready`` holds."""
    page = context.new_page()
    page.goto(url, wait_until="commit")
    page.wait_for_function(ready, timeout=120_000, polling="raf")
    rows = page.evaluate("() => document.getElementById('plot').dataset.rows")
    if "?run=" in url:  # the plot drawn is of the whole stream
        assert rows is not None and int(rows) > 0, rows
    ms = page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(performance.now())))")
    page.close()
    return float(ms)


def timed(call, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        out.append((time.perf_counter() - started) * 1e3)
    return out


def show(label: str, ms: list[float], floor: list[float], what: str) -> None:
    med, fmed = statistics.median(ms), statistics.median(floor)
    print(
        f"{label:<30} {med:6.0f} ms (range {min(ms):.0f}-{max(ms):.0f})   "
        f"floor {fmed:4.0f} ms ({what})   ratio {med / fmed:4.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from intake_broker_native import NativeStore
    from intake_broker_server.testing import LiveServer

    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("no chromium on PATH (apt-get install chromium)")
    with tempfile.TemporaryDirectory() as folder, LiveServer() as server:
        store = NativeStore.in_folder(f"{folder}/native")
        print(f"writing {args.runs} runs and one of {args.points} events ...", flush=True)
        long_uid = fill(store, args.runs, args.points)
        url = server.mount(store)
        with httpx.Client(base_url=url, timeout=120) as http:
            http.get("/api/v1/web/runs")  # warm: the first query opens the index
            table_api = timed(lambda: http.get("/api/v1/web/runs").raise_for_status(), args.repeat)

            def plot_requests() -> None:
                http.get(f"/api/v1/runs/{long_uid}").raise_for_status()
                http.get(f"/api/v1/runs/{long_uid}/descriptors").raise_for_status()
                http.get(f"/api/v1/web/runs/{long_uid}/progress").raise_for_status()
                plot = http.get(
                    f"/api/v1/web/runs/{long_uid}/plot", params={"y": "det", "points": 800}
                )
                body = plot.raise_for_status().json()
                assert body["rows"] == args.points and body["decimated"], body["rows"]
                assert len(body["series"]["det"]["y"]) <= 1600

            plot_api = timed(plot_requests, args.repeat)
        empty = server.mount(NativeStore.in_folder(f"{folder}/empty"))
        runs_page, static_page, plot_page = [], [], []
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True, args=ARGS)
            ready_runs = "() => document.body.dataset.ready === 'runs'"
            ready_plot = "() => Number(document.getElementById('plot').dataset.drawn) >= 1"
            for _ in range(args.repeat):
                for target, out, ready in (
                    (f"{empty}/", static_page, ready_runs),
                    (f"{url}/", runs_page, ready_runs),
                    (f"{url}/?run={long_uid}", plot_page, ready_plot),
                ):
                    context = browser.new_context(viewport={"width": 1200, "height": 900})
                    out.append(first_paint(context, target, ready))
                    context.close()
            browser.close()
    print(
        f"\nweb page, native store, {args.runs} runs + one of {args.points} events; "
        f"median of {args.repeat} (fresh browser context each), one uvicorn worker in-process"
    )
    static = statistics.median(static_page)
    show(
        "runs page painted (50 rows)",
        runs_page,
        [static + t for t in table_api],
        "the page's files + its table request, each alone",
    )
    show(
        f"{args.points}-point plot painted",
        plot_page,
        [static + t for t in plot_api],
        "the page's files + its 4 API requests, each alone",
    )
    print(
        f"(the page's files alone: {static:.0f} ms; its table request alone: "
        f"{statistics.median(table_api):.0f} ms; the plot's 4 requests alone: "
        f"{statistics.median(plot_api):.0f} ms)"
    )
    print("goals: runs page < 300 ms, plot < 1000 ms")


if __name__ == "__main__":
    main()

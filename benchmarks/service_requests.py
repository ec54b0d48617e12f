"""Service W2: metadata requests per second, with 1 and 4 uvicorn workers.

A server (``intake_broker_server.serve``) runs in a subprocess on a loopback port over a folder
of suitcase-msgpack run files (``--runs`` small runs), with 1 and then 4 workers. ``--clients``
processes each send ``GET /api/v1/runs/{uid}`` (a run's start and stop documents, JSON) over
``--concurrency`` keep-alive connections for ``--seconds``, cycling through the uids; printed:
requests per second and latency percentiles. Every answer is checked (status 200, its uid).

The clients are Python (asyncio + httpx) on the same machine: on a small machine they and the
workers share the cores, so the figures are a floor for the server.

Run:  python benchmarks/service_requests.py [--runs 50] [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import httpx
import numpy as np


def write_runs(folder: str, count: int) -> list[str]:
    from intake_broker.testing import factories
    from intake_broker_files import MsgpackStore

    store = MsgpackStore.in_folder(folder)
    uids = []
    for docs in factories.many_runs(count):
        for name, doc in docs:
            store.insert(name, doc)
        uids.append(docs[0][1]["uid"])
    store.close()
    return uids


def start(catalog: str, workers: int) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    code = (
        "from intake_broker_server import serve; "
        f"serve({catalog!r}, port={port}, workers={workers}, log_level='warning')"
    )
    process = subprocess.Popen([sys.executable, "-c", code])
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


async def load(url: str, uids: list[str], seconds: float, concurrency: int) -> np.ndarray:
    latencies: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        for uid in uids[:concurrency]:  # open the connections first
            await client.get(f"/api/v1/runs/{uid}")
        stop = time.perf_counter() + seconds

        async def worker(offset: int) -> None:
            i = offset
            while time.perf_counter() < stop:
                uid = uids[i % len(uids)]
                t = time.perf_counter()
                response = await client.get(f"/api/v1/runs/{uid}")
                latencies.append(time.perf_counter() - t)
                if response.status_code != 200 or response.json()["uid"] != uid:
                    raise SystemExit(f"bad answer: {response.status_code} {response.text[:100]}")
                i += concurrency

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return np.asarray(latencies)


def _client(url: str, uids: list[str], seconds: float, concurrency: int, out) -> None:
    out.put(asyncio.run(load(url, uids, seconds, concurrency)))


def measure(
    url: str, uids: list[str], seconds: float, concurrency: int, clients: int
) -> np.ndarray:
    """Latencies of every request sent by ``clients`` processes at once."""
    if clients == 1:
        return asyncio.run(load(url, uids, seconds, concurrency))
    context = multiprocessing.get_context("spawn")
    out = context.Queue()
    processes = [
        context.Process(target=_client, args=(url, uids, seconds, concurrency, out))
        for _ in range(clients)
    ]
    for process in processes:
        process.start()
    results = [out.get(timeout=seconds + 120) for _ in processes]
    for process in processes:
        process.join()
    return np.concatenate(results)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4])
    parser.add_argument(
        "--clients",
        type=int,
        default=2,
        help="client processes, each with --concurrency connections",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        uids = write_runs(folder, args.runs)
        catalog = os.path.join(folder, "catalog.yml")
        with open(catalog, "w") as f:
            f.write(
                textwrap.dedent(f"""
                sources:
                  bench:
                    driver: bluesky-msgpack-catalog
                    args: {{paths: ["{folder}/*.msgpack"]}}
            """)
            )
        print(
            f"GET /api/v1/runs/{{uid}} over {args.runs} runs (msgpack files), "
            f"{args.clients} client processes x {args.concurrency} connections, "
            f"{args.seconds:.0f} s each; "
            f"{os.cpu_count()} CPUs shared by client and server"
        )
        print(
            f"  {'workers':>7}  {'requests/s':>10}  {'p50 ms':>7}  {'p99 ms':>7}  {'requests':>8}"
        )
        for workers in args.workers:
            process, url = start(catalog, workers)
            try:
                latencies = measure(url, uids, args.seconds, args.concurrency, args.clients)
            finally:
                process.terminate()
                process.wait(timeout=30)
            rate = len(latencies) / args.seconds
            p50, p99 = np.percentile(latencies, [50, 99]) * 1e3
            print(f"  {workers:>7}  {rate:>10.0f}  {p50:>7.2f}  {p99:>7.2f}  {len(latencies):>8}")


if __name__ == "__main__":
    main()

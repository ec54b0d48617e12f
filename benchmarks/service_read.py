"""Service W1: a ~1 GB stream read over HTTP, as a ratio of the same read done locally.

A server runs in a subprocess on a loopback port over a store holding one run whose
``primary`` stream is ``--rows`` events x ``--fields`` fields of ``--width`` float64 each
(default 131,072 x 4 x 256 = 1.07 GB, chunks of 2,048 events = 16 MB). This process reads it
through ``RemoteCatalog`` and, from its own copy of the same store, locally; both warm (the
store has its columns built: what is measured is the way from the store to the caller).

* ``run.primary.read()``: one chunk after another (the core reads chunks in sequence);
* ``run.primary.to_dask().load()``: dask's threads, several chunks at once;
* with the default codecs (lz4 tried on a sample; this noise does not compress, so it travels
  raw) and with ``codecs=["none"]``; ``read()`` also through httpx (``raw_reads=False``)
  rather than the remote store's own socket reader.

``read()`` asks for the whole stream; the server refuses that many bytes in one response, and
the remote store fetches it in requests of a few stored chunks (~16 MB), three in flight,
straight into the arrays of the whole.

``--store native`` keeps the run in the native store's folder (zarr arrays on disk, read
through the page cache by both processes), ``--store msgpack`` in a suitcase-msgpack file (the
server and this process each parse it; use a smaller ``--rows``: the file holds every value as
a msgpack float).

Limits printed beside:

* the floor: the same read through a plain-socket server in another process that, for each
  request, reads the events from its copy of the store (``read_events``, as the HTTP server
  does) and sends their bytes, no HTTP, no framing, into new arrays here, in requests of the
  same size and number in flight as the remote store's: what the same reads cost without
  HTTP, so ``floor/remote`` is what HTTP and our framing leave of it, and local/floor what
  such a server reaches of the local read. (On small streams our HTTP read beats this plain
  server: it is a measured reference, not a bound proved for every server design.) With
  ``--store native`` a second plain server hands the kernel the chunk files with sendfile
  (no copy into the server, no checksum check): what a zero-copy server could reach;
* the loopback alone: a raw ``socket`` copy of the same bytes from another process into a
  preallocated buffer (sendall of 1 or 16 MiB memoryviews, or sendfile from the page cache;
  recv_into).

The CPU seconds each read costs (this process, plus the server's for remote reads) are printed
too: on a machine shared with other work they vary less than the times.

Run:  python benchmarks/service_read.py [--rows 131072] [--fields 4] [--width 256] [--repeat 3]
"""

from __future__ import annotations

import argparse
import inspect
import os
import socket
import subprocess
import sys
import tempfile
import time

import httpx
import numpy as np

from intake_broker.store.memory import MemoryStore
from intake_broker.views.catalog import BrokerCatalog

RUN_UID = "00000000-0000-4000-8000-000000000001"


def primary_descriptor(store) -> str:
    """The uid of the benchmark run's ``primary`` descriptor."""
    return next(d["uid"] for d in store.descriptors(RUN_UID) if d.get("name") == "primary")


def make_store(args, store_kind: str, folder: str | None):
    """The benchmark run in a store (the same values in every process: seeded)."""
    import event_model

    if store_kind == "memory":
        store = MemoryStore(validate=False, chunk_rows=args.chunk)
    elif store_kind == "native":
        from intake_broker.catalogs.config import store_class

        store = store_class("native").in_folder(folder)
        store.validate = False
        if store.count():
            return store
    else:
        from intake_broker_files import FilesStore

        store = FilesStore(
            [f"{folder}/*.{store_kind}"], format=store_kind, validate=False, chunk_rows=args.chunk
        )
        if store.count():
            return store
    rng = np.random.default_rng(0)
    bundle = event_model.compose_run(
        uid=RUN_UID, time=1e9, metadata={"scan_id": 1, "plan_name": "benchmark"}
    )
    keys = [f"f{i}" for i in range(args.fields)]
    desc = bundle.compose_descriptor(
        name="primary",
        time=1e9,
        data_keys={k: {"dtype": "array", "shape": [args.width], "source": "bench"} for k in keys},
    )
    store.insert("start", bundle.start_doc)
    store.insert("descriptor", desc.descriptor_doc)
    uid = desc.descriptor_doc["uid"]
    for lo in range(0, args.rows, args.chunk):
        hi = min(lo + args.chunk, args.rows)
        data = {k: rng.normal(size=(hi - lo, args.width)) for k in keys}
        if store_kind in ("msgpack", "jsonl"):
            data = {k: v.tolist() for k, v in data.items()}
        store.insert(
            "event_page",
            {
                "descriptor": uid,
                "uid": [f"{uid}-{i}" for i in range(lo, hi)],
                "seq_num": list(range(lo + 1, hi + 1)),
                "time": list(1e9 + np.arange(lo, hi)),
                "data": data,
                "timestamps": {k: [1e9] * (hi - lo) for k in keys},
                "filled": {},
            },
        )
    store.insert("stop", bundle.compose_stop(time=2e9))
    if store_kind != "memory":
        store.close()
    return store


def serve(args) -> None:
    """The server process: the same store, served on 127.0.0.1:args.serve."""
    import uvicorn

    from intake_broker_server import create_app

    store = make_store(args, args.store, args.folder)
    BrokerCatalog(store)[-1].primary.read()  # warm: columns built, as in this process
    uvicorn.run(create_app(store), host="127.0.0.1", port=args.serve, log_level="warning")


def serve_plain(args) -> None:
    """The floor's server process: the same store, and for each request line ``"lo hi"`` the
    events lo <= seq_num < hi read with ``read_events`` and their data columns sent one after
    another as raw bytes over the socket -- the server's store read and the loopback transfer,
    with no HTTP, framing or encoding. One thread per connection."""
    import threading

    store = make_store(args, args.store, args.folder)
    BrokerCatalog(store)[-1].primary.read()  # warm, as for the HTTP server
    descriptor = primary_descriptor(store)
    keys = [f"f{i}" for i in range(args.fields)]
    server = socket.create_server(("127.0.0.1", args.serve_plain))

    chunks = store.event_chunks(descriptor)
    if args.sendfile:  # the native store's chunk files: raw values, then a 4-byte checksum
        files = {
            (key, c.seq_start): os.path.join(
                args.folder, "data", RUN_UID, descriptor, key, "c", str(i), "0"
            )
            for key in keys
            for i, c in enumerate(chunks)
        }
        missing = [path for path in files.values() if not os.path.exists(path)]
        if missing:
            raise SystemExit(f"no chunk file {missing[0]}: the native store's layout changed")

    def handle(conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with conn, conn.makefile("rb") as requests:
            for line in requests:
                lo, hi = map(int, line.split())
                if not args.sendfile:
                    cols = store.read_events(descriptor, fields=keys, seq_range=(lo, hi))
                    for key in keys:
                        conn.sendall(memoryview(cols.data[key]).cast("B"))
                    continue
                for key in keys:
                    for c in chunks:
                        if lo <= c.seq_start < hi:
                            with open(files[key, c.seq_start], "rb") as f:
                                conn.sendfile(f, 0, c.rows * args.width * 8)

    while True:
        conn, _ = server.accept()
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def plain_floor(args, folder: str | None, store, sendfile: bool = False) -> tuple[float, float]:
    """``(seconds, CPU seconds of both processes)``, best of ``--repeat``: the stream read
    through a plain-socket server (:func:`serve_plain`) into new arrays, in requests of the
    same size and number in flight as the remote store's. What a server of this store costs
    on this machine before HTTP: the floor under a remote read. With ``sendfile`` the server
    hands the kernel the native store's chunk files instead of reading them (unchecked)."""
    import threading

    from intake_broker_remote import RemoteStore

    command = _server_command(args, folder, "--serve-plain", port := _port())
    process = subprocess.Popen(command + (["--sendfile"] if sendfile else []))
    try:
        run = BrokerCatalog(store)[-1]
        chunks = store.event_chunks(primary_descriptor(store))
        defaults = inspect.signature(RemoteStore).parameters
        request_bytes, parallel = (defaults[n].default for n in ("request_bytes", "parallel"))
        per_row = args.fields * args.width * 8
        batches, rows = [], 0
        for c in chunks:  # ~request_bytes each, as RemoteStore splits a large read
            if batches and (batches[-1][1] - batches[-1][0] + c.rows) * per_row <= request_bytes:
                batches[-1][1] = c.seq_stop
            else:
                batches.append([c.seq_start, c.seq_stop])
            rows += c.rows
        first = chunks[0].seq_start
        deadline = time.monotonic() + 600
        while True:
            try:
                conns = [socket.create_connection(("127.0.0.1", port)) for _ in range(parallel)]
                for conn in conns:
                    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                break
            except ConnectionRefusedError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit("the plain-socket server did not start") from None
                time.sleep(0.2)

        def fetch(conn: socket.socket, mine: list, out: list[np.ndarray]) -> None:
            for lo, hi in mine:
                conn.sendall(f"{lo} {hi}\n".encode())
                for array in out:
                    view = memoryview(array[lo - first : hi - first]).cast("B")
                    pos = 0
                    while pos < len(view):
                        got = conn.recv_into(view[pos:], min(len(view) - pos, 1 << 20))
                        if not got:
                            raise ConnectionError("the plain-socket server closed")
                        pos += got

        best = cpu = float("inf")
        for _ in range(args.repeat):
            c, served = time.process_time(), cpu_seconds(process.pid)
            t = time.perf_counter()
            out = [np.empty((rows, args.width)) for _ in range(args.fields)]  # new, as a read's
            threads = [
                threading.Thread(target=fetch, args=(conn, batches[i :: len(conns)], out))
                for i, conn in enumerate(conns)
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            best = min(best, time.perf_counter() - t)
            cpu = min(cpu, time.process_time() - c + cpu_seconds(process.pid) - served)
        expected = run.primary.read()
        for i, array in enumerate(out):  # every value came, in its place
            np.testing.assert_array_equal(array, expected[f"f{i}"].values)
        for conn in conns:
            conn.close()
        return best, cpu
    finally:
        process.terminate()
        process.wait(timeout=30)


def _port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _server_command(args, folder: str | None, mode: str, port: int) -> list[str]:
    command = [
        sys.executable,
        __file__,
        mode,
        str(port),
        "--rows",
        str(args.rows),
        "--fields",
        str(args.fields),
        "--width",
        str(args.width),
        "--chunk",
        str(args.chunk),
        "--store",
        args.store,
    ]
    return command + (["--folder", folder] if folder else [])


def start_server(args, folder: str | None) -> tuple[subprocess.Popen, str]:
    port = _port()
    process = subprocess.Popen(_server_command(args, folder, "--serve", port))
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/healthz", timeout=5).status_code == 200:
                return process, url
        except httpx.TransportError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("the server did not start")


_SENDER = """
import os, socket, sys
port, nbytes, repeat, piece, use_file = (int(a) for a in sys.argv[1:6])
payload = memoryview(bytearray(os.urandom(1 << 20)) * (piece >> 20))
if use_file:  # the same bytes from a file in the page cache, with sendfile (no user copy)
    import tempfile
    f = tempfile.TemporaryFile()
    for _ in range(0, nbytes, len(payload)):
        f.write(payload)
    f.flush()
    f.seek(0)
    while f.read(1 << 24):
        pass
for _ in range(repeat):
    with socket.create_connection(("127.0.0.1", port)) as conn:
        if use_file:
            conn.sendfile(f, 0, nbytes)
            continue
        sent = 0
        while sent < nbytes:
            n = min(len(payload), nbytes - sent)
            conn.sendall(payload[:n])
            sent += n
"""

#: (label, bytes per send, bytes per recv_into, sendfile)
_SOCKET_WAYS = (
    ("sendall 1 MiB, recv_into 1 MiB", 1 << 20, 1 << 20, False),
    ("sendall 16 MiB, recv_into 4 MiB", 16 << 20, 4 << 20, False),
    ("sendfile, recv_into 1 MiB", 1 << 20, 1 << 20, True),
)


def socket_limit(nbytes: int, repeat: int) -> list[tuple[str, float, float]]:
    """``(way, seconds, CPU seconds of both processes)`` to move ``nbytes`` from another
    process over a loopback socket into one preallocated (already faulted-in) buffer, no
    HTTP, in a few ways: the floor under any HTTP read of them. The best of ``repeat`` for
    each way."""
    buffer = bytearray(nbytes)
    buffer[::4096] = bytes(len(range(0, nbytes, 4096)))  # fault every page in once
    view = memoryview(buffer)
    out = []
    for label, piece, recv, use_file in _SOCKET_WAYS:
        server = socket.create_server(("127.0.0.1", 0))
        sender = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _SENDER,
                str(server.getsockname()[1]),
                str(nbytes),
                str(repeat),
                str(piece),
                str(int(use_file)),
            ]
        )
        times, cpus = [], []
        try:
            for _ in range(repeat):
                conn, _ = server.accept()
                pos = 0
                c, sent = time.process_time(), cpu_seconds(sender.pid)
                t = time.perf_counter()
                with conn:
                    while pos < nbytes:
                        got = conn.recv_into(view[pos:], min(nbytes - pos, recv))
                        if not got:
                            break
                        pos += got
                times.append(time.perf_counter() - t)
                cpus.append(time.process_time() - c + cpu_seconds(sender.pid) - sent)
        finally:
            sender.wait(timeout=120)
            server.close()
        out.append((label, min(times), min(cpus)))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process ``pid`` has used, all threads (Linux; 0 elsewhere)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def http_stack() -> str:
    """What the server process runs on (uvicorn picks uvloop and httptools when installed)."""
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    parser = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"uvicorn on {loop} + {parser}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=131_072)
    parser.add_argument("--fields", type=int, default=4)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=2048)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--store", choices=["memory", "native", "msgpack", "jsonl"], default="memory"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--serve-plain", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sendfile", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args)
        return
    if args.serve_plain:
        serve_plain(args)
        return

    from intake_broker_remote import RemoteStore

    nbytes = args.rows * args.fields * args.width * 8
    print(
        f"stream: {args.rows:,} events x {args.fields} fields x {args.width} float64 = "
        f"{nbytes / 1e9:.2f} GB in chunks of {args.chunk:,} events "
        f"({args.chunk * args.fields * args.width * 8 / 1e6:.0f} MB); store: {args.store}; "
        f"server: {http_stack()}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        folder = None if args.store == "memory" else tmp
        t = time.perf_counter()
        local_store = make_store(args, args.store, folder)
        local = BrokerCatalog(local_store)[-1]
        local.primary.read()  # warm
        print(f"  data made and loaded in {time.perf_counter() - t:.1f} s")
        process, url = start_server(args, folder)
        try:
            results = []
            for label, read in (
                ("read()", lambda s: s.read()),
                ("to_dask().load()", lambda s: s.to_dask().load()),
            ):
                variants = [("default codecs", {}), ("codecs=none", {"codecs": ["none"]})]
                if label == "read()":
                    variants.append(
                        ("codecs=none, httpx reads", {"codecs": ["none"], "raw_reads": False})
                    )
                sources = {"local": local.primary}
                for name, options in variants:
                    run = BrokerCatalog(RemoteStore(url, **options))[-1]
                    got = read(run.primary)  # also checks the values
                    np.testing.assert_array_equal(
                        got["f0"].values[-3:], read(local.primary)["f0"].values[-3:]
                    )
                    del got
                    sources[name] = run.primary
                # one round of every source after another, best of the rounds: a machine
                # that is busy for a while slows local and remote alike
                best = dict.fromkeys(sources, float("inf"))
                cpu = dict.fromkeys(sources, float("inf"))
                for _ in range(args.repeat):
                    for name, source in sources.items():
                        c, served = time.process_time(), cpu_seconds(process.pid)
                        t = time.perf_counter()
                        read(source)
                        best[name] = min(best[name], time.perf_counter() - t)
                        used = time.process_time() - c
                        if name != "local":
                            used += cpu_seconds(process.pid) - served
                        cpu[name] = min(cpu[name], used)
                t_local = best.pop("local")
                results.append((f"local  {label}", t_local, None, cpu["local"]))
                results += [
                    (f"remote {label} [{name}]", seconds, t_local, cpu[name])
                    for name, seconds in best.items()
                ]
            limits = socket_limit(nbytes, args.repeat)
        finally:
            process.terminate()
            process.wait(timeout=30)
        floor, floor_cpu = plain_floor(args, folder, local_store)
        sent = (
            plain_floor(args, folder, local_store, sendfile=True)
            if folder and args.store == "native"
            else None
        )
    print(
        f"  {'read':<56} {'time':>8}  {'GB/s':>6}  {'remote/local':>12}  "
        f"{'floor/remote':>12}  {'CPU s (both processes)':>22}"
    )
    for label, seconds, reference, used in results:
        ratio = f"{reference / seconds:12.0%}" if reference else " " * 12
        of_floor = f"{floor / seconds:12.0%}" if reference else " " * 12
        print(
            f"  {label:<56} {seconds:7.2f}s  {nbytes / seconds / 1e9:6.2f}  {ratio}  "
            f"{of_floor}  {used:21.2f}s"
        )
    rows = [("floor: store read + plain socket, no HTTP", floor, floor_cpu)]
    if sent:
        rows.append(("below it: chunk files by sendfile, no read, no checksum", *sent))
    rows += [("limit: loopback socket, " + label, seconds, used) for label, seconds, used in limits]
    for label, seconds, used in rows:
        print(
            f"  {label:<56} {seconds:7.2f}s  {nbytes / seconds / 1e9:6.2f}  {'':12}  "
            f"{'':12}  {used:21.2f}s"
        )
    # The ceiling of remote/local: a remote read has at least to read the bytes from the
    # store on the server (as the local read does) and carry them over the loopback.
    limit = min(seconds for _, seconds, _ in limits)
    for label, seconds, reference, _ in results:
        if reference is None:
            print(
                f"  ceiling of remote/local for {label.split()[-1]:<17}: {seconds / floor:.0%}"
                f" (the floor's); {seconds / limit:.0%} if the loopback alone limited it"
            )


if __name__ == "__main__":
    main()

"""The ``intake-broker`` command: write demo runs, ingest files, list, show and search runs.

``intake-broker demo`` fills the default catalog with realistic runs; ``ls``, ``show RUN`` and
``search QUERY`` look at them; ``ingest FILE...`` adds suitcase-jsonl / suitcase-msgpack files.
Every command works on the default catalog (``--data DIR`` for another folder) or on an entry
of a YAML catalog (``--catalog FILE --entry NAME``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
import sys
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from intake_broker.console import (
    is_terminal,
    plain_table,
    plural,
    print_fields,
    print_table,
    say,
)
from intake_broker.errors import BadQuery, BrokerError, RunNotFound
from intake_broker.queries import Query

PROG = "intake-broker"


class UsageError(BrokerError):
    """The command line asks for something contradictory (exit status 2)."""


# -- queries ----------------------------------------------------------------------------------


def parse_query(text: str) -> Query:
    """The query of a command line: the query language of
    :mod:`intake_broker.queries.expression`, or a JSON object (a MongoDB-style filter)."""
    from intake_broker.queries.expression import parse_query as parse

    return parse(text)


# -- the catalog ------------------------------------------------------------------------------


def open_cli_catalog(spec: str | None, entry: str | None = None, data: str | None = None):
    """The catalog the command works on.

    Parameters
    ----------
    spec : str, optional
        A YAML catalog file, or the name of an installed store (``memory``, ``msgpack``,
        ``jsonl``) for the default folder in that format; None for the default catalog.
    entry : str, optional
        The entry of the YAML file to use (may be left out when the file has one entry).
    data : str, optional
        The data directory of the default catalog (what ``default_catalog(data)`` opens).
    """
    from intake_broker import temp
    from intake_broker.catalogs.config import default_catalog, installed_stores, open_catalog
    from intake_broker.views.catalog import BrokerCatalog

    named = spec in installed_stores() and not Path(spec).exists()
    if not named and spec not in (None, "default") and "://" not in spec:
        if not Path(spec).exists():  # a name `intake-broker catalogs` lists
            return _discovered_catalog(spec, entry, data, installed_stores())
    if spec is None or spec == "default" or named:
        if entry is not None:
            raise UsageError("--entry chooses an entry of a YAML catalog: give --catalog FILE")
        if spec == "memory":
            return temp()
        return default_catalog(data, **({} if spec in (None, "default") else {"store": spec}))
    if data is not None:
        raise UsageError(
            "--data is the folder of the default catalog; it cannot be combined with --catalog FILE"
        )
    top = open_catalog(spec)
    names = list(top)
    if entry is None and len(names) != 1:
        raise UsageError(
            f"{spec} has {plural(len(names), 'entry', 'entries')} ({', '.join(names)}); "
            "choose one with --entry NAME"
        )
    entry = names[0] if entry is None else entry
    if entry not in names:
        raise BrokerError(
            f"{spec} has no entry {entry!r}{did_you_mean(entry, names)}; "
            f"its entries: {', '.join(names)}"
        )
    catalog = top[entry]
    if not isinstance(catalog, BrokerCatalog):
        raise BrokerError(
            f"entry {entry!r} of {spec} is a {type(catalog).__name__}, not a "
            "catalog of Bluesky runs (a bluesky-*-catalog driver)"
        )
    return catalog


def _discovered_catalog(name: str, entry: str | None, data: str | None, stores: list[str]):
    """The catalog ``intake-broker catalogs`` lists as ``name`` (a YAML entry found on the
    search path, or an ``intake.catalogs`` entry point)."""
    from intake_broker.catalogs.discovery import Catalogs, search_path
    from intake_broker.views.catalog import BrokerCatalog

    found = Catalogs(search_path(data)).scan()
    known = [f.name for f in found if not f.shadowed]
    if name not in known:
        raise BrokerError(
            f"--catalog {name!r}: no such file, no installed store of that name "
            f"({', '.join(stores)}) and no catalog of that name found"
            + did_you_mean(name, known + stores)
            + (f"; found: {', '.join(known)}" if known else "")
            + " (intake-broker catalogs lists them)"
        )
    item = next(f for f in found if f.name == name and not f.shadowed)
    if entry is not None:
        raise UsageError(
            f"--catalog {name} names one catalog ({item.where}); --entry chooses an entry of "
            "a YAML file: give --catalog FILE --entry NAME, or leave out --entry"
        )
    catalog = Catalogs(search_path(data))[name]
    if not isinstance(catalog, BrokerCatalog):
        raise BrokerError(
            f"catalog {name!r} ({item.where}) is a {type(catalog).__name__}, not a "
            "catalog of Bluesky runs"
        )
    return catalog


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'scan'?)"`` when ``word`` is close to one of ``choices``, else ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=3, cutoff=0.6)
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def _close_runs(catalog: Any, key: str) -> str:
    """Did-you-mean for a run key: the uids and scan_ids of the newest runs that are close."""
    try:
        starts = [r.metadata["start"] for r in itertools.islice(catalog.values(), 1000)]
    except Exception:  # a hint must never hide the real error
        return ""
    uids = [s["uid"][: max(8, len(key))] for s in starts]
    scans = [str(s["scan_id"]) for s in starts if s.get("scan_id") is not None]
    return did_you_mean(key, scans if key.isdigit() else uids)


def lookup_run(catalog: Any, key: str):
    """The run ``key`` names: a negative index, a scan_id, a uid or a uid prefix."""
    if re.fullmatch(r"-?\d+", key):
        try:
            return catalog[int(key)]
        except RunNotFound:
            if key.startswith("-"):
                raise
            try:
                return catalog[key]
            except RunNotFound:
                raise RunNotFound(
                    f"no run with scan_id {key} or uid prefix {key!r} in this catalog"
                    + _close_runs(catalog, key)
                ) from None
    try:
        return catalog[key]
    except RunNotFound as err:
        hint = _close_runs(catalog, key)
        if not hint:
            raise
        raise RunNotFound(f"{err.args[0] if err.args else err}{hint}") from None


# -- tables -----------------------------------------------------------------------------------


def _local_time(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M:%S")


def _events(stop: dict | None) -> str:
    if stop is None:
        return "(no stop document)"
    counts = stop.get("num_events") or {}
    names = sorted(counts, key=lambda n: (n != "primary", n))
    return " ".join(f"{n}:{counts[n]}" for n in names) or "-"


def run_row(start: dict, stop: dict | None) -> list[str]:
    """The cells of one run in the run tables of ``ls``, ``search`` and ``demo``."""
    status = "incomplete" if stop is None else str(stop.get("exit_status", "?"))
    scan_id = start.get("scan_id")
    return [
        start["uid"][:8],
        "-" if scan_id is None else str(scan_id),
        str(start.get("plan_name", "-")),
        _local_time(start.get("time")),
        _events(stop),
        status,
    ]


#: The plain columns of a table (the format into a pipe; kept for callers of the old name).
format_table = plain_table


def _status_style(status: str) -> str:
    return {"success": "green", "incomplete": "yellow", "abort": "yellow"}.get(status, "red")


#: How the run tables colour their cells on a terminal.
RUN_STYLES: dict[int, Any] = {0: "cyan", 5: _status_style, 6: "magenta"}


def print_runs(runs: Iterable[Any], total: int | None = None, empty: str = "no runs") -> None:
    """Print the run table (rows in the order given); say how many of ``total`` are left out."""
    runs = list(runs)
    rows = [run_row(r.metadata["start"], r.metadata["stop"]) for r in runs]
    if not rows:
        print(empty)
        return
    headers = ["UID", "SCAN", "PLAN", "START", "EVENTS", "STATUS"]
    tags = [_run_tags(r) for r in runs]
    if any(tags):
        headers.append("TAGS")
        rows = [[*row, t] for row, t in zip(rows, tags, strict=True)]
    print_table(headers, rows, right=(1,), styles=RUN_STYLES)
    if total is not None and total > len(rows):
        say(
            f"... {plural(total - len(rows), 'more run', 'more runs')} "
            f"(showing {len(rows)} of {total}; use --limit {total})",
            "dim",
        )


def _run_tags(run: Any) -> str:
    """The tags of a run you may see, comma-separated ("" when its store keeps none)."""
    from intake_broker.store.abilities import Annotations

    if not run.store.supports(Annotations):
        return ""
    return ",".join(run.tags)


# -- commands ---------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace, catalog: Any) -> int:
    from intake_broker.demo import DEFAULT_SEED, write_demo

    seed = DEFAULT_SEED if args.seed is None else args.seed
    uids = write_demo(catalog, repeat=args.runs, seed=seed, progress=args.progress)
    print(f"wrote {plural(len(uids), 'run')} to {catalog.name}")
    print_runs(catalog[uid] for uid in reversed(uids))
    print("\nOpen them in a notebook (cat[-1] is the newest, the first row):")
    if args.catalog == "memory":
        print(
            "    (nowhere: a memory catalog is gone when the command ends; leave out --catalog "
            "to write to the default catalog)"
        )
        return 0
    if args.catalog not in (None, "default") and Path(args.catalog).exists():
        print("    from intake_broker import open_catalog")
        print(
            f"    cat = open_catalog({str(Path(args.catalog).resolve())!r})"
            f"[{args.entry or catalog.name!r}]"
        )
    else:
        call = "" if args.data is None else repr(str(Path(args.data).resolve()))
        if args.catalog not in (None, "default"):
            call += (", " if call else "") + f"store={args.catalog!r}"
        where = os.environ.get("INTAKE_BROKER_DATA") if args.data is None else None
        print("    from intake_broker import default_catalog")
        print(
            f"    cat = default_catalog({call})"
            + (f"  # with INTAKE_BROKER_DATA={where}" if where else "")
        )
    print("    cat[-1].primary.read()")
    return 0


def cmd_ls(args: argparse.Namespace, catalog: Any) -> int:
    empty = "no runs (write some with: intake-broker demo)"
    if args.query is not None:
        catalog, empty = catalog.search(parse_query(args.query)), "no runs match"
    print_runs(itertools.islice(catalog.values(), args.limit), len(catalog), empty)
    return 0


def cmd_search(args: argparse.Namespace, catalog: Any) -> int:
    if not args.query and args.saved is None:
        raise UsageError("give a QUERY, or --saved NAME to run a saved query")
    query = parse_query(" ".join(args.query)) if args.query else None
    if args.save is not None:
        if query is None:
            raise UsageError("--save NAME stores the QUERY given with it")
        catalog.save_query(args.save, query)
        print(f"saved as {args.save!r}")
    results = catalog.search(query, saved=args.saved)
    print_runs(itertools.islice(results.values(), args.limit), len(results), "no runs match")
    return 0


def _catalog_spec(spec: str, data: str | None, entry: str | None = None):
    """A catalog named on the command line: ``default``, a store name, ``FILE.yml[#ENTRY]``
    (or ``FILE.yml`` and ``entry``), a name ``intake-broker catalogs`` lists, or a folder of
    suitcase run files."""
    from intake_broker.catalogs.config import folder_store
    from intake_broker.views.catalog import BrokerCatalog

    path, hash_, named = spec.partition("#")
    if hash_ and entry is not None and named != entry:
        raise UsageError(f"{spec!r} names the entry {named!r} and --entry says {entry!r}")
    folder = Path(path)
    if folder.is_dir():
        fmt = "msgpack" if any(folder.glob("*.msgpack")) else "jsonl"
        return BrokerCatalog(folder_store(fmt, folder), name=str(folder))
    return open_cli_catalog(path, named or entry, data)


def cmd_import(args: argparse.Namespace, catalog: Any) -> int:
    """Copy every run of SOURCE into DEST (resumable; event counts are checked)."""
    from intake_broker.transfer import copy_runs

    source = _catalog_spec(args.source, None, args.entry)
    if args.dest and args.catalog is not None:
        raise UsageError("give the destination as DEST or as --catalog, not both")
    dest_spec = args.dest or args.catalog
    dest = (
        _catalog_spec(dest_spec, args.data)
        if dest_spec
        else open_cli_catalog(None, None, args.data)
    )
    query = parse_query(args.query) if args.query else None
    report = copy_runs(source.store, dest.store, query=query, progress=args.progress)
    print(
        f"copied {plural(len(report.copied), 'run')} ({plural(report.events, 'event')}), "
        f"skipped {len(report.skipped)} already complete"
        + (f", {len(report.incomplete)} without a stop document" if report.incomplete else "")
    )
    return 0


def cmd_derive(args: argparse.Namespace, catalog: Any) -> int:
    """Run a pipeline (or one @derived function) over the runs matching QUERY and store the
    derived runs in DEST; already computed inputs are skipped, failing ones reported."""
    from intake_broker.provenance.pipeline import Pipeline, PipelineError, load_pipeline
    from intake_broker.provenance.record import ProvenanceError, check_parameters

    try:
        steps = load_pipeline(args.pipeline)
    except PipelineError as err:
        raise UsageError(str(err)) from None
    query = parse_query(" ".join(args.query)) if args.query else None
    source = catalog.search(query) if query is not None else catalog
    dest = _catalog_spec(args.dest, args.data)
    try:
        parameters = json.loads(args.parameters) if args.parameters else None
    except json.JSONDecodeError as err:
        raise UsageError(f"--parameters is a JSON object: {err}") from None
    if parameters is not None and not isinstance(parameters, dict):
        raise UsageError("--parameters is a JSON object, e.g. '{\"scale\": 2}'")
    try:
        check_parameters(parameters)
    except ProvenanceError as err:
        raise UsageError(f"--parameters: {err}") from None
    client = None
    if args.scheduler:
        try:
            from distributed import Client
        except ImportError:
            raise UsageError(
                "--scheduler needs dask.distributed: pip install 'intake-broker[pipelines]'"
            ) from None
        client = Client(args.scheduler)
    try:
        options = {"client": client, "progress": args.progress, "rerun": args.rerun}
        if isinstance(steps, Pipeline):
            reports = steps.run(source, dest.store, parameters=parameters, **options)
        else:
            reports = [steps.run(source, dest.store, parameters=parameters, **options)]
    finally:
        if client is not None:
            client.close()
        dest.store.close()
    for report in reports:
        print(
            f"{report.name}: {plural(len(report.written), 'run')} written, "
            f"{len(report.skipped)} skipped (already computed), {len(report.failed)} failed"
        )
        for failure in report.failed:
            print(f"  failed {', '.join(u[:8] for u in failure.inputs)}: {failure.reason}")
    return 1 if any(r.failed for r in reports) else 0


def cmd_lineage(args: argparse.Namespace, catalog: Any) -> int:
    """Show what a run was computed from (runs you may not see are shown as withheld)."""
    graph = lookup_run(catalog, args.run).provenance
    if args.prov:
        print(json.dumps(graph.to_prov(), indent=2))
    else:
        print(graph.text())
    return 0


def cmd_summarize(args: argparse.Namespace, catalog: Any) -> int:
    """Statistics of asset data (frames in files), kept by the store for summary.* searches."""
    from intake_broker.progress import progress_bar
    from intake_broker.store.summary import summarize_assets

    runs = [lookup_run(catalog, key) for key in args.runs] if args.runs else catalog.values()
    total = len(args.runs) if args.runs else len(catalog)
    done = 0
    bar = progress_bar(runs, total=total, unit="run", desc="summarize", enabled=args.progress)
    for run in bar:
        found = summarize_assets(run)
        for stream, fields in found.items():
            for field, stats in fields.items():
                print(
                    f"{run.uid[:8]}  {stream}.{field}: max {stats.get('max')} "
                    f"mean {stats.get('mean')} count {stats.get('count')}"
                )
        done += 1
    print(f"summarized the asset data of {plural(done, 'run')}")
    return 0


def _short(value: Any, width: int = 90) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 3] + "..."


def cmd_show(args: argparse.Namespace, catalog: Any) -> int:
    from intake_broker.views.datakeys import field_dtype

    run = lookup_run(catalog, args.run)
    start, stop = run.metadata["start"], run.metadata["stop"]
    if args.documents:
        import event_model

        for name, doc in run.documents():
            print(json.dumps([name, doc], cls=event_model.NumpyEncoder))
        return 0
    say(f"run {start['uid']}", "bold")
    main = ["scan_id", "plan_name", "time"]
    rest = sorted(k for k in start if k not in ("uid", *main))
    print_fields(
        "start",
        [
            (
                key,
                f"{_local_time(start[key])} ({start[key]})"
                if key == "time"
                else _short(start[key]),
            )
            for key in [k for k in main if k in start] + rest
        ],
    )
    if stop is None:
        say("stop: none (the run is still acquiring, or its writer died before the end)", "yellow")
    else:
        duration = stop.get("time", 0) - start.get("time", 0)
        fields = [("exit_status", str(stop.get("exit_status")))]
        if stop.get("reason"):
            fields.append(("reason", _short(stop["reason"])))
        fields.append(("time", f"{_local_time(stop.get('time'))} (after {duration:.1f} s)"))
        fields.append(("num_events", _events(stop)))
        print_fields("stop", fields)
    for name, stream in run.items():
        rows = []
        for key, dk in stream.layout.data_keys.items():
            shape = "x".join(str(n) for n in dk.get("shape") or ()) or "scalar"
            rows.append(
                [
                    key,
                    str(field_dtype(dk)),
                    shape,
                    str(dk.get("units") or "-"),
                    str(dk.get("source", "-")),
                ]
            )
        print_table(
            ["KEY", "DTYPE", "SHAPE", "UNITS", "SOURCE"],
            rows,
            title=f"stream {name}: {plural(len(stream.layout), 'event')}",
            indent=2,
            styles={0: "cyan"},
        )
    _print_annotations(run, header=True)
    return 0


# -- annotations ------------------------------------------------------------------------------


def _print_annotations(run: Any, header: bool = False) -> None:
    from intake_broker.store.abilities import Annotations

    if not run.store.supports(Annotations):
        if not header:
            print("this catalog keeps no annotations (attach some with annotations: in its YAML)")
        return
    found = run.annotations
    if header and not found:
        return
    if not found:
        print("no annotations")
        return
    if is_terminal():
        _annotation_table(found)
        return
    print("annotations:")
    for a in found:
        where = f" {a['stream']}" if a["stream"] else ""
        where += f" events [{a['seq_range'][0]}, {a['seq_range'][1]})" if a["seq_range"] else ""
        shared = ",".join(a["proposals"] or a["groups"])
        print(
            f"  {a['visibility']}{' ' + shared if shared else ''}{where} by {a['author']}, "
            f"v{a['version']} {_local_time(a['updated'])} (id {a['id'][:8]})"
        )
        if a["tags"]:
            print(f"    tags: {', '.join(a['tags'])}")
        for key, value in a["fields"].items():
            print(f"    {key} = {_short(json.dumps(value))}")
        if a["note"]:
            print(f"    note: {_short(a['note'])}")


def _annotation_table(found: list[dict[str, Any]]) -> None:
    """The annotations of a run as a table (on a terminal)."""
    rows = []
    for a in found:
        where = a["stream"] or "run"
        where += f" [{a['seq_range'][0]}, {a['seq_range'][1]})" if a["seq_range"] else ""
        shared = ",".join(a["proposals"] or a["groups"])
        fields = " ".join(f"{k}={_short(json.dumps(v), 40)}" for k, v in a["fields"].items())
        rows.append(
            [
                a["id"][:8],
                a["visibility"] + (f" {shared}" if shared else ""),
                where,
                a["author"],
                f"v{a['version']}",
                _local_time(a["updated"]),
                ", ".join(a["tags"]),
                fields,
                _short(a["note"] or "", 60),
            ]
        )
    headers = ["ID", "VISIBILITY", "WHERE", "BY", "VERSION", "UPDATED", "TAGS", "FIELDS", "NOTE"]
    print_table(headers, rows, title="annotations", styles={0: "cyan", 6: "magenta"})


def _where(args: argparse.Namespace) -> dict[str, Any]:
    return {"visibility": args.visibility, "groups": args.groups or ()}


def cmd_tag(args: argparse.Namespace, catalog: Any) -> int:
    run = lookup_run(catalog, args.run)
    made = run.tag(*args.tags, if_version=args.if_version, **_where(args))
    print(
        f"{run.uid[:8]}: tags {', '.join(made['tags'])} ({made['visibility']}, v{made['version']})"
    )
    return 0


def cmd_untag(args: argparse.Namespace, catalog: Any) -> int:
    run = lookup_run(catalog, args.run)
    changed = run.untag(*args.tags, visibility=args.visibility, groups=args.groups or ())
    if not changed:
        print(f"{run.uid[:8]}: no annotation you see holds {', '.join(args.tags)}")
        return 1
    print(f"{run.uid[:8]}: tags now {', '.join(run.tags) or '(none)'}")
    return 0


def _field(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep:
        raise UsageError(f"--set takes NAME=VALUE (a JSON value, or text), not {text!r}")
    try:
        return name, json.loads(value)
    except ValueError:
        return name, value


def cmd_note(args: argparse.Namespace, catalog: Any) -> int:
    run = lookup_run(catalog, args.run)
    fields = dict(_field(f) for f in args.set or ())
    note = " ".join(args.text) if args.text else None
    made = run.annotate(note=note, if_version=args.if_version, **_where(args), **fields)
    print(f"{run.uid[:8]}: annotated ({made['visibility']}, v{made['version']})")
    return 0


def cmd_annotations(args: argparse.Namespace, catalog: Any) -> int:
    run = lookup_run(catalog, args.run)
    if not args.history:
        _print_annotations(run)
        return 0
    rows = []
    for e in run.annotation_history():
        after, before = e["after"], e["before"] or {"tags": [], "fields": {}, "note": ""}
        what = []
        added, removed = (
            set(after["tags"]) - set(before["tags"]),
            set(before["tags"]) - set(after["tags"]),
        )
        what += [f"+{t}" for t in sorted(added)] + [f"-{t}" for t in sorted(removed)]
        what += [
            f"{k}={json.dumps(v)}"
            for k, v in after["fields"].items()
            if before["fields"].get(k) != v
        ]
        what += [f"-{k}" for k in before["fields"] if k not in after["fields"]]
        if after["note"] != before["note"]:
            what.append("note")
        rows.append([e["annotation"][:8], f"v{e['version']}", _local_time(e["time"]), e["who"],
                     _short(" ".join(what), 60)])  # fmt: skip
    if not rows:
        print("no changes")
        return 0
    print_table(["ID", "VERSION", "WHEN", "WHO", "CHANGE"], rows, styles={0: "cyan"})
    return 0


class IngestError(BrokerError):
    """A source of ``ingest`` cannot be read or stored; the message says where."""


_FORMATS = (".jsonl", ".msgpack")
#: NeXus/HDF5 files ingest reads (the documents an export embedded, or a plain NeXus file).
_NEXUS = (".nxs", ".nx5", ".h5", ".hdf5", ".hdf")


def ingest_sources(sources: Sequence[str]) -> list[str]:
    """Files to ingest: each SOURCE, the run files of each folder, ``-`` for stdin."""
    files = []
    for source in sources:
        path = Path(source)
        if source == "-":
            files.append(source)
        elif path.is_dir():
            found = sorted(p for p in path.iterdir() if p.suffix in _FORMATS + _NEXUS)
            if not found:
                raise BrokerError(f"folder {source!r} holds no *.jsonl or *.msgpack files")
            files.extend(map(str, found))
        elif not path.exists():
            raise BrokerError(f"no such file or folder: {source!r}")
        elif path.suffix not in _FORMATS + _NEXUS:
            raise UsageError(
                f"{source!r}: unknown file type; ingest reads suitcase *.jsonl or "
                "*.msgpack files, NeXus *.nxs / *.h5 files, folders of them, or - (JSONL on "
                "stdin)"
            )
        else:
            files.append(source)
    return files


def _read(source: str) -> Iterator[tuple[str, str, dict]]:
    """``(where, name, doc)`` for each ``[name, doc]`` pair of a suitcase file (or of stdin),
    parsed by the store of that format (the files driver's ``jsonl`` and ``msgpack``)."""
    if source != "-" and Path(source).suffix in _NEXUS:
        from intake_broker.export.nexus import read_documents

        for i, (name, doc) in enumerate(read_documents(source)):
            yield f"document {i + 1}", name, doc
        return
    if source == "-":
        data, label, fmt = getattr(sys.stdin, "buffer", sys.stdin).read(), "<stdin>", "jsonl"
    else:
        data, label = Path(source).read_bytes(), source
        fmt = "msgpack" if source.endswith(".msgpack") else "jsonl"
    if isinstance(data, str):
        data = data.encode()
    from intake_broker.catalogs.config import store_class
    from intake_broker.store.abilities import DocumentFiles

    reader = store_class(fmt)
    if not isinstance(reader, DocumentFiles):
        raise BrokerError(
            f"the {fmt!r} store ({reader.__name__}) cannot read files of documents; ingest "
            "reads suitcase files through the files driver: pip install ./drivers/files"
        )
    for located in reader.parse_documents(data, label):
        yield (
            located.where if source != "-" else f"{label}: {located.where}",
            located.name,
            located.doc,
        )


def cmd_ingest(args: argparse.Namespace, catalog: Any) -> int:
    from intake_broker.progress import progress_bar

    files = ingest_sources(args.sources)
    if args.no_validate:
        catalog.store.validate = False
    docs, runs, known, failed = 0, 0, 0, []
    bar = progress_bar(files, unit="file", desc="ingest", enabled=args.progress)
    for source in bar:
        try:
            for where, name, doc in _read(source):
                if name == "start":
                    runs += 1
                    known += doc.get("uid") in catalog
                try:
                    catalog.insert(name, doc)
                except BrokerError as err:
                    raise IngestError(f"{source}: {where}: {err}") from None
                except (KeyError, TypeError, ValueError) as err:
                    raise IngestError(
                        f"{source}: {where}: cannot store this {name} document "
                        f"({type(err).__name__}: {err})"
                    ) from None
                docs += 1
                bar.set_postfix(documents=docs, refresh=False)
        except (BrokerError, OSError) as err:
            if not args.keep_going:
                print(
                    f"ingested {plural(docs, 'document')} of {plural(runs, 'run')} before the error"
                )
                raise IngestError(
                    f"{err}; stopped (--keep-going goes on with the next file)"
                ) from None
            failed.append(source)
            bar.write(f"{PROG}: error: {err}", file=sys.stderr)
    again = f" ({known} already in the catalog)" if known else ""
    print(f"ingested {plural(docs, 'document')} of {plural(runs, 'run')}{again}")
    if failed:
        _error(f"{len(failed)} of {plural(len(files), 'source')} failed: {', '.join(failed)}")
        return 1
    return 0


def _key_values(pairs: Sequence[str] | None, what: str) -> dict[str, Any]:
    """``KEY=VALUE`` options; a VALUE that parses as JSON (numbers, true, lists) is that."""
    out: dict[str, Any] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} {pair!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out


def cmd_export(args: argparse.Namespace, catalog: Any) -> int:
    """Write runs to a folder or URL in a format, with a manifest (resumable)."""
    from intake_broker.export import export_runs

    text = " ".join(args.target)
    try:
        runs, total = [lookup_run(catalog, text)], 1
    except KeyError:
        if len(args.target) == 1 and re.fullmatch(r"-?\d+|[0-9a-fA-F-]{6,}", text):
            raise
        found = catalog.search(parse_query(text))
        runs, total = found.values(), len(found)
    manifest = export_runs(
        runs,
        args.format,
        args.to,
        streams=args.stream,
        fields=args.field,
        storage_options=_key_values(args.storage_option, "--storage-option"),
        progress=args.progress,
        total=total,
        resume=not args.overwrite,
        **_key_values(args.option, "--option"),
    )
    files = manifest.files
    size = sum(f.bytes for f in files)
    print(
        f"exported {plural(len(manifest.runs), 'run')} to "
        f"{args.to} as {args.format}: {plural(len(files), 'file')}, "
        f"{size:,} {'byte' if size == 1 else 'bytes'}; manifest.json "
        "lists them with SHA-256 sums"
    )
    for run in manifest.runs.values():
        for skip in run.skipped:
            print(f"  left out {run.uid[:8]} {skip['stream']}.{skip['field']}: {skip['reason']}")
    return 0


def cmd_catalogs(args: argparse.Namespace, catalog: Any) -> int:
    """List the catalogs found by discovery (``from intake_broker import catalog``)."""
    from intake_broker.catalogs.discovery import Catalogs, search_path

    folders = search_path(args.data)
    found = Catalogs(folders).scan()
    rows = [
        [f.name + (" (shadowed)" if f.shadowed else ""), f.driver or "-", f"{f.where} [{f.source}]"]
        for f in found
    ]
    if rows:
        print_table(["NAME", "DRIVER", "FROM"], rows, styles={0: "cyan"})
    else:
        print("no catalogs found")
    print("\nsearched, in order (the first file with a name wins):")
    for label, folder in folders:
        print(f"  {folder} [{label}]{'' if folder.is_dir() else ' (missing)'}")
    print("  entry points 'intake.catalogs'")
    return 0


# -- the parser and main ----------------------------------------------------------------------


_EXAMPLES = """examples:
  intake-broker demo                    write five example runs to the default catalog
  intake-broker ls --limit 5            the five newest runs
  intake-broker show -1                 the newest run (also: a uid prefix or a scan_id)
  intake-broker search 'plan_name == "scan" and scan_id > 4'
  intake-broker ingest runs/*.jsonl     add suitcase-jsonl / suitcase-msgpack files
  intake-broker export -1 --format nexus --to out/   the newest run as NeXus/HDF5
"""


def global_options(suppress: bool) -> argparse.ArgumentParser:
    """The options every command takes, before or after the command's name.

    The top-level parser has them with their defaults; each subcommand's copy has
    ``argparse.SUPPRESS`` defaults, so a value given after the command wins and an absent one
    leaves the value given before it."""
    parser = argparse.ArgumentParser(add_help=False)

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--catalog",
        metavar="PATH_OR_NAME",
        default=default(None),
        help="a YAML catalog file (with --entry), a name `intake-broker catalogs` lists, or a "
        "store name (msgpack, jsonl, memory); default: the embedded default catalog",
    )
    parser.add_argument(
        "--entry",
        metavar="NAME",
        default=default(None),
        help="the entry of the YAML catalog to use",
    )
    parser.add_argument(
        "--data",
        metavar="DIR",
        default=default(None),
        help="data directory of the default catalog "
        "(default: $INTAKE_BROKER_DATA or the user data dir)",
    )
    progress = parser.add_mutually_exclusive_group()
    progress.add_argument(
        "--progress",
        action="store_true",
        default=default(None),
        help="always show progress bars (default: only when stderr is a terminal)",
    )
    progress.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        default=default(None),
        help="never show progress bars",
    )
    return parser


class _Parser(argparse.ArgumentParser):
    """The parser of ``intake-broker`` and its subcommands: an unknown subcommand gets a
    did-you-mean."""

    def error(self, message: str):  # noqa: D102
        found = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if found:
            choices = re.findall(r"'([^']*)'", found.group(2))
            message = (
                f"unknown command {found.group(1)!r}{did_you_mean(found.group(1), choices)}; "
                f"the commands: {', '.join(choices)}"
            )
        from intake_broker.console import error

        self.print_usage(sys.stderr)
        error(message, self.prog)  # argparse's line, red on a terminal
        self.exit(2)


def build_parser(commands: dict[str, Command] | None = None) -> argparse.ArgumentParser:
    """The argument parser of ``intake-broker`` (with the plugins' ``commands``, by default
    those installed)."""
    parser = _Parser(
        prog=PROG,
        parents=[global_options(suppress=False)],
        description="A data broker for Bluesky runs: write demo runs, ingest files, "
        "list, show and search runs.",
        epilog=_EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    shared = global_options(suppress=True)
    add_parser = sub.add_parser

    def add(name: str, **kwargs: Any) -> argparse.ArgumentParser:
        """A subcommand that also takes the global options (after its name)."""
        kwargs.setdefault("parents", [shared])
        return add_parser(name, **kwargs)

    sub.add_parser = add  # type: ignore[method-assign,assignment]

    demo = sub.add_parser("demo", help="write realistic demo runs and show how to open them")
    demo.add_argument(
        "--runs",
        type=_positive,
        default=1,
        metavar="N",
        help="write the five demo runs N times (default 1)",
    )
    demo.add_argument("--seed", type=int, default=None, help="seed of the simulated noise")
    demo.set_defaults(func=cmd_demo)

    ingest = sub.add_parser(
        "ingest", help="add suitcase JSONL / msgpack files or NeXus files to the catalog"
    )
    ingest.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="*.jsonl, *.msgpack or NeXus *.nxs/*.h5 files, folders of them, or - for a JSONL "
        "stream of [name, doc] lines on stdin",
    )
    ingest.add_argument(
        "--no-validate",
        action="store_true",
        help="skip event-model schema validation (fast bulk import)",
    )
    ingest.add_argument(
        "--keep-going",
        action="store_true",
        help="after a bad file, report it and go on with the others",
    )
    ingest.set_defaults(func=cmd_ingest)

    ls = sub.add_parser("ls", help="list runs, newest first")
    ls.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="show at most N runs (default 20)"
    )
    ls.add_argument("--query", metavar="EXPR", help="only runs matching EXPR (see search)")
    ls.set_defaults(func=cmd_ls)

    show = sub.add_parser("show", help="show one run: metadata, stop, streams and data keys")
    show.add_argument(
        "run", metavar="RUN", help="uid, uid prefix, scan_id, or negative index (-1 is the newest)"
    )
    show.add_argument(
        "--documents",
        action="store_true",
        help="dump every document as JSONL ([name, doc] per line)",
    )
    show.set_defaults(func=cmd_show)

    def annotation_options(parser: argparse.ArgumentParser, default: str | None) -> None:
        parser.add_argument("run", metavar="RUN", help="uid, uid prefix, scan_id or -1")
        parser.add_argument(
            "--visibility",
            choices=["private", "proposal", "groups", "public"],
            default=default,
            help=f"who sees it (default {default or 'every annotation you see'})",
        )
        parser.add_argument("--groups", nargs="+", metavar="G", help="with --visibility groups")

    tag = sub.add_parser("tag", help="tag a run (an annotation beside its documents)")
    annotation_options(tag, "private")
    tag.add_argument("tags", nargs="+", metavar="TAG", help="the tags to add")
    tag.add_argument("--if-version", type=int, metavar="V", help="only if still at version V")
    tag.set_defaults(func=cmd_tag)
    untag = sub.add_parser("untag", help="remove tags from a run's annotations")
    annotation_options(untag, None)
    untag.add_argument("tags", nargs="+", metavar="TAG", help="the tags to remove")
    untag.set_defaults(func=cmd_untag)
    note = sub.add_parser("note", help="write a note (and --set fields) on a run")
    annotation_options(note, "private")
    note.add_argument("text", nargs="*", metavar="TEXT", help="the note (replaces the last one)")
    note.add_argument("--set", action="append", metavar="NAME=VALUE", help="a field (JSON value)")
    note.add_argument("--if-version", type=int, metavar="V", help="only if still at version V")
    note.set_defaults(func=cmd_note)
    annotations = sub.add_parser("annotations", help="show a run's annotations (or --history)")
    annotations.add_argument("run", metavar="RUN", help="uid, uid prefix, scan_id or -1")
    annotations.add_argument("--history", action="store_true", help="every change, oldest first")
    annotations.set_defaults(func=cmd_annotations)

    search = sub.add_parser("search", help="list the runs matching a query")
    search.add_argument(
        "query",
        nargs="*",
        metavar="QUERY",
        help='the query language, e.g. \'plan_name == "scan" and '
        "4000 <= scan_id <= 4100 and summary.primary.theta.max < 5', "
        "or a JSON object (a MongoDB-style filter)",
    )
    search.add_argument(
        "--limit", type=_positive, default=20, metavar="N", help="show at most N runs (default 20)"
    )
    search.add_argument("--save", metavar="NAME", help="also store the query under NAME")
    search.add_argument("--saved", metavar="NAME", help="run the query saved as NAME")
    search.set_defaults(func=cmd_search)

    copy = sub.add_parser(
        "import",
        help="copy the runs of another store into this one "
        "(resumable: a re-run skips runs already complete)",
    )
    copy.add_argument(
        "source",
        metavar="SOURCE",
        help="a YAML file (FILE.yml#ENTRY, or FILE.yml with --entry NAME), a name "
        "`intake-broker catalogs` lists, a store name, or a folder of suitcase *.jsonl / "
        "*.msgpack files",
    )
    copy.add_argument(
        "dest",
        metavar="DEST",
        nargs="?",
        help="where to (same forms, FILE.yml#ENTRY for a YAML entry; or --catalog); "
        "default: the embedded default catalog (of --data DIR)",
    )
    copy.add_argument("--query", metavar="EXPR", help="only the runs matching EXPR")
    copy.set_defaults(func=cmd_import, needs_catalog=False)

    derive = sub.add_parser(
        "derive",
        help="run a pipeline over the runs matching QUERY, storing derived runs with their "
        "provenance in DEST (re-runs skip what is computed)",
    )
    derive.add_argument(
        "pipeline",
        metavar="PIPELINE",
        help="module:name of a @derived function or a Pipeline "
        "(e.g. intake_broker.testing.pipelines:reduce_and_fit)",
    )
    derive.add_argument("query", nargs="*", metavar="QUERY", help="which runs (default: all)")
    derive.add_argument(
        "--dest",
        required=True,
        metavar="DEST",
        help="where the derived runs go: a YAML file (FILE.yml#ENTRY), a name "
        "`intake-broker catalogs` lists, a store name, or a folder",
    )
    derive.add_argument(
        "--parameters",
        metavar="JSON",
        help="the function's keyword arguments as a JSON object (for a Pipeline: by step name)",
    )
    derive.add_argument(
        "--scheduler", metavar="ADDRESS", help="compute on this dask.distributed scheduler"
    )
    derive.add_argument("--rerun", action="store_true", help="compute computed inputs again")
    derive.set_defaults(func=cmd_derive)

    lineage = sub.add_parser("lineage", help="show what a run was computed from")
    lineage.add_argument("run", metavar="RUN", help="uid, uid prefix, scan_id or -1")
    lineage.add_argument("--prov", action="store_true", help="as W3C PROV-JSON")
    lineage.set_defaults(func=cmd_lineage)

    summarize = sub.add_parser(
        "summarize",
        help="compute and keep statistics of asset data "
        "(frames in external files) so summary.* searches find them",
    )
    summarize.add_argument("runs", nargs="*", metavar="RUN", help="default: every run")
    summarize.set_defaults(func=cmd_summarize)

    export = sub.add_parser(
        "export",
        help="write runs to a folder or URL (csv, parquet, zarr, nexus, jsonl, ...) with a "
        "manifest of files and checksums (resumable: a re-run skips runs written whole)",
    )
    export.add_argument(
        "target",
        nargs="+",
        metavar="RUN|QUERY",
        help="a run (uid, uid prefix, scan_id, -1) or a query (see search)",
    )
    export.add_argument(
        "--format",
        required=True,
        metavar="F",
        help="jsonl, msgpack, csv, tsv, parquet, zarr, nexus, tiff, package",
    )
    export.add_argument(
        "--to",
        required=True,
        metavar="DIR_OR_URL",
        help="a folder or an fsspec URL (s3://bucket/prefix)",
    )
    export.add_argument(
        "--stream", action="append", metavar="NAME", help="only this stream (repeat for more)"
    )
    export.add_argument(
        "--field", action="append", metavar="KEY", help="only this data key (repeat for more)"
    )
    export.add_argument(
        "--option",
        action="append",
        metavar="KEY=VALUE",
        help="an option of the format (e.g. arrays=json for csv)",
    )
    export.add_argument(
        "--storage-option",
        action="append",
        metavar="KEY=VALUE",
        help="an fsspec option of the destination (e.g. endpoint_url=...)",
    )
    export.add_argument(
        "--overwrite",
        action="store_true",
        help="write every run again, even those the manifest lists as written",
    )
    export.set_defaults(func=cmd_export)

    catalogs = sub.add_parser(
        "catalogs",
        help="list the YAML catalogs found (user data dir, "
        "sys.prefix/share/intake, $INTAKE_PATH, entry points)",
    )
    catalogs.set_defaults(func=cmd_catalogs, needs_catalog=False)

    for command in (plugin_commands() if commands is None else commands).values():
        if command.raw:  # parses its own arguments (main hands them over)
            sub.add_parser(command.name, help=command.help, add_help=False)
        else:
            own = sub.add_parser(command.name, help=command.help)
            command.configure(own)
            own.set_defaults(func=command.run, needs_catalog=command.needs_catalog)
    return parser


# -- subcommands of plugins -------------------------------------------------------------------

#: Subcommands that plugins add, and how to install the plugin when one is missing.
PLUGIN_HINTS = {
    "serve": "the server plugin: pip install -e drivers/remote -e drivers/server",
    "apikey": "the server plugin: pip install -e drivers/remote -e drivers/server",
    "reindex": "the native driver: pip install -e drivers/native",
}


@runtime_checkable
class Command(Protocol):
    """A subcommand a plugin adds through the ``intake_broker.commands`` entry points (the entry
    point names an instance). Keep the module that defines it light: every ``intake-broker``
    call loads it to build the parser.

    ``raw`` commands parse their own arguments: ``run(argv, None)`` gets everything after the
    command's name. The others ``configure`` an argparse parser and get ``run(args, catalog)``,
    with the catalog of ``--catalog/--entry/--data`` opened when ``needs_catalog``.
    """

    name: str
    help: str
    raw: bool
    needs_catalog: bool

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: Any, catalog: Any) -> int: ...


def plugin_commands() -> dict[str, Command]:
    """The installed plugins' subcommands by name (a broken plugin is reported, not fatal)."""
    from intake_broker import plugins

    found: dict[str, Command] = {}
    for name in plugins.entry_points(plugins.COMMANDS):
        try:
            command = plugins.load(plugins.COMMANDS, name, "command")
        except BrokerError as err:
            _error(str(err))
            continue
        if isinstance(command, Command) and command.name == name:
            found[name] = command
        else:
            _error(f"the command plugin {name!r} is not an intake_broker.cli.Command; ignored")
    return found


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return int(text)


def _error(message: str) -> None:
    from intake_broker.console import error

    error(message, PROG)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``intake-broker`` command; returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 2 for usage errors (including bad queries), 1 for other errors.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    commands = plugin_commands()
    named = next((a for a in argv if a in commands or a in PLUGIN_HINTS), None)
    if named in PLUGIN_HINTS and named not in commands:
        _error(f"{named!r} comes with {PLUGIN_HINTS[named]}")
        return 2
    if named in commands and commands[named].raw:  # its own options and sub-commands
        at = argv.index(named)
        try:  # options before the name too (`--data DIR reindex`): its parser takes or refuses them
            return commands[named].run(argv[:at] + argv[at + 1 :], None)
        except UsageError as err:
            _error(str(err))
            return 2
    parser = build_parser(commands)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, or argparse's own usage error (already printed)
        return exit_.code if isinstance(exit_.code, int) else 2
    catalog = None
    try:
        if getattr(args, "needs_catalog", True):
            catalog = open_cli_catalog(args.catalog, args.entry, args.data)
        return args.func(args, catalog)
    except (UsageError, BadQuery) as err:
        _error(str(err))
        return 2
    except BrokenPipeError:  # e.g. `intake-broker show -1 --documents | head`
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except (BrokerError, OSError, KeyError) as err:
        plain_key_error = isinstance(err, KeyError) and not isinstance(err, BrokerError)
        _error(str(err.args[0] if plain_key_error and err.args else err))
        return 1
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    finally:
        if catalog is not None:
            catalog.store.close()


if __name__ == "__main__":
    # run the importable module's main: as ``__main__`` this file's classes (UsageError) are
    # not those the plugins import, and their usage errors would exit 1 instead of 2
    from intake_broker.cli import main as _main

    raise SystemExit(_main())

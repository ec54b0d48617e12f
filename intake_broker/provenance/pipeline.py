"""Pipelines: a function of runs declared with its name and version, run over a search, its
results stored as derived runs with their provenance.

::

    @derived(name="reduce", version="1", stream="primary", fields=["det", "motor"])
    def reduce(ds, *, bins=10):
        ...                                  # an xarray.Dataset in, a Dataset or dict out

    report = reduce.run(raw.search('plan_name == "scan"'), dest=results, parameters={"bins": 20})
    report = Pipeline(reduce, fit).run(raw.search(...), dest=results, client=dask_client)

Idempotent and resumable: an input already computed by the same code (name, version and
source hash) and parameters (a derived run in ``dest`` with the same ``provenance.key`` and a
successful stop) is skipped. A failing input is recorded (a derived run with
``exit_status="fail"`` and the error as its ``reason``, and in the report) and the others go
on. With a dask client the
computation runs on the workers (runs travel by reference, see
:mod:`intake_broker.provenance.shipping`) and the results are written by the caller, into any
writable store.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intake_broker.errors import BrokerError
from intake_broker.progress import progress_bar
from intake_broker.provenance.record import (
    DEFAULT_NAME,
    PROVENANCE_KEY,
    SCHEMA,
    ProvenanceError,
    check_parameters,
    code_record,
    derived_name,
    environment_record,
    input_record,
    provenance_key,
)
from intake_broker.provenance.shipping import RunTicket, StoreTicket
from intake_broker.provenance.writer import as_columns, derived_documents, write_documents
from intake_broker.queries import Eq, In, KeyPresent, Query

#: Start-document keys a derived run takes from its inputs when they all agree (what the
#: access policy reads: a user's derived runs land in their own proposal).
INHERIT = ("proposal_id", "beamtime_id", "beamline_id", "sample")
#: The most runs one call of a derived function takes.
MAX_INPUTS_PER_CALL = 100
#: The most characters of an error kept as a failed run's ``reason``.
MAX_REASON = 2_000
#: How many idempotency keys one search asks about.
_KEY_BATCH = 500


@dataclass
class Failure:
    """One input that could not be computed: its uids, the error, and the uid of the failed
    derived run recording it (None if that could not be written either)."""

    inputs: list[str]
    reason: str
    recorded: str | None = None


@dataclass
class PipelineReport:
    """What one step did: derived runs ``written``, inputs ``skipped`` (already computed:
    the existing derived run's uid), ``failed`` inputs, and ``outputs`` -- the derived run of
    every input that has one, in input order (what the next step reads)."""

    name: str
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[Failure] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Whether every input has a derived run."""
        return not self.failed

    def __repr__(self) -> str:
        return (
            f"<PipelineReport {self.name!r}: {len(self.written)} written, {len(self.skipped)} "
            f"skipped (already computed), {len(self.failed)} failed, {self.seconds:.2f} s>"
        )


@dataclass
class Outcome:
    """What computing one input gave: data, or the error's text; when it ran."""

    data: Any
    error: str | None
    started: float
    finished: float


class Derived:
    """A function of runs declared with a ``name`` and ``version`` (see :func:`derived`).

    Calling it calls the function. :meth:`run` runs it over a search and stores the results;
    :meth:`watch` does so for each new run as it stops.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        name: str,
        version: str,
        stream: str | None = None,
        fields: Sequence[str] | None = None,
        naming: str = DEFAULT_NAME,
        packages: Sequence[str] = (),
        inherit: Sequence[str] = INHERIT,
    ):
        for label, value in (("name", name), ("version", version)):
            if not isinstance(value, str) or not value or len(value) > 200:
                raise ProvenanceError(
                    f"a derived function's {label} is a text of 1 to 200 characters, got {value!r}"
                )
        self.func = func
        self.name = name
        self.version = version
        self.stream = stream
        self.fields = list(fields) if fields is not None else None
        self.naming = naming
        self.inherit = tuple(inherit)
        derived_name(naming, {"name": name, "version": version}, [], {})  # check the template
        self.code = code_record(func, name, version, packages)
        functools.update_wrapper(self, func)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)

    def __repr__(self) -> str:
        where = f"{self.code['module']}.{self.code['qualname']}"
        return f"<derived {self.name!r} v{self.version}: {where}>"

    def __reduce__(self) -> tuple:
        # by the function (by reference when importable) and the declaration; the code record
        # is made again where it is unpickled, but only the client's is stored
        return (
            _rebuild_derived,
            (
                self.func,
                self.name,
                self.version,
                self.stream,
                self.fields,
                self.naming,
                self.inherit,
                self.code,
            ),
        )

    # -- computing one input ------------------------------------------------------------

    def load(self, run: Any) -> Any:
        """What the function gets for ``run``: the run, or its ``stream`` as an in-memory
        ``xarray.Dataset`` (only ``fields`` when declared)."""
        if self.stream is None:
            return run
        return run[self.stream].read(self.fields)

    def compute(
        self,
        runs: Sequence[Any],
        parameters: Mapping[str, Any],
        stores: Mapping[str, StoreTicket] | None = None,
    ) -> Outcome:
        """Call the function on ``runs`` (runs, or :class:`RunTicket` s opened through
        ``stores``); never raises."""
        started = time.time()
        try:
            opened = [r.open(stores or {}) if isinstance(r, RunTicket) else r for r in runs]
            data = self.func(*[self.load(r) for r in opened], **parameters)
            as_columns(data)  # a result that cannot be stored fails here, as this input's error
        except Exception as err:  # one input's failure is recorded, not raised
            reason = f"{type(err).__name__}: {err}"[:MAX_REASON]
            return Outcome(None, reason, started, time.time())
        return Outcome(data, None, started, time.time())

    def provenance(
        self, runs: Sequence[Any], parameters: Mapping[str, Any], outcome: Outcome
    ) -> dict[str, Any]:
        """The ``provenance`` mapping of the derived run of ``runs``."""
        return {
            "schema": SCHEMA,
            "key": self.key(parameters, runs),
            "inputs": [input_record(r.start, r.stop, self.stream, self.fields) for r in runs],
            "code": self.code,
            "parameters": dict(parameters),
            "environment": environment_record(),
            "times": {"started": outcome.started, "finished": outcome.finished},
        }

    def key(self, parameters: Mapping[str, Any], runs: Sequence[Any]) -> str:
        """The idempotency key of computing ``runs`` with ``parameters`` by this code."""
        return provenance_key(self.code, parameters, [r.uid for r in runs])

    def documents(
        self,
        runs: Sequence[Any],
        parameters: Mapping[str, Any],
        outcome: Outcome,
        metadata: Mapping[str, Any] | None = None,
        naming: str | None = None,
    ) -> list[tuple[str, dict]]:
        """The documents of the derived run of ``runs`` (a failed one when ``outcome`` is)."""
        prov = self.provenance(runs, parameters, outcome)
        md = _inherited([r.start for r in runs], self.inherit)
        md.update(metadata or {})
        name = derived_name(naming or self.naming, self.code, [r.start for r in runs], parameters)
        if outcome.error is not None:
            return derived_documents(
                None, prov, name=name, metadata=md, exit_status="fail", reason=outcome.error
            )
        return derived_documents(outcome.data, prov, name=name, metadata=md)

    # -- over many inputs -----------------------------------------------------------------

    def run(
        self,
        source: Any,
        dest: Any,
        *,
        client: Any = None,
        parameters: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        naming: str | None = None,
        progress: bool | None = None,
        record_failures: bool = True,
        rerun: bool = False,
    ) -> PipelineReport:
        """Compute every input of ``source`` not yet computed and store the results in ``dest``.

        Parameters
        ----------
        source : BrokerCatalog, Run, or iterable of runs or of tuples of runs
            The inputs: each run (or tuple of runs, for a function of several) is one call.
        dest : BrokerCatalog or DocumentStore
            A writable store (or a catalog over one), possibly not the one holding the inputs;
            a guarded store writes as its principal.
        client : dask.distributed.Client, optional
            Compute on its workers (results are written here); None computes in this process.
        parameters : dict, optional
            Keyword arguments of the function (JSON values); part of the idempotency key.
        metadata : dict, optional
            Start-document keys of the derived runs (over those inherited from the inputs).
        naming : str, optional
            The naming scheme for this call (default: the function's, :data:`DEFAULT_NAME`).
        progress : bool, optional
            Show a progress bar on stderr (default: when stderr is a terminal; see
            :mod:`intake_broker.progress`).
        record_failures : bool
            Store a failed derived run (``exit_status="fail"``, the error as ``reason``) for
            each input that fails, beside the report's ``failed`` list.
        rerun : bool
            Compute inputs again even if already computed.

        Returns
        -------
        PipelineReport
        """
        params = check_parameters(parameters)
        if naming is not None:
            derived_name(naming, self.code, [], params)
        clock = time.perf_counter()
        items = list(_items(source))
        report = PipelineReport(self.name)
        keys = [self.key(params, runs) for runs in items]
        done = {} if rerun else done_keys(_store_of(dest), keys)
        outputs: dict[int, str] = {}
        todo = []
        for n, key in enumerate(keys):
            if key in done:
                report.skipped.append(done[key])
                outputs[n] = done[key]
            else:
                todo.append(n)
        bar = progress_bar(total=len(items), desc=self.name, unit="run", enabled=progress)
        bar.update(len(items) - len(todo))

        def store(n: int, outcome: Outcome) -> None:
            runs = items[n]
            if outcome.error is None:
                try:
                    docs = self.documents(runs, params, outcome, metadata, naming)
                    uid = write_documents(dest, docs)
                except Exception as err:  # a result the store refuses fails this input only
                    outcome = Outcome(
                        None,
                        f"{type(err).__name__}: {err}"[:MAX_REASON],
                        outcome.started,
                        outcome.finished,
                    )
                else:
                    report.written.append(uid)
                    outputs[n] = uid
            if outcome.error is not None:
                failure = Failure([r.uid for r in runs], outcome.error)
                if record_failures:
                    try:
                        failure.recorded = write_documents(
                            dest, self.documents(runs, params, outcome, metadata, naming)
                        )
                    except Exception:  # e.g. the store refuses the start: the report has it
                        failure.recorded = None
                report.failed.append(failure)
            bar.update(1)

        try:
            if client is None:
                for n in todo:
                    store(n, self.compute(items[n], params))
            else:
                _on_client(client, self, items, todo, params, store)
        finally:
            bar.close()
        report.outputs = [outputs[n] for n in sorted(outputs)]
        report.seconds = time.perf_counter() - clock
        return report

    def watch(
        self,
        source: Any,
        dest: Any,
        *,
        query: Query | str | None = None,
        poll_interval: float = 2.0,
        stop: threading.Event | None = None,
        backfill: bool = False,
        max_polls: int | None = None,
        on_report: Callable[[PipelineReport], None] | None = None,
        **options: Any,
    ) -> list[PipelineReport]:
        """Live mode: compute each run of ``source`` (a catalog) as it stops.

        Polls ``source`` every ``poll_interval`` seconds for stopped runs matching ``query``
        that were not seen before (``backfill=True`` also computes those already there when it
        starts; already computed ones are skipped either way) and runs :meth:`run` on them with
        ``options``. Returns when ``stop`` is set or after ``max_polls`` polls; each poll's
        report goes to ``on_report`` and into the returned list."""
        from intake_broker.views.catalog import BrokerCatalog

        if not isinstance(source, BrokerCatalog):
            raise ProvenanceError(
                f"watch needs a catalog to poll (a BrokerCatalog), not {type(source).__name__}"
            )
        if poll_interval <= 0:
            raise ProvenanceError(
                f"poll_interval is a positive number of seconds, not {poll_interval!r}"
            )
        stopped = source.search(KeyPresent("stop.exit_status"))
        if query is not None:
            stopped = stopped.search(query)
        seen: set[str] = set() if backfill else set(_newest(stopped))
        reports: list[PipelineReport] = []
        polls = 0
        options.setdefault("progress", False)
        while not (stop is not None and stop.is_set()):
            new = [uid for uid in _newest(stopped) if uid not in seen]
            if new:
                runs = [stopped[uid] for uid in reversed(new)]  # oldest first
                report = self.run(runs, dest, **options)
                seen.update(new)
                reports.append(report)
                if on_report is not None:
                    on_report(report)
            polls += 1
            if max_polls is not None and polls >= max_polls:
                break
            if stop is not None:
                stop.wait(poll_interval)
            else:
                time.sleep(poll_interval)
        return reports


def _rebuild_derived(func, name, version, stream, fields, naming, inherit, code) -> Derived:
    step = Derived.__new__(Derived)
    step.func, step.name, step.version = func, name, version
    step.stream, step.fields, step.naming, step.inherit, step.code = (
        stream,
        fields,
        naming,
        tuple(inherit),
        code,
    )
    return step


def derived(
    name: str | None = None,
    version: str = "0",
    *,
    stream: str | None = None,
    fields: Sequence[str] | None = None,
    naming: str = DEFAULT_NAME,
    packages: Sequence[str] = (),
    inherit: Sequence[str] = INHERIT,
) -> Callable[[Callable[..., Any]], Derived]:
    """Declare a function of runs as a derived computation.

    Parameters
    ----------
    name : str, optional
        What ``provenance.code.name`` says (default: the function's name).
    version : str
        The version of the computation: change it when the results would change, so that
        runs computed before are computed again (same name, version and parameters: skipped).
    stream : str, optional
        Give the function this stream of each run as an ``xarray.Dataset`` (default: the runs).
    fields : list of str, optional
        Only these fields of ``stream`` (recorded as the fields read).
    naming : str
        The naming scheme of the derived runs (``derived_name``), see
        :func:`intake_broker.provenance.record.derived_name`.
    packages : list of str
        Libraries whose versions are recorded besides the usual ones.
    inherit : list of str
        Start keys copied from the inputs when they all agree (default :data:`INHERIT`).
    """

    def wrap(func: Callable[..., Any]) -> Derived:
        return Derived(
            func,
            name=func.__name__ if name is None else name,
            version=str(version),
            stream=stream,
            fields=fields,
            naming=naming,
            packages=packages,
            inherit=inherit,
        )

    return wrap


class Pipeline:
    """Steps run one after the other: each step's inputs are the derived runs the step
    before produced (or had produced before: skipped inputs still feed the next step).

    ``Pipeline(reduce, fit).run(raw.search(...), dest=results, client=client)`` returns one
    :class:`PipelineReport` per step; ``parameters={"reduce": {...}, "fit": {...}}``.
    """

    def __init__(self, *steps: Derived):
        if not steps or not all(isinstance(s, Derived) for s in steps):
            raise ProvenanceError("a Pipeline is one or more @derived functions")
        self.steps = steps

    def run(
        self,
        source: Any,
        dest: Any,
        *,
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        **options: Any,
    ) -> list[PipelineReport]:
        """Run each step over the outputs of the one before; see :meth:`Derived.run`."""
        from intake_broker.views.catalog import BrokerCatalog

        unknown = set(parameters or {}) - {s.name for s in self.steps}
        if unknown:
            raise ProvenanceError(
                f"parameters for steps {sorted(unknown)} that this pipeline does not have; "
                f"its steps: {[s.name for s in self.steps]}"
            )
        results = dest if isinstance(dest, BrokerCatalog) else BrokerCatalog(dest)
        reports = []
        inputs = source
        for step in self.steps:
            report = step.run(inputs, dest, parameters=(parameters or {}).get(step.name), **options)
            reports.append(report)
            inputs = [results[uid] for uid in report.outputs]
        return reports

    def watch(
        self,
        source: Any,
        dest: Any,
        *,
        on_report: Callable[[list[PipelineReport]], None] | None = None,
        **options: Any,
    ) -> list[list[PipelineReport]]:
        """Live mode for the whole pipeline: the first step watches ``source`` (see
        :meth:`Derived.watch`) and each batch it computes runs through the other steps;
        ``on_report`` gets each batch's reports (one per step)."""
        from intake_broker.views.catalog import BrokerCatalog

        results = dest if isinstance(dest, BrokerCatalog) else BrokerCatalog(dest)
        parameters = options.pop("parameters", None) or {}
        run_options = {k: v for k, v in options.items() if k in _RUN_OPTIONS}
        run_options.setdefault("progress", False)
        out: list[list[PipelineReport]] = []

        def rest(report: PipelineReport) -> None:
            reports = [report]
            for step in self.steps[1:]:
                inputs = [results[uid] for uid in reports[-1].outputs]
                reports.append(
                    step.run(inputs, dest, parameters=parameters.get(step.name), **run_options)
                )
            out.append(reports)
            if on_report is not None:
                on_report(reports)

        first = self.steps[0]
        self.steps[0].watch(
            source, dest, parameters=parameters.get(first.name), on_report=rest, **options
        )
        return out


_RUN_OPTIONS = ("client", "metadata", "naming", "progress", "record_failures", "rerun")


def _inherited(starts: Sequence[Mapping[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in keys:
        values = [s.get(key) for s in starts]
        if values and values[0] is not None and all(v == values[0] for v in values):
            out[key] = values[0]
    return out


def _store_of(dest: Any) -> Any:
    return getattr(dest, "store", dest)


def _items(source: Any) -> Iterator[tuple[Any, ...]]:
    from intake_broker.views.catalog import BrokerCatalog, Run

    if isinstance(source, Run):
        yield (source,)
        return
    values: Iterable[Any] = source.values() if isinstance(source, BrokerCatalog) else source
    for item in values:
        runs = (item,) if isinstance(item, Run) else tuple(item)
        if not runs or len(runs) > MAX_INPUTS_PER_CALL:
            raise ProvenanceError(
                f"each input is a run or a tuple of 1 to {MAX_INPUTS_PER_CALL} runs, "
                f"got {len(runs)}"
            )
        for run in runs:
            if not isinstance(run, Run):
                raise ProvenanceError(
                    "pipeline inputs are runs (cat[uid], cat.search(...)), "
                    f"not {type(run).__name__}"
                )
        yield runs


def done_keys(store: Any, keys: Sequence[str]) -> dict[str, str]:
    """Which idempotency ``keys`` have a successful derived run in ``store``: key -> uid."""
    done: dict[str, str] = {}
    unique = sorted(set(keys))
    for lo in range(0, len(unique), _KEY_BATCH):
        batch = tuple(unique[lo : lo + _KEY_BATCH])
        query = In(f"{PROVENANCE_KEY}.key", batch) & Eq("stop.exit_status", "success")
        for record in store.runs(query):
            key = record.start.get(PROVENANCE_KEY, {}).get("key")
            if key is not None:
                done.setdefault(key, record.uid)
    return done


def _newest(catalog: Any, limit: int = 500) -> list[str]:
    return [r.uid for r in catalog._runs(limit=limit)]


def _on_client(
    client: Any,
    step: Derived,
    items: list[tuple[Any, ...]],
    todo: list[int],
    params: dict[str, Any],
    store: Callable[[int, Outcome], None],
) -> None:
    """Compute the ``todo`` inputs on ``client``'s workers, at most a few per worker thread in
    flight, and ``store`` each outcome here as it arrives."""
    from distributed import as_completed

    tickets: dict[int, StoreTicket] = {}
    scattered: dict[str, Any] = {}  # store token -> the future of its ticket on the workers
    threads = sum((client.nthreads() or {1: 1}).values()) or 1
    window = max(4, 4 * threads)
    shipped = client.scatter(step, broadcast=True, hash=False)
    pending = iter(todo)
    futures: dict[Any, int] = {}

    def submit(n: int) -> Any:
        refs = []
        for run in items[n]:
            ref, ticket = RunTicket.of(run, tickets)
            if ref.token not in scattered:  # each store is shipped once, not once per task
                scattered[ref.token] = client.scatter(ticket, broadcast=True, hash=False)
            refs.append(ref)
        stores = {ref.token: scattered[ref.token] for ref in refs}
        future = client.submit(_compute_remote, shipped, refs, stores, params, pure=False)
        futures[future] = n
        return future

    first = [submit(n) for n, _ in zip(pending, range(window), strict=False)]
    queue = as_completed(first)
    for future in queue:
        n = futures.pop(future)
        try:
            outcome = future.result()
        except Exception as err:  # the worker died or the task could not run
            now = time.time()
            outcome = Outcome(None, f"{type(err).__name__}: {err}"[:MAX_REASON], now, now)
        store(n, outcome)
        following = next(pending, None)
        if following is not None:
            queue.add(submit(following))


def _compute_remote(
    step: Derived,
    refs: list[RunTicket],
    stores: dict[str, StoreTicket],
    params: dict[str, Any],
) -> Outcome:
    return step.compute(refs, params, stores)


class PipelineError(BrokerError):
    """A pipeline cannot run at all (not one input's failure: those are in the report)."""


#: What ``module:name`` of :func:`load_pipeline` must look like (dotted module, one name).
_SPEC = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*")


def load_pipeline(spec: str) -> Derived | Pipeline:
    """The ``@derived`` function or :class:`Pipeline` that ``spec`` (``module:name``) names,
    imported by name (never a file path, never evaluated code)."""
    import importlib

    if not isinstance(spec, str) or len(spec) > 300 or not _SPEC.fullmatch(spec):
        raise PipelineError(
            f"PIPELINE is module:name, an importable module and a @derived function or "
            f"Pipeline in it (e.g. intake_broker.testing.pipelines:reduce_and_fit), not {spec!r}"
        )
    module_name, _, name = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise PipelineError(
            f"cannot import {module_name!r} for PIPELINE {spec!r} ({err}); install the package "
            "that has it or add its folder to PYTHONPATH"
        ) from None
    found = getattr(module, name, None)
    if not isinstance(found, Derived | Pipeline):
        what = "nothing" if found is None else f"a {type(found).__name__}"
        raise PipelineError(
            f"{spec!r} is {what}; PIPELINE names a function declared with @derived(name=..., "
            "version=...) or a Pipeline(...) of them"
        )
    return found

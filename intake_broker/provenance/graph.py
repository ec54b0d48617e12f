"""The lineage of a derived run: its inputs, their inputs, and so on, as the reader may see them.

:func:`lineage` walks ``derived_from`` from a run through a store (the catalog's: a federation
finds inputs in any member; a guarded store only those the reader may see). An input the store
does not show -- missing, or not the reader's -- is a *withheld* node: no uid, no metadata, an id
of its own (``withheld-1``...), so the graph says that something was used without saying what.
A guarded store has already removed what the derived run's own start document says about such
inputs (see :mod:`intake_broker.provenance.record`). :meth:`Lineage.to_prov` gives the graph as
W3C PROV-JSON.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intake_broker.errors import RunNotFound
from intake_broker.provenance.record import DERIVED_FROM_KEY, NAME_KEY, PROVENANCE_KEY
from intake_broker.store.contract import DocumentStore, RunRecord

#: How many derivation steps :func:`lineage` follows by default.
MAX_DEPTH = 32
#: The most nodes one lineage holds by default (the rest is marked ``truncated``).
MAX_NODES = 2_000
#: The namespace of intake-broker's terms in PROV documents.
PROV_NAMESPACE = "https://github.com/intake-broker/intake-broker/provenance#"


@dataclass
class LineageNode:
    """One run of a lineage: its ``uid`` and start document (both None when ``withheld``),
    the ids of the nodes it was computed from (``inputs``) and what it read of each
    (``reads``: streams, fields, event ranges, by input id)."""

    id: str
    uid: str | None
    start: dict | None = None
    stop: dict | None = None
    withheld: bool = False
    inputs: list[str] = field(default_factory=list)
    reads: dict[str, dict] = field(default_factory=dict)

    @property
    def derived(self) -> bool:
        """Whether this run was computed from others (has provenance)."""
        return bool(self.start and PROVENANCE_KEY in self.start)

    @property
    def code(self) -> dict | None:
        """What computed it (``provenance.code``), None for raw and withheld runs."""
        if not self.start:
            return None
        code = (self.start.get(PROVENANCE_KEY) or {}).get("code")
        return dict(code) if isinstance(code, Mapping) else None

    @property
    def label(self) -> str:
        """A readable name: the derived name, the plan and scan_id, or ``withheld``."""
        if self.withheld or not self.start:
            return "withheld (not found here, or not yours to see)"
        if self.start.get(NAME_KEY):
            return str(self.start[NAME_KEY])
        return f"{self.start.get('plan_name', 'run')} scan_id={self.start.get('scan_id')}"


@dataclass
class Lineage:
    """The graph of what a run was computed from: ``nodes`` by id (a run's uid, or
    ``withheld-N``), the ``root`` id, and ``truncated`` when the walk stopped at its limits."""

    root: str
    nodes: dict[str, LineageNode]
    truncated: bool = False

    def __getitem__(self, node_id: str) -> LineageNode:
        return self.nodes[node_id]

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def inputs(self) -> list[LineageNode]:
        """The root's direct inputs."""
        return [self.nodes[i] for i in self.nodes[self.root].inputs]

    @property
    def withheld(self) -> list[LineageNode]:
        """The nodes standing for runs the reader may not see."""
        return [n for n in self.nodes.values() if n.withheld]

    def edges(self) -> list[tuple[str, str]]:
        """``(derived id, input id)`` for every derivation."""
        return [(n.id, i) for n in self.nodes.values() for i in n.inputs]

    def to_dict(self) -> dict[str, Any]:
        """Plain data: the root, each node (id, uid, label, withheld, code, inputs)."""
        return {
            "root": self.root,
            "truncated": self.truncated,
            "nodes": [
                {
                    "id": n.id,
                    "uid": n.uid,
                    "label": n.label,
                    "withheld": n.withheld,
                    "code": n.code,
                    "inputs": list(n.inputs),
                }
                for n in self.nodes.values()
            ],
        }

    def text(self) -> str:
        """The lineage as an indented tree, the root first."""
        lines: list[str] = []

        def walk(node_id: str, depth: int, seen: frozenset[str]) -> None:
            node = self.nodes[node_id]
            uid = f"{node.uid[:8]}  " if node.uid else ""
            again = "  (shown above)" if node_id in seen else ""
            lines.append(f"{'  ' * depth}{uid}{node.label}{again}")
            if node_id not in seen:
                for i in node.inputs:
                    walk(i, depth + 1, seen | {node_id})

        walk(self.root, 0, frozenset())
        if self.truncated:
            lines.append("... (truncated: more inputs than the walk's limits)")
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"<Lineage of {self.root[:8]}: {len(self.nodes)} runs>\n{self.text()}"

    def to_prov(self) -> dict[str, Any]:
        """The lineage as a W3C PROV-JSON document (https://www.w3.org/submission/prov-json/):
        each run an ``entity``, each computation an ``activity`` that ``used`` its inputs and
        generated its run (``wasGeneratedBy``, ``wasDerivedFrom``), associated with its code as
        a ``prov:SoftwareAgent``. Withheld runs are entities with no attributes but their
        type."""
        entity: dict[str, Any] = {}
        activity: dict[str, Any] = {}
        agent: dict[str, Any] = {}
        relations: dict[str, dict[str, Any]] = {
            k: {} for k in ("used", "wasGeneratedBy", "wasDerivedFrom", "wasAssociatedWith")
        }

        def rid(kind: str) -> str:
            return f"_:{kind}{sum(len(r) for r in relations.values()) + 1}"

        def ename(node: LineageNode) -> str:
            return f"ib:{node.id}" if node.withheld else f"run:{node.uid}"

        for node in self.nodes.values():
            if node.withheld:
                entity[ename(node)] = {"prov:type": "ib:WithheldRun"}
                continue
            start = node.start or {}
            attrs: dict[str, Any] = {"prov:type": "ib:Run", "prov:label": node.label}
            for key in ("plan_name", "scan_id", NAME_KEY):
                if isinstance(start.get(key), str | int | float):
                    attrs[f"ib:{key}"] = start[key]
            entity[ename(node)] = attrs
            code = node.code
            if not code:
                continue
            prov = start.get(PROVENANCE_KEY) or {}
            times = prov.get("times") or {}
            act = f"ib:compute-{node.uid}"
            activity[act] = {
                "prov:type": "ib:Computation",
                **_time("prov:startTime", times.get("started")),
                **_time("prov:endTime", times.get("finished")),
                "ib:parameters": _json_text(prov.get("parameters")),
            }
            who = f"ib:code-{code.get('name')}-{code.get('version')}"
            agent[who] = {
                "prov:type": "prov:SoftwareAgent",
                "ib:name": str(code.get("name")),
                "ib:version": str(code.get("version")),
                "ib:qualname": f"{code.get('module')}.{code.get('qualname')}",
                "ib:source_sha256": str(code.get("source_sha256")),
            }
            relations["wasGeneratedBy"][rid("g")] = {
                "prov:entity": ename(node),
                "prov:activity": act,
            }
            relations["wasAssociatedWith"][rid("a")] = {"prov:activity": act, "prov:agent": who}
            for input_id in node.inputs:
                used = ename(self.nodes[input_id])
                relations["used"][rid("u")] = {"prov:activity": act, "prov:entity": used}
                relations["wasDerivedFrom"][rid("d")] = {
                    "prov:generatedEntity": ename(node),
                    "prov:usedEntity": used,
                    "prov:activity": act,
                }
        doc: dict[str, Any] = {
            "prefix": {"ib": PROV_NAMESPACE, "run": "urn:intake-broker:run:"},
            "entity": entity,
        }
        for name, value in (("activity", activity), ("agent", agent), *relations.items()):
            if value:
                doc[name] = value
        return doc


def _time(key: str, epoch: Any) -> dict[str, Any]:
    if not isinstance(epoch, int | float):
        return {}
    when = datetime.datetime.fromtimestamp(epoch, tz=datetime.UTC)
    return {key: when.isoformat()}


def _json_text(value: Any) -> str:
    import json

    return json.dumps(value if value is not None else {}, sort_keys=True, default=str)


def lineage(
    run: Any,
    store: DocumentStore | Sequence[DocumentStore] | None = None,
    *,
    max_depth: int = MAX_DEPTH,
    max_nodes: int = MAX_NODES,
) -> Lineage:
    """The lineage of ``run`` (a Run or a RunRecord), its inputs looked up in ``store``
    (default: the run's own store; give a federation's store, or several stores asked in
    order, to follow inputs held elsewhere). Every lookup goes through those stores, so a
    guarded store's reader sees an input they may not see as a withheld node, never its uid
    or metadata."""
    if store is None:
        store = getattr(run, "store", None)
        if store is None:
            raise TypeError("lineage of a RunRecord needs the store to look its inputs up in")
    stores: list[DocumentStore] = (
        list(store) if isinstance(store, list | tuple) else [store]  # type: ignore[list-item]
    )
    record = RunRecord(run.start, run.stop) if not isinstance(run, RunRecord) else run
    root = LineageNode(record.uid, record.uid, record.start, record.stop)
    nodes: dict[str, LineageNode] = {root.id: root}
    frontier = [(root, 0)]
    truncated = False
    withheld = 0
    while frontier:
        node, depth = frontier.pop(0)
        start = node.start or {}
        uids = start.get(DERIVED_FROM_KEY)
        if not isinstance(uids, list) or not uids:
            continue
        if depth >= max_depth:
            truncated = True
            continue
        reads = (start.get(PROVENANCE_KEY) or {}).get("inputs") or []
        for n, uid in enumerate(uids):
            if len(nodes) >= max_nodes:
                truncated = True
                break
            read = reads[n] if n < len(reads) and isinstance(reads[n], Mapping) else {}
            found: RunRecord | None = None
            if isinstance(uid, str):
                if uid in nodes:
                    node.inputs.append(uid)
                    node.reads[uid] = _read_of(read)
                    continue
                found = _find(stores, uid)
            if found is None:
                withheld += 1
                hidden = LineageNode(f"withheld-{withheld}", None, withheld=True)
                nodes[hidden.id] = hidden
                node.inputs.append(hidden.id)
                continue
            child = LineageNode(found.uid, found.uid, found.start, found.stop)
            nodes[child.id] = child
            node.inputs.append(child.id)
            node.reads[child.id] = _read_of(read)
            frontier.append((child, depth + 1))
    return Lineage(root.id, nodes, truncated)


def _find(stores: list[DocumentStore], uid: str) -> RunRecord | None:
    for store in stores:
        try:
            return store.run(uid)
        except RunNotFound:
            continue
    return None


def _read_of(record: Mapping[str, Any]) -> dict[str, Any]:
    return {k: record[k] for k in ("streams", "fields", "event_ranges") if k in record}

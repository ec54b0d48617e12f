"""``TransformedStore``: databroker's ``transforms`` -- documents patched as they are read.

databroker 1.2's catalogs took ``transforms={"start": f, "stop": f, "resource": f,
"descriptor": f}`` (functions or ``"module.function"`` import paths, as a YAML entry gives
them): each function receives a document of that kind and returns it, perhaps changed, to fix
wrong metadata without rewriting the stored data. A :class:`TransformedStore` stands in front of
any store and applies them to every start, stop, descriptor and resource it hands out (runs,
documents, descriptors, resources, the assets a run's data are read through). Searches still
match what is stored, as databroker's did. Nothing is written back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from intake_broker.store.contract import NEWEST_FIRST, DocumentStore, RunRecord
from intake_broker.store.wrapper import StoreWrapper

if TYPE_CHECKING:
    from intake_broker.assets import AssetReader, RunAssets
    from intake_broker.queries import Query

#: The document kinds a transform may be given for (databroker's set).
TRANSFORMABLE = ("start", "stop", "resource", "descriptor")


def load_transforms(transforms: Mapping[str, Any] | None) -> dict[str, Callable[[dict], dict]]:
    """``{kind: function}`` from functions or ``"module.function"`` / ``"module:function"``
    import paths; raises ``ValueError`` for a kind outside ``start``, ``stop``, ``resource``,
    ``descriptor`` and ``TypeError`` for a value that is not callable."""
    if transforms is None:
        return {}
    if not isinstance(transforms, Mapping):
        raise TypeError(
            f"transforms must be a mapping of document kind to function, not "
            f"{type(transforms).__name__}; e.g. {{'start': 'mypackage.fix_start'}}"
        )
    unknown = sorted(set(transforms) - set(TRANSFORMABLE))
    if unknown:
        raise ValueError(
            f"transforms for {unknown} are not supported; give any of {list(TRANSFORMABLE)}"
        )
    from intake_broker.assets.reader import _load

    loaded = {}
    for kind, value in transforms.items():
        if value is None:
            continue
        try:
            function = _load(value)
        except (ImportError, AttributeError, ValueError) as err:
            raise ValueError(
                f"the {kind} transform {value!r:.120} cannot be imported ({err}); give an "
                "import path 'package.module.function'"
            ) from err
        if not callable(function):
            raise TypeError(f"the {kind} transform {value!r:.120} is not callable")
        loaded[kind] = function
    return loaded


class TransformedStore(StoreWrapper):
    """``store`` with ``transforms`` applied to the documents it gives (see the module)."""

    def __init__(self, store: DocumentStore, transforms: Mapping[str, Any]):
        self.store = store
        self.spec = dict(transforms)  # what was given (import paths pickle as they are)
        self.transforms = load_transforms(transforms)

    def __reduce__(self):
        return (TransformedStore, (self.store, self.spec))

    def _apply(self, kind: str, doc: Any) -> Any:
        function = self.transforms.get(kind)
        if function is None or doc is None:
            return doc
        return function(dict(doc))

    def _record(self, record: RunRecord) -> RunRecord:
        return replace(
            record, start=self._apply("start", record.start), stop=self._apply("stop", record.stop)
        )

    def runs(
        self,
        query: Query | None = None,
        *,
        sort: Sequence[tuple[str, int]] = NEWEST_FIRST,
        skip: int = 0,
        limit: int | None = None,
    ) -> list[RunRecord]:
        return [self._record(r) for r in self.store.runs(query, sort=sort, skip=skip, limit=limit)]

    def run(self, uid: str) -> RunRecord:
        return self._record(self.store.run(uid))

    def descriptors(self, run_uid: str) -> list[dict]:
        return [self._apply("descriptor", d) for d in self.store.descriptors(run_uid)]

    def documents(self, run_uid: str) -> Iterator[tuple[str, dict]]:
        for name, doc in self.store.documents(run_uid):
            yield name, self._apply(name, doc) if name in TRANSFORMABLE else doc

    def resource(self, run_uid: str, resource_uid: str) -> dict:
        return self._apply("resource", self.store.resource(run_uid, resource_uid))

    def run_assets(self, run_uid: str) -> RunAssets:
        assets = self.store.run_assets(run_uid)
        if "resource" in self.transforms:
            assets.resources = {
                uid: self._apply("resource", doc) for uid, doc in assets.resources.items()
            }
        return assets

    def asset_reader(self, run_uid: str, **options: Any) -> AssetReader:
        if "resource" not in self.transforms:
            return self.store.asset_reader(run_uid, **options)
        from intake_broker.assets import AssetReader

        return AssetReader(self, run_uid, **options)  # reads the transformed resources

    def record_parts(self, run_uid: str, parts: Iterable[str]) -> dict[str, Any]:
        out = self.store.record_parts(run_uid, parts)
        if "descriptors" in out and "descriptor" in self.transforms:
            out["descriptors"] = [self._apply("descriptor", d) for d in out["descriptors"]]
        return out

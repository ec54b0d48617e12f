"""A stream handed to plain xarray / intake-xarray users: written as a zarr store they open
lazily, with no library of ours (``xr.open_zarr(url, storage_options=...)``), and the YAML
entry of intake-xarray's ``zarr`` driver that names it.

What :meth:`intake_broker.views.stream.Stream.export_zarr` does. (A served catalog offers the
same layout without a copy: ``/zarr/v3/runs/{uid}/{stream}``, see the server driver.)
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from intake_broker.errors import BrokerError

if TYPE_CHECKING:
    from intake_broker.views.stream import Stream

__all__ = ["ExportExists", "ZarrExport", "export_stream"]


class ExportExists(BrokerError, FileExistsError):
    """The zarr store to export to exists already (pass ``overwrite=True`` to replace it)."""


@dataclass
class ZarrExport:
    """A stream written as a zarr store: where, how to open it, its intake-xarray entry."""

    url: str
    storage_options: dict[str, Any] = field(default_factory=dict)
    variables: list[str] = field(default_factory=list)
    #: data keys left out (values that are neither numbers nor strings)
    skipped: list[str] = field(default_factory=list)
    run_uid: str = ""
    stream: str = ""
    consolidated: bool = True

    def open(self) -> Any:
        """The exported stream as plain xarray reads it (lazy, dask-backed)."""
        import xarray as xr

        return xr.open_zarr(
            self.url, storage_options=self.storage_options or None, consolidated=None
        )

    def entry(self, description: str | None = None) -> dict[str, Any]:
        """The intake-xarray entry (driver ``zarr``) of the export, credentials left out:
        give them through the environment (``AWS_ACCESS_KEY_ID``, ...) or ``{{ env(...) }}``."""
        from intake_broker.views.describe import redact

        options = {
            k: v
            for k, v in redact(self.storage_options).items()
            if v != "<redacted>" and k not in ("key", "secret", "token")
        }
        args: dict[str, Any] = {"urlpath": self.url}
        if options:
            args["storage_options"] = options
        return {
            "driver": "zarr",
            "description": description or f"stream {self.stream!r} of Bluesky run {self.run_uid}",
            "args": args,
            "metadata": {"run_uid": self.run_uid, "stream_name": self.stream},
        }

    def yaml(self, name: str | None = None, description: str | None = None) -> str:
        """A YAML catalog file with the entry, for ``intake.open_catalog`` with intake-xarray."""
        from intake_broker.views.describe import dump_yaml

        name = name or f"{self.stream}-{self.run_uid[:8]}"
        return dump_yaml({"sources": {name: self.entry(description)}})


def export_stream(
    stream: Stream,
    url: str,
    *,
    storage_options: dict[str, Any] | None = None,
    overwrite: bool = False,
    consolidated: bool = True,
) -> ZarrExport:
    """Write ``stream`` (lazily read, chunk by chunk) as a zarr store at ``url``; see
    :meth:`~intake_broker.views.stream.Stream.export_zarr`."""
    import fsspec

    options = dict(storage_options or {})
    mapper = fsspec.get_mapper(url, **options)
    if not overwrite and (
        mapper.fs.exists(f"{mapper.root}/zarr.json") or mapper.fs.exists(f"{mapper.root}/.zgroup")
    ):
        raise ExportExists(
            f"{url} already holds a zarr store; pass overwrite=True to replace it, or choose "
            "another URL"
        )
    ds = stream._with(seq_num=True).to_dask()  # time and seq_num coordinates
    skipped = [name for name, var in ds.data_vars.items() if var.dtype.kind not in "biufcmMSU"]
    ds = ds.drop_vars(skipped)
    rows = [c.rows for c in stream.layout.chunks]
    if rows and ds.sizes.get("time", 0):
        ds = ds.chunk({"time": max(1, max(rows))})
    for variable in ds.variables.values():
        variable.encoding = {}
    ds.attrs = {
        "run_uid": stream._run_uid,
        "stream_name": stream.name,
        "skipped_fields": skipped,
        "written_by": "intake-broker export_zarr",
    }
    with warnings.catch_warnings():
        # zarr v3 has no consolidated metadata in its specification yet; xarray writes it
        # (zarr-python reads it) and says so
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(
            url,
            mode="w" if overwrite else "w-",
            storage_options=options or None,
            consolidated=consolidated,
            compute=True,
        )
    return ZarrExport(
        url=url,
        storage_options=options,
        variables=list(ds.data_vars),
        skipped=skipped,
        run_uid=stream._run_uid,
        stream=stream.name,
        consolidated=consolidated,
    )

"""Built-in asset handlers, used when no installed package provides one for a spec/mimetype.

Resource handlers follow databroker's convention: ``Handler(resource_path, **resource_kwargs)``
then ``handler(**datum_kwargs)`` returns one event's value. Stream handlers (by mimetype) are
``Handler(path, **parameters)`` with ``read(start, stop, shape)`` returning the rows of events
``start..stop`` (stream_datum ``indices``) shaped ``(stop - start, *shape)``.

Paths may be local or fsspec URLs (``s3://...``); h5py and tifffile load only when used.

Every built-in handler takes ``asset_roots`` (given by the reader, see
:mod:`intake_broker.assets.roots`) and checks each file it opens against it, since the files of
NPY_SEQ, AD_TIFF and TIFF series are named by document parameters too. When confined, HDF5
datasets that reach outside their file (external links, virtual datasets, external raw
storage) are refused, and TIFF templates may only number their files.
"""

from __future__ import annotations

import os
import string
from typing import Any

import numpy as np

from intake_broker.assets.roots import AssetOutsideRoots, AssetRoots


def _open(path: str, storage_options: dict | None = None, roots: AssetRoots | None = None):
    """A binary file object for a local path or an fsspec URL (checked against ``roots``)."""
    if roots is not None:
        path = roots.check(path, "an asset handler")
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb", **(storage_options or {})).open()
    return open(path, "rb")


def _dataset(file: Any, name: str, roots: AssetRoots | None) -> Any:
    """Dataset ``name`` of an open HDF5 file; when confined, refused if reading it would
    open another file (an external link on its path, a virtual or externally stored
    dataset)."""
    if roots is None or not roots.confined:
        return file[name]
    h5py = _h5py()
    node = file
    for part in [p for p in name.split("/") if p]:
        link = node.get(part, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            raise AssetOutsideRoots(
                f"HDF5 dataset {name!r} of {file.filename!r} goes through an external link "
                f"to {link.filename!r}; confined asset roots read no other file"
            )
        node = node[part]
    if not isinstance(node, h5py.Dataset):
        raise KeyError(f"{name!r} in {file.filename!r} is not a dataset")
    plist = node.id.get_create_plist()
    if node.is_virtual or plist.get_external_count() > 0:
        raise AssetOutsideRoots(
            f"HDF5 dataset {name!r} of {file.filename!r} keeps its data in other files "
            "(virtual or external storage); confined asset roots read no other file"
        )
    return node


def _numbering_template(template: Any) -> str:
    """A ``str.format`` template that only places the frame number (``{}``, ``{0}``,
    ``{:06d}``): no attribute or item lookups."""
    if not isinstance(template, str):
        raise ValueError(f"template must be a string, not {template!r}")
    for _, field_, _, _ in string.Formatter().parse(template):
        if field_ not in (None, "", "0"):
            raise ValueError(
                f"template {template!r} may only number the files ({{}}, {{:06d}}), "
                f"not look up {field_!r}"
            )
    return template


def _h5py():
    try:
        import h5py
    except ImportError:
        raise ImportError("reading HDF5 assets needs h5py: pip install h5py") from None
    return h5py


def _tifffile():
    try:
        import tifffile
    except ImportError:
        raise ImportError("reading TIFF assets needs tifffile: pip install tifffile") from None
    return tifffile


class NumpySeqHandler:
    """``NPY_SEQ``: one ``<resource_path>_<index>.npy`` file per frame (ophyd.sim)."""

    specs = {"NPY_SEQ"}

    def __init__(
        self,
        filename: str,
        root: str = "",
        storage_options: dict | None = None,
        asset_roots: AssetRoots | None = None,
    ):
        self._name = os.path.join(root, filename)
        self._options = storage_options
        self._roots = asset_roots

    def __call__(self, index: int) -> np.ndarray:
        with _open(f"{self._name}_{int(index)}.npy", self._options, self._roots) as f:
            return np.load(f, allow_pickle=False)


class AreaDetectorHDF5Handler:
    """``AD_HDF5``: frames of ``/entry/data/data`` of an area-detector HDF5 file;
    ``frame_per_point`` frames per event (``point_number``)."""

    specs = {"AD_HDF5"}

    def __init__(
        self,
        filename: str,
        frame_per_point: int = 1,
        storage_options: dict | None = None,
        dataset: str = "/entry/data/data",
        asset_roots: AssetRoots | None = None,
    ):
        self._file = _h5py().File(_open(filename, storage_options, asset_roots), "r")
        self._dataset = _dataset(self._file, dataset, asset_roots)
        self._fpp = int(frame_per_point)

    def __call__(self, point_number: int) -> np.ndarray:
        start = int(point_number) * self._fpp
        frames = self._dataset[start : start + self._fpp]
        if len(frames) < self._fpp:
            raise IndexError(
                f"point {point_number} is past the end of {self._file.filename} "
                f"({len(self._dataset)} frames)"
            )
        return frames[0] if self._fpp == 1 else frames

    def read_points(self, first: int, stop: int) -> np.ndarray:
        """The frames of points ``first..stop`` in one read, shaped ``(points, ...)``."""
        frames = self._dataset[first * self._fpp : stop * self._fpp]
        if len(frames) < (stop - first) * self._fpp:
            raise IndexError(
                f"points {first}..{stop} run past the end of "
                f"{self._file.filename} ({len(self._dataset)} frames)"
            )
        return frames.reshape((stop - first, -1, *frames.shape[1:])) if self._fpp > 1 else frames

    def close(self) -> None:
        self._file.close()


class AreaDetectorTiffHandler:
    """``AD_TIFF``: one TIFF file per frame named ``template % (path, filename, n)``."""

    specs = {"AD_TIFF"}

    def __init__(
        self,
        fpath: str,
        template: str,
        filename: str,
        frame_per_point: int = 1,
        storage_options: dict | None = None,
        asset_roots: AssetRoots | None = None,
    ):
        self._path, self._template, self._filename = fpath, template, filename
        self._fpp = int(frame_per_point)
        self._options = storage_options
        self._roots = asset_roots

    def __call__(self, point_number: int) -> np.ndarray:
        first = int(point_number) * self._fpp
        frames = []
        for n in range(first, first + self._fpp):
            name = self._template % (self._path.rstrip("/") + "/", self._filename, n)
            with _open(name, self._options, self._roots) as f:
                frames.append(_tifffile().imread(f))
        return frames[0] if self._fpp == 1 else np.stack(frames)


class HDF5StreamHandler:
    """``application/x-hdf5`` (ophyd-async): rows of ``dataset`` in one HDF5 file."""

    def __init__(
        self,
        path: str,
        dataset: str,
        storage_options: dict | None = None,
        asset_roots: AssetRoots | None = None,
        **parameters: Any,
    ):
        self._file = _h5py().File(_open(path, storage_options, asset_roots), "r")
        self._dataset = _dataset(self._file, dataset, asset_roots)

    def read(self, start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray:
        per_row = int(np.prod(self._dataset.shape[1:], dtype=np.int64)) or 1
        rows_per_event = max(1, int(np.prod(shape, dtype=np.int64)) // per_row)
        data = self._dataset[start * rows_per_event : stop * rows_per_event]
        if len(data) < (stop - start) * rows_per_event:
            raise IndexError(
                f"rows {start}..{stop} are past the end of {self._file.filename} "
                f"{self._dataset.name} ({len(self._dataset)} rows)"
            )
        return data.reshape((stop - start, *shape))

    def close(self) -> None:
        self._file.close()


class TiffSeriesStreamHandler:
    """``multipart/related;type=image/tiff`` (ophyd-async): one TIFF per row, named by
    ``template.format(index)`` in the folder of the stream_resource's uri."""

    def __init__(
        self,
        path: str,
        template: str,
        storage_options: dict | None = None,
        asset_roots: AssetRoots | None = None,
        **parameters: Any,
    ):
        self._folder, self._template = path, _numbering_template(template)
        self._options = storage_options
        self._roots = asset_roots

    def read(self, start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray:
        frames = []
        for index in range(start, stop):
            name = self._folder.rstrip("/") + "/" + self._template.format(index)
            with _open(name, self._options, self._roots) as f:
                frames.append(_tifffile().imread(f))
        return np.stack(frames).reshape((stop - start, *shape))


BUILTIN: dict[str, Any] = {
    "NPY_SEQ": NumpySeqHandler,
    "AD_HDF5": AreaDetectorHDF5Handler,
    "AD_TIFF": AreaDetectorTiffHandler,
    "application/x-hdf5": HDF5StreamHandler,
    "multipart/related;type=image/tiff": TiffSeriesStreamHandler,
}

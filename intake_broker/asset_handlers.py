"""Built-in asset handlers, used when no installed package provides one for a spec/mimetype.

Resource handlers follow databroker's convention: ``Handler(resource_path, **resource_kwargs)``
then ``handler(**datum_kwargs)`` returns one event's value. Stream handlers (by mimetype) are
``Handler(path, **parameters)`` with ``read(start, stop, shape)`` returning the rows of events
``start..stop`` (stream_datum ``indices``) shaped ``(stop - start, *shape)``.

Paths may be local or fsspec URLs (``s3://...``); h5py and tifffile load only when used.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np


def _open(path: str, storage_options: dict | None = None):
    """A binary file object for a local path or an fsspec URL."""
    if "://" in path:
        import fsspec

        return fsspec.open(path, "rb", **(storage_options or {})).open()
    return open(path, "rb")


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

    def __init__(self, filename: str, root: str = "", storage_options: dict | None = None):
        self._name = os.path.join(root, filename)
        self._options = storage_options

    def __call__(self, index: int) -> np.ndarray:
        with _open(f"{self._name}_{index}.npy", self._options) as f:
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
    ):
        self._file = _h5py().File(_open(filename, storage_options), "r")
        self._dataset = self._file[dataset]
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
    ):
        self._path, self._template, self._filename = fpath, template, filename
        self._fpp = int(frame_per_point)
        self._options = storage_options

    def __call__(self, point_number: int) -> np.ndarray:
        first = int(point_number) * self._fpp
        frames = []
        for n in range(first, first + self._fpp):
            name = self._template % (self._path.rstrip("/") + "/", self._filename, n)
            with _open(name, self._options) as f:
                frames.append(_tifffile().imread(f))
        return frames[0] if self._fpp == 1 else np.stack(frames)


class HDF5StreamHandler:
    """``application/x-hdf5`` (ophyd-async): rows of ``dataset`` in one HDF5 file."""

    def __init__(
        self, path: str, dataset: str, storage_options: dict | None = None, **parameters: Any
    ):
        self._file = _h5py().File(_open(path, storage_options), "r")
        self._dataset = self._file[dataset]

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
        self, path: str, template: str, storage_options: dict | None = None, **parameters: Any
    ):
        self._folder, self._template = path, template
        self._options = storage_options

    def read(self, start: int, stop: int, shape: tuple[int, ...]) -> np.ndarray:
        frames = []
        for index in range(start, stop):
            name = self._folder.rstrip("/") + "/" + self._template.format(index)
            with _open(name, self._options) as f:
                frames.append(_tifffile().imread(f))
        return np.stack(frames).reshape((stop - start, *shape))


BUILTIN: dict[str, Any] = {
    "NPY_SEQ": NumpySeqHandler,
    "AD_HDF5": AreaDetectorHDF5Handler,
    "AD_TIFF": AreaDetectorTiffHandler,
    "application/x-hdf5": HDF5StreamHandler,
    "multipart/related;type=image/tiff": TiffSeriesStreamHandler,
}

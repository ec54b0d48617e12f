"""External assets: detector data kept in files that the documents point to.

``reader`` finds handlers (:class:`HandlerRegistry`) and reads a run's assets lazily
(:class:`AssetReader`); ``handlers`` holds the built-in handlers (NPY_SEQ, AD_HDF5, AD_TIFF,
HDF5 and TIFF-series stream resources); ``roots`` confines where assets may be read from
(:class:`AssetRoots`).
"""

from intake_broker.assets.reader import (
    TARGET_CHUNK_BYTES,
    AssetNotFound,
    AssetOutsideRoots,
    AssetReader,
    AssetReadError,
    AssetRoots,
    HandlerRegistry,
    RunAssets,
    UnknownAssetSpec,
    apply_root_map,
    check_asset_document,
    frames_per_chunk,
    register_handler,
)

__all__ = [
    "TARGET_CHUNK_BYTES",
    "AssetNotFound",
    "AssetOutsideRoots",
    "AssetReadError",
    "AssetReader",
    "AssetRoots",
    "HandlerRegistry",
    "RunAssets",
    "UnknownAssetSpec",
    "apply_root_map",
    "check_asset_document",
    "frames_per_chunk",
    "register_handler",
]

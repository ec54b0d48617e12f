"""intake-broker-files: Bluesky runs kept one per file (suitcase-jsonl, suitcase-msgpack).

>>> import intake
>>> cat = intake.open_catalog("runs.yml")["local"]   # driver: bluesky-jsonl-catalog
>>> from intake_broker_files import JSONLCatalog
>>> cat = JSONLCatalog("/data/runs/*.jsonl")        # or "s3://bucket/runs/*.jsonl"
"""

from __future__ import annotations

from .catalog import JSONLCatalog, MsgpackCatalog
from .formats import FORMATS, FileFormat, JSONLFormat, MsgpackFormat
from .index import CorruptFileWarning
from .store import FilesStore, JSONLStore, MsgpackStore

__version__ = "0.1.0"

__all__ = [
    "FORMATS",
    "CorruptFileWarning",
    "FileFormat",
    "FilesStore",
    "JSONLCatalog",
    "JSONLFormat",
    "JSONLStore",
    "MsgpackCatalog",
    "MsgpackFormat",
    "MsgpackStore",
]

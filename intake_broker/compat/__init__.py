"""databroker compatibility: the v1 ``Broker`` API over our catalogs.

``from intake_broker.compat import Broker`` stands in for ``from databroker import Broker``;
:func:`install_databroker_shim` makes the unchanged import line work too (for code that cannot be
edited). The databroker 2 idioms (``run.start``, ``run["primary"]["data"]["det"]``, ``Key``,
``cat[-3:]``) live on the catalogs themselves (:mod:`intake_broker.views`).
"""

from __future__ import annotations

import sys
import types

from intake_broker.compat.config import InvalidConfig, lookup_config
from intake_broker.compat.v1 import ALL, Broker, Document, Header, Images, Results, temp
from intake_broker.queries import Key


def install_databroker_shim() -> types.ModuleType:
    """Make ``import databroker`` / ``from databroker import Broker, temp`` give ours.

    Only when databroker itself is not importable (an installed databroker is never shadowed);
    returns the module ``databroker`` now names.
    """
    existing = sys.modules.get("databroker")
    if existing is not None:
        return existing
    import importlib.util

    if importlib.util.find_spec("databroker") is not None:
        import databroker

        return databroker
    shim = types.ModuleType("databroker", "intake-broker's stand-in for databroker's v1 API")
    shim.Broker = Broker  # type: ignore[attr-defined]
    shim.Header = Header  # type: ignore[attr-defined]
    shim.temp = temp  # type: ignore[attr-defined]
    shim.ALL = ALL  # type: ignore[attr-defined]
    shim.lookup_config = lookup_config  # type: ignore[attr-defined]
    shim.__version__ = "1.2.5+intake-broker"  # type: ignore[attr-defined]
    sys.modules["databroker"] = shim
    return shim


__all__ = [
    "ALL",
    "Broker",
    "Document",
    "Header",
    "Images",
    "InvalidConfig",
    "Key",
    "Results",
    "install_databroker_shim",
    "lookup_config",
    "temp",
]

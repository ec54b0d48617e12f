"""Where intake-broker keeps a user's things: the default catalog's data, saved queries, YAML
catalogs found by discovery."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable naming the folder of the default catalog (else the user data dir).
DATA_ENV = "INTAKE_BROKER_DATA"


def data_dir() -> Path:
    """Where the default catalog keeps its data: ``$INTAKE_BROKER_DATA`` or the user data
    directory (``~/.local/share/intake-broker`` on Linux)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("intake-broker", appauthor=False))

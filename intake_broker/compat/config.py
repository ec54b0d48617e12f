"""databroker's configuration files, read as databroker 1.x read them.

``Broker.named("csx")`` looks for ``csx.yml`` in ``~/.config/databroker``,
``{python}/../etc/databroker`` and ``/etc/databroker`` (the first found wins, as in databroker).
Two shapes are understood:

* databroker's v0/v1 configuration -- ``metadatastore`` and ``assets`` in MongoDB (module
  ``databroker.headersource.mongo`` / ``databroker.assets.mongo``), optional ``handlers`` and
  ``root_map`` -- opened with the installed ``bluesky-mongo-normalized-catalog`` driver;
* an intake catalog file (``sources:``), opened with :func:`intake_broker.open_catalog`; the
  entry called ``name`` (or the file's only entry) is the catalog.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from intake_broker.errors import BrokerError, UnknownDriver

#: The largest configuration file read (a configuration is a few hundred bytes).
MAX_CONFIG_BYTES = 1_000_000
#: databroker's driver for its v0/v1 MongoDB configuration.
MONGO_DRIVER = "bluesky-mongo-normalized-catalog"


class InvalidConfig(BrokerError, ValueError):
    """A databroker configuration file or dict is not one we can open."""


def config_search_path() -> list[Path]:
    """Where ``Broker.named`` looks for ``{name}.yml``, first match wins."""
    return [
        Path.home() / ".config" / "databroker",
        Path(sys.executable).resolve().parent.parent / "etc" / "databroker",
        Path("/etc/databroker"),
    ]


def lookup_config(name: str) -> dict | None:
    """The configuration ``{name}.yml`` on :func:`config_search_path` (None if there is none)."""
    import yaml

    if not isinstance(name, str) or not name or len(name) > 200 or os.sep in name or name[0] == ".":
        raise InvalidConfig(
            f"a configuration name is a plain file stem such as 'csx', got {name!r}"
        )
    for folder in config_search_path():
        for suffix in (".yml", ".yaml"):
            path = folder / f"{name}{suffix}"
            if not path.is_file():
                continue
            if path.stat().st_size > MAX_CONFIG_BYTES:
                raise InvalidConfig(f"{path} is larger than {MAX_CONFIG_BYTES} bytes")
            try:
                config = yaml.safe_load(path.read_text())
            except yaml.YAMLError as err:
                raise InvalidConfig(f"{path} is not valid YAML: {err}") from None
            if not isinstance(config, dict):
                raise InvalidConfig(f"{path} must hold a mapping, not {type(config).__name__}")
            config.setdefault("_path", str(path))
            return config
    return None


def _mongo_uri(config: Mapping[str, Any], what: str) -> str:
    if {"uri", "host"} <= set(config) or {"uri", "port"} <= set(config):
        raise InvalidConfig(
            f"{what}: define either uri, or host/port, but not both (as databroker required)"
        )
    if "database" not in config:
        raise InvalidConfig(f"{what}: 'database' is missing")
    database = config["database"]
    uri = config.get("uri")
    if {"mongo_user", "mongo_pwd", "host", "port"} <= set(config):
        uri = f"mongodb://{config['mongo_user']}:{config['mongo_pwd']}@{config['host']}:{config['port']}/"
    if not uri:
        uri = f"mongodb://{config.get('host', 'localhost')}:{config.get('port', 27017)}/"
    base, _, query = uri.partition("?")
    if "authsource" in config:
        query = f"authsource={config['authsource']}"
    return base.rstrip("/") + f"/{database}" + (f"?{query}" if query else "")


def catalog_from_config(
    config: Mapping[str, Any], *, auto_register: bool = True, name: str | None = None
) -> Any:
    """The catalog a databroker configuration describes (see the module's doc)."""
    if not isinstance(config, Mapping):
        raise InvalidConfig(f"a configuration is a mapping, got {type(config).__name__}")
    version = config.get("api_version")
    if version not in (None, 1, 2):
        raise InvalidConfig(f"api_version {version!r}: only 1 (and 2, the same catalog) are served")
    if "sources" in config:
        return _catalog_file(config, name)
    if "metadatastore" in config:
        return _mongo_catalog(config, name)
    raise InvalidConfig(
        "a databroker configuration needs 'metadatastore' and 'assets' (databroker's v0/v1 "
        "layout) or 'sources' (an intake catalog file)"
    )


def _mongo_catalog(config: Mapping[str, Any], name: str | None) -> Any:
    import intake

    try:
        mds, assets = config["metadatastore"], config["assets"]
        if mds.get("module") != "databroker.headersource.mongo":
            raise InvalidConfig(f"Unable to handle metadatastore.module {mds.get('module')!r}")
        if mds.get("class") not in ("MDS", "MDSRO"):
            raise InvalidConfig(f"Unable to handle metadatastore.class {mds.get('class')!r}")
        if assets.get("module") != "databroker.assets.mongo":
            raise InvalidConfig(f"Unable to handle assets.module {assets.get('module')!r}")
        if assets.get("class") not in ("Registry", "RegistryRO"):
            raise InvalidConfig(f"Unable to handle assets.class {assets.get('class')!r}")
        metadatastore_db = _mongo_uri(mds["config"], "metadatastore.config")
        asset_registry_db = _mongo_uri(assets["config"], "assets.config")
    except (KeyError, TypeError, AttributeError) as err:
        raise InvalidConfig(f"the databroker configuration is incomplete: {err!r}") from None
    handlers = {
        spec: f"{entry['module']}.{entry['class']}"
        for spec, entry in (config.get("handlers") or {}).items()
    }
    if MONGO_DRIVER not in intake.registry:
        raise UnknownDriver(
            f"this configuration needs the {MONGO_DRIVER!r} driver: pip install intake-broker-mongo"
        )
    return intake.registry[MONGO_DRIVER](
        metadatastore_db,
        asset_registry_db,
        handler_registry=handlers,
        root_map=config.get("root_map"),
        name=name or "databroker",
    )


def _catalog_file(config: Mapping[str, Any], name: str | None) -> Any:
    from intake_broker.catalogs.config import open_catalog

    path = config.get("_path")
    if path is None:
        raise InvalidConfig("a 'sources:' configuration is opened from its file: Broker.named")
    catalog = open_catalog(path)
    entries = list(config["sources"])
    if name in entries:
        return catalog[name]
    if len(entries) == 1:
        return catalog[entries[0]]
    raise InvalidConfig(f"{path} has entries {entries}; name one of them")

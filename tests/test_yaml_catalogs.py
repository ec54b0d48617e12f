"""YAML catalog files through intake and through intake_broker.open_catalog."""

from __future__ import annotations

import intake
import pytest

from intake_broker import open_catalog
from intake_broker.catalog import BrokerCatalog
from intake_broker.errors import BrokerError, UnknownDriver


def write(tmp_path, text):
    path = tmp_path / "facility.yml"
    path.write_text(text)
    return path


def test_intake_opens_a_memory_catalog_from_yaml(tmp_path):
    path = write(tmp_path, """
sources:
  scratch:
    driver: bluesky-memory-catalog
    args: {}
""")
    cat = intake.open_catalog(str(path))["scratch"]
    assert isinstance(cat, BrokerCatalog) and len(cat) == 0
    assert isinstance(open_catalog(path)["scratch"], BrokerCatalog)


def test_unknown_driver_names_file_entry_and_installed_drivers(tmp_path):
    path = write(tmp_path, """
sources:
  csx:
    driver: bluesky-jsonl-catalgo
    args: {paths: ["*.jsonl"]}
""")
    with pytest.raises(UnknownDriver) as info:
        open_catalog(path)
    message = str(info.value)
    assert str(path) in message and "'csx'" in message and "bluesky-jsonl-catalgo" in message
    assert "bluesky-memory-catalog" in message  # what is installed


@pytest.mark.parametrize("text, expected", [
    ("sources: [1, 2]", "no 'sources:' mapping"),
    ("sources: {a: {driver: x\n", "not valid YAML"),
])
def test_malformed_yaml_is_a_clear_error(tmp_path, text, expected):
    with pytest.raises(BrokerError, match=expected):
        open_catalog(write(tmp_path, text))


def test_missing_catalog_file(tmp_path):
    with pytest.raises(BrokerError, match="does not exist"):
        open_catalog(tmp_path / "nope.yml")

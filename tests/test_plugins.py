"""The one plugin loader (``intake_broker.plugins``): stores, commands, asset handlers and intake
drivers found from the installed distributions' entry points, as importlib.metadata finds them."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from intake_broker import plugins
from intake_broker.assets import handlers as asset_handlers
from intake_broker.assets import reader as assets
from intake_broker.assets.handlers import AreaDetectorHDF5Handler, NumpySeqHandler
from intake_broker.errors import UnknownDriver

NPY = "intake_broker.assets.handlers:NumpySeqHandler"
H5 = "intake_broker.assets.handlers:AreaDetectorHDF5Handler"


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A ``sys.path`` with one more folder of fake distributions in front, scanned afresh."""
    folder = tmp_path / "site-packages"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    plugins.refresh()
    yield folder
    plugins.refresh()


def install(folder, name, groups: dict[str, dict[str, str]], version="1.0", text=None):
    dist = folder / f"{name}-{version}.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    body = "".join(
        f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in eps.items()) + "\n"
        for group, eps in groups.items()
    )
    (dist / "entry_points.txt").write_text(text if text is not None else body)
    return dist


def test_finds_what_importlib_metadata_finds():
    plugins.refresh()
    everything = entry_points()
    for group in plugins.GROUPS:
        expected = {ep.name: ep.value for ep in everything.select(group=group)}
        assert {n: ep.value for n, ep in plugins.entry_points(group).items()} == expected
    assert {"jsonl", "msgpack", "native"} <= set(plugins.entry_points(plugins.STORES))


def test_a_new_distribution_is_seen_after_refresh_and_broken_ones_are_passed_over(site):
    install(site, "more_handlers", {"intake_broker.handlers": {"NEW": H5}, "x.y": {"a": "b:c"}})
    install(site, "broken", {}, text="[intake_broker.handlers\nnot an ini file")
    assert plugins.entry_points("intake_broker.handlers")["NEW"].value == H5
    assert plugins.load("intake_broker.handlers", "NEW") is AreaDetectorHDF5Handler


def test_unknown_and_unimportable_plugins_say_what_is_installed(site):
    install(site, "bad_store", {plugins.STORES: {"bad": "no_such_module_here:Store"}})
    with pytest.raises(UnknownDriver, match="no store named 'nope'.*installed: .*native"):
        plugins.load(plugins.STORES, "nope", "store")
    with pytest.raises(UnknownDriver, match="'bad' .*failed to import"):
        plugins.load(plugins.STORES, "bad", "store")


def test_handler_priority_catalog_then_runtime_then_entry_points_then_builtins(site, monkeypatch):
    install(
        site,
        "handlers",
        {
            "databroker.handlers": {"AD_HDF5": NPY, "OTHER": H5},
            "intake_broker.handlers": {"OTHER": NPY},
        },
    )
    monkeypatch.setattr(assets, "_runtime", {})
    registry = assets.HandlerRegistry()
    assert registry["AD_HDF5"] is NumpySeqHandler  # an entry point beats a built-in
    assert registry["OTHER"] is AreaDetectorHDF5Handler  # databroker.handlers comes first
    assert assets.HandlerRegistry()["AD_TIFF"] is asset_handlers.BUILTIN["AD_TIFF"]  # a built-in

    class Runtime:
        pass

    class Catalogs:
        pass

    assets.register_handler("AD_HDF5", Runtime)
    assert assets.HandlerRegistry()["AD_HDF5"] is Runtime
    assert assets.HandlerRegistry({"AD_HDF5": Catalogs})["AD_HDF5"] is Catalogs

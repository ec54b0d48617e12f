"""YAML catalog files through intake and through intake_broker.open_catalog: checks that name
the file, the line and what would be valid; environment variables; relative paths."""

from __future__ import annotations

import textwrap
import warnings

import intake
import pytest

from intake_broker import open_catalog
from intake_broker.catalogs.files import (
    OPTIONAL_DRIVERS,
    CatalogFileError,
    expand_variables,
    resolve_path,
)
from intake_broker.errors import BrokerError, UnknownDriver
from intake_broker.federation import FederatedCatalog, MemberUnavailableWarning
from intake_broker.testing import insert_all
from intake_broker.testing.factories import scalar_run
from intake_broker.views.catalog import BrokerCatalog


def write(folder, text, name="facility.yml"):
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


def error_of(path, entry=None) -> CatalogFileError:
    with pytest.raises(CatalogFileError) as info:
        catalog = open_catalog(path)
        if entry is not None:
            catalog[entry]
    return info.value


def test_intake_opens_a_memory_catalog_from_yaml(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          scratch:
            driver: bluesky-memory-catalog
            args: {}
        """,
    )
    cat = intake.open_catalog(str(path))["scratch"]
    assert isinstance(cat, BrokerCatalog) and len(cat) == 0
    assert isinstance(open_catalog(path)["scratch"], BrokerCatalog)


# -- bad input: each error names the file, the line, and what would be valid ----------------------


def test_unknown_driver_names_file_line_entry_and_installed_drivers(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          csx:
            driver: bluesky-jsonl-catalgo
            args: {paths: ["*.jsonl"]}
        """,
    )
    err = error_of(path)
    assert isinstance(err, UnknownDriver) and isinstance(err, BrokerError)
    message = str(err)
    assert message.startswith(f"{path}, line 3, entry 'csx', field 'driver'")
    assert (
        "'bluesky-jsonl-catalgo' is not installed; did you mean 'bluesky-jsonl-catalog'?" in message
    )
    assert "bluesky-memory-catalog" in message and "bluesky-federation-catalog" in message
    assert err.line == 3 and err.field == "sources.csx.driver"


def test_missing_required_argument(tmp_path):
    path = write(
        tmp_path,
        """
        metadata: {facility: test}
        sources:
          chx:
            description: no paths
            driver: bluesky-msgpack-catalog
            args:
              directory: runs
        """,
    )
    message = str(error_of(path))
    assert message.startswith(f"{path}, line 6, entry 'chx', field 'args'")
    assert "needs the argument 'paths' (a string or a list of strings)" in message
    assert "directory" in message and "root_map" in message  # the arguments it does take


def test_wrong_type(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-msgpack-catalog
            args:
              paths: 5
        """,
    )
    message = str(error_of(path))
    assert message == (
        f"{path}, line 5, entry 'chx', field 'args.paths': expected a string or "
        "a list of strings, got 5 (an integer)"
    )


def test_wrong_type_inside_a_mapping_and_a_list(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-msgpack-catalog
            args:
              paths: [runs, 7]
        """,
    )
    assert "line 5" in str(error_of(path))
    path = write(
        tmp_path,
        """
        sources:
          fed:
            driver: bluesky-federation-catalog
            args: {members: [a.yml], timeout: soon}
        """,
    )
    assert "field 'args.timeout': expected a number or null, got 'soon' (a string)" in str(
        error_of(path)
    )


def test_unknown_argument_suggests_the_right_one(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-msgpack-catalog
            args:
              paths: [runs]
              root_mpa: {/a: /b}
        """,
    )
    message = str(error_of(path))
    assert (
        "line 6" in message and "takes no argument 'root_mpa'; did you mean 'root_map'?" in message
    )


def test_unknown_key_of_an_entry(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-memory-catalog
            arg: {}
        """,
    )
    message = str(error_of(path))
    assert message.startswith(
        f"{path}, line 4, entry 'chx', field 'arg': unknown key 'arg'; did you mean 'args'?"
    )
    assert "Valid keys: args, cache, description" in message


def test_bad_user_parameter(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-memory-catalog
            parameters:
              beamtime: {description: which, type: str, colour: red}
        """,
    )
    assert "line 5, entry 'chx', field 'parameters.beamtime': not an intake user parameter" in str(
        error_of(path)
    )


def test_entry_without_driver(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            args: {paths: [runs]}
        """,
    )
    assert "line 2, entry 'chx': missing required key 'driver'" in str(error_of(path))


def test_circular_include_names_the_chain(tmp_path):
    a = write(
        tmp_path,
        """
        sources:
          everything:
            driver: bluesky-federation-catalog
            args:
              members: [b.yml#both]
        """,
        "a.yml",
    )
    b = write(
        tmp_path,
        """
        sources:
          local:
            driver: bluesky-memory-catalog
          both:
            driver: bluesky-federation-catalog
            args:
              members: [b.yml#local, a.yml#everything]
        """,
        "b.yml",
    )
    err = error_of(a)
    message = str(err)
    assert message.startswith(
        f"{b}, line 7, entry 'both', field 'args.members.1': circular reference:"
    )
    assert (
        f"{a}, line 5 (entry 'everything') -> {b}, line 7 (entry 'both') -> {a} "
        "(entry 'everything')"
    ) in message
    assert "name the store entries (file.yml#entry)" in message
    assert str(error_of(b)).count("circular reference") == 1


def test_a_federation_naming_itself(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          loop:
            driver: bluesky-federation-catalog
            args: {members: ["facility.yml#loop"]}
        """,
    )
    assert "line 4, entry 'loop', field 'args.members.0': circular reference" in str(error_of(path))


def test_bad_members(tmp_path):
    for members, expected in [
        ("[missing.yml]", "member file '.*missing.yml' does not exist"),
        ("[facility.yml#nope]", "has no entry 'nope'; its entries: fed"),
        ("[{catalog: facility.yml, entyr: x}]", "unknown key 'entyr'; a member mapping"),
        ("[no-such-catalog-name]", "no catalog named 'no-such-catalog-name' was found"),
        ("[]", "needs at least one member"),
    ]:
        path = write(
            tmp_path,
            f"""
            sources:
              fed:
                driver: bluesky-federation-catalog
                args: {{members: {members}}}
            """,
        )
        with pytest.raises(CatalogFileError, match=expected) as info:
            open_catalog(path)
        assert info.value.line == 4


def test_malformed_variable_reference(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-msgpack-catalog
            args:
              paths: ["${DATA"]
        """,
    )
    assert "line 5, entry 'chx', field 'args.paths.0': '${' is not a variable reference" in str(
        error_of(path)
    )


def test_bad_time_zone(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-memory-catalog
            metadata: {timezone: America/Gotham}
        """,
    )
    assert (
        "line 4, entry 'chx', field 'metadata.timezone': unknown time zone "
        "'America/Gotham'; give an IANA name such as 'America/New_York'" in str(error_of(path))
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        ("sources: [1, 2]", "no 'sources:' mapping"),
        ("sources: {a: {driver: x\n", "not valid YAML"),
        ("just text", "no 'sources:' mapping"),
    ],
)
def test_malformed_yaml_is_a_clear_error(tmp_path, text, expected):
    with pytest.raises(BrokerError, match=expected):
        open_catalog(write(tmp_path, text))


def test_missing_catalog_file(tmp_path):
    with pytest.raises(BrokerError, match="does not exist"):
        open_catalog(tmp_path / "nope.yml")


def test_a_driver_refusing_its_arguments_names_the_entry(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          nothing:
            driver: bluesky-msgpack-catalog
            args: {paths: []}
        """,
    )
    assert "line 2, entry 'nothing': driver 'bluesky-msgpack-catalog' refused its arguments" in str(
        error_of(path, "nothing")
    )


def test_a_known_driver_that_is_not_installed_fails_only_its_entry(tmp_path, monkeypatch):
    monkeypatch.setitem(
        OPTIONAL_DRIVERS,
        "bluesky-future-catalog",
        "intake-broker-future (pip install ./drivers/future)",
    )
    path = write(
        tmp_path,
        """
        sources:
          future:
            driver: bluesky-future-catalog
            args: {anything: 1}
          here:
            driver: bluesky-memory-catalog
          both:
            driver: bluesky-federation-catalog
            args: {members: [facility.yml]}
        """,
    )
    cat = open_catalog(path)
    assert isinstance(cat["here"], BrokerCatalog)
    with pytest.raises(UnknownDriver, match=r"line 3, .*comes with intake-broker-future"):
        cat["future"]
    with pytest.warns(MemberUnavailableWarning, match="'facility/future' is left out"):
        both = cat["both"]
    assert list(both.store.members) == ["facility/here"]


# -- environment variables ---------------------------------------------------------------------


SECRET_YAML = """
    sources:
      iss:
        driver: bluesky-msgpack-catalog
        args:
          paths: ["${RUNS_ROOT}/iss"]
          create: true
          storage_options: {password: "${ISS_TEST_PASSWORD}"}
      chx:
        driver: bluesky-msgpack-catalog
        args:
          paths: ["{{ env(CHX_TEST_ROOT) }}/chx"]
          create: true
      defaults:
        driver: bluesky-msgpack-catalog
        args:
          paths: ["${UNSET_TEST_ROOT:-/data}/runs", "$${NOT_A_VARIABLE}"]
          create: true
    """


def test_an_unset_variable_is_an_error_naming_file_line_and_variable(tmp_path, monkeypatch):
    for name in ("RUNS_ROOT", "ISS_TEST_PASSWORD", "CHX_TEST_ROOT", "UNSET_TEST_ROOT"):
        monkeypatch.delenv(name, raising=False)
    path = write(tmp_path, SECRET_YAML)
    cat = open_catalog(path)  # opening the file needs no variable; opening an entry does
    message = str(error_of(path, "iss"))
    assert message.startswith(
        f"{path}, line 5, entry 'iss', field 'args.paths.0': environment "
        "variable RUNS_ROOT is not set"
    )
    assert "${RUNS_ROOT:-value}" in message
    assert "line 11" in str(error_of(path, "chx"))  # intake's {{ env(NAME) }} too
    assert cat["defaults"].store.paths == ["/data/runs", f"{tmp_path}/${{NOT_A_VARIABLE}}"]


def test_secrets_come_from_the_environment_and_stay_out_of_the_description(tmp_path, monkeypatch):
    monkeypatch.setenv("RUNS_ROOT", str(tmp_path))
    monkeypatch.setenv("ISS_TEST_PASSWORD", "hunter2")
    monkeypatch.setenv("CHX_TEST_ROOT", str(tmp_path))
    cat = open_catalog(write(tmp_path, SECRET_YAML))
    iss = cat["iss"]
    assert iss.store.paths == [f"{tmp_path}/iss"]
    assert iss.store.storage_options == {"password": "hunter2"}
    assert "hunter2" not in str(cat._entries["iss"].describe())
    assert cat["chx"].store.paths == [f"{tmp_path}/chx"]


def test_expand_variables():
    env = {"A": "1", "EMPTY": ""}
    assert expand_variables("${A}/${B:-2}/${EMPTY:-3}/$${A}/$5", env) == "1/2/3/${A}/$5"
    with pytest.raises(KeyError, match="B"):
        expand_variables("${B}", env)


# -- paths, handlers, time zones ---------------------------------------------------------------


def test_relative_paths_are_relative_to_the_yaml_folder(tmp_path, monkeypatch):
    folder = tmp_path / "catalogs"
    folder.mkdir()
    monkeypatch.chdir(tmp_path)
    path = write(
        folder,
        """
        metadata: {timezone: Europe/Berlin}
        sources:
          local:
            driver: bluesky-msgpack-catalog
            args:
              paths: [runs, /abs/runs, "s3://bucket/runs/*.msgpack"]
              directory: runs
              root_map: {/old/root: assets, /other: /new}
              handler_registry: {NPY_SEQ: intake_broker.assets.handlers.NumpySeqHandler}
              create: true
            metadata: {timezone: UTC}
          inherits:
            driver: bluesky-memory-catalog
        """,
    )
    cat = open_catalog(path)
    local = cat["local"]
    assert local.store.paths == [f"{folder}/runs", "/abs/runs", "s3://bucket/runs/*.msgpack"]
    assert local.store.directory == f"{folder}/runs"
    assert local._assets["root_map"] == {"/old/root": f"{folder}/assets", "/other": "/new"}
    from intake_broker.assets.handlers import NumpySeqHandler

    assert local._assets["handler_registry"] == {"NPY_SEQ": NumpySeqHandler}
    assert local.metadata["timezone"] == "UTC"
    assert cat["inherits"].metadata["timezone"] == "Europe/Berlin"


def test_resolve_path():
    assert resolve_path("runs", "/cat/") == "/cat/runs"
    assert resolve_path("runs/", "/cat/") == "/cat/runs/"
    assert resolve_path("sqlite:///index.sqlite", "/cat/") == "sqlite:////cat/index.sqlite"
    assert resolve_path("sqlite:////abs/index.sqlite", "/cat/") == "sqlite:////abs/index.sqlite"
    assert resolve_path("sqlite:///:memory:", "/cat/") == "sqlite:///:memory:"
    assert resolve_path("postgresql://u@h/db", "/cat/") == "postgresql://u@h/db"
    assert resolve_path("memory://runs", "/cat/") == "memory://runs"
    assert resolve_path("runs", "s3://bucket/cats/") == "s3://bucket/cats/runs"


def test_a_handler_that_cannot_be_imported(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          chx:
            driver: bluesky-msgpack-catalog
            args:
              paths: [runs]
              handler_registry:
                AD_HDF5: no_such_package.handlers.Handler
                BAD: not a name
        """,
    )
    assert (
        "line 8, entry 'chx', field 'args.handler_registry.BAD': handler 'not a name' is "
        "not a dotted name" in str(error_of(path))
    )
    path.write_text(path.read_text().replace("        BAD: not a name\n", ""))
    assert (
        "line 7, entry 'chx', field 'args.handler_registry.AD_HDF5': cannot import handler"
        in str(error_of(path, "chx"))
    )


# -- the example catalogs ------------------------------------------------------------------------


def test_plain_intake_still_opens_the_plain_entries(facility):
    cat = intake.open_catalog(facility.path("nsls2.yml"))
    chx = cat["chx"]  # written with {{ CATALOG_DIR }} only: intake alone resolves it
    assert isinstance(chx, BrokerCatalog)
    expected = [u for u in facility.newest_first() if "nsls2/chx" in facility.holders[u]]
    assert list(chx) == expected


def test_plain_intake_opens_the_federation_once_its_driver_is_registered(facility):
    from intake_broker.catalogs.files import ensure_core_drivers

    ensure_core_drivers()  # what the bluesky-federation-catalog entry point will do
    everything = intake.open_catalog(facility.path("federation.yml"))["everything"]
    assert isinstance(everything, FederatedCatalog)
    assert list(everything) == facility.newest_first()


def test_the_example_catalogs_open_and_check(facility):
    for name in ("nsls2.yml", "aps.yml", "federation.yml"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            cat = open_catalog(facility.path(name))
        assert len(list(cat)) >= 2
    everything = open_catalog(facility.path("federation.yml"))["everything"]
    assert isinstance(everything, FederatedCatalog)
    assert everything.store.timeout == 5


def test_inserting_through_a_yaml_entry_writes_beside_the_yaml(tmp_path):
    path = write(
        tmp_path,
        """
        sources:
          local:
            driver: bluesky-jsonl-catalog
            args: {paths: [runs], directory: runs}
        """,
    )
    (tmp_path / "runs").mkdir()
    local = open_catalog(path)["local"]
    insert_all(local.store, scalar_run())
    assert len(list((tmp_path / "runs").glob("*.jsonl"))) == 1

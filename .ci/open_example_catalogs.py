"""Open every entry of every catalogs/*.yml through plain ``intake.open_catalog`` (run by the
minimal venv of README command 1, with nothing of the test extras); fail if one does not open,
or if opening creates a file. Entries whose servers are not given (no ``ISS_MONGO_HOST`` or
``ARCHIVE_S3_ENDPOINT`` in the environment) are skipped, and say so."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import intake

NEEDS = {"iss": "ISS_MONGO_HOST", "archive": "ARCHIVE_S3_ENDPOINT"}


def main(folder: Path) -> int:
    import os

    import yaml

    before = sorted(p for p in folder.rglob("*"))
    opened = failed = skipped = 0
    for path in sorted(folder.glob("*.y*ml")):
        for entry in yaml.safe_load(path.read_text())["sources"]:
            # federations name the S3 and MongoDB entries as members too
            need = NEEDS.get(entry)
            if need and need not in os.environ:
                print(f"SKIP {path.name}#{entry}: no server ({need} is not set)")
                skipped += 1
                continue
            try:
                with warnings.catch_warnings(record=True) as caught:
                    warnings.simplefilter("always")
                    cat = intake.open_catalog(str(path))[entry]
                    runs = len(cat)
                print(f"ok   {path.name}#{entry}: {type(cat).__name__}, {runs} runs")
                for warning in caught:
                    print(f"     warning: {warning.message}")
                opened += 1
            except Exception as err:
                print(f"FAIL {path.name}#{entry}: {type(err).__name__}: {err}")
                failed += 1
    after = sorted(p for p in folder.rglob("*"))
    if after != before:
        print(f"FAIL opening created files: {sorted(set(after) - set(before))}")
        failed += 1
    print(f"minimal install: {opened} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))

"""A publication package: a folder (and optionally a zip) a data repository accepts.

``run.export("package", dest, title=..., licence=..., creators=[...], data="nexus")`` writes::

    dest/
      documents/<uid>.jsonl      every document of each run (suitcase-jsonl; ingest reads it)
      data/...                   the runs in the chosen data format (nexus by default)
      datacite.json              DataCite metadata (the attributes of DataCite's JSON API)
      manifest.json              the export's manifest: every file, its size and SHA-256
      ro-crate-metadata.json     RO-Crate 1.1 (JSON-LD): the root dataset, licence, creators,
                                 and every file above with its size and SHA-256
      package.zip                with zip=True: the folder above as one zip (crate at its root),
      package.zip.sha256         and its checksum (``sha256sum -c`` reads it)

The metadata are taken from the arguments (title, licence, creators, description, keywords,
publisher, version, related identifiers) and from the runs' start and stop documents (the dates
the data were collected; creators from ``operator`` / ``user`` / ``principal_investigator``
when none are given; sample names as keywords). A package without a title or a licence is
refused: a repository will not publish it. The RO-Crate and DataCite JSON are written by hand
(no dependency); RO-Crate 1.1's JSON-LD context is extended with schema.org's ``sha256``.

The folder is the resumable working copy (an export that stopped continues); the crate, the
DataCite record and the zip are rewritten at the end of every export to it.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import zipfile
from collections.abc import Sequence
from pathlib import PurePosixPath
from typing import Any, ClassVar

from intake_broker.errors import ExportError
from intake_broker.export.base import (
    MANIFEST,
    Destination,
    Exporter,
    FileRecord,
    Manifest,
    RunExport,
    safe_name,
)

CRATE = "ro-crate-metadata.json"
DATACITE = "datacite.json"
ZIP = "package.zip"
#: Limits of the metadata arguments (characters, entries).
MAX_TEXT = 500
MAX_DESCRIPTION = 20_000
MAX_ENTRIES = 200

#: DataCite 4.5 relationType values.
RELATIONS = frozenset(
    "IsCitedBy Cites IsSupplementTo IsSupplementedBy IsContinuedBy Continues IsDescribedBy "
    "Describes HasMetadata IsMetadataFor HasVersion IsVersionOf IsNewVersionOf "
    "IsPreviousVersionOf IsPartOf HasPart IsPublishedIn IsReferencedBy References "
    "IsDocumentedBy Documents IsCompiledBy Compiles IsVariantFormOf IsOriginalFormOf "
    "IsIdenticalTo IsReviewedBy Reviews IsDerivedFrom IsSourceOf IsRequiredBy Requires "
    "IsObsoletedBy Obsoletes Collects IsCollectedBy".split()
)
#: Start-document keys whose values name people (used when no creators are given).
PEOPLE_KEYS = ("creators", "operator", "user", "users", "principal_investigator", "pi_name")

_SPDX = re.compile(r"[A-Za-z0-9][A-Za-z0-9.+-]{0,63}")
_ORCID = re.compile(r"(?:https?://orcid\.org/)?(\d{4}-\d{4}-\d{4}-\d{3}[\dX])")
_DOI = re.compile(r"(?:https?://(?:dx\.)?doi\.org/|doi:)?(10\.\d{4,9}/\S+)")

_MEDIA = {
    ".jsonl": "application/x-ndjson",
    ".json": "application/json",
    ".msgpack": "application/msgpack",
    ".nxs": "application/x-hdf5",
    ".parquet": "application/vnd.apache.parquet",
    ".csv": "text/csv",
    ".tsv": "text/tab-separated-values",
    ".tif": "image/tiff",
}


def _text(value: Any, what: str, limit: int = MAX_TEXT) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ExportError(f"{what} must be a non-empty text, not {value!r}")
    if len(value) > limit:
        raise ExportError(f"{what} has {len(value)} characters; at most {limit}")
    return value.strip()


def _entries(value: Any, what: str) -> list:
    if value is None:
        return []
    if isinstance(value, (str, dict)):
        value = [value]
    if not isinstance(value, (list, tuple)):
        raise ExportError(f"{what} must be a list, not {type(value).__name__}")
    if len(value) > MAX_ENTRIES:
        raise ExportError(f"{what} has {len(value)} entries; at most {MAX_ENTRIES}")
    return list(value)


def licence_entity(licence: str) -> tuple[str, str]:
    """``(url, identifier)`` of a licence given as an SPDX identifier or a URL."""
    if re.match(r"https?://", licence):
        return licence, licence.rstrip("/").rsplit("/", 1)[-1]
    if not _SPDX.fullmatch(licence):
        raise ExportError(
            f"licence={licence!r}: give an SPDX identifier (CC-BY-4.0, CC0-1.0, ...) or the "
            "licence's URL"
        )
    return f"https://spdx.org/licenses/{licence}", licence


def _creator(value: Any, where: str) -> dict:
    """A creator as ``{"name", "orcid", "affiliation"}`` from text or a mapping."""
    if isinstance(value, str):
        return {"name": _text(value, where)}
    if not isinstance(value, dict) or "name" not in value:
        raise ExportError(
            f"{where}: a creator is a name ('Curie, Marie') or a mapping with 'name' and "
            "optionally 'orcid' and 'affiliation', not {value!r}"
        )
    unknown = sorted(set(value) - {"name", "orcid", "affiliation"})
    if unknown:
        raise ExportError(
            f"{where}: unknown keys {unknown}; a creator has name, orcid, affiliation"
        )
    out = {"name": _text(value["name"], f"{where}.name")}
    if value.get("orcid"):
        match = _ORCID.fullmatch(str(value["orcid"]))
        if not match:
            raise ExportError(
                f"{where}.orcid={value['orcid']!r}: an ORCID looks like 0000-0002-1825-0097"
            )
        out["orcid"] = match.group(1)
    if value.get("affiliation"):
        out["affiliation"] = _text(value["affiliation"], f"{where}.affiliation")
    return out


def _related(value: Any, where: str) -> dict:
    """A related identifier as ``{"identifier", "type", "relation"}``."""
    if isinstance(value, str):
        value = {"identifier": value}
    if not isinstance(value, dict) or "identifier" not in value:
        raise ExportError(
            f"{where}: a related identifier is a DOI or URL, or a mapping with 'identifier' "
            "and optionally 'relation' (DataCite relationType, default References)"
        )
    ident = _text(value["identifier"], f"{where}.identifier")
    relation = value.get("relation", "References")
    if relation not in RELATIONS:
        raise ExportError(
            f"{where}.relation={relation!r} is not a DataCite relationType; e.g. IsSupplementTo, "
            "References, IsDerivedFrom, IsPartOf"
        )
    doi = _DOI.fullmatch(ident)
    if doi:
        return {"identifier": doi.group(1), "type": "DOI", "relation": relation}
    if re.match(r"https?://", ident):
        return {"identifier": ident, "type": "URL", "relation": relation}
    raise ExportError(f"{where}: {ident!r} is neither a DOI (10.xxxx/...) nor an http(s) URL")


def _iso(t: float | None) -> str | None:
    if t is None:
        return None
    return dt.datetime.fromtimestamp(float(t), dt.UTC).isoformat(timespec="seconds")


class PackageExporter(Exporter):
    """A publication package: documents (jsonl), data in a chosen format, RO-Crate and
    DataCite metadata, the manifest with checksums, optionally a zip. ``title`` and
    ``licence`` are required."""

    name = "package"
    carries_documents = True
    defaults: ClassVar[dict[str, Any]] = {
        "title": None,
        "licence": None,
        "license": None,
        "creators": None,
        "description": None,
        "keywords": None,
        "publisher": None,
        "version": None,
        "related_identifiers": None,
        "data": "nexus",
        "data_options": None,
        "zip": False,
    }

    def __init__(self, **options: Any):
        super().__init__(**options)
        o = self.options
        if o["licence"] is None:
            o["licence"] = o["license"]
        o.pop("license")
        if not o["title"]:
            raise ExportError(
                "the package format needs a title (title='...'): a repository shows it and "
                "citations name it"
            )
        if not o["licence"]:
            raise ExportError(
                "the package format needs a licence (licence='CC-BY-4.0', an SPDX identifier "
                "or a URL): a repository publishes no data without one"
            )
        o["title"] = _text(o["title"], "title")
        o["licence"] = _text(o["licence"], "licence")
        licence_entity(o["licence"])
        o["creators"] = [
            _creator(c, f"creators[{i}]") for i, c in enumerate(_entries(o["creators"], "creators"))
        ]
        o["related_identifiers"] = [
            _related(r, f"related_identifiers[{i}]")
            for i, r in enumerate(_entries(o["related_identifiers"], "related_identifiers"))
        ]
        o["keywords"] = [
            _text(k, f"keywords[{i}]", 100)
            for i, k in enumerate(_entries(o["keywords"], "keywords"))
        ]
        for key in ("publisher", "version"):
            if o[key] is not None:
                o[key] = _text(str(o[key]), key)
        if o["description"] is not None:
            o["description"] = _text(o["description"], "description", MAX_DESCRIPTION)
        if not isinstance(o["zip"], bool):
            raise ExportError(f"zip={o['zip']!r}: true (a package.zip too) or false")
        from intake_broker.export import FORMATS, exporter

        if o["data"] not in FORMATS or o["data"] in ("package", "jsonl"):
            choices = sorted(set(FORMATS) - {"package", "jsonl"})
            raise ExportError(
                f"data={o['data']!r}: the package holds the documents as jsonl and the data in "
                f"one of {', '.join(choices)}"
            )
        if o["data_options"] is not None and not isinstance(o["data_options"], dict):
            raise ExportError(
                f"data_options={o['data_options']!r}: a mapping of the format's options"
            )
        self.documents = exporter("jsonl")
        self.data = exporter(o["data"], **(o["data_options"] or {}))

    def write_run(
        self,
        run: Any,
        dest: Destination,
        *,
        streams: Sequence[str] | None = None,
        fields: Sequence[str] | None = None,
    ) -> RunExport:
        record = self.new_record(run)
        self.documents.block_bytes = self.data.block_bytes = self.block_bytes
        docs = self.documents.write_run(run, dest.under("documents"))
        data = self.data.write_run(run, dest.under("data"), streams=streams, fields=fields)
        for folder, part in (("documents", docs), ("data", data)):
            record.files.extend(
                FileRecord(f"{folder}/{f.path}", f.bytes, f.sha256) for f in part.files
            )
        record.skipped.extend(data.skipped)
        return record

    # -- the metadata of the whole package ---------------------------------------------------------

    def finish(self, dest: Destination, manifest: Manifest) -> None:
        runs = [_run_summary(dest, uid) for uid in manifest.runs]
        datacite = self.datacite(runs, manifest)
        listed = [dest.write_text(DATACITE, json.dumps(datacite, indent=1, sort_keys=True))]
        manifest.extra["package"] = {"datacite": DATACITE, "crate": CRATE}
        listed.append(dest.write_text(MANIFEST, manifest.to_json()))
        crate = self.crate(runs, manifest, listed)
        dest.write_text(CRATE, json.dumps(crate, indent=1))
        if self.options["zip"]:
            self._zip(dest, [*manifest.files, *listed, FileRecord(CRATE, 0, "")])

    def _creators(self, runs: list[dict]) -> list[dict]:
        if self.options["creators"]:
            return list(self.options["creators"])
        names: list[str] = []
        for run in runs:
            for key in PEOPLE_KEYS:
                value = run["start"].get(key)
                for name in [value] if isinstance(value, str) else value or []:
                    if isinstance(name, str) and name.strip() and name not in names:
                        names.append(name.strip()[:MAX_TEXT])
        return [{"name": n} for n in names[:MAX_ENTRIES]]

    def _dates(self, runs: list[dict]) -> tuple[str | None, str | None]:
        starts = [r["start"].get("time") for r in runs if r["start"].get("time") is not None]
        stops = [r["stop"].get("time") for r in runs if r["stop"] and r["stop"].get("time")]
        first = min(starts) if starts else None
        last = max(stops or starts) if (stops or starts) else None
        return _iso(first), _iso(last)

    def _keywords(self, runs: list[dict]) -> list[str]:
        words = list(self.options["keywords"])
        for run in runs:
            sample = run["start"].get("sample")
            name = sample.get("name") if isinstance(sample, dict) else sample
            if isinstance(name, str) and name and name not in words:
                words.append(name[:100])
        return words[:MAX_ENTRIES]

    def _description(self, runs: list[dict]) -> str:
        if self.options["description"]:
            return self.options["description"]
        plans = sorted({str(r["start"].get("plan_name")) for r in runs if r["start"]})
        return (
            f"{len(runs)} Bluesky run(s) ({', '.join(plans) or 'no plans'}): the event-model "
            f"documents (JSON lines) and the data as {self.options['data']}, exported by "
            "intake-broker"
        )

    def datacite(self, runs: list[dict], manifest: Manifest) -> dict:
        """The DataCite metadata record (the ``attributes`` of DataCite's JSON API, schema 4)."""
        o = self.options
        url, ident = licence_entity(o["licence"])
        first, last = self._dates(runs)
        today = dt.date.today().isoformat()
        creators = []
        for c in self._creators(runs) or [{"name": "(:unav)"}]:
            entry: dict[str, Any] = {"name": c["name"]}
            if c["name"] != "(:unav)":
                entry["nameType"] = "Personal"
                if "," in c["name"]:
                    family, given = (p.strip() for p in c["name"].split(",", 1))
                    entry.update(familyName=family, givenName=given)
            if c.get("orcid"):
                entry["nameIdentifiers"] = [
                    {
                        "nameIdentifier": f"https://orcid.org/{c['orcid']}",
                        "nameIdentifierScheme": "ORCID",
                        "schemeUri": "https://orcid.org",
                    }
                ]
            if c.get("affiliation"):
                entry["affiliation"] = [{"name": c["affiliation"]}]
            creators.append(entry)
        dates = [{"date": today, "dateType": "Created"}]
        if first:
            dates.append({"date": f"{first}/{last}", "dateType": "Collected"})
        record: dict[str, Any] = {
            "types": {"resourceTypeGeneral": "Dataset", "resourceType": "Bluesky runs"},
            "titles": [{"title": o["title"]}],
            "creators": creators,
            "publisher": {"name": o["publisher"] or "(:unav)"},
            "publicationYear": str(dt.date.today().year),
            "dates": dates,
            "rightsList": [
                {
                    "rights": ident,
                    "rightsUri": url,
                    **(
                        {"rightsIdentifier": ident.lower(), "rightsIdentifierScheme": "SPDX"}
                        if not re.match(r"https?://", o["licence"])
                        else {}
                    ),
                }
            ],
            "descriptions": [
                {"description": self._description(runs), "descriptionType": "Abstract"}
            ],
            "subjects": [{"subject": k} for k in self._keywords(runs)],
            "relatedIdentifiers": [
                {
                    "relatedIdentifier": r["identifier"],
                    "relatedIdentifierType": r["type"],
                    "relationType": r["relation"],
                }
                for r in o["related_identifiers"]
            ],
            "formats": sorted({_media(f.path) for f in manifest.files}),
            "sizes": [f"{sum(f.bytes for f in manifest.files)} bytes", f"{len(runs)} runs"],
        }
        if o["version"]:
            record["version"] = o["version"]
        return record

    def crate(self, runs: list[dict], manifest: Manifest, extra: list[FileRecord]) -> dict:
        """The RO-Crate 1.1 metadata (JSON-LD) of the package."""
        o = self.options
        url, ident = licence_entity(o["licence"])
        first, last = self._dates(runs)
        graph: list[dict] = [
            {
                "@id": CRATE,
                "@type": "CreativeWork",
                "conformsTo": {"@id": "https://w3id.org/ro/crate/1.1"},
                "about": {"@id": "./"},
            }
        ]
        root: dict[str, Any] = {
            "@id": "./",
            "@type": "Dataset",
            "name": o["title"],
            "description": self._description(runs),
            "datePublished": dt.date.today().isoformat(),
            "license": {"@id": url},
            "keywords": self._keywords(runs),
            "hasPart": [],
        }
        graph.append(root)
        graph.append({"@id": url, "@type": "CreativeWork", "name": ident, "identifier": ident})
        if first:
            root["temporalCoverage"] = f"{first}/{last}"
        if o["version"]:
            root["version"] = o["version"]
        if o["publisher"]:
            root["publisher"] = {"@id": "#publisher"}
            graph.append({"@id": "#publisher", "@type": "Organization", "name": o["publisher"]})
        authors = []
        organizations: dict[str, str] = {}
        for i, c in enumerate(self._creators(runs)):
            pid = f"https://orcid.org/{c['orcid']}" if c.get("orcid") else f"#creator-{i + 1}"
            person: dict[str, Any] = {"@id": pid, "@type": "Person", "name": c["name"]}
            if c.get("affiliation"):
                oid = organizations.setdefault(
                    c["affiliation"], f"#organization-{len(organizations) + 1}"
                )
                person["affiliation"] = {"@id": oid}
            authors.append({"@id": pid})
            graph.append(person)
        for name, oid in organizations.items():
            graph.append({"@id": oid, "@type": "Organization", "name": name})
        if authors:
            root["author"] = authors
        for r in o["related_identifiers"]:
            rid = f"https://doi.org/{r['identifier']}" if r["type"] == "DOI" else r["identifier"]
            prop = "isBasedOn" if r["relation"] == "IsDerivedFrom" else "citation"
            root.setdefault(prop, []).append({"@id": rid})
            graph.append(
                {
                    "@id": rid,
                    "@type": "CreativeWork",
                    "identifier": r["identifier"],
                    "description": f"DataCite relationType {r['relation']}",
                }  # fmt: skip
            )
        for uid, run in manifest.runs.items():
            summary: dict = next((s for s in runs if s["uid"] == uid), {"start": {}})
            start = summary["start"]
            graph.append(
                {
                    "@id": f"#run-{uid}",
                    "@type": "CreativeWork",
                    "identifier": uid,
                    "name": f"Bluesky run {uid} (scan_id {run.scan_id}, {run.plan_name})",
                    **({"dateCreated": _iso(start["time"])} if start.get("time") else {}),
                }
            )
            for f in run.files:
                graph.append(_file_entity(f, about=f"#run-{uid}"))
                root["hasPart"].append({"@id": f.path})
        for f in extra:
            graph.append(_file_entity(f))
            root["hasPart"].append({"@id": f.path})
        return {
            "@context": [
                "https://w3id.org/ro/crate/1.1/context",
                {"sha256": "http://schema.org/sha256"},
            ],
            "@graph": graph,
        }

    @staticmethod
    def _zip(dest: Destination, files: list[FileRecord]) -> None:
        with dest.writing(ZIP) as (path, records):
            with zipfile.ZipFile(path, "w", allowZip64=True) as archive:
                for f in files:
                    compress = PurePosixPath(f.path).suffix in _MEDIA and not f.path.endswith(
                        (".nxs", ".parquet", ".tif")
                    )
                    info = zipfile.ZipInfo(f.path, date_time=(2000, 1, 1, 0, 0, 0))
                    info.compress_type = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
                    with dest.fs.open(dest.path(f.path), "rb") as src:
                        with archive.open(info, "w", force_zip64=True) as out:
                            while block := src.read(4 * 2**20):
                                out.write(block)
        record = records[0]
        dest.write_text(f"{ZIP}.sha256", f"{record.sha256}  {ZIP}\n")


def _media(path: str) -> str:
    return _MEDIA.get(PurePosixPath(path).suffix, "application/octet-stream")


def _file_entity(f: FileRecord, about: str | None = None) -> dict:
    entity: dict[str, Any] = {
        "@id": f.path,
        "@type": "File",
        "name": PurePosixPath(f.path).name,
        "contentSize": str(f.bytes),
        "encodingFormat": _media(f.path),
        "sha256": f.sha256,
    }
    if about:
        entity["about"] = {"@id": about}
    return entity


def _run_summary(dest: Destination, uid: str) -> dict:
    """A run's start and stop documents, read back from its documents file (the first and
    the last line), so a resumed export describes the runs written before too."""
    rel = dest.path(f"documents/{safe_name(uid)}.jsonl")
    start: dict = {}
    stop: dict = {}
    try:
        with dest.fs.open(rel, "rb") as f:
            first = f.readline()
            size = dest.size(f"documents/{safe_name(uid)}.jsonl") or 0
            f.seek(max(0, size - 2**20))
            tail = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
        name, doc = json.loads(first)
        start = doc if name == "start" else {}
        name, doc = json.loads(tail)
        stop = doc if name == "stop" else {}
    except (OSError, ValueError):
        pass
    return {"uid": uid, "start": start, "stop": stop}

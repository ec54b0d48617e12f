"""The exceptions of intake-broker.

Every error derives from :class:`BrokerError` and from the built-in exception a caller would
naturally catch (``KeyError`` for a missing run, ``ValueError`` for a bad document, ...), so that
both ``except BrokerError`` and ``except KeyError`` work. Messages say what was wrong and what
would be right.
"""

from __future__ import annotations


class BrokerError(Exception):
    """Base class of every error raised by intake-broker."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain
        return str(self.args[0]) if self.args else ""


class RunNotFound(BrokerError, KeyError):
    """No run matches the uid, uid prefix, scan_id or index that was asked for."""


class RunIndexError(RunNotFound, IndexError):
    """A negative index reaches past the oldest run (``cat[-100]`` of 6 runs): a ``KeyError``
    as every missing run is, and an ``IndexError`` as databroker raised."""


class AmbiguousUID(BrokerError, KeyError):
    """A uid prefix matches more than one run; ``candidates`` lists the matching uids."""

    def __init__(self, prefix: str, candidates: list[str]):
        self.prefix = prefix
        self.candidates = list(candidates)
        shown = ", ".join(self.candidates[:10]) + (" ..." if len(self.candidates) > 10 else "")
        super().__init__(
            f"uid prefix {prefix!r} matches {len(self.candidates)} runs ({shown}); "
            "give more characters of the uid"
        )


class StreamNotFound(BrokerError, KeyError):
    """A run has no stream of the requested name."""


class FieldNotFound(BrokerError, KeyError):
    """A stream has no data key of the requested name."""


class ConfigurationNotFound(BrokerError, KeyError):
    """A stream has no configuration of the requested device (``run.primary.config["det"]``)."""


class DescriptorNotFound(BrokerError, KeyError):
    """A store holds no descriptor of the requested uid."""


class ResourceNotFound(BrokerError, KeyError):
    """A run holds no resource (or stream_resource) of the requested uid."""


class InvalidDocument(BrokerError, ValueError):
    """A document is malformed, fails its event-model schema, or refers to something unknown."""


class DocumentConflict(BrokerError, ValueError):
    """A document reuses the uid of a stored document but differs from it."""


class BadQuery(BrokerError, ValueError):
    """A query cannot be understood: unknown type, operator or malformed argument."""


class NotSupported(BrokerError, TypeError):
    """A store was asked for an optional ability it does not have (see
    :mod:`intake_broker.store.abilities`): the one "not supported" error."""


class ReadOnlyStore(NotSupported):
    """A write was attempted on a store that cannot be written."""


class WriteDenied(BrokerError, PermissionError):
    """A document would go into a run its writer may not write: a new run outside their
    proposals, or a run they may read but that is not theirs (a public one, say)."""


class UnknownDriver(BrokerError, LookupError):
    """A catalog names a driver or store that is not installed."""


class CorruptFile(BrokerError, ValueError):
    """A stored file cannot be read: truncated, not JSON/msgpack, or not documents."""


class CopyMismatch(BrokerError, RuntimeError):
    """After copying a run, the destination does not hold the events the source holds."""


class DeadlineExceeded(BrokerError, TimeoutError):
    """Work ran past the deadline it was given (see :mod:`intake_broker.deadline`): a query
    too costly to answer in time. Narrow the query, or ask for less at once."""


class InvalidArgument(BrokerError, ValueError):
    """An argument of a reshaping or muxing call (``align``, ``merge_runs``, ``resample``, ...)
    has a value that cannot be used: the message says which and what would be right."""


class WrongArgumentType(InvalidArgument, TypeError):
    """An argument has the wrong type (a tolerance given as a string, say)."""


class NotMonotonic(BrokerError, ValueError):
    """A time axis that must ascend does not (events recorded out of order, a clock reset)."""


class IncompatibleShapes(BrokerError, ValueError):
    """Arrays cannot be put together: a field's shape differs between the runs being merged,
    or the groups being stacked differ in length."""


class ExportError(BrokerError, OSError):
    """An export cannot be written: the destination is unwritable or full, it holds an export
    of another format, or a run cannot be put in the chosen format. Nothing is left under the
    name of a file that was not written whole."""


class BadMapping(BrokerError, ValueError):
    """A NeXus mapping (the "NeXus dictionary" of a beamline) is malformed: the message names
    the entry and what a valid one looks like."""


class BadAnnotation(BrokerError, ValueError):
    """An annotation change is malformed: a tag that is not a string, a value that is not
    JSON, a note over the size limit, an unknown visibility. Nothing is stored."""


class AnnotationConflict(BrokerError, ValueError):
    """An annotation changed since its writer read it (``if_version`` is stale, or another
    writer got there first). ``current`` holds the annotation as it is now (a dict, or None
    when it does not exist yet); nothing was stored."""

    def __init__(self, message: str, current: dict | None = None):
        super().__init__(message)
        self.current = current


class StoreNotFound(BrokerError, FileNotFoundError):
    """A catalog names a store, folder, file, index or bucket that does not exist (a typo, or a
    store nothing has been written to yet). The message names the catalog entry and its file,
    what was looked for, and how to declare a store that is created by its first write."""


class EmptyLocationWarning(UserWarning):
    """A catalog's glob or folder exists but holds no run yet: the catalog is empty for now."""


class SourceNotFound(BrokerError, FileNotFoundError):
    """A path, folder, glob or bucket a catalog was given does not exist or cannot be listed;
    the message names it and what was looked for."""

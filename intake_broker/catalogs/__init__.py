"""YAML catalogs: the file format (:mod:`~intake_broker.catalogs.spec`), checking an entry's
arguments against its driver (:mod:`~intake_broker.catalogs.arguments`), reading files
(:mod:`~intake_broker.catalogs.files`), finding them where users keep them
(:mod:`~intake_broker.catalogs.discovery`), saved queries (:mod:`~intake_broker.catalogs.saved`)
and the entry points of it all (:mod:`~intake_broker.catalogs.config`: ``open_catalog``,
``default_catalog``)."""

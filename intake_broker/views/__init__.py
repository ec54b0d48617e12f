"""What a user holds: catalogs of runs (:mod:`~intake_broker.views.catalog`), runs as catalogs
of streams, streams as lazy xarray datasets (:mod:`~intake_broker.views.stream`), what data
keys mean as arrays (:mod:`~intake_broker.views.datakeys`) and filled documents
(:mod:`~intake_broker.views.filling`). Built once, on the store contract, for every store."""

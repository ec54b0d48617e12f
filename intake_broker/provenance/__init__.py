"""Provenance and pipelines (work in progress, issue #21): derived results stored as ordinary
runs whose start document records their inputs, code, parameters and environment
(:mod:`.record`, :mod:`.writer`), functions of runs run over a search (:mod:`.pipeline`),
and runs shipped to dask workers by reference (:mod:`.shipping`)."""

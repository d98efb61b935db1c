"""Where MemberLens's data lives, apart from what it computes.

* :mod:`~analytics.storage.contract`: the warehouse contract (the tables every analysis reads, their keys,
  references, time columns and allowed values);
* :mod:`~analytics.storage.warehouse`: which warehouse to use, opening it read-only, the schema check;
* :mod:`~analytics.storage.db`: one way to get a connection and read a frame;
* :mod:`~analytics.storage.bulkload`: Arrow batches into DuckDB or PostgreSQL (demo builds and imports);
* :mod:`~analytics.storage.appstate`: the app-state database (saved audiences, audit log);
* :mod:`~analytics.storage.score_store`: scores MemberLens keeps beside an embedded warehouse, read by targeting
  conditions on a score.

The demo generator (:mod:`analytics.synthetic`) and the importers (:mod:`analytics.importers`) are the two
ways data gets into the warehouse; they build on these modules and on no analysis.
"""

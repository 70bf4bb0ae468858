"""The tile cache: satellite/orthophoto tiles for visual navigation (ROS-free core).

* :mod:`.identity`   tile ids and location hashes (UUIDv5, pinned namespace)
* :mod:`.geo`        web-mercator z/x/y <-> latitude/longitude
* :mod:`.config`     :class:`TileCacheConfig`
* :mod:`.errors`     the run-time error family under :class:`TileCacheError`
* :mod:`.migrations` schema upgrades (Alembic in ``db/``) at start-up
* :mod:`.store`      :class:`PostgresFilesystemStore`: PostgreSQL metadata + JPEG files
* :mod:`.writes`     its write path (row, durable files, commit)
* :mod:`.listing`    its multi-tile queries (bbox, pending uploads, listings)
* :mod:`.upkeep`     its access flushes, eviction, votes, uploads, freshness policy
* :mod:`.validation` the store's input checks (typed errors, no I/O)
* :mod:`.queries`    its SQL and row conversions
* :mod:`.index`      its in-process read index
* :mod:`.ownership`  one read-write owner per tile root; start-up reconciliation
* :mod:`.tools`      the operator CLI (``dump``, ``verify``)
"""

"""The tile cache: satellite/orthophoto tiles for visual navigation (ROS-free core).

* :mod:`.identity`   tile ids and location hashes (UUIDv5, pinned namespace)
* :mod:`.geo`        web-mercator z/x/y <-> latitude/longitude
* :mod:`.config`     :class:`TileCacheConfig`
* :mod:`.errors`     the run-time error family under :class:`TileCacheError`
* :mod:`.migrations` schema upgrades (Alembic in ``db/``) at start-up
* :mod:`.store`      :class:`PostgresFilesystemStore`: PostgreSQL metadata + JPEG files
* :mod:`.tools`      the operator CLI (``dump``, ``verify``)
"""

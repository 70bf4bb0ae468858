"""A private PostgreSQL cluster: the default database when no DSN is configured.

The cluster has its own data directory, listens on a unix socket inside that
directory and on no TCP port, and is stopped with a fast shutdown on exit.
PostgreSQL refuses to run as root; these machines (and many companion
computers) run the stack as root, so when we are root the server runs as an
unprivileged system user (``postgres`` by default) that owns the data dir.

Used by the main job, the take-off command and the test suite (one cluster per
test session, a fresh database per test where isolation needs it). A
configured DSN always wins: see :func:`resolve_dsn`.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from gps_denied_onboard.errors import EmbeddedPostgresError

DEFAULT_RUN_AS = "postgres"
_PORT = 5432  # only names the socket file; listen_addresses='' means no TCP


def find_pg_bindir() -> Path:
    """Locate the PostgreSQL server binaries (newest Debian version first).

    Raises:
        EmbeddedPostgresError: no ``initdb``/``pg_ctl`` on this machine.
    """
    env = os.environ.get("GDO_PG_BINDIR")
    candidates: list[Path] = [Path(env)] if env else []
    candidates += sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(Path(which).resolve().parent)
    for cand in candidates:
        if (cand / "initdb").exists() and (cand / "pg_ctl").exists():
            return cand
    raise EmbeddedPostgresError(
        "PostgreSQL server binaries not found: install Debian's 'postgresql' package "
        "(scripts/bootstrap.sh does) or configure a DSN"
    )


class EmbeddedPostgres:
    """Handle on one private cluster. No I/O in the constructor.

    Example::

        with EmbeddedPostgres(Path("var/pg")) as pg:
            dsn = pg.dsn("gps_denied")
    """

    def __init__(
        self,
        data_dir: Path,
        *,
        run_as: str | None = None,
        start_timeout_s: int = 60,
        settings: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self._run_as = (
            run_as if run_as is not None else (DEFAULT_RUN_AS if os.geteuid() == 0 else None)
        )
        self._timeout = start_timeout_s
        self._settings = tuple(settings)
        self._bindir: Path | None = None
        self._started_here = False

    # -- helpers ---------------------------------------------------------------
    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    def _cmd(self, tool: str, *args: str) -> list[str]:
        if self._bindir is None:
            self._bindir = find_pg_bindir()
        argv = [str(self._bindir / tool), *args]
        if self._run_as:
            return ["runuser", "-u", self._run_as, "--", *argv]
        return argv

    def _run(self, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            self._cmd(tool, *args),
            capture_output=True,
            text=True,
            check=False,
            cwd="/",  # the server user may not be able to read our cwd
        )
        if proc.returncode != 0:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise EmbeddedPostgresError(f"{tool} failed (exit {proc.returncode}): {detail}")
        return proc

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            try:
                pw = pwd.getpwnam(self._run_as)
            except KeyError as err:
                raise EmbeddedPostgresError(
                    f"running as root needs the system user {self._run_as!r} "
                    "(created by Debian's postgresql package)"
                ) from err
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
            # every parent must be traversable by the server user
            for parent in self.data_dir.parents:
                if not os.stat(parent).st_mode & 0o001:
                    raise EmbeddedPostgresError(
                        f"{parent} is not traversable by user {self._run_as!r}; "
                        "choose a data directory outside it"
                    )
        self.data_dir.chmod(0o700)

    # -- lifecycle -------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        if not self.initialised:
            return False
        proc = subprocess.run(
            self._cmd("pg_ctl", "status", "-D", str(self.data_dir)),
            capture_output=True,
            text=True,
            check=False,
            cwd="/",
        )
        return proc.returncode == 0

    def start(self) -> None:
        """Create the cluster if needed and start it; returns once it accepts connections.

        Raises:
            EmbeddedPostgresError: initdb or the server start failed.
        """
        self._prepare_dir()
        if not self.initialised:
            self._run(
                "initdb",
                "-D",
                str(self.data_dir),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            )
        if self.is_running():
            return
        opts = [
            "-c listen_addresses=''",
            f"-c unix_socket_directories='{self.socket_dir}'",
            f"-p {_PORT}",
            "-c fsync=on",
            *(f"-c {k}='{v}'" for k, v in self._settings),
        ]
        self._run(
            "pg_ctl",
            "start",
            "-D",
            str(self.data_dir),
            "-w",
            "-t",
            str(self._timeout),
            "-l",
            str(self.data_dir / "server.log"),
            "-o",
            " ".join(opts),
        )
        self._started_here = True

    def stop(self) -> None:
        """Fast shutdown; waits until the postmaster and its lock files are gone."""
        if not self.is_running():
            return
        self._run(
            "pg_ctl", "stop", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(self._timeout)
        )
        self._started_here = False

    def __enter__(self) -> EmbeddedPostgres:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- connection strings ------------------------------------------------------
    def dsn(self, dbname: str = "postgres") -> str:
        return f"host={self.socket_dir} port={_PORT} user=postgres dbname={dbname}"

    def create_database(self, name: str, *, exist_ok: bool = True) -> str:
        """Create database ``name`` (if missing) and return its DSN."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (name,)
            ).fetchone()
            if exists and not exist_ok:
                raise EmbeddedPostgresError(f"database {name!r} already exists")
            if not exists:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)

    def drop_database(self, name: str) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def resolve_dsn(configured: str, env_var: str = "GDO_DSN") -> str | None:
    """The DSN to use: a configured one wins, then ``$GDO_DSN``; None means embedded."""
    if configured.strip():
        return configured.strip()
    env = os.environ.get(env_var, "").strip()
    return env or None

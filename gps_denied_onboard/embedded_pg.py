"""A private PostgreSQL cluster: the default database when no DSN is configured.

The cluster has its own data directory, listens on a unix socket inside that
directory and on no TCP port, and is stopped with a fast shutdown on exit.
PostgreSQL refuses to run as root; these machines (and many companion
computers) run the stack as root, so when we are root the server runs as an
unprivileged system user (``postgres`` by default) that owns the data dir.

Where a take-off's cluster lives is :func:`cluster_home`'s decision. As root
it is a fresh per-run directory owned by the server user under a base the
server user can traverse (``/var/lib/gps_denied_onboard/embedded-pg`` by
default, ``$GDO_PG_RUNTIME_DIR`` overrides), because the run directory the
user chose may sit under a private (0700) directory such as ``mktemp -d``
makes; it is removed at landing. Otherwise it is ``<run dir>/pg``.

Used by the main job, the take-off command and the test suite (one cluster per
test session, a fresh database per test where isolation needs it). A
configured DSN always wins: see :func:`resolve_dsn`.
"""

from __future__ import annotations

import errno
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Final

from gps_denied_onboard.errors import EmbeddedPostgresError
from gps_denied_onboard.stop_signals import run_out_of_reach

DEFAULT_RUN_AS = "postgres"
_PORT = 5432  # only names the socket file; listen_addresses='' means no TCP
#: sockaddr_un.sun_path holds 108 bytes, the terminating NUL included
_MAX_SOCKET_PATH = 107
#: overrides the base under which root's per-run cluster directories are made
RUNTIME_DIR_ENV = "GDO_PG_RUNTIME_DIR"
DEFAULT_RUNTIME_BASES = (
    Path("/var/lib/gps_denied_onboard/embedded-pg"),  # on disk: the index can grow large
    Path("/run/gps_denied_onboard/embedded-pg"),  # read-only /var/lib
)
_PER_RUN_PREFIX = "run-"


def server_user() -> str | None:
    """The user the server runs as: ``postgres`` when we are root, else ourselves (None)."""
    return DEFAULT_RUN_AS if os.geteuid() == 0 else None


def _passwd(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(user)
    except KeyError as err:
        raise EmbeddedPostgresError(
            f"running as root needs the system user {user!r} "
            "(created by Debian's postgresql package)"
        ) from err


def traversable_by(path: Path, pw: pwd.struct_passwd) -> bool:
    """Whether ``pw``'s user may search directory ``path`` (owner, group, other bits)."""
    st = os.stat(path)
    if st.st_uid == pw.pw_uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid in os.getgrouplist(pw.pw_name, pw.pw_gid):
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


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


#: Shutdown modes :meth:`EmbeddedPostgres.stop` tries in turn.
STOP_MODES: Final = ("fast", "fast", "immediate")
#: ``pg_ctl status`` exit codes that answer the question: running (0), not
#: running (3), no cluster in the data directory (4).
_STATUS_ANSWERS: Final = {0: True, 3: False, 4: False}


def _exit_status(returncode: int) -> str:
    """``exit 1``, or ``killed by SIGINT`` for a negative return code."""
    if returncode >= 0:
        return f"exit {returncode}"
    try:
        return f"killed by {signal.Signals(-returncode).name}"
    except ValueError:
        return f"killed by signal {-returncode}"


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
        # outside the terminal's process group: an operator's Ctrl-C (however
        # many) reaches us, who land in order, never initdb/pg_ctl/the server;
        # in "/": the server user may not be able to read our cwd
        proc = run_out_of_reach(self._cmd(tool, *args))
        if proc.returncode != 0:
            detail = proc.stderr.strip() or proc.stdout.strip()
            raise EmbeddedPostgresError(
                f"{tool} failed ({_exit_status(proc.returncode)}): {detail}"
            )
        return proc

    def _prepare_dir(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            pw = _passwd(self._run_as)
            os.chown(self.data_dir, pw.pw_uid, pw.pw_gid)
            # every parent must be traversable by the server user
            for parent in self.data_dir.parents:
                if not traversable_by(parent, pw):
                    raise EmbeddedPostgresError(
                        f"{parent} is not traversable by user {self._run_as!r}; "
                        "choose a data directory outside it"
                    )
        self.data_dir.chmod(0o700)
        socket = self.socket_dir / f".s.PGSQL.{_PORT}"
        if len(os.fsencode(socket)) > _MAX_SOCKET_PATH:
            raise EmbeddedPostgresError(
                f"socket path {socket} is longer than the {_MAX_SOCKET_PATH} bytes a unix "
                "socket allows; choose a shorter data directory"
            )

    # -- lifecycle -------------------------------------------------------------
    @property
    def initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def is_running(self) -> bool:
        """``pg_ctl status``'s answer; when it gives none (it died, or failed
        otherwise), whether ``postmaster.pid`` names a live process: a server
        must never be taken for stopped because its status query failed."""
        if not self.initialised:
            return False
        rc = run_out_of_reach(self._cmd("pg_ctl", "status", "-D", str(self.data_dir))).returncode
        if rc in _STATUS_ANSWERS:
            return _STATUS_ANSWERS[rc]
        return _postmaster_alive(self.data_dir)

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
        """Fast shutdown; waits until the postmaster and its lock files are gone.

        Retried: a fast shutdown that did not finish is asked again, then made
        immediate (crash-safe: the next start replays the WAL), so landing does
        not leave a running server and its ``postmaster.pid`` behind.

        Raises:
            EmbeddedPostgresError: the server is still running after every attempt.
        """
        errors: list[str] = []
        for mode in STOP_MODES:
            if not self.is_running():
                self._started_here = False
                return
            try:
                self._run(
                    "pg_ctl",
                    "stop",
                    "-D",
                    str(self.data_dir),
                    "-m",
                    mode,
                    "-w",
                    "-t",
                    str(self._timeout),
                )
            except EmbeddedPostgresError as err:
                errors.append(f"{mode}: {err}")
                continue
            self._started_here = False
            return
        if self.is_running():
            raise EmbeddedPostgresError(
                f"cluster {self.data_dir} would not stop: {'; '.join(errors)}"
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


#: the run directory's note of where its embedded cluster lived
CLUSTER_REPORT = "embedded_pg.json"


@dataclass(frozen=True)
class ClusterHome:
    """Where one run's embedded cluster lives (see :func:`cluster_home`).

    Attributes:
        data_dir: the cluster's data directory; its unix socket is in it too.
        per_run_dir: the directory made for this run alone, which :meth:`remove`
            deletes; None when the cluster lives in the run directory.
        server_user: the user the server runs as; None means ourselves.
    """

    data_dir: Path
    per_run_dir: Path | None
    server_user: str | None

    @property
    def socket_dir(self) -> Path:
        return self.data_dir

    def cluster(self) -> EmbeddedPostgres:
        return EmbeddedPostgres(self.data_dir, run_as=self.server_user)

    def remove(self) -> None:
        """Stop a server still running here and delete the per-run directory.

        A no-op for a cluster in the run directory (it is the user's).

        Raises:
            EmbeddedPostgresError: the server would not stop or the directory stayed.
        """
        if self.per_run_dir is None:
            return
        pg = self.cluster()
        if pg.is_running():
            pg.stop()
        try:
            shutil.rmtree(self.per_run_dir)
        except FileNotFoundError:
            pass
        except OSError as err:
            raise EmbeddedPostgresError(f"could not remove {self.per_run_dir}: {err}") from err

    def report(self, *, landed: bool) -> dict[str, Any]:
        """What the run directory's ``embedded_pg.json`` says."""
        user = self.server_user or pwd.getpwuid(os.geteuid()).pw_name
        if not landed:
            state = "in use"
        elif self.per_run_dir is None:
            state = "kept in the run directory"
        else:
            state = "left behind" if self.per_run_dir.exists() else "removed at landing"
        return {
            "data_dir": str(self.data_dir),
            "socket_dir": str(self.socket_dir),
            "server_user": user,
            "per_run_dir": str(self.per_run_dir) if self.per_run_dir else None,
            "state": state,
        }

    def write_report(self, run_dir: Path, *, landed: bool) -> dict[str, Any]:
        """Write (atomically) and return the run directory's cluster report."""
        import json

        doc = self.report(landed=landed)
        tmp = run_dir / f".{CLUSTER_REPORT}.tmp"
        tmp.write_text(json.dumps(doc, indent=2) + "\n")
        tmp.replace(run_dir / CLUSTER_REPORT)
        return doc


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _postmaster_alive(data_dir: Path) -> bool:
    try:
        first = (data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
    except OSError:
        return False
    return first.strip().isdigit() and _pid_alive(int(first))


def sweep_stale_homes(base: Path) -> list[Path]:
    """Remove per-run directories whose maker died before landing.

    One is stale when the process that made it (its pid is in the name) is
    gone: a per-run cluster serves only its maker's run, so a server still
    running there (the maker was killed) is stopped first. A server that will
    not stop keeps its directory.
    """
    removed: list[Path] = []
    try:
        entries = list(base.iterdir())
    except OSError:
        return removed
    for entry in entries:
        m = re.fullmatch(rf"{_PER_RUN_PREFIX}(\d+)-\w+", entry.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        data = entry / "data"
        if _postmaster_alive(data):
            try:
                owner = pwd.getpwuid(entry.stat().st_uid).pw_name
                run_as = owner if os.geteuid() == 0 and owner != "root" else None
                EmbeddedPostgres(data, run_as=run_as).stop()
            except (OSError, KeyError, EmbeddedPostgresError):
                continue
        shutil.rmtree(entry, ignore_errors=True)
        if not entry.exists():
            removed.append(entry)
    return removed


def _traversable_base(base: Path, pw: pwd.struct_passwd) -> Path:
    """``base``, made if missing (0755 whatever the umask), searchable by ``pw``."""
    base = base.absolute()
    for d in [*reversed(base.parents), base]:
        try:
            d.mkdir(mode=0o755)
            d.chmod(0o755)  # mkdir's mode is masked by the umask
        except FileExistsError:
            pass
        if not d.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(d))
        if not traversable_by(d, pw):
            raise PermissionError(errno.EACCES, f"not traversable by {pw.pw_name!r}", str(d))
    return base


def cluster_home(run_dir_data: Path, *, base: Path | None = None) -> ClusterHome:
    """Decide where a run's embedded cluster lives, making the directory if it is ours.

    Not root: ``run_dir_data`` (``<run dir>/pg``), which the server, running
    as ourselves, can always reach. Root: the server runs as ``postgres``,
    which may not reach the run directory (``mktemp -d`` makes it 0700), so
    a fresh directory ``run-<pid>-<random>`` owned by ``postgres`` (0700) is
    made under ``base`` (default ``$GDO_PG_RUNTIME_DIR``, else the first of
    :data:`DEFAULT_RUNTIME_BASES` that works); :meth:`ClusterHome.remove`
    deletes it at landing. Directories left by a run that died are swept.

    Raises:
        EmbeddedPostgresError: no ``postgres`` user, or no usable base.
    """
    user = server_user()
    if user is None:
        return ClusterHome(run_dir_data.absolute(), None, None)
    pw = _passwd(user)
    env = os.environ.get(RUNTIME_DIR_ENV, "").strip()
    bases = [base] if base is not None else ([Path(env)] if env else list(DEFAULT_RUNTIME_BASES))
    problems: list[str] = []
    for cand in bases:
        try:
            usable = _traversable_base(cand, pw)
            sweep_stale_homes(usable)
            made = Path(tempfile.mkdtemp(prefix=f"{_PER_RUN_PREFIX}{os.getpid()}-", dir=usable))
            os.chown(made, pw.pw_uid, pw.pw_gid)  # mkdtemp made it 0700
        except OSError as err:
            problems.append(f"{err.filename or cand}: {err.strerror or err}")
            continue
        return ClusterHome(made / "data", made, user)
    raise EmbeddedPostgresError(
        "no directory for the embedded cluster that user "
        f"{user!r} can reach ({'; '.join(problems)}); set {RUNTIME_DIR_ENV} or configure a DSN"
    )


def read_cluster_report(run_dir: Path) -> dict[str, Any] | None:
    """The run directory's cluster report, or None when it has none (a DSN was used)."""
    import json

    try:
        doc = json.loads((run_dir / CLUSTER_REPORT).read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None


def resolve_dsn(configured: str, env_var: str = "GDO_DSN") -> str | None:
    """The DSN to use: a configured one wins, then ``$GDO_DSN``; None means embedded."""
    if configured.strip():
        return configured.strip()
    env = os.environ.get(env_var, "").strip()
    return env or None

"""Running a command as an unprivileged user, for behaviour that must hold for
root and non-root alike (the embedded cluster, the run directory).

When the tests run as root, the unprivileged user is ``nobody`` if the machine
has one; commands run as it through ``setpriv`` (util-linux), which keeps the
environment. When the tests already run as a normal user there is nothing to
switch to: that case is the plain test. ``test/`` is on ``sys.path`` because
``test/conftest.py`` lives there.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

USER = "nobody"


def unprivileged_user() -> tuple[pwd.struct_passwd | None, str]:
    """``nobody``'s passwd entry, or None and why the switch is not possible here."""
    if os.geteuid() != 0:
        return None, f"the tests already run unprivileged (uid {os.geteuid()})"
    if shutil.which("setpriv") is None:
        return None, "setpriv (util-linux) is not installed"
    try:
        return pwd.getpwnam(USER), ""
    except KeyError:
        return None, f"this machine has no user {USER!r} (getent passwd {USER})"


def as_user(pw: pwd.struct_passwd, argv: Sequence[str]) -> list[str]:
    """``argv`` run as ``pw`` (uid, gid, no supplementary groups), environment kept."""
    return [
        "setpriv",
        f"--reuid={pw.pw_uid}",
        f"--regid={pw.pw_gid}",
        "--clear-groups",
        "--",
        *argv,
    ]


def why_not_runnable(
    pw: pwd.struct_passwd, argv: Sequence[str], env: Mapping[str, str] | None = None
) -> str | None:
    """None when ``argv`` succeeds as ``pw``; else its exit status and error output."""
    proc = subprocess.run(
        as_user(pw, argv),
        capture_output=True,
        text=True,
        check=False,
        cwd="/",
        env=dict(env) if env is not None else None,
        timeout=120,
    )
    if proc.returncode == 0:
        return None
    detail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return f"exit {proc.returncode}: {detail[-1] if detail else 'no output'}"


def private_dir_of(pw: pwd.struct_passwd, prefix: str) -> Path:
    """A fresh ``mktemp -d`` style directory (0700) owned by ``pw``."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chown(path, pw.pw_uid, pw.pw_gid)
    path.chmod(0o700)
    return path

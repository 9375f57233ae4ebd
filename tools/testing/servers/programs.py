"""Where server programs are found and which environment they run with.

Under Bazel tests see PATH=/bin:/usr/bin:/usr/local/bin only (strict action env), while Debian
puts daemons in /usr/sbin and PostgreSQL in /usr/lib/postgresql/<version>/bin: so the search
always adds those, and a missing program fails naming the apt package that provides it.
"""

from __future__ import annotations

import glob
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

SYSTEM_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


class MissingProgramError(RuntimeError):
    """A server program is not installed; the message names the package to install."""


def search_dirs() -> list[str]:
    path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return list(dict.fromkeys([*path, *SYSTEM_DIRS]))


def postgres_bin_dirs() -> list[str]:
    """Debian's per-version PostgreSQL bin dirs, newest version first."""

    def version(path: str) -> int:
        name = Path(path).parent.name
        return int(name) if name.isdigit() else -1

    return sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)


def find_program(
    names: str | Sequence[str],
    apt_package: str,
    *,
    dirs: Iterable[str] | None = None,
) -> str:
    """The absolute path of the first of `names` found in `dirs` (default: PATH + system dirs)."""
    candidates = [names] if isinstance(names, str) else list(names)
    where = list(search_dirs() if dirs is None else dirs)
    for directory in where:
        for name in candidates:
            path = Path(directory) / name
            if path.is_file() and os.access(path, os.X_OK):
                return str(path)
    raise MissingProgramError(
        f"{' or '.join(candidates)} not found in {os.pathsep.join(where)}: "
        f"install it with `apt-get install {apt_package}`"
    )


def child_env(
    extra: Mapping[str, str] | None = None, *, drop_prefixes: Sequence[str] = ()
) -> dict[str, str]:
    """This process's environment for a server: full search PATH, `extra` on top.

    Variables starting with `drop_prefixes` are removed first, so a developer's own settings
    (RABBITMQ_*, PG*) cannot leak into a throwaway server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(tuple(drop_prefixes))}
    env["PATH"] = os.pathsep.join(search_dirs())
    env.update(extra or {})
    return env


def python_path() -> str:
    """A PYTHONPATH that gives a child interpreter the same imports as this one.

    Under Bazel third-party packages are found through runfiles paths, not a site dir. An
    empty entry means "the current directory": made absolute, as the child runs elsewhere.
    """
    return os.pathsep.join(dict.fromkeys(p or os.getcwd() for p in sys.path))

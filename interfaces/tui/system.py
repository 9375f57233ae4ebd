"""Real implementations of the look-ups in `prereqs.Probes`: PATH, imports, sockets."""

from __future__ import annotations

import errno
import glob
import importlib
import importlib.metadata
import os
import re
import shutil
import socket
from collections.abc import Sequence

from interfaces.tui.prereqs import Probes


def _natural_key(path: str) -> list[int | str]:
    # So /usr/lib/postgresql/15/bin sorts after .../9/bin.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path)]


def find_binary(name: str, extra_dirs: Sequence[str]) -> str | None:
    """PATH first, then the extra glob dirs, newest version dir first."""
    found = shutil.which(name)
    if found is not None:
        return found
    dirs: list[str] = []
    for pattern in extra_dirs:
        dirs.extend(sorted(glob.glob(pattern), key=_natural_key, reverse=True))
    if not dirs:
        return None
    return shutil.which(name, path=os.pathsep.join(dirs))


def module_version(module: str, distribution: str) -> str:
    """Import `module` for real (a found-but-broken package must count as missing)."""
    importlib.invalidate_caches()  # so `r` sees packages installed since the last check
    imported = importlib.import_module(module)
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        version = getattr(imported, "__version__", None)
        return str(version) if version else "version unknown"


def probe_port(host: str, port: int) -> str | None:
    """None if a server could bind `host:port` now, else why not."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too: a port held only by TIME_WAIT leftovers is free to them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return "in use"
            return f"cannot bind: {exc.strerror or exc}"
    return None


def default_probes() -> Probes:
    return Probes(
        find_binary=find_binary,
        module_version=module_version,
        probe_port=probe_port,
        environ=os.environ,
    )

"""The Python that Bazel tests run on sees the hashed lock and nothing else of the host's."""

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

HOST_PYTHON = shutil.which("python3", path="/usr/local/bin:/usr/bin:/bin")


def host_python(code: str) -> str:
    assert HOST_PYTHON, "python3 is on every machine this builds on"
    return subprocess.run(
        [HOST_PYTHON, "-c", code], check=True, capture_output=True, text=True, env={}
    ).stdout


def host_only_modules() -> list[str]:
    """Top-level modules the host's python3 can import from distributions the lock lacks."""
    # packages_distributions() needs RECORD or top_level.txt; Debian's own python3-pip (sid/trixie)
    # ships neither, so a distribution without files counts by its import name when importable.
    host = json.loads(
        host_python(
            "import importlib.metadata as m, importlib.util as u, json\n"
            "d = m.packages_distributions()\n"
            "for dist in m.distributions():\n"
            "    name = dist.metadata['Name']\n"
            "    mod = name.lower().replace('-', '_')\n"
            "    if not dist.files and mod.isidentifier() and u.find_spec(mod):\n"
            "        d.setdefault(mod, []).append(name)\n"
            "print(json.dumps(d))"
        )
    )
    locked = {d.metadata["Name"].lower() for d in importlib.metadata.distributions()}
    return sorted(
        module
        for module, dists in host.items()
        if module.isidentifier() and not {d.lower() for d in dists} & locked
    )


def test_host_only_packages_do_not_import() -> None:
    modules = host_only_modules()
    assert "pip" in modules, "pip is on every host python3 and never in the lock"
    runfiles = os.environ.get("RUNFILES_DIR") or os.environ["TEST_SRCDIR"]
    leaked = []
    for module in modules:
        spec = importlib.util.find_spec(module)
        # A runfiles directory named like a module (the @pip repository) is an empty namespace.
        if spec is not None and (
            spec.origin is not None
            or any(not p.startswith(runfiles) for p in spec.submodule_search_locations or [])
        ):
            leaked.append(module)
    assert not leaked, f"host packages importable under Bazel: {leaked}"
    # Under WORKSPACE the @pip runfiles directory makes `pip` an empty namespace package, so the
    # lookup returns None; under bzlmod that directory is `_main~pip~pip` and `pip` is not found.
    with contextlib.suppress(ModuleNotFoundError):
        assert importlib.util.find_spec("pip._internal") is None


def test_interpreter_is_the_isolated_venv() -> None:
    assert sys.prefix != sys.base_prefix, "tests must run in the @pip venv"
    assert (Path(sys.prefix) / "pyvenv.cfg").read_text().count(
        "include-system-site-packages = false"
    ) == 1


def test_no_host_site_packages_on_sys_path() -> None:
    stdlib = sysconfig.get_paths()["stdlib"]
    host_sites = set(host_python("import site; print(*site.getsitepackages(), sep='\\n')").split())
    for entry in sys.path:
        assert entry not in host_sites, f"host site-packages on sys.path: {entry}"
        # The venv's own site-packages is empty (made --without-pip); nothing else may appear.
        assert "site-packages" not in entry or entry.startswith((stdlib, sys.prefix)), entry


@pytest.mark.parametrize("module", ["grpc", "google.protobuf", "pika", "psycopg", "urwid"])
def test_locked_packages_import(module: str) -> None:
    assert importlib.import_module(module)

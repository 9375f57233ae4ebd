"""The real look-ups, pointed at temporary dirs and ephemeral sockets instead of the machine."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import urwid

from interfaces.tui.system import find_binary, module_version, probe_port


def make_executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_find_binary_prefers_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_path = make_executable(tmp_path / "bin" / "tool")
    make_executable(tmp_path / "sbin" / "tool")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    assert find_binary("tool", [str(tmp_path / "sbin")]) == str(on_path)


def test_find_binary_falls_back_to_newest_versioned_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_executable(tmp_path / "postgresql" / "9" / "bin" / "initdb")
    newest = make_executable(tmp_path / "postgresql" / "15" / "bin" / "initdb")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))

    assert find_binary("initdb", [str(tmp_path / "postgresql" / "*" / "bin")]) == str(newest)


def test_find_binary_none_when_absent(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    assert find_binary("no-such-tool", [str(tmp_path / "nope" / "*")]) is None


def test_module_version_reads_distribution_metadata() -> None:
    assert module_version("urwid", "urwid") == urwid.__version__


def test_module_version_raises_for_missing_module() -> None:
    with pytest.raises(ImportError):
        module_version("no_such_module_for_tui_test", "no-such-dist")


def test_probe_port_sees_a_listener_and_its_absence() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert probe_port("127.0.0.1", port) == "in use"
    assert probe_port("127.0.0.1", port) is None

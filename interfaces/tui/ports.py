"""The local stack's port table, defined by the launcher (tools/launcher/ports.py)."""

from tools.launcher.ports import HOST, LOCAL_PORTS, PortSpec, resolve_port

__all__ = ["HOST", "LOCAL_PORTS", "PortSpec", "resolve_port"]

"""Pipelined publisher confirms: moved to services/common/confirms.py (the processor uses them
too); re-exported here for the gateway's existing imports."""

from services.common.confirms import ConfirmError, ConfirmingChannel

__all__ = ["ConfirmError", "ConfirmingChannel"]

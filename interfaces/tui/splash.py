"""The first screen: the name, what this is, and what happens next (while the checks run)."""

from __future__ import annotations

import urwid

NAME = "Distributed Task Observatory"
TAGLINE = "jobs, retries and dead letters you can watch and act on"


def splash(next_step: str) -> urwid.Widget:
    text = urwid.Text(
        [("title", NAME), "\n\n", TAGLINE, "\n\n", ("status", next_step)], align="center"
    )
    return urwid.Filler(urwid.Padding(text, align="center", width=(urwid.RELATIVE, 90)))

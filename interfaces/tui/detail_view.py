"""The job detail overlay: header, payload, last error, attempts and timeline, scrollable.

It is handed the read model's answer (`show_detail`) and callbacks for R and C, so it renders
the same in tests as on a terminal; the actions host fetches and refreshes it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import urwid
from observatory.readmodel.v1 import read_model_pb2 as rm
from urwid.widget.widget import AbstractFlowWidget as FlowWidget

from interfaces.tui.detail_model import (
    ATTEMPT_COLUMNS,
    attempt_rows,
    header,
    payload_json,
    timeline_rows,
)
from interfaces.tui.dialogs import Dialog, Size, framed, keys_line

ATTEMPT_WIDTHS = (3, 10, 13, 9)  # number, outcome, started, duration; the error gets the rest
TIMELINE_WIDTHS = (13, 20)  # time, type; the detail gets the rest
LABEL_WIDTH = 10
KEYS = (("R", "retry"), ("C", "cancel"), ("PgUp/PgDn", "scroll"), ("Esc/q", "close"))


def _table(
    titles: Sequence[str], rows: Sequence[Sequence[str]], widths: Sequence[int]
) -> list[FlowWidget]:
    def line(cells: Sequence[str], attr: str | None = None) -> FlowWidget:
        columns: list[urwid.Widget | tuple[int, urwid.Widget]] = [
            (width, urwid.Text(cell, wrap="clip"))
            for width, cell in zip(widths, cells, strict=False)
        ]
        columns.append(urwid.Text(cells[len(widths)]))
        row = urwid.Columns(columns, dividechars=1)
        return row if attr is None else urwid.AttrMap(row, attr)

    return [line(titles, "act.label"), *(line(row) for row in rows)]


def _section(title: str) -> list[FlowWidget]:
    return [urwid.Divider(), urwid.Text(("act.title", title))]


def detail_rows(detail: rm.GetJobDetailResponse) -> list[FlowWidget]:
    job = detail.job
    rows: list[FlowWidget] = [
        urwid.Columns([(LABEL_WIDTH, urwid.Text(("act.label", label))), urwid.Text(value)])
        for label, value in header(job)
    ]
    rows += _section("Payload")
    rows += [urwid.Text(line) for line in payload_json(job).splitlines()]
    rows += _section("Last error")
    rows.append(urwid.Text(("act.error", job.last_error) if job.last_error else "-"))
    rows += _section(f"Attempts ({len(detail.attempts)}, times UTC)")
    rows += _table(ATTEMPT_COLUMNS, attempt_rows(list(detail.attempts)), ATTEMPT_WIDTHS)
    rows += _section(f"Timeline ({len(detail.events)} events, UTC)")
    rows += _table(("time", "event", "detail"), timeline_rows(list(detail.events)), TIMELINE_WIDTHS)
    return rows


class JobDetailDialog(Dialog):
    """Detail of one job. R and C call back with the job id; Esc or q closes."""

    box = True

    def __init__(
        self,
        job_id: str,
        *,
        on_close: Callable[[], None],
        on_retry: Callable[[str], None],
        on_cancel: Callable[[str], None],
    ) -> None:
        self.job_id = job_id
        self.title = f"Job {job_id}"
        self._on_retry = on_retry
        self._on_cancel = on_cancel
        self._walker: urwid.SimpleFocusListWalker[FlowWidget] = urwid.SimpleFocusListWalker([])
        self._list = urwid.ListBox(self._walker)
        body = urwid.ScrollBar(self._list, thumb_char="#", trough_char="|")
        self._status = urwid.Text("")
        footer = urwid.Pile([urwid.Divider("-"), self._status, keys_line(KEYS)])
        frame: urwid.Frame[urwid.Widget, None, urwid.Pile] = urwid.Frame(body, footer=footer)
        super().__init__(framed(urwid.Padding(frame, left=1), self.title), on_close)
        self.show_loading()

    def show_loading(self) -> None:
        self._walker[:] = [urwid.Text(("act.busy", f"loading job {self.job_id}..."))]

    def show_error(self, message: str) -> None:
        self._walker[:] = [urwid.Text(("act.error", message))]

    def show_detail(self, detail: rm.GetJobDetailResponse) -> None:
        position = self._walker.focus or 0
        self._walker[:] = detail_rows(detail)
        self._walker.set_focus(min(position, len(self._walker) - 1))

    def set_status(self, markup: str | tuple[str, str]) -> None:
        self._status.set_text(markup)

    def keypress(self, size: Size, key: str) -> str | None:
        if key in ("q", "esc"):
            self.close()
            return None
        if key in ("R", "r"):
            self._on_retry(self.job_id)
            return None
        if key in ("C", "c"):
            self._on_cancel(self.job_id)
            return None
        # The list scrolls only as far as its focus moves, and rows are not selectable: move
        # the focus by hand so up/down/PgUp/PgDn/Home/End scroll line by line or page by page.
        self._scroll(size, key)
        return None

    def _scroll(self, size: Size, key: str) -> None:
        last = len(self._walker) - 1
        focus = self._walker.focus or 0
        page = max(1, (size[1] if len(size) == 2 else 20) - 6)
        moves = {"up": -1, "down": 1, "page up": -page, "page down": page, "home": -last - 1}
        moves["end"] = last + 1
        if key in moves:
            self._walker.set_focus(max(0, min(last, focus + moves[key])))

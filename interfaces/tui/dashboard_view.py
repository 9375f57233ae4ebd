"""urwid rendering of the live dashboard, laid out for the terminal size it is given.

At 80x24 the panels are stacked one or two lines each and the jobs table gets the rest; from
120 columns and 34 rows the overview panels sit side by side with full tables. Every colour has
a text equivalent (status names, CRIT/WARN markers, [stale]), so the screen reads without it.
The view only renders `DashboardModel` and turns keys into model changes or callbacks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import urwid
from observatory.jobs.v1 import job_pb2
from observatory.readmodel.v1 import read_model_pb2 as rm

from interfaces.tui.dashboard_model import (
    ASCII_BLOCKS,
    BLOCKS,
    SEVERITY_MARKERS,
    DashboardModel,
    JobQuery,
    collapse_retry_queues,
    format_quantiles,
    sparkline,
    status_name,
    throughput_of,
)

# (name, 16-colour fg, bg, monochrome): colours that read on dark and light backgrounds.
PALETTE: list[tuple[str, str, str, str]] = [
    ("dash.title", "default,bold", "default", "bold"),
    ("dash.label", "default,bold", "default", "bold"),
    ("dash.dim", "dark gray", "default", ""),
    ("dash.live", "dark green,bold", "default", "bold"),
    ("dash.down", "white,bold", "dark red", "standout,bold"),
    ("dash.selected", "black", "light gray", "standout"),
    ("dash.footer", "black", "light gray", "standout"),
    ("dash.key", "dark blue,bold", "light gray", "standout,bold"),
    ("dash.pending", "dark cyan", "default", ""),
    ("dash.running", "dark blue,bold", "default", "bold"),
    ("dash.retry", "brown,bold", "default", "bold"),
    ("dash.completed", "dark green", "default", ""),
    ("dash.failed", "dark red,bold", "default", "bold"),
    ("dash.cancelled", "dark magenta", "default", ""),
    ("dash.dead", "dark red,bold", "default", "bold,underline"),
    ("dash.crit", "white,bold", "dark red", "standout,bold"),
    ("dash.warn", "brown,bold", "default", "bold"),
    ("dash.info", "dark cyan", "default", ""),
]

STATUS_ATTR: dict[int, str] = {
    job_pb2.JOB_STATUS_PENDING: "dash.pending",
    job_pb2.JOB_STATUS_RUNNING: "dash.running",
    job_pb2.JOB_STATUS_RETRY_SCHEDULED: "dash.retry",
    job_pb2.JOB_STATUS_COMPLETED: "dash.completed",
    job_pb2.JOB_STATUS_FAILED: "dash.failed",
    job_pb2.JOB_STATUS_CANCELLED: "dash.cancelled",
    job_pb2.JOB_STATUS_DEAD_LETTERED: "dash.dead",
}
SEVERITY_ATTR: dict[int, str] = {
    rm.ALERT_SEVERITY_CRITICAL: "dash.crit",
    rm.ALERT_SEVERITY_WARNING: "dash.warn",
    rm.ALERT_SEVERITY_INFO: "dash.info",
}

KEYS: tuple[tuple[str, str], ...] = (
    ("N", "new"),
    ("Enter", "detail"),
    ("C", "cancel"),
    ("R", "retry"),
    ("A", "retry failed"),
    ("D", "replay DLQ"),
    ("U", "web UIs"),
    ("/", "filter"),
    ("s", "status"),
    ("t", "type"),
    ("[ ]", "page"),
    ("?", "help"),
    ("q", "quit"),
    ("^Q", "stop stack+quit"),
)

WIDE_COLUMNS = 120
TALL_ROWS = 34
MAX_ALERT_LINES_COMPACT = 2
STATUS_WIDTH = 9  # "COMPLETED", "CANCELLED"

Markup = str | tuple[str, str] | list[str | tuple[str, str]]
Size = tuple[int, int] | tuple[int] | tuple[()]


@dataclass(frozen=True)
class ViewActions:
    """What keys do beyond the model: the app's actions and the feed's queries."""

    requery: Callable[[JobQuery], None]
    load_more: Callable[[JobQuery, str], None]
    new_job: Callable[[], None]
    detail: Callable[[job_pb2.Job], None]
    cancel: Callable[[job_pb2.Job], None]
    retry: Callable[[job_pb2.Job], None]
    retry_all: Callable[[], None]
    replay_dlq: Callable[[], None]
    web_uis: Callable[[], None]
    help: Callable[[], None]
    quit: Callable[[], None]
    stop_stack: Callable[[], None] | None


def _blocks() -> str:
    return BLOCKS if urwid.util.get_encoding_mode() == "utf8" else ASCII_BLOCKS


def _fit(text: str, width: int) -> str:
    """Cut to `width` with a marker, padded: a fixed-width table cell."""
    if len(text) > width:
        text = text[: max(0, width - 1)] + "~"
    return text.ljust(width)


def _one_line(text: str) -> str:
    return " ".join(text.split())


class DashboardView(urwid.Widget):
    """A box widget: header, overview panels, jobs table, footer; rebuilt for each size."""

    _sizing = frozenset([urwid.Sizing.BOX])
    _selectable = True

    def __init__(self, model: DashboardModel, actions: ViewActions) -> None:
        super().__init__()
        self.model = model
        self._actions = actions
        self._filter_edit: urwid.Edit | None = None

    @property
    def editing_filter(self) -> bool:
        return self._filter_edit is not None

    def refresh(self) -> None:
        """The model changed: draw again."""
        self._invalidate()

    # ----- layout ------------------------------------------------------------------------------

    def render(self, size: Size, focus: bool = False) -> urwid.Canvas:
        cols, rows = size  # type: ignore[misc]  # a box widget always gets (cols, rows)
        wide = cols >= WIDE_COLUMNS and rows >= TALL_ROWS
        top = self._overview_wide() if wide else self._overview_compact()
        footer = self._footer()
        fixed = urwid.Pile([*top, urwid.Divider("-")])
        used = fixed.rows((cols,)) + footer.rows((cols,)) + 2  # + table title and heading
        self.model.set_page_size(max(1, rows - used))
        table = self._jobs_table(cols, wide)
        body = urwid.Frame(
            urwid.Filler(urwid.Pile(table), valign=urwid.TOP),
            header=fixed,
            footer=footer,
        )
        return body.render((cols, rows), focus)

    def _overview_compact(self) -> list[urwid.Widget]:
        widgets: list[urwid.Widget] = [self._header(), self._counts()]
        widgets.append(urwid.Text(self._throughput_markup(width=40)))
        widgets.append(urwid.Text(self._latency_line()))
        widgets.append(urwid.Text(self._queues_line()))
        widgets += self._alert_lines(MAX_ALERT_LINES_COMPACT)
        return widgets

    def _overview_wide(self) -> list[urwid.Widget]:
        left = urwid.Pile(
            [
                self._counts(),
                urwid.Text(self._throughput_markup(width=24)),
                urwid.Divider(),
                *self._latency_table(),
            ]
        )
        middle = urwid.Pile(self._queue_table())
        right = urwid.Pile([urwid.Text(("dash.label", "Alerts")), *self._alert_lines(8)])
        panels = urwid.Columns(
            [(urwid.WEIGHT, 4, left), (urwid.WEIGHT, 3, middle), (urwid.WEIGHT, 3, right)],
            dividechars=2,
        )
        return [self._header(), urwid.Divider("-"), panels]

    # ----- panels ------------------------------------------------------------------------------

    def _header(self) -> urwid.Widget:
        connection = self.model.connection
        parts: list[str | tuple[str, str]] = [("dash.title", "Observatory dashboard  ")]
        if connection.live:
            parts += [("dash.live", "LIVE"), f"  {connection.endpoint}"]
        else:
            parts.append(("dash.down", f" {connection.detail} "))
            if self.model.stale:
                parts.append(("dash.dim", "  [stale: last data shown]"))
            parts.append(f"  {connection.endpoint}")
        return urwid.Text(parts)

    def _counts(self) -> urwid.Widget:
        stats = self.model.stats
        if stats is None:
            return urwid.Text("jobs: waiting for the read model...")
        parts: list[str | tuple[str, str]] = [("dash.label", "jobs"), f" {stats.total_jobs}"]
        for status, count in self.model.status_counts():
            parts += ["  ", (STATUS_ATTR.get(status, "dash.label"), status_name(status))]
            parts.append(f" {count}")
        return urwid.Text(parts)

    def _throughput_markup(self, width: int) -> Markup:
        series = None if self.model.stats is None else throughput_of(self.model.stats)
        if series is None:
            return [("dash.label", "completed/s"), " -"]
        line = sparkline(series.completed, width, _blocks())
        return [
            ("dash.label", "completed/s"),
            f" {series.rate_per_s:.1f} |{line}| {series.window_s:g}s, peak {series.peak}",
        ]

    def _latencies(self) -> list[tuple[str, tuple[str, str, str]]]:
        stats = self.model.stats
        if stats is None:
            return []
        return [
            ("queue wait", format_quantiles(stats.queue_wait)),
            ("run", format_quantiles(stats.run)),
            ("end-to-end", format_quantiles(stats.end_to_end)),
        ]

    def _latency_line(self) -> Markup:
        parts: list[str | tuple[str, str]] = [("dash.label", "p50/p95/p99")]
        for name, (p50, p95, p99) in self._latencies() or [("latency", ("-", "-", "-"))]:
            short = {"queue wait": "wait", "end-to-end": "e2e"}.get(name, name)
            parts.append(f"  {short} {p50}/{p95}/{p99}")
        return parts

    def _latency_table(self) -> list[urwid.Widget]:
        def row(*cells: str) -> str:
            return f"{cells[0]:<12}" + "".join(f"{cell:>9}" for cell in cells[1:])

        lines: list[urwid.Widget] = [
            urwid.Text(("dash.label", row("latency", "p50", "p95", "p99")))
        ]
        lines += [urwid.Text(row(name, *q)) for name, q in self._latencies()]
        return lines

    def _queue_cells(self, queue: rm.Queue) -> str:
        flag = " DLQ" if queue.dead_letter else ""
        return f"{queue.name} {queue.depth}/{queue.unacknowledged} c{queue.consumers}{flag}"

    def _queues_line(self) -> Markup:
        if not self.model.queues:
            return [("dash.label", "queues"), " -"]
        parts: list[str | tuple[str, str]] = [("dash.label", "queues ready/unacked consumers")]
        for queue in collapse_retry_queues(self.model.queues):
            attr = "dash.failed" if queue.dead_letter and queue.depth else ""
            parts += ["  ", (attr, self._queue_cells(queue)) if attr else self._queue_cells(queue)]
        return parts

    def _queue_table(self) -> list[urwid.Widget]:
        def row(name: str, ready: str, unacked: str, consumers: str, flag: str) -> str:
            return f"{name:<18.18}{ready:>7}{unacked:>8}{consumers:>5} {flag}"

        lines: list[urwid.Widget] = [
            urwid.Text(("dash.label", row("queue", "ready", "unacked", "cons", "")))
        ]
        for queue in collapse_retry_queues(self.model.queues):
            text = row(
                queue.name,
                str(queue.depth),
                str(queue.unacknowledged),
                str(queue.consumers),
                "DLQ" if queue.dead_letter else "",
            )
            lines.append(
                urwid.Text(("dash.failed", text) if queue.dead_letter and queue.depth else text)
            )
        if not self.model.queues:
            lines.append(urwid.Text("-"))
        return lines

    def _alert_lines(self, limit: int) -> list[urwid.Widget]:
        alerts = self.model.alerts()
        if not alerts:
            return [urwid.Text([("dash.label", "alerts"), " none firing"])]
        shown = alerts if len(alerts) <= limit else alerts[: limit - 1]
        lines: list[urwid.Widget] = []
        for alert in shown:
            marker = SEVERITY_MARKERS.get(alert.severity, "????")
            summary = _one_line(alert.summary or alert.description)
            lines.append(
                urwid.Text(
                    [
                        (SEVERITY_ATTR.get(alert.severity, "dash.label"), f"[{marker}]"),
                        f" {alert.name}: {summary}",
                    ],
                    wrap=urwid.ELLIPSIS,
                )
            )
        if len(shown) < len(alerts):
            lines.append(urwid.Text(f"  (+{len(alerts) - len(shown)} more alerts firing)"))
        return lines

    # ----- jobs table --------------------------------------------------------------------------

    def _columns(self, cols: int, wide: bool) -> tuple[int, int, int]:
        """Widths of id, type and last error (which takes what is left)."""
        id_width = 36 if wide and cols >= 150 else 8
        type_width = 20 if wide else 14
        fixed = 2 + id_width + type_width + STATUS_WIDTH + 5 + 4 + 5  # marker, cells, gaps
        return id_width, type_width, max(10, cols - fixed)

    def _cells(self, cells: tuple[str, ...], cols: int, wide: bool) -> list[str]:
        id_w, type_w, err_w = self._columns(cols, wide)
        job_id, job_type, status, attempts, age, error = cells
        return [
            job_id[:id_w].ljust(id_w),  # a short id is a prefix: `/` finds the job by it
            _fit(job_type, type_w),
            _fit(status, STATUS_WIDTH),
            _fit(attempts, 5),
            _fit(age, 4),
            _fit(error, err_w),
        ]

    def _jobs_table(self, cols: int, wide: bool) -> list[urwid.Widget]:
        model = self.model
        rows = model.page_rows()
        more = " (more: ] or PgDn)" if model.has_next_page() else ""
        title: list[str | tuple[str, str]] = [
            ("dash.label", f"Jobs page {model.page + 1}"),
            f"{more}  filter: {model.filter_summary()}",
        ]
        if model.loading and not rows:
            title.append("  loading...")
        heading = self._cells(("ID", "TYPE", "STATUS", "TRIES", "AGE", "LAST ERROR"), cols, wide)
        widgets: list[urwid.Widget] = [
            urwid.Text(title, wrap=urwid.ELLIPSIS),
            urwid.Text(("dash.label", "  " + " ".join(heading)), wrap=urwid.CLIP),
        ]
        for index, job in enumerate(rows):
            cells = self._cells(
                (
                    job.id,
                    job.type,
                    status_name(job.status),
                    f"{job.attempts}/{job.max_attempts}",
                    model.age_of(job),
                    _one_line(job.last_error),
                ),
                cols,
                wide,
            )
            if index == model.selected:  # the ">" marks it without colour too
                line = "> " + " ".join(cells)
                widgets.append(urwid.Text(("dash.selected", line), wrap=urwid.CLIP))
                continue
            attr = STATUS_ATTR.get(job.status, "")
            markup: list[str | tuple[str, str]] = [
                "  " + " ".join(cells[:2]) + " ",
                (attr, cells[2]),
                " " + " ".join(cells[3:]),
            ]
            widgets.append(urwid.Text(markup, wrap=urwid.CLIP))
        if not rows and not model.loading:
            widgets.append(urwid.Text("  no jobs match the filter"))
        return widgets

    # ----- footer ------------------------------------------------------------------------------

    def _footer(self) -> urwid.Pile:
        if self._filter_edit is not None:
            hint = urwid.Text(
                ("dash.footer", "Enter apply  Esc cancel  (id prefix, type, status or error text)")
            )
            return urwid.Pile([urwid.Divider("-"), self._filter_edit, hint])
        parts: list[str | tuple[str, str]] = []
        keys = KEYS if self._actions.stop_stack is not None else KEYS[:-1]
        for key, action in keys:
            parts += [("dash.key", key), ("dash.footer", f" {action}  ")]
        return urwid.Pile([urwid.Divider("-"), urwid.Text(parts)])

    # ----- keys --------------------------------------------------------------------------------

    def keypress(self, size: Size, key: str) -> str | None:
        if self._filter_edit is not None:
            return self._filter_key(size, key)
        lowered = key.lower() if len(key) == 1 else key  # action letters with or without Shift
        if not (self._action_key(lowered) or self._table_key(key)):
            return key
        self._invalidate()
        return None

    def _action_key(self, key: str) -> bool:
        """The app's actions; the job ones act on the selected row (none: nothing happens)."""
        simple: dict[str, Callable[[], None]] = {
            "n": self._actions.new_job,
            "a": self._actions.retry_all,
            "d": self._actions.replay_dlq,
            "u": self._actions.web_uis,
            "?": self._actions.help,
            "q": self._actions.quit,
        }
        if self._actions.stop_stack is not None:
            simple["ctrl q"] = self._actions.stop_stack
        per_job: dict[str, Callable[[job_pb2.Job], None]] = {
            "enter": self._actions.detail,
            "c": self._actions.cancel,
            "r": self._actions.retry,
        }
        if key in simple:
            simple[key]()
            return True
        if key in per_job:
            job = self.model.selected_job()
            if job is not None:
                per_job[key](job)
            return True
        return False

    def _table_key(self, key: str) -> bool:
        """Filters, paging and selection of the jobs table."""
        model = self.model
        if key == "/":
            self._filter_edit = urwid.Edit("/ ", model.text)
        elif key == "s":
            self._actions.requery(model.cycle_status())
        elif key == "t":
            self._actions.requery(model.cycle_type())
        elif key in ("page down", "]"):
            token = model.next_page()
            if token is not None:
                self._actions.load_more(model.query, token)
        elif key in ("page up", "["):
            model.prev_page()
        elif key in ("up", "down"):
            model.move_selection(-1 if key == "up" else 1)
        else:
            return False
        return True

    def _filter_key(self, size: Size, key: str) -> str | None:
        assert self._filter_edit is not None
        if key == "enter":
            self.model.set_text(self._filter_edit.edit_text)
            self._filter_edit = None
        elif key == "esc":
            self._filter_edit = None
        else:
            cols = size[0] if size else 80
            self._filter_edit.keypress((cols,), key)
        self._invalidate()
        return None

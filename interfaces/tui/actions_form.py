"""The new-job form: type, payload (JSON), count and priority, checked before anything is sent.

Problems appear under the field they are about, naming it ("payload.seconds: required
number"). Enter or [Submit] sends through the `on_submit` callback; Esc cancels. The host says
how sending went (`set_busy`, `set_error`) and closes the form on success.
"""

from __future__ import annotations

from collections.abc import Callable

import urwid

from interfaces.tui.actions_spec import (
    JobRequest,
    check_form,
    field_help,
    job_types,
    payload_template,
)
from interfaces.tui.dialogs import Dialog, Size, framed, keys_line

LABEL_WIDTH = 10
FIELDS = ("type", "payload", "count", "priority")
DEFAULT_TYPE = "sleep"


class _Field:
    """One form row: label + input, and the problem line under it (empty when fine)."""

    def __init__(self, label: str, widget: urwid.Widget) -> None:
        self.error = urwid.Text("")
        row = urwid.Columns([(LABEL_WIDTH, urwid.Text(("act.label", label))), widget])
        self.widget = urwid.Pile([row, urwid.Padding(self.error, left=LABEL_WIDTH)])


class NewJobForm(Dialog):
    box = True
    title = "New job"

    def __init__(
        self,
        *,
        on_submit: Callable[[JobRequest], None],
        on_close: Callable[[], None],
        job_type: str = DEFAULT_TYPE,
    ) -> None:
        self._on_submit = on_submit
        self._busy = False  # a submission is on its way: Enter must not send it twice
        types = job_types()
        self._type = job_type if job_type in types else types[0]
        group: list[urwid.RadioButton] = []
        self._buttons = [
            urwid.RadioButton(group, name, state=name == self._type, on_state_change=self._chosen)
            for name in types
        ]
        type_grid = urwid.GridFlow(
            [urwid.AttrMap(b, None, focus_map="act.focus") for b in self._buttons],
            cell_width=max(len(name) for name in types) + 4,
            h_sep=1,
            v_sep=0,
            align=urwid.LEFT,
        )
        self.payload = urwid.Edit(edit_text=payload_template(self._type))
        self.count = urwid.Edit(edit_text="1")
        self.priority = urwid.Edit(edit_text="0")
        self._help = urwid.Text(("act.dim", ""))
        self._fields = {
            "type": _Field("type", type_grid),
            "payload": _Field("payload", urwid.AttrMap(self.payload, "act.edit")),
            "count": _Field("count", urwid.AttrMap(self.count, "act.edit")),
            "priority": _Field("priority", urwid.AttrMap(self.priority, "act.edit")),
        }
        self._status = urwid.Text("")
        buttons = urwid.Columns(
            [
                (
                    12,
                    urwid.AttrMap(
                        urwid.Button("Submit", lambda _: self.submit()), None, "act.focus"
                    ),
                ),
                (
                    12,
                    urwid.AttrMap(
                        urwid.Button("Cancel", lambda _: self.close()), None, "act.focus"
                    ),
                ),
            ],
            dividechars=2,
        )
        rows: list[urwid.Widget] = [
            self._fields["type"].widget,
            urwid.Padding(self._help, left=LABEL_WIDTH),
            self._fields["payload"].widget,
            self._fields["count"].widget,
            self._fields["priority"].widget,
            buttons,
            self._status,
        ]
        self._pile = urwid.Pile(rows)
        self._pile.focus_position = 2  # the payload: the field most often changed
        keys = keys_line((("Enter", "submit"), ("Tab", "next field"), ("Esc", "cancel")))
        body: urwid.Frame[urwid.Widget, None, urwid.Pile] = urwid.Frame(
            urwid.ListBox(urwid.SimpleFocusListWalker([self._pile])),
            footer=urwid.Pile([urwid.Divider("-"), keys]),
        )
        super().__init__(framed(urwid.Padding(body, left=1, right=1), self.title), on_close)
        self._show_help()

    @property
    def job_type(self) -> str:
        return self._type

    def choose_type(self, job_type: str) -> None:
        for button in self._buttons:
            if button.label == job_type:
                button.set_state(True)

    def errors(self) -> dict[str, str]:
        """The problem shown under each field (only fields with one)."""
        return {name: str(f.error.text) for name, f in self._fields.items() if f.error.text}

    def submit(self) -> None:
        if self._busy:
            return
        checked = check_form(
            self._type, self.payload.edit_text, self.count.edit_text, self.priority.edit_text
        )
        for field in self._fields.values():
            field.error.set_text("")
        if isinstance(checked, list):
            for problem in checked:
                name = problem.field.split(".")[0]
                shown = self._fields[name].error
                text = str(problem) if not shown.text else f"{shown.text!s}; {problem}"
                shown.set_text(("act.error", text))
            self._status.set_text(("act.error", f"{len(checked)} problem(s): nothing was sent"))
            return
        self._busy = True
        self._on_submit(checked)

    def set_busy(self, message: str) -> None:
        self._status.set_text(("act.busy", message))

    def set_error(self, message: str) -> None:
        self._busy = False
        self._status.set_text(("act.error", message))

    def _chosen(self, button: urwid.RadioButton, state: bool) -> None:
        if not state:
            return
        previous, self._type = self._type, str(button.label)
        # Replace the payload only if the user has not edited the previous type's template.
        if self.payload.edit_text.strip() in ("", payload_template(previous)):
            self.payload.set_edit_text(payload_template(self._type))
        self._show_help()

    def _show_help(self) -> None:
        self._help.set_text(("act.dim", f"payload fields: {field_help(self._type)}"))

    def keypress(self, size: Size, key: str) -> str | None:
        if key == "esc":
            self.close()
            return None
        if key in ("tab", "shift tab"):
            self._move(1 if key == "tab" else -1)
            return None
        focus_is_button = self._pile.focus_position == 5
        if key == "enter" and not focus_is_button and self._pile.focus_position != 0:
            self.submit()
            return None
        super().keypress(size, key)
        return None  # modal

    def _move(self, step: int) -> None:
        focusable = [i for i, (w, _) in enumerate(self._pile.contents) if w.selectable()]
        current = self._pile.focus_position
        after = [i for i in focusable if (i - current) * step > 0]
        target = (
            (min(after) if step > 0 else max(after))
            if after
            else (focusable[0] if step > 0 else focusable[-1])
        )
        self._pile.focus_position = target

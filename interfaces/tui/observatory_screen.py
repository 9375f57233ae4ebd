"""The live screen the app shows once a stack is up: the dashboard under the action overlays.

Wires the dashboard's keys to the overlays (new job, detail, cancel, retry, bulk actions, web
UIs, help) and both to the gateway and the read model at the stack's endpoints.
"""

from __future__ import annotations

from collections.abc import Callable

import urwid

from interfaces.tui.actions import ActionOverlays, ThreadRunner
from interfaces.tui.dashboard import Dashboard, DashboardCallbacks
from interfaces.tui.dialogs import PALETTE as DIALOG_PALETTE
from interfaces.tui.gateway_client import GatewayClient, ReadModelClient
from tools.launcher.api import Endpoints


class ObservatoryScreen:
    def __init__(
        self,
        endpoints: Endpoints,
        quit_app: Callable[[], None],
        stop_stack: Callable[[], None] | None,
        call_soon: Callable[[Callable[[], None]], None],
    ) -> None:
        self._gateway = GatewayClient(endpoints.gateway_grpc)
        self._read_model = ReadModelClient(endpoints.read_model_grpc)
        # The overlays wrap the dashboard's widget, so they exist only after it: bind late.
        callbacks = DashboardCallbacks(
            on_new_job=lambda: self._overlays.open_new_job(),  # noqa: PLW0108
            on_detail=lambda job: self._overlays.open_detail(job.id),
            on_cancel=lambda job: self._overlays.cancel(job.id),
            on_retry=lambda job: self._overlays.retry(job.id),
            on_retry_all=lambda: self._overlays.confirm_retry_all(),  # noqa: PLW0108
            on_replay_dlq=lambda: self._overlays.confirm_replay(),  # noqa: PLW0108
            on_web_uis=lambda: self._overlays.open_web_uis(),  # noqa: PLW0108
            on_help=lambda: self._overlays.open_help(),  # noqa: PLW0108
            on_quit=quit_app,
            on_stop_stack=stop_stack,  # None for a deployment: no ^Q
        )
        self._dashboard = Dashboard(endpoints, callbacks)
        self._overlays = ActionOverlays(
            self._dashboard.widget,
            gateway=self._gateway,
            read_model=self._read_model,
            web_uis=endpoints.web_uis,
            runner=ThreadRunner(call_soon),
        )

    @property
    def widget(self) -> urwid.Widget:
        return self._overlays

    def start(self, loop: urwid.MainLoop) -> None:
        loop.screen.register_palette(DIALOG_PALETTE)
        self._dashboard.start(loop)

    def stop(self) -> None:
        self._dashboard.stop()
        self._gateway.close()
        self._read_model.close()


def observatory_screen(
    endpoints: Endpoints,
    quit_app: Callable[[], None],
    stop_stack: Callable[[], None] | None,
    call_soon: Callable[[Callable[[], None]], None],
) -> ObservatoryScreen:
    return ObservatoryScreen(endpoints, quit_app, stop_stack, call_soon)

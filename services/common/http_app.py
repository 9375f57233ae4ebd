"""The HTTP side of every service: /healthz, /readyz, /metrics, run by uvicorn in a thread.

Gateway and read model add their JSON APIs to the same FastAPI app; processor and metrics engine
serve only these three endpoints.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeoutError

import swagger_ui_bundle  # type: ignore[import-untyped]
import uvicorn
from fastapi import FastAPI, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

# name -> probe; a probe raises (or returns False) when its dependency is unreachable.
ReadinessChecks = Mapping[str, Callable[[], object]]
# /readyz answers within this even while a probed store is frozen (a probe that has not answered
# by then counts as failed); well under the 2 s orchestrators and the fault suite wait.
READINESS_TIMEOUT_SECONDS = 1.5


def ops_app(title: str, readiness: ReadinessChecks, **fastapi_options: object) -> FastAPI:
    app = FastAPI(title=title, **fastapi_options)  # type: ignore[arg-type]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Mapping[str, str]:
        """Live: the process answers. Kubernetes restarts it when this fails."""
        return {"status": "ok"}

    # Probes run side by side on a few threads: a hung one holds a thread, never the answer.
    probes = ThreadPoolExecutor(max_workers=4 * max(1, len(readiness)), thread_name_prefix="readyz")

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> JSONResponse:
        """Ready: every dependency answered just now. Traffic is withheld while it fails."""
        ends = time.monotonic() + READINESS_TIMEOUT_SECONDS
        running = {name: probes.submit(probe) for name, probe in readiness.items()}
        failures = {}
        for name, answer in running.items():
            try:
                if answer.result(timeout=max(0.0, ends - time.monotonic())) is False:
                    failures[name] = "not ready"
            except FutureTimeoutError:
                answer.cancel()
                failures[name] = f"no answer within {READINESS_TIMEOUT_SECONDS} s"
            except Exception as error:  # any failure means not ready
                failures[name] = f"{type(error).__name__}: {error}"[:200]
        status = 503 if failures else 200
        return JSONResponse({"ready": not failures, "failures": failures}, status_code=status)

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return app


def add_docs(app: FastAPI, title: str) -> None:
    """`/docs`: Swagger UI over `/openapi.json`, its assets served from the swagger-ui-bundle
    package (no CDN: the machine may be offline). Create the app with `docs_url=None`."""
    # follow_symlink: under Bazel the package's files are symlinks into the @pip repository.
    assets = StaticFiles(directory=str(swagger_ui_bundle.swagger_ui_path), follow_symlink=True)
    app.mount("/docs/assets", assets, "docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=title,
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )


class HttpServer:
    """uvicorn in a background thread; `port` is the bound port (useful with port 0)."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_config=None,
            access_log=False,
            lifespan="off",
            limit_concurrency=1000,
            timeout_graceful_shutdown=5,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="http", daemon=True)
        self.port = port

    def start(self, timeout: float = 10.0) -> HttpServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise OSError("HTTP server did not start (port in use?)")
            time.sleep(0.01)
        sockets = [s for server in self._server.servers for s in server.sockets]
        self.port = sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

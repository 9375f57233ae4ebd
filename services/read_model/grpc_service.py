"""ReadModelService over gRPC: errors mapped to status codes, Watch as a server stream."""

from __future__ import annotations

import logging
import queue
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

import grpc
from observatory.readmodel.v1 import read_model_pb2 as rm
from observatory.readmodel.v1 import read_model_pb2_grpc

from services.read_model.errors import UNAVAILABLE_ERRORS, InvalidArgumentError, NotFoundError
from services.read_model.reader import ReadModel
from services.read_model.watch import WatchHub, WatchOptions

log = logging.getLogger(__name__)

SERVICE_NAME = "observatory.readmodel.v1.ReadModelService"
Request = TypeVar("Request")
Response = TypeVar("Response")


def _call(
    context: grpc.ServicerContext, method: Callable[[Request], Response], request: Request
) -> Response:
    try:
        return method(request)
    except InvalidArgumentError as error:
        context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
    except NotFoundError as error:
        context.abort(grpc.StatusCode.NOT_FOUND, str(error))
    except UNAVAILABLE_ERRORS as error:
        log.warning("backend unavailable: %s: %s", type(error).__name__, error)
        context.abort(grpc.StatusCode.UNAVAILABLE, f"backend unavailable: {type(error).__name__}")


class ReadModelServicer(read_model_pb2_grpc.ReadModelServiceServicer):
    def __init__(
        self, reader: ReadModel, hub: WatchHub, *, stats_interval_s: float, max_watchers: int
    ) -> None:
        self._reader = reader
        self._hub = hub
        self._stats_interval_s = stats_interval_s
        self._max_watchers = max_watchers

    def GetStats(  # noqa: N802
        self, request: rm.GetStatsRequest, context: grpc.ServicerContext
    ) -> rm.GetStatsResponse:
        return _call(context, self._reader.get_stats, request)

    def ListJobs(  # noqa: N802
        self, request: rm.ListJobsRequest, context: grpc.ServicerContext
    ) -> rm.ListJobsResponse:
        return _call(context, self._reader.list_jobs, request)

    def GetJobDetail(  # noqa: N802
        self, request: rm.GetJobDetailRequest, context: grpc.ServicerContext
    ) -> rm.GetJobDetailResponse:
        return _call(context, self._reader.get_job_detail, request)

    def ListEvents(  # noqa: N802
        self, request: rm.ListEventsRequest, context: grpc.ServicerContext
    ) -> rm.ListEventsResponse:
        return _call(context, self._reader.list_events, request)

    def ListQueues(  # noqa: N802
        self, request: rm.ListQueuesRequest, context: grpc.ServicerContext
    ) -> rm.ListQueuesResponse:
        return _call(context, self._reader.list_queues, request)

    def ListAlerts(  # noqa: N802
        self, request: rm.ListAlertsRequest, context: grpc.ServicerContext
    ) -> rm.ListAlertsResponse:
        return _call(context, self._reader.list_alerts, request)

    def Watch(  # noqa: N802
        self, request: rm.WatchRequest, context: grpc.ServicerContext
    ) -> Iterator[rm.WatchResponse]:
        options = _call(context, lambda r: WatchOptions.of(r, self._stats_interval_s), request)
        if self._hub.watchers() >= self._max_watchers:
            context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many watchers; retry later")
        subscription = self._hub.subscribe(options)
        context.add_callback(subscription.closed.set)  # the client cancelled or went away
        try:
            next_stats = time.monotonic()
            while not subscription.closed.is_set():
                if subscription.overflowed:
                    context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "fell too far behind; re-query and re-watch",
                    )
                if options.stats and time.monotonic() >= next_stats:
                    yield rm.WatchResponse(
                        stats=_call(context, self._reader.get_stats, rm.GetStatsRequest()).stats
                    )
                    next_stats = time.monotonic() + options.stats_interval_s
                wait = next_stats - time.monotonic() if options.stats else 0.25
                try:
                    yield subscription.updates.get(timeout=min(max(wait, 0.0), 0.25))
                except queue.Empty:  # nothing new yet
                    continue
        finally:
            self._hub.unsubscribe(subscription)


def registrar(servicer: ReadModelServicer) -> Callable[[grpc.Server], None]:
    def register(server: grpc.Server) -> None:
        read_model_pb2_grpc.add_ReadModelServiceServicer_to_server(servicer, server)

    return register

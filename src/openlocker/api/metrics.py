"""Prometheus metrics: requests by route and status, latency, parcels by state, free compartments.

With several worker processes set ``PROMETHEUS_MULTIPROC_DIR`` (``openlocker serve`` does it),
so every process's counters add up. Gauges about the network are read from the database at
scrape time: nothing lives in one process's memory that another needs.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from openlocker.core.context import Context
from openlocker.lockers.models import Compartment
from openlocker.parcels.models import Parcel

REQUESTS = Counter("openlocker_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "openlocker_http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
log = logging.getLogger("openlocker.http")


class NetworkCollector(Collector):
    """Parcels by status and free compartments by site and size, read at scrape time."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        parcels = GaugeMetricFamily("openlocker_parcels", "Parcels by status", labels=["status"])
        free = GaugeMetricFamily(
            "openlocker_compartments_free", "Free compartments", labels=["site_id", "size"]
        )
        with self.ctx.db.read() as session:
            for status, count in session.execute(
                select(Parcel.status, func.count()).group_by(Parcel.status)
            ):
                parcels.add_metric([status], count)
            for site_id, size, count in session.execute(
                select(Compartment.site_id, Compartment.size_code, func.count())
                .where(Compartment.state == "free")
                .group_by(Compartment.site_id, Compartment.size_code)
            ):
                free.add_metric([site_id, size], count)
        yield parcels
        yield free


def render(ctx: Context) -> bytes:
    """The text exposition of every metric."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        process_registry = CollectorRegistry()
        MultiProcessCollector(process_registry)  # type: ignore[no-untyped-call]
    else:
        process_registry = REGISTRY
    network = CollectorRegistry()
    network.register(NetworkCollector(ctx))
    return generate_latest(process_registry) + generate_latest(network)


class RequestMetrics:
    """ASGI middleware: counts, times and logs each request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            elapsed = time.perf_counter() - start
            route: Any = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUESTS.labels(method, template, str(status)).inc()
            LATENCY.labels(method, template).observe(elapsed)
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "request",
                    extra={
                        "method": method,
                        "route": template,
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )

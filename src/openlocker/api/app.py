"""The app factory: mounts each feature's routes, errors, metrics and the background jobs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

import anyio.to_thread
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from openlocker import __version__
from openlocker.access import service as access
from openlocker.api import metrics
from openlocker.api.errors import install_error_handlers
from openlocker.api.fastpath import HotRoutes
from openlocker.audit.api import router as audit_router
from openlocker.audit.service import seal_pending
from openlocker.core.context import Context
from openlocker.fleet.api import router as fleet_router
from openlocker.lockers.api import router as sites_router
from openlocker.notify.api import router as outbox_router
from openlocker.notify.dispatcher import Dispatcher
from openlocker.notify.mailbox import router as mailbox_router
from openlocker.notify.service import queue_notices
from openlocker.notify.transports import transports_from_settings
from openlocker.orders.api import router as orders_router
from openlocker.orgs.api import router as orgs_router
from openlocker.parcels import service as parcels
from openlocker.parcels.api import FAST_ROUTES
from openlocker.parcels.api import router as parcels_router
from openlocker.returns.api import router as returns_router
from openlocker.web import api as web
from openlocker.webhooks.api import router as webhooks_router
from openlocker.webhooks.delivery import run_webhooks

log = logging.getLogger("openlocker.jobs")


#: A job that keeps failing is retried at most this far apart.
_MAX_BACKOFF_S = 30.0


async def _every(seconds: float, job: Callable[[], object], name: str) -> None:
    """Run ``job`` in a worker thread every ``seconds``; a failed run is logged, not fatal.

    A job that keeps failing the same way (a sealer refusing a tampered chain, a database
    that is down) logs its traceback once, then one line per failure, and is retried at
    doubling intervals up to ``_MAX_BACKOFF_S``; its recovery is logged too.
    """
    failures = 0
    last_error = ""
    while True:
        try:
            await run_in_threadpool(job)
        except Exception as error:
            failures += 1
            text = f"{type(error).__name__}: {error}"
            if text != last_error:
                log.exception("%s failed", name)
                last_error = text
            else:
                log.warning("%s failed again (%d in a row): %s", name, failures, text)
            await asyncio.sleep(min(seconds * 2**failures, max(seconds, _MAX_BACKOFF_S)))
            continue
        if failures:
            log.warning("%s works again after %d failures", name, failures)
            failures, last_error = 0, ""
        await asyncio.sleep(seconds)


def _expire(ctx: Context) -> None:
    expired, released = parcels.expire_due(ctx)
    pruned = access.prune_pin_attempts(ctx)
    if expired or released or pruned:
        log.info(
            "expiry run",
            extra={"expired": expired, "reservations_released": released, "pin_counts": pruned},
        )


def create_app(ctx: Context | None = None, *, run_jobs: bool = True) -> FastAPI:
    """The HTTP app over ``ctx`` (from the environment when not given).

    With ``run_jobs`` it also expires parcels, seals audit events, queues reminders, runs
    the dispatcher (when a channel is configured) and delivers webhooks in the background.
    """
    context = ctx or Context.from_settings()

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        settings = context.settings
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.request_threads
        tasks = (
            [
                asyncio.create_task(
                    _every(
                        settings.expiry_interval_seconds,
                        lambda: _expire(context),
                        "expiry",
                    )
                ),
                asyncio.create_task(
                    _every(
                        settings.audit_seal_interval_seconds,
                        lambda: seal_pending(context),
                        "audit seal",
                    )
                ),
                asyncio.create_task(run_webhooks(context)),
            ]
            if run_jobs
            else []
        )
        transports = transports_from_settings(context) if run_jobs else {}
        if run_jobs:
            tasks.append(
                asyncio.create_task(
                    _every(
                        settings.notices_interval_seconds,
                        lambda: queue_notices(context),
                        "notices",
                    )
                )
            )
        if transports:
            tasks.append(asyncio.create_task(Dispatcher(context, transports).run()))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if context.db.sql.green is not None:
                await context.db.sql.green.close()

    app = FastAPI(
        title="OpenLocker",
        version=__version__,
        description="Smart parcel lockers: carriers announce and deposit, recipients pick up.",
        lifespan=lifespan,
    )
    app.state.ctx = context
    install_error_handlers(app)
    # Added first, so it runs inside the metrics middleware: fast answers are counted too.
    app.add_middleware(HotRoutes, ctx=context, routes=FAST_ROUTES)
    app.add_middleware(metrics.RequestMetrics)
    for router in (
        parcels_router,
        sites_router,
        orgs_router,
        audit_router,
        outbox_router,
        web.router,
        web.pages,
        webhooks_router,
        orders_router,
        returns_router,
        fleet_router,
    ):
        app.include_router(router)
    app.mount("/static", web.static_files, name="static")
    if context.settings.mailbox:
        app.include_router(mailbox_router)

    @app.get("/healthz", tags=["operations"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    def prometheus_metrics() -> Response:
        return Response(metrics.render(context), media_type="text/plain; version=0.0.4")

    return app

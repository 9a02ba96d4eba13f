"""Dependencies every route shares: the context and who is calling.

They are coroutines so that FastAPI runs them on the event loop, not in a worker thread:
only a key missing from the cache costs a thread and a query.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from openlocker.core.context import Context
from openlocker.orgs.service import Principal, access_principal, peek_principal

_bearer = HTTPBearer(auto_error=False, description="An OpenLocker API key")


async def get_ctx(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def get_principal(
    ctx: Annotated[Context, Depends(get_ctx)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    header = f"Bearer {credentials.credentials}" if credentials else None
    principal = peek_principal(ctx, header)
    if principal is None:
        principal = await run_in_threadpool(access_principal, ctx, header)
    return principal


CtxDep = Annotated[Context, Depends(get_ctx)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]

"""The page's forms under concurrent requests to a real server with two worker processes,
and what that server logs of them."""

from __future__ import annotations

import asyncio
from collections import Counter

import httpx

from openlocker.access.attempts import FREE_FAILURES
from openlocker.core.context import Context
from tests.factories import Factory
from tests.servers import serving
from tests.web.helpers import deposit_through, link_token, served_code, server_log

BURST = 30


async def _burst(base: str, path: str, form: dict[str, str] | None = None) -> Counter[int]:
    async with httpx.AsyncClient(
        base_url=base, limits=httpx.Limits(max_connections=BURST), timeout=60
    ) as client:
        answers = await asyncio.gather(*(client.post(path, data=form) for _ in range(BURST)))
    return Counter(answer.status_code for answer in answers)


def test_bursts_of_wrong_codes_and_extensions_are_judged_one_at_a_time(
    factory: Factory, ctx: Context
) -> None:
    site = factory.site("SSS")
    carrier = factory.org()
    kiosk = factory.kiosk(site)
    with serving(ctx, workers=2, log_level="INFO") as base:
        guessed = link_token(deposit_through(base, carrier.headers, site))
        extended = link_token(deposit_through(base, carrier.headers, site))
        right = served_code(base, kiosk.headers, site)
        wrong = f"{(int(right) + 1) % 10**6:06d}"

        # Only the free failures are judged; the fifth starts the lockout, the rest wait.
        judged = asyncio.run(_burst(base, f"/p/{guessed}/open", {"code": wrong}))
        assert judged == Counter({403: FREE_FAILURES, 429: BURST - FREE_FAILURES})
        refused = httpx.post(f"{base}/p/{guessed}/open", data={"code": right})
        assert refused.status_code == 429  # the right code waits for the lockout too

        once = asyncio.run(_burst(base, f"/p/{extended}/extend"))
        assert once == Counter({303: 1, 409: BURST - 1})
        opened = httpx.post(
            f"{base}/p/{extended}/open",
            data={"code": served_code(base, kiosk.headers, site)},
            follow_redirects=True,
        )
        assert "is open" in opened.text

    log = server_log(ctx)
    assert log.count('"route":"/p/{token}/open"') == BURST + 2
    assert log.count('"route":"/p/{token}/extend"') == BURST
    for token in (guessed, extended):
        assert token not in log

"""How long a site refuses typed PINs after wrong ones, and what that schedule buys.

Wrong typed PINs are counted per bucket of a site (every kiosk and API call of the site shares
it): PINs typed alone share one bucket, PINs typed with a phone suffix one per suffix. The
first ``FREE_FAILURES - 1`` cost nothing; from the ``FREE_FAILURES``-th on, each wrong PIN
locks the bucket's PINs for ``lockout_seconds`` (30 s, doubling, capped at an hour). QR codes
and links are never locked. Time, not a right PIN, forgives: one failure per ``FORGIVE_SECONDS``
without a failure. A right PIN must not clear the count, or an attacker at a busy kiosk would
get fresh free guesses after every recipient's pickup. The figures behind the schedule are in
``docs/security.md``.
"""

from __future__ import annotations

import math
from datetime import datetime
from functools import cache

from openlocker.core.clock import as_utc

FREE_FAILURES = 5
FIRST_LOCKOUT_SECONDS = 30
MAX_LOCKOUT_SECONDS = 3600
#: One failure is forgiven per full quiet period; equal to the cap so even a locked-out
#: attacker's count stops rising (wait an hour, lose one failure, add one).
FORGIVE_SECONDS = MAX_LOCKOUT_SECONDS
#: The goal (docs/security.md): a day of typing PINs at one site opens none of the site's
#: ``GOAL_WAITING_PARCELS`` waiting parcels, but with a chance under ``GOAL_CHANCE``.
GOAL_WINDOW_SECONDS = 86_400
GOAL_WAITING_PARCELS = 500
GOAL_CHANCE = 0.001
#: Beyond this many doublings the lockout is capped anyway; bounds the shift for huge counts.
_DOUBLINGS = (MAX_LOCKOUT_SECONDS // FIRST_LOCKOUT_SECONDS).bit_length()


def lockout_seconds(consecutive_failures: int) -> int:
    """How long typed PINs are refused after the ``consecutive_failures``-th wrong one.

    0 below ``FREE_FAILURES``; then 30 s, 60 s, 120 s, … up to ``MAX_LOCKOUT_SECONDS``.
    """
    if consecutive_failures < FREE_FAILURES:
        return 0
    doublings = min(consecutive_failures - FREE_FAILURES, _DOUBLINGS)
    return min(MAX_LOCKOUT_SECONDS, FIRST_LOCKOUT_SECONDS << doublings)


def recent_failures(
    consecutive_failures: int, last_failure_at: datetime | None, now: datetime
) -> int:
    """The count that still weighs at ``now``: one failure forgiven per quiet ``FORGIVE_SECONDS``.

    Call it before counting a new failure; store the result plus one and ``now``.
    """
    if last_failure_at is None or consecutive_failures <= 0:
        return max(0, consecutive_failures)
    quiet = (as_utc(now) - as_utc(last_failure_at)).total_seconds()
    forgiven = max(0, math.floor(quiet / FORGIVE_SECONDS))
    return max(0, consecutive_failures - forgiven)


def max_guesses(window_seconds: float) -> int:
    """The most PINs an attacker can type at one site within ``window_seconds``, worst case.

    Exact for this schedule: the attacker starts at a clean count, types instantly, and at
    every step either types as soon as the lockout ends or waits whole quiet periods to be
    forgiven first, whichever ends with more guesses; right PINs change nothing.
    """
    if window_seconds <= 0:
        return 0

    @cache
    def more_guesses(count: int, remaining: float) -> int:
        """Guesses still possible after one that left ``count``, ``remaining`` seconds to go."""
        lockout = lockout_seconds(count)
        # Waiting beyond the lockout only pays when it reaches a forgiveness step.
        waits = {lockout} | {
            k * FORGIVE_SECONDS for k in range(1, count + 1) if k * FORGIVE_SECONDS >= lockout
        }
        return max(
            (
                1 + more_guesses(max(0, count - wait // FORGIVE_SECONDS) + 1, remaining - wait)
                for wait in waits
                if wait < remaining
            ),
            default=0,
        )

    return 1 + more_guesses(1, float(window_seconds))


def breach_probability(guesses: int, active_codes: int, pin_length: int) -> float:
    """Chance that ``guesses`` distinct random PINs hit at least one of ``active_codes``.

    Exactly ``1 - C(N - k, g) / C(N, g)`` with ``N = 10**pin_length``: the attacker never
    repeats a guess, which is the best they can do.
    """
    space = 10**pin_length
    if guesses <= 0 or active_codes <= 0:
        return 0.0
    if guesses > space - active_codes:
        return 1.0
    # C(N-k, g)/C(N, g) = C(N-g, k)/C(N, k): run the product over the shorter of the two.
    shorter, longer = sorted((guesses, active_codes))
    log_miss = math.fsum(math.log1p(-longer / (space - i)) for i in range(shorter))
    return -math.expm1(log_miss)


def day_breach_bound(pin_length: int) -> float:
    """The worst-case chance that a day of typing opens any of ``GOAL_WAITING_PARCELS``.

    The PIN-alone bucket allows ``g = max_guesses(day)`` guesses, each against every waiting
    code. A phone bucket allows ``g`` too, but its guesses hit only the codes of parcels with
    that suffix: with ``n_b`` of them a bucket's chance is at most ``g * n_b / (N - g)``, and
    the ``n_b`` add up to at most ``k``, however many buckets an attacker tries. So the
    bound is ``breach_probability(g, k) + g * k / (N - g)`` (a union bound).
    """
    guesses = max_guesses(GOAL_WINDOW_SECONDS)
    alone = breach_probability(guesses, GOAL_WAITING_PARCELS, pin_length)
    with_phone = guesses * GOAL_WAITING_PARCELS / (10.0**pin_length - guesses)
    return min(1.0, alone + with_phone)


def check_pin_length(pin_length: int) -> None:
    """Raise ``ValueError``, saying the figure, for a PIN length that misses the goal."""
    chance = day_breach_bound(pin_length)
    if chance >= GOAL_CHANCE:
        raise ValueError(
            f"{pin_length}-digit PINs miss the guessing goal: a day of typing at one site "
            f"opens one of {GOAL_WAITING_PARCELS} waiting parcels with a chance of up to "
            f"{chance:.3%}, over {GOAL_CHANCE:.1%} (docs/security.md); use 8 digits or more"
        )

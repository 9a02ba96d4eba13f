"""The typed-PIN lockout schedule, and the security goal it has to meet."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest

from openlocker.access.attempts import (
    FORGIVE_SECONDS,
    FREE_FAILURES,
    GOAL_CHANCE,
    GOAL_WAITING_PARCELS,
    GOAL_WINDOW_SECONDS,
    MAX_LOCKOUT_SECONDS,
    breach_probability,
    day_breach_bound,
    lockout_seconds,
    max_guesses,
    recent_failures,
)
from openlocker.core.config import Settings

DAY = 86_400
#: The goal: random typing at one site for a day opens any of 500 waiting parcels with < 0.1 %.
GOAL = 0.001
WAITING_PARCELS = 500


def test_the_goal_is_the_documented_one() -> None:
    assert (GOAL_WINDOW_SECONDS, GOAL_WAITING_PARCELS, GOAL_CHANCE) == (DAY, WAITING_PARCELS, GOAL)


def test_the_configured_pin_length_meets_the_goal_with_both_buckets() -> None:
    length = Settings().pin_length
    guesses = max_guesses(DAY)
    alone = breach_probability(guesses, WAITING_PARCELS, length)
    bound = day_breach_bound(length)
    print(f"{guesses} guesses/day per bucket, bound {bound:.3e} ({GOAL / bound:.1f}x under)")
    assert guesses == 34
    # Phone buckets together are worth one more bucket's guesses against every waiting code.
    assert alone < bound < 2.0001 * alone
    assert bound < GOAL / 2.5


@pytest.mark.parametrize(("length", "figure"), [(6, "3.386%"), (7, "0.340%")])
def test_a_pin_length_that_misses_the_goal_is_refused_with_its_figure(
    length: int, figure: str
) -> None:
    assert day_breach_bound(length) > GOAL
    with pytest.raises(ValueError, match=figure):
        Settings(pin_length=length)


def test_eight_digits_and_more_are_accepted() -> None:
    assert [Settings(pin_length=n).pin_length for n in (8, 9, 12)] == [8, 9, 12]


def test_the_first_failures_are_free_then_the_lockout_doubles_up_to_an_hour() -> None:
    schedule = [lockout_seconds(n) for n in range(14)]
    assert schedule == [0, 0, 0, 0, 0, 30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert FREE_FAILURES == 5 and MAX_LOCKOUT_SECONDS == 3600


def test_a_huge_count_stays_capped() -> None:
    assert lockout_seconds(10**9) == MAX_LOCKOUT_SECONDS
    assert lockout_seconds(-3) == 0


@pytest.mark.parametrize(
    ("window", "guesses"),
    [
        (0, 0),
        (-5, 0),
        (1, 5),  # five free ones, typed at once
        (30, 5),  # the sixth waits the full 30 s lockout
        (30.5, 6),
        (3600, 11),  # 0,0,0,0,0,30,90,210,450,930,1890 s
        (3811, 12),  # 3810 s: after the 1920 s lockout
    ],
)
def test_max_guesses_for_short_windows(window: float, guesses: int) -> None:
    assert max_guesses(window) == guesses


def test_after_the_first_hours_an_attacker_gains_one_guess_an_hour() -> None:
    counts = [max_guesses(hours * 3600) for hours in (6, 12, 24, 48)]
    assert counts == [16, 22, 34, 58]


def _typing_as_soon_as_allowed(window: float) -> int:
    """An attacker who never waits longer than the lockout: a lower bound."""
    now, count, guesses, last = 0.0, 0, 0, None
    while now < window:
        count = recent_failures(count, last, datetime.fromtimestamp(now, UTC)) + 1
        last = datetime.fromtimestamp(now, UTC)
        guesses += 1
        now += lockout_seconds(count)
        if lockout_seconds(count) == 0 and guesses > 10**6:  # pragma: no cover - a broken schedule
            break
    return guesses


@pytest.mark.parametrize("window", [60, 3600, 7200, DAY, 3 * DAY])
def test_max_guesses_is_at_least_what_a_hasty_attacker_gets(window: int) -> None:
    assert max_guesses(window) >= _typing_as_soon_as_allowed(window)


def test_max_guesses_matches_a_search_over_every_strategy_on_a_30_s_grid() -> None:
    # Every lockout and forgiveness step is a multiple of 30 s; try every waiting time.
    tick, horizon = 30, 300  # 2.5 hours
    best: dict[tuple[int, int], int] = {(0, 1): 1}
    # Within one tick the count only rises (free guesses), so ascending counts see them all.
    for at, count in ((at, count) for at in range(horizon) for count in range(1, 40)):
        guesses = best.get((at, count))
        if guesses is not None:
            earliest = at + lockout_seconds(count) // tick
            for then in range(earliest, horizon):
                forgiven = (then - at) * tick // FORGIVE_SECONDS
                key = (then, max(0, count - forgiven) + 1)
                best[key] = max(best.get(key, 0), guesses + 1)
    for window_ticks in (1, 2, 60, 120, 127, 128, 200, 250, 300):
        exhaustive = max(g for (at, _), g in best.items() if at < window_ticks)
        assert max_guesses(window_ticks * tick) == exhaustive, window_ticks


# --- forgiveness -----------------------------------------------------------------------------

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def test_one_failure_is_forgiven_per_quiet_hour() -> None:
    assert recent_failures(7, T0, T0) == 7
    assert recent_failures(7, T0, T0 + timedelta(seconds=FORGIVE_SECONDS - 1)) == 7
    assert recent_failures(7, T0, T0 + timedelta(seconds=FORGIVE_SECONDS)) == 6
    assert recent_failures(7, T0, T0 + timedelta(hours=3, minutes=59)) == 4
    assert recent_failures(7, T0, T0 + timedelta(days=2)) == 0


def test_forgiveness_needs_a_last_failure_and_never_goes_negative() -> None:
    assert recent_failures(3, None, T0) == 3
    assert recent_failures(0, T0, T0 + timedelta(days=1)) == 0
    assert recent_failures(2, T0, T0 - timedelta(hours=5)) == 2  # clock went backwards


def test_naive_times_from_sqlite_are_taken_as_utc() -> None:
    naive = T0.replace(tzinfo=None)
    assert recent_failures(5, naive, T0 + timedelta(hours=2)) == 3


def test_a_locked_out_attacker_stays_locked_out_after_an_hour() -> None:
    # At the cap, waiting out the lockout forgives exactly one failure and the next adds one.
    count = 12
    assert lockout_seconds(count) == FORGIVE_SECONDS
    after = recent_failures(count, T0, T0 + timedelta(seconds=lockout_seconds(count))) + 1
    assert after == count


# --- breach probability ----------------------------------------------------------------------


def _exact(guesses: int, active: int, space: int) -> Fraction:
    miss = Fraction(1)
    for i in range(guesses):
        miss *= Fraction(space - i - active, space - i)
    return 1 - miss


@pytest.mark.parametrize(
    ("guesses", "active", "length"),
    [(1, 1, 2), (5, 3, 2), (30, 40, 2), (97, 3, 2), (50, 200, 3), (34, 500, 4)],
)
def test_breach_probability_is_exact(guesses: int, active: int, length: int) -> None:
    expected = float(_exact(guesses, active, 10**length))
    assert breach_probability(guesses, active, length) == pytest.approx(expected, rel=1e-12)


def test_one_guess_against_one_code_is_one_in_the_space() -> None:
    assert breach_probability(1, 1, 8) == pytest.approx(1e-8, rel=1e-12)


def test_many_guesses_approach_guesses_times_codes_over_space() -> None:
    assert breach_probability(34, 500, 8) == pytest.approx(34 * 500 / 1e8, rel=1e-3)


def test_guessing_every_free_pin_is_certain() -> None:
    assert breach_probability(98, 3, 2) == 1.0
    assert breach_probability(10**9, 1, 8) == 1.0
    assert breach_probability(97, 3, 2) < 1.0


def test_nothing_ventured_or_nothing_waiting_is_no_breach() -> None:
    assert breach_probability(0, 500, 8) == 0.0
    assert breach_probability(34, 0, 8) == 0.0


def test_breach_probability_handles_large_inputs_quickly() -> None:
    chance = breach_probability(5_000_000, 500, 8)
    assert chance == pytest.approx(-math.expm1(500 * math.log1p(-0.05)), rel=1e-3)

"""The Erlang-B loss formula: the blocking probability of N servers under offered load A."""

from __future__ import annotations


def erlang_b(servers: int, load: float) -> float:
    """P(all ``servers`` busy) for Poisson arrivals with offered ``load`` in erlangs.

    Uses the stable recursion B(0) = 1, B(n) = A B(n-1) / (n + A B(n-1)); it holds for any
    holding-time distribution with that mean.
    """
    blocking = 1.0
    for n in range(1, servers + 1):
        blocking = load * blocking / (n + load * blocking)
    return blocking


def servers_for(load: float, target: float) -> int:
    """The fewest servers whose Erlang-B blocking under ``load`` is at most ``target``."""
    servers, blocking = 0, 1.0
    while blocking > target:
        servers += 1
        blocking = load * blocking / (servers + load * blocking)
    return servers

"""Solver defaults that the command line shows without loading the solver."""

#: Seconds of search per route plan. At 10 s PyVRP 0.14 comes within 0.7% of the best known
#: cost on all four X instances we check against (see docs/planning.md and bench/).
DEFAULT_TIME_LIMIT_S = 10.0

"""Heuristic baselines and exact/game-theoretic references, one module per scenario.

``agents.heuristics.sgin`` (MARTO, MAMCC, MAGCS, best response, Stackelberg) is
re-exported here because it came first and is what ``from agents import
heuristics`` has always meant; the other scenarios' baselines live in
``agents.heuristics.<scenario>``.
"""

from agents.heuristics.sgin import (  # noqa: F401
    POLICIES,
    best_response,
    best_response_follower,
    magcs,
    make_policy,
    mamcc,
    marto,
    stackelberg,
    stackelberg_price,
)

"""Edge association (MADDPG, DTWN paper) for the learners: the BSs learn; rewards
−T/(1 − θ_G) in seconds are used unscaled (scale 1).

Decision: under the round-2 live regime (``interference_model="orthogonal"``) the
objective is a few seconds per round (≈ 2.5-3.5 s at 6 users / 2 BSs, ≈ 6-9 s at the
20 / 3 defaults), so scale 1 puts rewards at O(1). Round 1's 0.01 (sized for objectives of
hundreds of seconds) left rewards of ≈ 0.03 that the critic could not resolve against
Adam's step noise: MADDPG scored worse than average association (3.13 / 3.03 s vs 2.83 s;
``tests/test_maddpg.py`` has the numbers at scale 1).
"""

from __future__ import annotations

from agents.adapters.base import Adapter


class EdgeAssocAdapter(Adapter):
    agent_class = "bs"  # reward scale: the default 1


ADAPTER = EdgeAssocAdapter()

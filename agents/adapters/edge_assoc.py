"""Edge association (MADDPG, DTWN paper) for the learners: the BSs learn
continuous bids, batch fractions and bandwidth weights; rewards (−T/(1 − θ_G)
in seconds) are scaled by 0.01 when a config leaves ``reward_scale`` None."""

from __future__ import annotations

from agents.adapters.base import Adapter


class EdgeAssocAdapter(Adapter):
    agent_class = "bs"

    def reward_scale(self, env, params):
        return 0.01


ADAPTER = EdgeAssocAdapter()

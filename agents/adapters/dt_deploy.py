"""DT deployment (recurrent value decomposition) for the learners: users learn with the
shared team reward, normalised per user.

Reward normalisation (the same for IQL, VDN and QMIX): the team reward −(α·L_sum +
β·ς·m) grows with the number of users I (≈ −9 per step at 20 users for the optimum), so
a config that leaves ``reward_scale`` None learns on the reward × 1/I, the negative
per-user objective (order 1 at every I). Round 1 scaled only IQL (by 1/I) and left VDN
and QMIX at scale 1, so the learners were not compared on the same footing."""

from __future__ import annotations

from agents.adapters.base import Adapter


class DtDeployAdapter(Adapter):
    agent_class = "user"

    def reward_scale(self, env, params):
        return 1.0 / env.num_users


ADAPTER = DtDeployAdapter()

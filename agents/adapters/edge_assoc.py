"""Edge association for the learners: the BSs learn; rewards −T/(1 − θ_G) in s, unscaled
(docs/edge_assoc.md, "MADDPG at the default scale").
"""

from __future__ import annotations

from agents.adapters.base import Adapter


class EdgeAssocAdapter(Adapter):
    agent_class = "bs"  # reward scale: the default 1


ADAPTER = EdgeAssocAdapter()

"""DT deployment (recurrent value decomposition) for the learners: users learn
with the shared team reward; nothing else is scenario-specific."""

from __future__ import annotations

from agents.adapters.base import Adapter


class DtDeployAdapter(Adapter):
    agent_class = "user"


ADAPTER = DtDeployAdapter()

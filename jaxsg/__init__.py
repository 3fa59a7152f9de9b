"""jaxsg: a JAX-accelerated batched simulator of satellite-ground integrated
digital-twin networks.

    import jaxsg
    env, params = jaxsg.make("sgin")

Layers (bottom up): ``jaxsg.physics`` kernels, ``jaxsg.queues``,
``jaxsg.consensus``; ``jaxsg.env`` (contract, registry); ``jaxsg.scenarios``
(one module per paper); ``jaxsg.reference`` (plain NumPy oracles).
"""

from jaxsg import (
    scenarios,  # noqa: F401  (registers the scenarios)
    spaces,
)
from jaxsg.env import INVALID_ACTION, EnvState, MultiAgentEnv, make, register, registered_envs
from jaxsg.wrappers import LogWrapper, random_policy, rollout

__all__ = [
    "INVALID_ACTION",
    "EnvState",
    "LogWrapper",
    "MultiAgentEnv",
    "make",
    "random_policy",
    "register",
    "registered_envs",
    "rollout",
    "spaces",
]
__version__ = "0.1.0"

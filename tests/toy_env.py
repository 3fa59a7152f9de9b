"""A tiny two-class env that pins the contract (used by test_env_contract.py).

Three ``worker`` agents walk on {0..4} with a hybrid action (``move`` in
{down, stay, up} and ``effort`` in [0, 1]); one ``boss`` sets a bonus in
[0, 1]. The episode terminates when every worker stands on 4, and is
truncated at ``horizon``. ``move=down`` is unavailable at 0.
"""

import jax
import jax.numpy as jnp
from flax import struct

from jaxsg import spaces
from jaxsg.env import EnvState, MultiAgentEnv
from jaxsg.validation import NON_NEGATIVE, UNIT_INTERVAL, Bound


@struct.dataclass
class ToyParams:
    step_cost: float = 0.1
    bonus_scale: float = 1.0
    noise_std: float = 0.05
    start_max: float = 2.0


@struct.dataclass
class ToyState(EnvState):
    position: jnp.ndarray
    noise: jnp.ndarray


class ToyEnv(MultiAgentEnv):
    agent_classes = ("worker", "boss")
    param_bounds = {
        "step_cost": NON_NEGATIVE,
        "bonus_scale": UNIT_INTERVAL,
        "noise_std": NON_NEGATIVE,
        "start_max": Bound(0.0, 4.0, integer=True),
    }

    def __init__(self, num_workers: int = 3, horizon: int = 5):
        super().__init__(horizon)
        self.num_workers = num_workers

    @property
    def default_params(self):
        return ToyParams()

    def num_agents(self, agent_class):
        return {"worker": self.num_workers, "boss": 1}[agent_class]

    def observation_space(self, agent_class, params=None):
        n = self.num_agents(agent_class)
        return spaces.Box(-jnp.inf, jnp.inf, (n, 2))

    def action_space(self, agent_class, params=None):
        n = self.num_agents(agent_class)
        if agent_class == "worker":
            return spaces.Dict({"move": spaces.Discrete(3, (n,)), "effort": spaces.Box(0, 1, (n,))})
        return spaces.Box(0.0, 1.0, (n,))

    def avail_actions(self, state, params):
        down_ok = state.position > 0
        mask = jnp.stack([down_ok, jnp.ones_like(down_ok), jnp.ones_like(down_ok)], -1)
        return {"worker": {"move": mask}, "boss": {}}

    def _obs(self, state):
        pos = state.position.astype(jnp.float32)
        worker = jnp.stack([pos, state.noise], -1)
        boss = jnp.stack([pos.mean(), state.noise.mean()])[None]
        return {"worker": worker, "boss": boss}

    def reset_env(self, key, params):
        k1, k2 = jax.random.split(key)
        high = jnp.asarray(params.start_max).astype(jnp.int32) + 1
        pos = jax.random.randint(k1, (self.num_workers,), 0, high)
        noise = params.noise_std * jax.random.normal(k2, (self.num_workers,))
        state = ToyState(step=jnp.zeros((), jnp.int32), position=pos, noise=noise)
        return self._obs(state), state

    def step_env(self, key, state, action, params):
        move = action["worker"]["move"] - 1
        position = jnp.clip(state.position + move, 0, 4)
        noise = params.noise_std * jax.random.normal(key, (self.num_workers,))
        new = state.replace(position=position, noise=noise)
        at_goal = position == 4
        bonus = params.bonus_scale * action["boss"][0]
        worker_r = at_goal * bonus - params.step_cost * action["worker"]["effort"]
        reward = {"worker": worker_r.astype(jnp.float32),
                  "boss": jnp.full((1,), -bonus, jnp.float32)}
        terminated = jnp.all(at_goal)
        info = {"mean_position": position.mean().astype(jnp.float32), "at_goal": at_goal}
        return self._obs(new), new, reward, terminated, info

"""The methods registry: method name → kind, label and how to build its policy.

Experiments name methods; they never construct them. A method is one of

* ``heuristic`` — a paper baseline (MARTO, RD, random association, ...),
* ``reference`` — an exact / best-response / Stackelberg / myopic optimum or a
  hand-made bound beyond the paper,
* ``learner`` — a trained method, with its per-scale number of training seeds.

    m = methods.get("sgin", "marto")               # Method(kind="heuristic", ...)
    policy = methods.policy("sgin", "marto", env)  # a jaxsg.policy.Policy
    policy = methods.learned_policy("edge_assoc", "proposed", env, config, policy_params)

Every policy built here has the one signature ``policy(key, obs, state, params)``
(or is a :class:`jaxsg.policy.RecurrentPolicy`), so :func:`jaxsg.wrappers.rollout`
evaluates all of them.

Two switch points keep today's call paths working while the agents refactor
lands: :func:`heuristic_factory` (one line becomes
``agents.heuristics.get(scenario, name, env, **kw)``) and
:func:`learned_policy` (one branch per learner becomes
``module.make_policy(env, config, policy_params)``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

KINDS = ("heuristic", "reference", "learner")
SCALES = ("smoke", "default", "paper")


@dataclass(frozen=True)
class Method:
    scenario: str
    name: str
    kind: str
    label: str
    #: learners: training seeds per scale (specs/evaluation.md §3: ≥ 3 default, ≥ 5 paper)
    train_seeds: dict = field(default_factory=dict)
    #: False where the policy runs host-side (not jit-able), e.g. an exact SciPy optimum
    jittable: bool = True

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method {self.name!r}: kind must be one of {KINDS}, "
                             f"got {self.kind!r}")
        if self.kind == "learner" and set(self.train_seeds) != set(SCALES):
            raise ValueError(f"learner {self.name!r}: train_seeds needs every scale {SCALES}")


_LEARNER_SEEDS = {"smoke": 2, "default": 3, "paper": 5}


def _m(scenario, name, kind, label, **kw) -> Method:
    if kind == "learner":
        kw.setdefault("train_seeds", dict(_LEARNER_SEEDS))
    return Method(scenario, name, kind, label, **kw)


REGISTRY: dict[tuple[str, str], Method] = {
    (m.scenario, m.name): m
    for m in (
        _m("sgin", "marto", "heuristic", "MARTO"),
        _m("sgin", "mamcc", "heuristic", "MAMCC"),
        _m("sgin", "magcs", "heuristic", "MAGCS"),
        _m("sgin", "best_response", "reference", "best response (ref.)"),
        _m("sgin", "stackelberg", "reference", "Stackelberg (ref.)"),
        _m("sgin", "maml_madfrl", "learner", "MAML-MADFRL (proposed)"),
        _m("sgin", "mappo", "learner", "MAPPO"),
        _m("dt_deploy", "rd", "heuristic", "RD"),
        _m("dt_deploy", "greedy", "reference", "greedy (ref.)"),
        _m("dt_deploy", "optimal", "reference", "optimum (ref.)", jittable=False),
        _m("dt_deploy", "proposed", "learner", "proposed (VDN)"),
        _m("dt_deploy", "iql", "learner", "IQL"),
        _m("dt_deploy", "qmix", "learner", "QMIX"),
        _m("spectrum", "average_budget", "heuristic", "average-budget pricing"),
        _m("spectrum", "myopic_optimal", "reference", "myopic optimum (ref.)"),
        _m("spectrum", "proposed", "learner", "proposed (DDQN + reputation FL)"),
        _m("spectrum", "ddqn", "learner", "DDQN"),
        _m("edge_assoc", "random", "heuristic", "random association"),
        _m("edge_assoc", "average", "heuristic", "average association"),
        _m("edge_assoc", "full_data", "heuristic", "full data"),
        _m("edge_assoc", "orthogonal", "reference", "orthogonal bandwidth (ref.)"),
        _m("edge_assoc", "proposed", "learner", "proposed (MADDPG)"),
    )
}


def get(scenario: str, name: str) -> Method:
    try:
        return REGISTRY[(scenario, name)]
    except KeyError:
        known = ", ".join(n for s, n in REGISTRY if s == scenario) or "(no methods)"
        raise KeyError(f"unknown method {name!r} of scenario {scenario!r}; known: {known}"
                       ) from None


def names(scenario: str, kind: str | None = None) -> tuple[str, ...]:
    """Method names of ``scenario`` (of one ``kind`` if given), in registry order."""
    return tuple(n for (s, n), m in REGISTRY.items()
                 if s == scenario and (kind is None or m.kind == kind))


def label(scenario: str, name: str) -> str:
    m = REGISTRY.get((scenario, name))
    return name if m is None else m.label


def is_learner(scenario: str, name: str) -> bool:
    return get(scenario, name).kind == "learner"


def train_seeds(scenario: str, name: str, scale: str) -> int:
    m = get(scenario, name)
    if m.kind != "learner":
        raise ValueError(f"{scenario}/{name} is a {m.kind}, not a learner")
    return int(m.train_seeds[scale])


# ------------------------------------------------------------------ policies
def heuristic_factory(scenario: str, name: str, env, **kwargs) -> Callable:
    """Today's per-scenario heuristic factories (switch: ``agents.heuristics.get``)."""
    if scenario == "sgin":
        from agents.heuristics import sgin as h
        if name == "stackelberg":
            return h.stackelberg(env, **kwargs)
        return h.make_policy(name, env, **kwargs)
    if scenario == "dt_deploy":
        from agents.heuristics import dt_deploy as h
        if name == "optimal":
            return h.optimal_policy(env)
        return h.make_policy(name, env, **kwargs)
    if scenario == "spectrum":
        from agents.heuristics import spectrum as h
        return h.make_policy(name, env, **kwargs)
    if scenario == "edge_assoc":
        from agents.heuristics import edge_assoc as h
        return h.make_policy(name, env, **kwargs)
    raise KeyError(f"unknown scenario {scenario!r}")


def policy(scenario: str, name: str, env, **kwargs) -> Callable:
    """The policy of a heuristic or reference method (learners: :func:`learned_policy`)."""
    m = get(scenario, name)
    if m.kind == "learner":
        raise ValueError(f"{scenario}/{name} is a learner: train it and use learned_policy")
    return heuristic_factory(scenario, name, env, **kwargs)


def learned_policy(scenario: str, name: str, env, config, policy_params, **kwargs):
    """The greedy/deterministic evaluation policy of a trained learner (the switch point to
    ``make_policy(env, config, policy_params)`` of every learner module)."""
    m = get(scenario, name)
    if m.kind != "learner":
        raise ValueError(f"{scenario}/{name} is a {m.kind}, not a learner")
    if scenario == "edge_assoc":
        from agents import maddpg
        return maddpg.make_policy(env, config, policy_params, **kwargs)
    if scenario == "spectrum":
        from agents import ddqn
        return ddqn.make_policy(env, config, policy_params, **kwargs)
    if scenario == "sgin" and name == "maml_madfrl":
        from agents import madfrl
        return madfrl.make_policy(env, config, policy_params, **kwargs)
    if scenario == "sgin" and name == "mappo":
        from agents import mappo
        return mappo.make_policy(env, config, policy_params, **kwargs)
    if scenario == "dt_deploy":
        return _value_decomp_policy(env, config, policy_params)
    raise KeyError(f"no policy builder for learner {scenario}/{name}")


def _value_decomp_policy(env, config, agent_params):
    """Greedy recurrent policy of ``agents.value_decomp`` (GRU carry reset per episode);
    the same computation as its ``make_actor`` at ε = 0."""
    import jax
    import jax.numpy as jnp

    from agents import value_decomp as vd
    from agents.networks import mask_logits
    from jaxsg.policy import RecurrentPolicy

    if hasattr(vd, "make_policy"):
        return vd.make_policy(env, config, agent_params)
    spec = vd._spec(env, config)
    net = vd._agent_net(spec, config)
    n, a_n, cls = spec.n, spec.num_actions, spec.cls

    def init_carry(params):
        del params
        return (jnp.zeros((n, config.hidden)), jnp.zeros((n, a_n)))

    def apply(carry, key, obs, state, params, reset):
        del key
        h, last = carry
        last = jnp.where(reset, jnp.zeros_like(last), last)
        mask = vd._masks(env, state, params, cls)
        mask = jnp.ones((n, a_n), bool) if mask is None else mask
        x = jnp.concatenate([obs[cls], last], axis=-1)
        h, q = net.apply(agent_params, h, vd.with_id(x, n), jnp.broadcast_to(reset, (n,)))
        action = jnp.argmax(mask_logits(q, mask), axis=-1).astype(jnp.int32)
        return (h, jax.nn.one_hot(action, a_n, dtype=jnp.float32)), {cls: action}

    return RecurrentPolicy(init_carry=init_carry, apply=apply)

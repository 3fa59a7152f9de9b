"""Real federated learning for ``edge_assoc``: hierarchical FedAvg with DPoS verification.

Lu et al., IEEE TII 2021, Sec. II-B/C (eq. 4-6), one jitted round (:class:`FLTask`) over the
DTs on a client axis (docs/edge_assoc.md, "Real FL task").

CLI: ``python -m agents.fl_task [--dataset digits|file.npz] [--rounds 20]`` prints test
accuracy per round under average association; a missing file is one line naming the path
(exit status 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
from typing import Any, ClassVar, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from agents import core
from agents.federated import RULES as AGGREGATIONS
from agents.federated import coordinate_median, group_average, trimmed_mean, weighted_average
from jaxsg.consensus import dpos_award, dpos_elect, dpos_majority, dpos_stakes, dpos_verify
from jaxsg.validation import Bound

VERIFIERS = ("dpos", "mbs_oracle")
ATTACKS = ("none", "sign_flip", "noise")
PARTITIONS = ("iid", "dirichlet")
NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


@dataclasses.dataclass(frozen=True)
class FLConfig:
    dataset: str = "digits"
    num_users: int = 100
    num_bs: int = 5
    local_epochs: int = 1
    local_batch_size: int = 8
    lr: float = 0.1
    partition: str = "iid"
    dirichlet_alpha: float = 0.5
    val_fraction: float = 0.1
    verify: bool = True
    verifier: str = "dpos"
    num_producers: int = 2
    colluding: bool = False
    verify_tol: float = 0.15
    aggregation: str = "fedavg"
    trim_fraction: float = 0.25  # k = ⌊trim_fraction·M⌋ cut per end: ≥ 1/M to cut anything
    attack: str = "sign_flip"
    attack_scale: float = 4.0
    hidden: Sequence[int] = (64,)
    s_ini: float = 100.0
    coin_reward: float = 1.0
    seed: int = 0

    BOUNDS: ClassVar = dict(
        num_users=core.COUNT, num_bs=core.COUNT, local_epochs=core.COUNT,
        local_batch_size=core.COUNT, num_producers=core.COUNT,
        dirichlet_alpha=core.NON_NEGATIVE, val_fraction=Bound(0.0, 0.9),
        verify_tol=core.FINITE, trim_fraction=Bound(0.0, 0.5, high_inclusive=False),
        attack_scale=core.FINITE, s_ini=core.POSITIVE, coin_reward=core.FINITE)
    CHOICES: ClassVar = dict(aggregation=AGGREGATIONS, attack=ATTACKS, partition=PARTITIONS,
                             verifier=VERIFIERS)

    def __post_init__(self):
        core.check_config(self)
        if self.num_producers > self.num_bs:
            raise ValueError(f"FLConfig: field 'num_producers' = {self.num_producers} must be "
                             f"<= num_bs = {self.num_bs}")
        check_dataset(self.dataset)


def check_dataset(dataset: str) -> None:
    """``"digits"`` or an existing ``.npz`` path; ValueError naming the path otherwise."""
    if dataset == "digits":
        return
    if not isinstance(dataset, (str, os.PathLike)):
        raise ValueError(f"dataset must be 'digits' or a path to an .npz file, got {dataset!r}")
    if not os.path.isfile(dataset):
        raise ValueError(
            f"dataset file not found: '{dataset}' (expected 'digits' or an existing .npz "
            f"file with arrays {', '.join(NPZ_KEYS)})"
        )


def load_dataset(dataset: str = "digits", seed: int = 0) -> dict:
    """``{"x_train", "y_train", "x_test", "y_test"}`` as float32 NHWC in [0, 1] / int32."""
    check_dataset(dataset)
    if dataset == "digits":
        from sklearn.datasets import load_digits

        d = load_digits()
        x = (d.images.astype(np.float32) / 16.0)[..., None]
        y = d.target.astype(np.int32)
        perm = np.random.default_rng(seed).permutation(len(y))
        cut = int(round(0.8 * len(y)))
        tr, te = perm[:cut], perm[cut:]
        return {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}
    try:
        with np.load(dataset) as f:
            files = list(f.files)
            raw = {k: np.asarray(f[k]) for k in NPZ_KEYS if k in files}
    except Exception as err:  # not a zip/npz, pickled, unreadable, ...
        raise ValueError(f"cannot read dataset file '{dataset}': {err}") from None
    missing = [k for k in NPZ_KEYS if k not in raw]
    if missing:
        raise ValueError(f"dataset file '{dataset}' lacks arrays {missing} (has {files})")
    for split in ("train", "test"):
        x = raw[f"x_{split}"]
        x = x.astype(np.float32) / (255.0 if x.dtype == np.uint8 or x.max() > 1.5 else 1.0)
        raw[f"x_{split}"] = x[..., None] if x.ndim == 3 else x
        raw[f"y_{split}"] = raw[f"y_{split}"].reshape(-1).astype(np.int32)
    return raw


class ClientData(NamedTuple):
    x: jnp.ndarray  # (N, n_max, H, W, C)
    y: jnp.ndarray  # (N, n_max) int32
    count: jnp.ndarray  # (N,) float32 D_j (real samples)


def partition(x, y, num_users: int, kind: str = "iid", alpha: float = 0.5, seed: int = 0,
              sizes=None) -> ClientData:
    """Split (x, y) over ``num_users`` clients, padded to the largest by cycling; ``sizes``
    (N,): relative client sizes (e.g. the env's D_j), IID only."""
    rng = np.random.default_rng(seed)
    n = len(y)
    if kind == "iid":
        perm = rng.permutation(n)
        if sizes is None:
            parts = np.array_split(perm, num_users)
        else:
            w = np.asarray(sizes, np.float64)
            bounds = np.round(np.cumsum(w) / w.sum() * n).astype(int)
            parts = np.split(perm, bounds[:-1])
    else:  # each class's samples split over the clients by Dirichlet(α) shares
        per_class = []
        for c in np.unique(y):
            idx = rng.permutation(np.flatnonzero(y == c))
            cuts = (np.cumsum(rng.dirichlet(np.full(num_users, alpha))) * len(idx)).astype(int)
            per_class.append(np.split(idx, cuts[:-1]))
        parts = [np.concatenate([chunks[j] for chunks in per_class]) for j in range(num_users)]
    # every client gets at least one sample
    parts = [p if len(p) else rng.integers(0, n, 1) for p in parts]
    n_max = max(len(p) for p in parts)
    idx = np.stack([np.resize(p, n_max) for p in parts])
    counts = np.array([len(p) for p in parts], np.float32)
    return ClientData(jnp.asarray(x[idx]), jnp.asarray(y[idx]), jnp.asarray(counts))


class MLPClassifier(nn.Module):
    hidden: Sequence[int] = (64,)
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        x = x.reshape(x.shape[:-3] + (-1,))
        for h in self.hidden:
            x = nn.relu(nn.Dense(h)(x))
        return nn.Dense(self.num_classes)(x)


class PaperCNN(nn.Module):
    """The paper's CNN: 5×5 conv 32 → 2×2 max-pool → 5×5 conv 64 → 2×2 max-pool → FC 512 → out."""

    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        x = nn.max_pool(nn.relu(nn.Conv(32, (5, 5), padding="SAME")(x)), (2, 2), (2, 2))
        x = nn.max_pool(nn.relu(nn.Conv(64, (5, 5), padding="SAME")(x)), (2, 2), (2, 2))
        x = x.reshape(x.shape[:-3] + (-1,))
        x = nn.relu(nn.Dense(512)(x))
        return nn.Dense(self.num_classes)(x)


def _xent(logits, labels):
    logp = jax.nn.log_softmax(logits)
    return -jnp.take_along_axis(logp, labels[..., None], axis=-1)[..., 0]


class FLState(NamedTuple):
    params: Any  # global model
    coins: jnp.ndarray  # (M,) DPoS training coins
    round: jnp.ndarray  # int32


class FLTask:
    """Data, model and the jitted round of one FL configuration: ``task.round(state, assoc,
    batch_frac, poisoned, key) -> (state, metrics)``; ``task.run`` scans rounds of
    ``assocs``/``batch_fracs`` (T, N)."""

    def __init__(self, config: FLConfig = FLConfig(), sizes=None):
        self.config = cfg = config
        data = load_dataset(cfg.dataset, cfg.seed)
        x, y = data["x_train"], data["y_train"]
        n_val = max(cfg.num_bs, int(round(cfg.val_fraction * len(y))))
        if n_val >= len(y):
            raise ValueError(f"FLConfig: {len(y)} training samples cannot give every one of "
                             f"num_bs = {cfg.num_bs} BSs a held-out shard and the DTs data")
        self.x_val, self.y_val = jnp.asarray(x[:n_val]), jnp.asarray(y[:n_val])
        # BS i's own held-out shard (DPoS verification): every M-th sample from i, equal sizes
        per = n_val // cfg.num_bs
        self.x_shards = jnp.stack([self.x_val[i::cfg.num_bs][:per] for i in range(cfg.num_bs)])
        self.y_shards = jnp.stack([self.y_val[i::cfg.num_bs][:per] for i in range(cfg.num_bs)])
        self.x_test, self.y_test = jnp.asarray(data["x_test"]), jnp.asarray(data["y_test"])
        self.clients = partition(x[n_val:], y[n_val:], cfg.num_users, cfg.partition,
                                 cfg.dirichlet_alpha, cfg.seed, sizes)
        num_classes = int(max(y.max(), data["y_test"].max())) + 1
        small = x.shape[1] <= 16
        self.model = (MLPClassifier(tuple(cfg.hidden), num_classes) if small
                      else PaperCNN(num_classes))
        self.image_shape = x.shape[1:]
        self.max_steps = int(math.ceil(
            cfg.local_epochs * int(self.clients.y.shape[1]) / cfg.local_batch_size))
        self.round = jax.jit(self._round)
        self.run = jax.jit(self._run)

    def init(self, key) -> FLState:
        params = self.model.init(key, jnp.zeros((1,) + tuple(self.image_shape)))
        m = self.config.num_bs
        return FLState(params, jnp.full((m,), self.config.s_ini / m), jnp.zeros((), jnp.int32))

    def loss(self, params, x, y):
        return jnp.mean(_xent(self.model.apply(params, x), y))

    def accuracy(self, params, x, y):
        return jnp.mean(jnp.argmax(self.model.apply(params, x), -1) == y)

    def local_train(self, params, x, y, count, frac, key):
        """One DT: ``local_epochs`` passes of SGD over a random ⌈b·D⌉-sample subset."""
        cfg = self.config
        n_max = y.shape[0]
        # a random order of the real slots [0, count) first (padding slots repeat them)
        r = jax.random.uniform(key, (n_max,))
        chosen = jnp.argsort(jnp.where(jnp.arange(n_max) < count, r, 2.0))
        k = jnp.maximum(jnp.ceil(frac * count), 1.0)  # samples used this round
        total = cfg.local_epochs * k
        bsz = cfg.local_batch_size

        def step(p, s):
            pos = s * bsz + jnp.arange(bsz)
            valid = pos < total
            idx = chosen[(pos % k).astype(jnp.int32)]

            def batch_loss(q):
                losses = _xent(self.model.apply(q, x[idx]), y[idx])
                return jnp.sum(losses * valid) / jnp.maximum(jnp.sum(valid), 1.0)

            g = jax.grad(batch_loss)(p)
            active = jnp.any(valid)
            return jax.tree.map(lambda a, b: a - cfg.lr * active * b, p, g), None

        params, _ = jax.lax.scan(step, params, jnp.arange(self.max_steps))
        return params

    def _round(self, state: FLState, assoc, batch_frac, poisoned, key):
        cfg = self.config
        m = cfg.num_bs
        c = self.clients
        k_train, k_noise = jax.random.split(key)
        keys = jax.random.split(k_train, cfg.num_users)
        w = state.params
        dt_params = jax.vmap(self.local_train, in_axes=(None, 0, 0, 0, 0, 0))(
            w, c.x, c.y, c.count, batch_frac, keys)
        trained = jnp.maximum(jnp.ceil(batch_frac * c.count), 1.0)
        bs_params, _, count = group_average(dt_params, trained, assoc, m)  # eq. 4
        nonempty = count > 0
        bs_params = core.gate(nonempty, bs_params, w)
        # attack on the BS's update Δ = G − w
        poisoned = jnp.asarray(poisoned, bool) & nonempty
        if cfg.attack == "sign_flip":
            bad = jax.tree.map(lambda g, z: z[None] - cfg.attack_scale * (g - z[None]),
                               bs_params, w)
        elif cfg.attack == "noise":
            treedef = jax.tree.structure(bs_params)
            nkeys = jax.tree.unflatten(treedef, jax.random.split(k_noise, treedef.num_leaves))
            bad = jax.tree.map(lambda g, z, kk: g + cfg.attack_scale * jnp.sqrt(
                jnp.mean((g - z[None]) ** 2) + 1e-12) * jax.random.normal(kk, g.shape),
                bs_params, w, nkeys)
        else:
            bad = bs_params
        bs_params = core.gate(poisoned, bad, bs_params)
        # coins (eq. 6 at round 0) and the producers elected by stake-weighted votes
        data_bs = jax.ops.segment_sum(c.count, assoc, num_segments=m)
        coins0 = jnp.where(state.round == 0, dpos_stakes(data_bs, cfg.s_ini), state.coins)
        _, producers = dpos_elect(coins0, cfg.num_producers)
        prev_loss = self.loss(w, self.x_val, self.y_val)
        bs_loss = jax.vmap(self.loss, in_axes=(0, None, None))(bs_params, self.x_val, self.y_val)
        if cfg.verifier == "dpos":
            shard_loss = jax.vmap(self.loss, in_axes=(None, 0, 0))  # over verifiers v
            ref = shard_loss(w, self.x_shards, self.y_shards)  # (V,)
            cand = jax.vmap(shard_loss, in_axes=(0, None, None), out_axes=1)(
                bs_params, self.x_shards, self.y_shards)  # (V, B)
            accept = dpos_verify(cand, ref, cfg.verify_tol)
            if cfg.colluding:
                accept = accept | (poisoned[:, None] & poisoned[None, :])
            passed = dpos_majority(accept, producers)
            excess = cand - ref[:, None]
        else:
            passed = bs_loss <= prev_loss + cfg.verify_tol
            excess = jnp.broadcast_to(bs_loss - prev_loss, (m, m))
        verified = nonempty & (passed if cfg.verify else True)
        # MBS aggregation (eq. 5)
        if cfg.aggregation == "fedavg":
            new = core.gate(jnp.any(verified), weighted_average(bs_params, verified), w)
        else:
            filled = core.gate(verified, bs_params, w)
            new = (coordinate_median(filled) if cfg.aggregation == "median"
                   else trimmed_mean(filled, cfg.trim_fraction))
        coins = dpos_award(coins0, verified, cfg.coin_reward)
        new_state = FLState(new, coins, state.round + 1)
        metrics = {
            "test_loss": self.loss(new, self.x_test, self.y_test),
            "test_accuracy": self.accuracy(new, self.x_test, self.y_test),
            "val_loss": self.loss(new, self.x_val, self.y_val),
            "bs_val_loss": bs_loss,
            # (V, B): BS b's loss increase on verifier v's shard (the MBS's set if mbs_oracle)
            "verify_loss_excess": excess,
            "verified": verified,
            "producers": producers,
            "poisoned_producers": jnp.sum(producers & poisoned),
            "num_verified": jnp.sum(verified),
            "poisoned_excluded": jnp.sum(poisoned & ~verified),
            "honest_excluded": jnp.sum(nonempty & ~poisoned & ~verified),
            "data_fraction": jnp.sum(trained) / jnp.sum(c.count),
        }
        return new_state, metrics

    def _run(self, state: FLState, assocs, batch_fracs, poisoned, key):
        keys = jax.random.split(key, assocs.shape[0])

        def body(s, xs):
            a, b, k = xs
            return self._round(s, a, b, poisoned, k)

        return jax.lax.scan(body, state, (assocs, batch_fracs, keys))


def average_association(num_users: int, num_bs: int) -> jnp.ndarray:
    return jnp.arange(num_users, dtype=jnp.int32) % num_bs


def poisoned_mask(num_bs: int, fraction: float) -> jnp.ndarray:
    """The first ⌊fraction·M⌉ BSs are malicious."""
    k = int(round(fraction * num_bs))
    return jnp.arange(num_bs) < k


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.fl_task", description=__doc__.split(
        "\n")[0])
    parser.add_argument("--dataset", default="digits", help="'digits' or a .npz file")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--bs", type=int, default=5)
    parser.add_argument("--batch-frac", type=float, default=1.0)
    parser.add_argument("--poisoned", type=float, default=0.0, help="fraction of malicious BSs")
    parser.add_argument("--no-verify", action="store_true")
    parser.add_argument("--verifier", default="dpos", choices=VERIFIERS)
    parser.add_argument("--aggregation", default="fedavg", choices=AGGREGATIONS)
    args = parser.parse_args(argv)
    try:
        cfg = FLConfig(dataset=args.dataset, num_users=args.users, num_bs=args.bs,
                       verify=not args.no_verify, verifier=args.verifier,
                       aggregation=args.aggregation, num_producers=min(2, args.bs))
        task = FLTask(cfg)
    except ValueError as err:
        parser.error(str(err))
    state = task.init(jax.random.PRNGKey(cfg.seed))
    assoc = average_association(cfg.num_users, cfg.num_bs)
    t = args.rounds
    _, metrics = task.run(state, jnp.broadcast_to(assoc, (t, cfg.num_users)),
                          jnp.full((t, cfg.num_users), args.batch_frac),
                          poisoned_mask(cfg.num_bs, args.poisoned), jax.random.PRNGKey(1))
    for r in range(t):
        print(f"round {r + 1:3d}  test loss {float(metrics['test_loss'][r]):.4f}  "
              f"test accuracy {float(metrics['test_accuracy'][r]):.4f}  "
              f"verified {int(metrics['num_verified'][r])}/{cfg.num_bs}")
    return 0


if __name__ == "__main__":
    from sweeps.platform import configure_cpu_runtime

    configure_cpu_runtime()
    sys.exit(main())

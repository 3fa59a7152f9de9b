"""agents.replay: ring order, uniform sampling over valid items only, jit/scan-safety."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from agents import replay


def _item(v):
    return {"obs": jnp.full((3,), v, jnp.float32), "a": jnp.asarray(v, jnp.int32)}


def test_ring_overwrites_oldest_and_size_saturates():
    buf = replay.init(_item(0), capacity=4)
    assert int(replay.size(buf)) == 0
    items = jax.tree.map(lambda *x: jnp.stack(x), *[_item(v) for v in range(1, 7)])
    buf = replay.add_batch(buf, items)
    assert int(buf.count) == 6 and int(replay.size(buf)) == 4
    # 1..6 into 4 slots: slots hold 5, 6, 3, 4
    np.testing.assert_array_equal(np.asarray(buf.data["a"]), [5, 6, 3, 4])
    np.testing.assert_array_equal(np.asarray(buf.data["obs"][:, 0]), [5, 6, 3, 4])


def test_sample_only_valid_items_and_covers_them():
    buf = replay.init(_item(0), capacity=100)
    for v in (7, 8, 9):
        buf = replay.add(buf, _item(v))
    batch = jax.jit(replay.sample, static_argnums=2)(buf, jax.random.PRNGKey(0), 3000)
    values = np.asarray(batch["a"])
    assert set(values.tolist()) == {7, 8, 9}
    counts = np.bincount(values)[7:10]
    assert counts.min() > 850  # uniform: 1000 each expected


def test_buffer_is_a_scan_carry():
    def body(buf, v):
        return replay.add(buf, _item(v)), None

    buf, _ = jax.lax.scan(body, replay.init(_item(0), 8), jnp.arange(5.0))
    assert int(buf.count) == 5
    np.testing.assert_array_equal(np.asarray(buf.data["a"][:5]), [0, 1, 2, 3, 4])


def test_bad_capacity():
    with pytest.raises(ValueError, match="capacity"):
        replay.init(_item(0), 0)

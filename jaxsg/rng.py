"""Fast uniform random draws for batched env steps (scenario-free).

:func:`uniform_01` gives the same U[0, 1) float32 values as JAX's counter-mode
threefry (``jax.extend.random.threefry_2x32`` over ``0 … size−1``) with the hash
unrolled (:func:`threefry2x32`), so XLA fuses it into the step on CPU; a different
stream than ``jax.random.uniform`` (which spends one block per 32-bit word), same
distribution. Pinned bit for bit in ``tests/test_bench.py``.
"""

from __future__ import annotations

import math

import chex
import jax
import jax.numpy as jnp

_THREEFRY_ROTATIONS = ((13, 15, 26, 6), (17, 29, 16, 24))


def threefry2x32(key_words: jnp.ndarray, x0: jnp.ndarray, x1: jnp.ndarray):
    """Threefry-2x32 with 20 rounds (Salmon et al., SC 2011), unrolled, as plain
    element-wise ops; bit-identical to ``jax.extend.random.threefry_2x32``.

    Why not that function: on CPU JAX lowers the hash as a 5-iteration while loop,
    which XLA cannot fuse into the surrounding step, so every round trip goes through
    memory; unrolled, the hash fuses with the draws' scaling.
    """
    k0, k1 = key_words[0], key_words[1]
    ks = (k0, k1, k0 ^ k1 ^ jnp.uint32(0x1BD11BDA))
    x0, x1 = x0 + ks[0], x1 + ks[1]
    for block in range(5):
        for r in _THREEFRY_ROTATIONS[block % 2]:
            x0 = x0 + x1
            x1 = (x1 << jnp.uint32(r)) | (x1 >> jnp.uint32(32 - r))
            x1 = x1 ^ x0
        x0 = x0 + ks[(block + 1) % 3]
        x1 = x1 + ks[(block + 2) % 3] + jnp.uint32(block + 1)
    return x0, x1


def uniform_01(key: chex.PRNGKey, shape: tuple[int, ...]) -> jnp.ndarray:
    """U[0, 1) float32 draws as ``jax.random.uniform`` makes them (23 random mantissa
    bits from a 32-bit threefry word), at a fraction of the cost for threefry keys.

    Partitionable ``jax.random.uniform`` spends one threefry-2x32 block per 32-bit
    word (it XORs the block's two output words); here both words of each block are
    used (counter mode over ``0 … size−1``: JAX's non-partitionable scheme,
    ``jax.extend.random.threefry_2x32``), and the hash is unrolled
    (:func:`threefry2x32`). The slot draws dominated a batched step's cost. Other key
    implementations fall back to ``jax.random.uniform``.
    """
    if str(jax.random.key_impl(key)) != "threefry2x32":
        return jax.random.uniform(key, shape, jnp.float32)
    size = math.prod(shape)
    half = (size + 1) // 2  # an odd size pads the counters with one 0, as JAX does
    count = jnp.concatenate([jnp.arange(size, dtype=jnp.uint32),
                             jnp.zeros((2 * half - size,), jnp.uint32)])
    y0, y1 = threefry2x32(jax.random.key_data(key), count[:half], count[half:])
    bits = jnp.concatenate([y0, y1])[:size]
    mantissa = (bits >> jnp.uint32(9)) | jnp.uint32(0x3F800000)  # [1, 2) as float32
    floats = jax.lax.bitcast_convert_type(mantissa, jnp.float32) - 1.0
    return floats.reshape(shape)

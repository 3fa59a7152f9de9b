"""jaxsg.physics — pure, differentiable JAX physics kernels (SI units in and out).

Submodules: ``units`` (constants, dB helpers), ``geometry`` (slant range,
elevation, orbits, Walker-δ), ``pathloss`` (FSPL, Al-Hourani, TR 38.811 NTN,
terrestrial), ``antenna`` (Bessel beam gain), ``link`` (interference, SINR,
Shannon rate), ``doppler`` (Doppler shift and loss). Every public name of the
submodules is re-exported here. Specification: ``docs/physics.md``.
"""

from . import antenna, doppler, geometry, link, pathloss, units
from .antenna import *
from .doppler import *
from .geometry import *
from .link import *
from .pathloss import *
from .units import *

__all__ = (
    units.__all__
    + geometry.__all__
    + pathloss.__all__
    + antenna.__all__
    + link.__all__
    + doppler.__all__
)

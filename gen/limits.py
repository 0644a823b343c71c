"""Every parameter limit of SpikePack-HW, and the checks that enforce them.

The golden model, the hardware configuration, the model format, the quantizer and the hardware
blocks all check their parameters against the ranges below, so a value one accepts the others
accept too. This module imports nothing of the package (it is the bottom of the layering rule in
``docs/architecture.md``).

Ranges are inclusive ``(lo, hi)`` pairs.
"""

from __future__ import annotations

import numbers

__all__ = [
    "MAX_T", "TIMESTEPS", "TAU_SHIFTS", "WEIGHT_BITS", "BIAS_BITS", "THRESHOLD_BITS", "FAN_IN",
    "MAX_POTENTIAL_BITS", "ARRAY_SIZE", "MAX_FAN_IN", "MAX_NEURONS", "MAX_LAYERS", "WEIGHT_DEPTH",
    "MAX_CHANNELS", "MAP_SIDE", "MAP_WORDS", "KERNEL", "STRIDE", "PAD", "POOL",
    "NEURON_KINDS", "PE_MODES", "WORD_BITS", "is_int", "check_int", "check_choice",
]

#: Most time steps T of an inference window (SPEC section 1).
MAX_T = 16
TIMESTEPS = (1, MAX_T)
#: k, with tau = 2**k.
TAU_SHIFTS = (1, 2, 3)
#: Signed weight width b_w.
WEIGHT_BITS = (2, 16)
#: Signed bias width: the widest the model format holds and the generator accepts.
BIAS_BITS = (2, 32)
#: Unsigned threshold width: the widest the model format holds and the generator accepts.
THRESHOLD_BITS = (1, 32)
#: Fan-in N of one neuron, for the width calculator and one neuron unit.
FAN_IN = (1, 1 << 24)
#: The widest register any configuration may need: the golden model computes exactly in int64
#: only below 2**62 (T = 16 with tau = 8 needs about 60 bits for realistic layers).
MAX_POTENTIAL_BITS = 62

#: Array height R and width C (powers of two).
ARRAY_SIZE = (1, 64)
#: Largest fan-in and neuron count a generated accelerator holds (16-bit descriptor fields).
MAX_FAN_IN = (1, 1 << 16)
MAX_NEURONS = (1, 1 << 16)
MAX_LAYERS = (1, 256)
WEIGHT_DEPTH = (1, 1 << 20)

#: Convolution (SPEC section 6), as the layer descriptor's fields can hold them: channels of a
#: conv layer's input or output, the height and width of a feature map, the spike words of one
#: stored map (channels rounded up to a multiple of R, the storage layout), kernel size, stride,
#: zero padding (also at most kernel - 1) and the max-pooling window (1: none).
MAX_CHANNELS = (1, 1 << 12)
MAP_SIDE = (1, 255)
MAP_WORDS = (1, 1 << 20)
KERNEL = (1, 15)
STRIDE = (1, 3)
PAD = (0, 7)
POOL = (1, 7)

#: Neuron unit kinds ("lif" is the baseline) and PE modes (also the units' input modes).
NEURON_KINDS = ("spikepack", "lif")
PE_MODES = ("serial", "packed")

#: Bitstream and loader word size, and the write granularity (lane) of every wide memory.
WORD_BITS = 32


def is_int(value, *, numpy: bool = False) -> bool:
    """``value`` is a Python integer (and not a bool); with ``numpy``, NumPy integers count too."""
    if isinstance(value, bool) or type(value).__name__ == "bool_":
        return False
    if numpy:
        return isinstance(value, numbers.Integral)
    return isinstance(value, int)


def check_int(name: str, value, lo: int, hi: int | None = None, *, error: type | None = None,
              numpy: bool = False) -> int:
    """Return ``value`` if it is an integer in ``lo .. hi``, else raise naming ``name``:
    ``TypeError`` / ``ValueError``, or ``error`` for both (e.g. ``ConfigError``). ``lo`` may be
    a ``(lo, hi)`` range of this module."""
    if hi is None:
        lo, hi = lo
    if not is_int(value, numpy=numpy):
        raise (error or TypeError)(f"{name} must be an integer, not {type(value).__name__} "
                                   f"({value!r})")
    if not lo <= value <= hi:
        raise (error or ValueError)(f"{name} must be between {lo} and {hi}, not {value}")
    return value


def check_choice(name: str, value, choices: tuple, *, error: type | None = None):
    """Return ``value`` if it is one of ``choices`` (of its own type: 1.0 is not the integer
    choice 1), else raise ``ValueError`` (or ``error``) naming ``name``."""
    if not any(type(value) is type(c) and value == c for c in choices):
        raise (error or ValueError)(f"{name} must be one of {choices}, not {value!r}")
    return value

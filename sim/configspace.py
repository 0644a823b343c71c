"""Random hardware configurations drawn from the whole space that :class:`HardwareConfig` allows.

:func:`random_config` draws every field over its full range (``docs/config.md``): array shapes,
T = 1..16, every tau_shift, every width, both neuron kinds, both PE modes where allowed, the
weight-row grouping g (automatic or any divisor of R), and with or without the convolution
hardware (``conv``) and its limits (max_channels, max_map_side, max_map_words, max_kernel).
Each range end is drawn with an extra probability (``EDGE``), so that thousands of draws hit
T = 1 and T = 16, 2-bit and 16-bit weights, 1-row arrays and 64-column ones; what remains is
uniform. The memory limits (max_fan_in, max_neurons, max_layers, weight_depth) and the conv
limits but max_kernel are drawn up to keyword caps that keep a configuration cheap to
simulate, or, for the memory limits, "just large enough" for given layer sizes (``sizes``): the
exact minimum with probability ``EDGE``, else a little more (``conv`` and its limits keep their
defaults then: ``sim.benches.stimulus.conv_limits`` sizes them for a conv network).

A configuration the golden width calculator refuses (registers wider than 62 bits) is redrawn
as a whole (rejection sampling: the draw is the product distribution conditioned on validity,
with no bias away from the edges that stay valid). Every returned value was constructed by
:class:`HardwareConfig`, so it is valid by construction.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

from spikepack.config import (DESCRIPTOR_LANES, NEURON_KINDS, PE_MODES, ConfigError,
                              HardwareConfig)
from spikepack.sim.golden import MAX_T, TAU_SHIFTS

__all__ = ["random_config", "FIELD_RANGES", "CONV_LIMITS", "weight_words_needed",
           "column_words_needed", "EDGE"]

#: probability of drawing one end of a range (each end half of it)
EDGE = 0.3

#: every integer field's range in HardwareConfig (the checks of its __post_init__)
FIELD_RANGES = {
    "rows": (1, 64), "cols": (1, 64), "timesteps": (1, MAX_T), "tau_shift": (1, 3),
    "weight_bits": (2, 16), "bias_bits": (2, 32), "threshold_bits": (1, 32),
    "max_fan_in": (1, 1 << 16), "max_neurons": (1, 1 << 16), "max_layers": (1, 256),
    "weight_depth": (1, 1 << 20),
    "max_channels": (1, 1 << 12), "max_map_side": (1, 255), "max_map_words": (1, 1 << 20),
    "max_kernel": (1, 15),
}
#: the conv limits, drawn (without ``sizes``) when ``conv`` is drawn true
CONV_LIMITS = ("max_channels", "max_map_side", "max_map_words", "max_kernel")
_MAX_TRIES = 10_000


def _int(rng: np.random.Generator, lo: int, hi: int, edge: float = EDGE) -> int:
    """An integer in ``[lo, hi]``: an end with probability ``edge``, else uniform."""
    if hi <= lo:
        return lo
    if rng.random() < edge:
        return lo if rng.random() < 0.5 else hi
    return int(rng.integers(lo, hi + 1))


def _pow2(rng: np.random.Generator, hi: int) -> int:
    """A power of two in ``[1, hi]`` (every exponent equally likely)."""
    return 1 << int(rng.integers(0, int(math.log2(hi)) + 1))


def weight_words_needed(sizes: Sequence[int], *, rows: int, cols: int, rows_per_word: int) -> int:
    """Weight words of a network of layer sizes ``[N0, N1, ..., NL]`` (``layout_network``:
    ceil(M/C) column tiles of ceil(N/R) row tiles of R/g words each)."""
    return sum(math.ceil(m / cols) * math.ceil(n / rows) * (rows // rows_per_word)
               for n, m in zip(sizes, sizes[1:]))


def column_words_needed(sizes: Sequence[int], *, cols: int) -> int:
    """Bias (and threshold) words of a network of layer sizes ``[N0, ..., NL]``."""
    return sum(math.ceil(m / cols) for m in sizes[1:])


def random_config(rng: np.random.Generator, *, neuron: str | None = None,
                  pe_mode: str | None = None, max_array: int = 64, max_timesteps: int = MAX_T,
                  fan_in_limit: int = 256, neurons_limit: int = 256, layers_limit: int = 8,
                  depth_limit: int = 4096, channels_limit: int = 64, map_side_limit: int = 32,
                  map_words_limit: int = 8192, lanes_limit: int | None = None,
                  sizes: Sequence[int] | None = None, **fixed: Any) -> HardwareConfig:
    """A random valid :class:`HardwareConfig`.

    ``neuron`` / ``pe_mode``: fix the neuron kind or PE mode (``None``: drawn; "packed" only
    with "spikepack"). ``max_array`` caps rows and cols (a power of two, <= 64),
    ``max_timesteps`` caps T. ``fan_in_limit``, ``neurons_limit``, ``layers_limit``,
    ``depth_limit`` cap max_fan_in, max_neurons, max_layers and weight_depth (the full space is
    65536, 65536, 256 and 2**20). Without ``sizes``, ``conv`` is drawn true or false (each half
    the time); when true, ``channels_limit``, ``map_side_limit`` and ``map_words_limit`` cap
    max_channels, max_map_side and max_map_words (the full space is 4096, 255 and 2**20) and
    max_kernel is drawn over 1..15 (when false they keep their defaults, which mean nothing).
    ``lanes_limit``: redraw any configuration with a memory word of more 32-bit lanes (a weight
    word of g*C*b_w bits is up to 2048 lanes, each a stream word and a loader cycle). ``sizes`` (layer sizes ``[N0, N1, ..., NL]``): draw the memory
    limits "just large enough" for that network instead (exactly enough with probability
    ``EDGE``, else up to twice; the caps do not apply). Any other keyword is a field of
    :class:`HardwareConfig` and fixes it.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, not {type(rng).__name__}")
    if max_array < 1 or max_array > 64 or max_array & (max_array - 1):
        raise ValueError(f"max_array must be a power of two in 1..64, not {max_array}")
    if not 1 <= max_timesteps <= MAX_T:
        raise ValueError(f"max_timesteps must be in 1..{MAX_T}, not {max_timesteps}")
    for name, value in (("fan_in_limit", fan_in_limit), ("neurons_limit", neurons_limit),
                        ("layers_limit", layers_limit), ("depth_limit", depth_limit),
                        ("channels_limit", channels_limit), ("map_side_limit", map_side_limit),
                        ("map_words_limit", map_words_limit)):
        if value < 1:
            raise ValueError(f"{name} must be at least 1, not {value}")
    if lanes_limit is not None and lanes_limit < DESCRIPTOR_LANES:
        raise ValueError(f"lanes_limit must be at least {DESCRIPTOR_LANES} (a descriptor is "
                         f"{DESCRIPTOR_LANES} lanes), not {lanes_limit}")
    if neuron is not None and neuron not in NEURON_KINDS:
        raise ValueError(f"neuron must be one of {NEURON_KINDS}, not {neuron!r}")
    if pe_mode is not None and pe_mode not in PE_MODES:
        raise ValueError(f"pe_mode must be one of {PE_MODES}, not {pe_mode!r}")
    if neuron == "lif" and pe_mode == "packed":
        raise ValueError("pe_mode 'packed' needs neuron 'spikepack'")
    if sizes is not None and (len(sizes) < 2 or min(sizes) < 1):
        raise ValueError(f"sizes must be at least two positive layer sizes, not {sizes!r}")
    unknown = set(fixed) - set(HardwareConfig.__dataclass_fields__)
    if unknown:
        raise TypeError(f"unknown HardwareConfig field(s): {', '.join(sorted(unknown))}")
    last = None
    for _ in range(_MAX_TRIES):
        kind = neuron or str(rng.choice(NEURON_KINDS))
        if pe_mode is not None:
            mode = pe_mode
        else:
            mode = "serial" if kind == "lif" else str(rng.choice(PE_MODES))
        f: dict[str, Any] = {"neuron": kind, "pe_mode": mode}
        f["rows"] = _pow2(rng, max_array)
        f["cols"] = _pow2(rng, max_array)
        f["timesteps"] = _int(rng, 1, max_timesteps)
        f["tau_shift"] = int(rng.choice(TAU_SHIFTS))
        f["weight_bits"] = _int(rng, *FIELD_RANGES["weight_bits"])
        f["bias_bits"] = _int(rng, *FIELD_RANGES["bias_bits"])
        f["threshold_bits"] = _int(rng, *FIELD_RANGES["threshold_bits"])
        rows = fixed.get("rows", f["rows"])
        # g: automatic (0) half the time, else any divisor of R
        divisors = [g for g in range(1, rows + 1) if rows % g == 0]
        f["weight_rows_per_word"] = 0 if rng.random() < 0.5 else int(rng.choice(divisors))
        f.update(fixed)
        if sizes is None:
            f.setdefault("max_fan_in", _int(rng, 1, fan_in_limit))
            f.setdefault("max_neurons", _int(rng, 1, neurons_limit))
            f.setdefault("max_layers", _int(rng, 1, layers_limit))
            f.setdefault("weight_depth", _int(rng, 1, depth_limit))
            f.setdefault("conv", bool(rng.random() < 0.5))
            if f["conv"]:
                caps = {"max_channels": channels_limit, "max_map_side": map_side_limit,
                        "max_map_words": map_words_limit,
                        "max_kernel": FIELD_RANGES["max_kernel"][1]}
                for name in CONV_LIMITS:
                    lo, hi = FIELD_RANGES[name]
                    f.setdefault(name, _int(rng, lo, min(hi, caps[name])))
        else:
            try:
                probe = HardwareConfig(**{**f, "max_fan_in": max(sizes[:-1]),
                                          "max_neurons": max(sizes[1:])})
            except ConfigError as e:
                last = e
                continue
            need = {"max_fan_in": max(sizes[:-1]), "max_neurons": max(sizes[1:]),
                    "max_layers": len(sizes) - 1,
                    "weight_depth": weight_words_needed(
                        sizes, rows=probe.rows, cols=probe.cols,
                        rows_per_word=probe.rows_per_word)}
            for name, low in need.items():
                hi = min(2 * low, FIELD_RANGES[name][1])
                f.setdefault(name, low if rng.random() < EDGE else _int(rng, low, hi, 0))
        try:
            config = HardwareConfig(**f)
        except ConfigError as e:
            last = e
            continue
        if lanes_limit is None or max(m.lanes for m in config.memories.values()) <= lanes_limit:
            return config
        last = ConfigError(f"more than {lanes_limit} lanes")
    raise ValueError(f"no valid configuration in {_MAX_TRIES} draws with {fixed}: {last}")

"""Hardware configuration of a generated accelerator, and everything derived from it.

One :class:`HardwareConfig` fixes the array size, T, tau_shift, every width and every memory
depth. From it come the register widths (through the golden model's width calculator), the
on-chip memory map that the loader writes and the firmware packs for, and the 32-bit hardware
signature that a bitstream must carry to be accepted.

A config file is TOML with the field names below at top level (or under ``[hardware]``); every
field has a default, and the defaults hold the digits network (64-64-32-10 at T = 4).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spikepack import limits
from spikepack.limits import NEURON_KINDS, PE_MODES, WORD_BITS
from spikepack.sim.golden import Widths, layer_widths

__all__ = ["ConfigError", "HardwareConfig", "MemorySpec", "WORD_BITS", "DESCRIPTOR_LANES",
           "NEURON_CODES", "PE_MODE_CODES", "input_words_per_beat", "load_config"]

#: 32-bit lanes of one layer descriptor word (``spikepack.firmware.layout.LayerDescriptor``).
DESCRIPTOR_LANES = 6
#: Codes of the neuron kinds and PE modes in the bitstream header and the ARRAY register.
NEURON_CODES = {"spikepack": 0, "lif": 1}
PE_MODE_CODES = {"serial": 0, "packed": 1}


def input_words_per_beat(timesteps: int) -> int:
    """K: T-bit spike words per 32-bit ``s_axis_in`` beat (input i in beat i // K at bits
    (i % K)*T .. +T-1): the one definition of the input stream's packing."""
    return WORD_BITS // timesteps


class ConfigError(ValueError):
    """A hardware configuration is invalid; the message names the field and the rule."""


@dataclass(frozen=True)
class MemorySpec:
    """One loadable on-chip memory. ``depth`` is per bank; there are two banks (active and
    shadow), selected by the top address bit, so the physical depth is ``2 * depth``. A word is
    ``lanes`` 32-bit lanes; the loader writes one lane at a time (write granularity 32)."""
    name: str
    lanes: int
    depth: int

    @property
    def word_bits(self) -> int:
        return self.lanes * WORD_BITS

    @property
    def addr_bits(self) -> int:
        """Bits of a word address within one bank."""
        return max(1, (self.depth - 1).bit_length())


def _check_int(name: str, value: Any, lo, hi: int | None = None) -> None:
    limits.check_int(name, value, lo, hi, error=ConfigError)


def _pow2(name: str, value: int) -> None:
    if value & (value - 1):
        raise ConfigError(f"{name} must be a power of two, not {value}")


@dataclass(frozen=True)
class HardwareConfig:
    """Generator parameters (all keyword-only; checked on construction).

    rows, cols        array height R (inputs per tile) and width C (outputs per tile = neuron
                      units); powers of two.
    timesteps         T, time steps per inference window (1..16).
    (Every range is in :mod:`spikepack.limits`.)
    tau_shift         k, tau = 2**k (1, 2 or 3).
    weight_bits       signed weight width b_w (2..16).
    bias_bits         signed bias width.
    threshold_bits    unsigned threshold width.
    neuron            "spikepack" or "lif" (the baseline).
    pe_mode           "serial" (spike-gated add, one bit plane a cycle) or "packed" (weight times
                      p(z) in one cycle, a multiplier per PE).
    max_fan_in        largest N of any dense layer.
    max_neurons       largest M of any dense layer (and largest input vector).
    max_layers        most layers in a network.
    conv              build the convolution hardware (patch addressing, max pooling); False
                      gives the dense-only accelerator of earlier versions, whose loader
                      refuses conv layers.
    max_channels      most input or output channels of a conv layer.
    max_map_side      largest height or width of a feature map (a conv layer's input).
    max_map_words     largest feature map in spike words as stored: C x H x W with C rounded
                      up to a multiple of R (maps are stored channels-last, R channels an
                      activation entry; docs/array.md). With conv, the activation buffers hold
                      max(max_fan_in, max_neurons, max_map_words) / R entries.
    max_kernel        largest kernel height or width of a conv layer.
    weight_depth      weight memory words per bank.
    weight_rows_per_word  g: array rows per weight word (0 = choose: the fewest with
                      R/g <= T, so one tile's weights arrive within its T compute cycles).
    """
    rows: int = 8
    cols: int = 8
    timesteps: int = 4
    tau_shift: int = 1
    weight_bits: int = 8
    bias_bits: int = 16
    threshold_bits: int = 16
    neuron: str = "spikepack"
    pe_mode: str = "serial"
    max_fan_in: int = 2048
    max_neurons: int = 256
    max_layers: int = 8
    weight_depth: int = 2048
    weight_rows_per_word: int = 0
    conv: bool = True
    max_channels: int = 64
    max_map_side: int = 32
    max_map_words: int = 8192
    max_kernel: int = 5

    def __post_init__(self):
        _check_int("rows", self.rows, limits.ARRAY_SIZE)
        _check_int("cols", self.cols, limits.ARRAY_SIZE)
        _pow2("rows", self.rows)
        _pow2("cols", self.cols)
        _check_int("timesteps", self.timesteps, limits.TIMESTEPS)
        limits.check_choice("tau_shift", self.tau_shift, limits.TAU_SHIFTS, error=ConfigError)
        _check_int("weight_bits", self.weight_bits, limits.WEIGHT_BITS)
        _check_int("bias_bits", self.bias_bits, limits.BIAS_BITS)
        _check_int("threshold_bits", self.threshold_bits, limits.THRESHOLD_BITS)
        limits.check_choice("neuron", self.neuron, NEURON_KINDS, error=ConfigError)
        limits.check_choice("pe_mode", self.pe_mode, PE_MODES, error=ConfigError)
        if self.pe_mode == "packed" and self.neuron == "lif":
            raise ConfigError("pe_mode 'packed' computes packed potentials, which LIF cannot use: "
                              "choose neuron 'spikepack' or pe_mode 'serial'")
        _check_int("max_fan_in", self.max_fan_in, limits.MAX_FAN_IN)
        _check_int("max_neurons", self.max_neurons, limits.MAX_NEURONS)
        _check_int("max_layers", self.max_layers, limits.MAX_LAYERS)
        _check_int("weight_depth", self.weight_depth, limits.WEIGHT_DEPTH)
        _check_int("weight_rows_per_word", self.weight_rows_per_word, 0, self.rows)
        if not isinstance(self.conv, bool):
            raise ConfigError(f"conv must be true or false, not {type(self.conv).__name__} "
                              f"({self.conv!r})")
        _check_int("max_channels", self.max_channels, limits.MAX_CHANNELS)
        _check_int("max_map_side", self.max_map_side, limits.MAP_SIDE)
        _check_int("max_map_words", self.max_map_words, limits.MAP_WORDS)
        _check_int("max_kernel", self.max_kernel, limits.KERNEL)
        if self.weight_rows_per_word and self.rows % self.weight_rows_per_word:
            raise ConfigError(f"weight_rows_per_word ({self.weight_rows_per_word}) must divide "
                              f"rows ({self.rows})")
        try:
            self.widths
        except (TypeError, ValueError) as e:
            raise ConfigError(str(e)) from e

    # --- derived values ------------------------------------------------------------------------

    @property
    def rows_per_word(self) -> int:
        """g: array rows held by one weight word (a divisor of R)."""
        if self.weight_rows_per_word:
            return self.weight_rows_per_word
        if self.pe_mode == "packed":
            return self.rows
        want = math.ceil(self.rows / self.timesteps)
        return next(g for g in range(want, self.rows + 1) if self.rows % g == 0)

    @property
    def words_per_tile(self) -> int:
        return self.rows // self.rows_per_word

    @property
    def max_patch(self) -> int:
        """Largest patch length C_in x K_h x K_w of a conv layer, as the array sees it (C_in
        rounded up to a multiple of R); 0 without conv."""
        if not self.conv:
            return 0
        return self.rows * math.ceil(self.max_channels / self.rows) * self.max_kernel ** 2

    @property
    def neuron_fan_in(self) -> int:
        """Largest fan-in of any neuron, dense (max_fan_in) or conv (max_patch): it sets the
        widths of the array's partial sums and the neuron units' registers."""
        return max(self.max_fan_in, self.max_patch)

    @property
    def widths(self) -> Widths:
        fan_in = self.neuron_fan_in
        return layer_widths(fan_in=fan_in, weight_bits=self.weight_bits,
                            T=self.timesteps, tau_shift=self.tau_shift, bias_bits=self.bias_bits,
                            threshold_bits=self.threshold_bits, rows=min(self.rows, fan_in))

    @property
    def column_tiles_max(self) -> int:
        """Most column tiles (bias/threshold words) one network can need."""
        return self.max_layers * math.ceil(
            max(self.max_neurons, self.max_channels if self.conv else 0) / self.cols)

    @property
    def act_addr_bits(self) -> int:
        """Width of an activation buffer's entry address."""
        return max(1, (self.activation_depth - 1).bit_length())

    @property
    def input_words_per_beat(self) -> int:
        """K: spike words per 32-bit ``s_axis_in`` beat (input i in beat i // K at bits
        (i % K)*T .. +T-1)."""
        return input_words_per_beat(self.timesteps)

    @property
    def out_bits(self) -> int:
        """OUT_BITS: width of an ``m_axis_out`` beat (the readout potential, sign-extended to
        whole 32-bit words)."""
        return WORD_BITS * -(-self.widths.potential // WORD_BITS)

    @property
    def activation_depth(self) -> int:
        """Entries of R spike words in one activation buffer."""
        words = max(self.max_fan_in, self.max_neurons, self.max_map_words if self.conv else 0)
        return math.ceil(words / self.rows)

    @property
    def memories(self) -> dict[str, MemorySpec]:
        lanes = lambda bits: math.ceil(bits / WORD_BITS)
        return {
            "descriptor": MemorySpec("descriptor", DESCRIPTOR_LANES, self.max_layers),
            "weight": MemorySpec("weight", lanes(self.rows_per_word * self.cols * self.weight_bits),
                                 self.weight_depth),
            "bias": MemorySpec("bias", lanes(self.cols * self.bias_bits), self.column_tiles_max),
            "threshold": MemorySpec("threshold", lanes(self.cols * self.threshold_bits),
                                    self.column_tiles_max),
        }

    @property
    def write_addr_bits(self) -> int:
        """Width of the loader's word address: the widest memory's bank-local address."""
        return max(spec.addr_bits for spec in self.memories.values())

    @property
    def lane_bits(self) -> int:
        """Width of the loader's lane index (the widest memory's lane count)."""
        return max(1, (max(s.lanes for s in self.memories.values()) - 1).bit_length())

    @property
    def layer_count_bits(self) -> int:
        """Width of a layer count 0 .. max_layers."""
        return self.max_layers.bit_length()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def signature(self) -> int:
        """32-bit hash of every generator parameter (and the format of the memory map)."""
        text = json.dumps({"memory_map_version": 2, **self.as_dict()}, sort_keys=True)
        return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")

    # --- files ---------------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: dict[str, Any], *, source: str = "config") -> "HardwareConfig":
        """The configuration in ``data``: the fields at top level, or all of them in a
        ``hardware`` table (not both: a file mixing them is refused rather than half read)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: must be a table of fields, not {type(data).__name__}")
        if "hardware" in data:
            table = data["hardware"]
            if not isinstance(table, dict):
                raise ConfigError(f"{source}: 'hardware' must be a table ([hardware]) holding the "
                                  f"fields, not {type(table).__name__} ({table!r})")
            outside = sorted(set(data) - {"hardware"})
            if outside:
                raise ConfigError(f"{source}: field(s) {', '.join(outside)} at top level and a "
                                  f"[hardware] table: put every field in one place (all under "
                                  f"[hardware], or all at top level)")
            data = table
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{source}: unknown field(s) {', '.join(unknown)}; "
                              f"known fields: {', '.join(sorted(known))}")
        try:
            return cls(**data)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None


def load_config(path: str | Path) -> HardwareConfig:
    """Read a TOML hardware configuration; raise :class:`ConfigError` naming what is wrong
    (missing or unreadable file, not UTF-8 text, TOML syntax, unknown field, bad value)."""
    import tomllib
    from spikepack.fileio import read_bytes
    path = Path(path)
    try:
        raw = read_bytes(path)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a directory, not a config file") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config file: "
                          f"{e.strerror or e}".rstrip()) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a TOML text file (byte {e.start} is not UTF-8)") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML: {e}") from None
    return HardwareConfig.from_dict(data, source=str(path))

"""What the SpikePack and LIF neuron units share: parameter checking, the stream payload layouts,
the common component base and the output stage.

Both units (:class:`spikepack.hw.neuron_spikepack.SpikePackNeuron`,
:class:`spikepack.hw.neuron_lif.LIFNeuron`) take the same keyword-only parameters and expose the
same ports, so a layer engine can instantiate either:

* ``i``: ``In(stream.Signature(input_layout))`` with the fields ``current`` (signed
  ``widths.current`` in input mode "serial", signed ``widths.potential`` in "packed"), ``bias``
  (signed ``bias_bits``), ``threshold`` (unsigned ``threshold_bits``), ``readout`` (1) and
  ``last`` (1), field 0 in the low bits;
* ``o``: ``Out(stream.Signature(output_layout))`` with ``spikes`` (unsigned ``timesteps``, step 1
  in the most significant bit) and ``potential`` (signed ``widths.potential``). A hidden neuron
  specifies only ``spikes``, a readout neuron only ``potential`` (the global potential v); the
  other field is unspecified, so a unit may keep both in one register.

Widths come from :func:`spikepack.sim.golden.layer_widths`, so nothing that fits them can wrap.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from types import SimpleNamespace

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import check_int
from spikepack.sim.golden import Widths, layer_widths, packed_max

__all__ = ["INPUT_MODES", "FAULTS", "NeuronParams", "check_neuron_params", "checked_params", "neuron_input_layout",
           "neuron_output_layout", "NeuronBase", "neuron_class", "add_output_stage"]

#: A unit's input modes are the PE modes whose columns feed it.
INPUT_MODES = limits.PE_MODES


@dataclass(frozen=True)
class NeuronParams:
    """The checked parameters of one neuron unit, and the widths derived from them."""
    timesteps: int
    tau_shift: int
    weight_bits: int
    fan_in: int
    rows: int
    bias_bits: int
    threshold_bits: int
    input_mode: str = "serial"

    @property
    def widths(self) -> Widths:
        return layer_widths(fan_in=self.fan_in, weight_bits=self.weight_bits, T=self.timesteps,
                            tau_shift=self.tau_shift, bias_bits=self.bias_bits,
                            threshold_bits=self.threshold_bits, rows=self.rows)

    # value ranges (inclusive) of the quantities the datapath holds --------------------------
    @property
    def weight_range(self) -> tuple[int, int]:
        return -(1 << (self.weight_bits - 1)), (1 << (self.weight_bits - 1)) - 1

    @property
    def bias_range(self) -> tuple[int, int]:
        return -(1 << (self.bias_bits - 1)), (1 << (self.bias_bits - 1)) - 1

    @property
    def threshold_max(self) -> int:
        return (1 << self.threshold_bits) - 1

    @property
    def packed_max(self) -> int:
        """P = (tau**T - 1) / (tau - 1)."""
        return packed_max(self.timesteps, self.tau_shift)

    @property
    def potential_range(self) -> tuple[int, int]:
        """The global potential v, bias included, for ``fan_in`` inputs."""
        (wl, wh), (bl, bh) = self.weight_range, self.bias_range
        return self.fan_in * wl * self.packed_max + bl, self.fan_in * wh * self.packed_max + bh

def check_neuron_params(*, timesteps, tau_shift, weight_bits, fan_in, rows, bias_bits,
                        threshold_bits, input_mode="serial") -> NeuronParams:
    """Check every neuron-unit parameter (``TypeError``/``ValueError`` naming the parameter, or
    :class:`~spikepack.sim.golden.WidthError` when the datapath would need more than
    ``limits.MAX_POTENTIAL_BITS`` bits). Ranges: :mod:`spikepack.limits`."""
    check_int("timesteps", timesteps, limits.TIMESTEPS)
    if not limits.is_int(tau_shift):
        raise TypeError(f"tau_shift must be an integer, not {type(tau_shift).__name__}")
    limits.check_choice("tau_shift", tau_shift, limits.TAU_SHIFTS)
    check_int("weight_bits", weight_bits, limits.WEIGHT_BITS)
    check_int("fan_in", fan_in, limits.FAN_IN)
    check_int("rows", rows, 1, fan_in)
    check_int("bias_bits", bias_bits, limits.BIAS_BITS)
    check_int("threshold_bits", threshold_bits, limits.THRESHOLD_BITS)
    if not isinstance(input_mode, str):
        raise TypeError(f"input_mode must be a string, not {type(input_mode).__name__}")
    limits.check_choice("input_mode", input_mode, INPUT_MODES)
    params = NeuronParams(timesteps, tau_shift, weight_bits, fan_in, rows, bias_bits,
                          threshold_bits, input_mode)
    params.widths  # raises WidthError for a configuration beyond 48 bits
    return params


def checked_params(params) -> NeuronParams:
    """``params`` if it is a :class:`NeuronParams` within the limits (checked again, so that a
    hand-made one cannot pass), else ``TypeError`` / ``ValueError``: the check of the units'
    components, which take the unit's parameters whole."""
    if not isinstance(params, NeuronParams):
        raise TypeError(f"params must be a NeuronParams, not {type(params).__name__}")
    return check_neuron_params(**asdict(params))


#: the units' test faults (``_fault=``): "compare_ge" fires on ``>=`` instead of ``>``
FAULTS = (None, "compare_ge")


def neuron_input_layout(params: NeuronParams) -> data.StructLayout:
    widths = params.widths
    current = widths.current if params.input_mode == "serial" else widths.potential
    return data.StructLayout({
        "current": signed(current),
        "bias": signed(params.bias_bits),
        "threshold": unsigned(params.threshold_bits),
        "readout": 1,
        "last": 1,
    })


def neuron_output_layout(params: NeuronParams) -> data.StructLayout:
    return data.StructLayout({
        "spikes": unsigned(params.timesteps),
        "potential": signed(params.widths.potential),
    })


class NeuronBase(wiring.Component):
    """Constructor, ports and read-only properties shared by both neuron units."""

    #: "spikepack" or "lif"; set by the subclass.
    kind = None

    def __init__(self, *, timesteps, tau_shift, weight_bits, fan_in, rows, bias_bits,
                 threshold_bits, input_mode="serial"):
        self._params = self.check(
            timesteps=timesteps, tau_shift=tau_shift, weight_bits=weight_bits,
            fan_in=fan_in, rows=rows, bias_bits=bias_bits, threshold_bits=threshold_bits,
            input_mode=input_mode)
        self._input_layout = neuron_input_layout(self._params)
        self._output_layout = neuron_output_layout(self._params)
        super().__init__({
            "i": In(stream.Signature(self._input_layout)),
            "o": Out(stream.Signature(self._output_layout)),
        })

    @classmethod
    def check(cls, **params) -> NeuronParams:
        """Check this kind's parameters without building a unit (:func:`check_neuron_params`
        and what the kind adds)."""
        return check_neuron_params(**params)

    @classmethod
    def from_config(cls, config, **kwargs):
        """The unit of a :class:`spikepack.config.HardwareConfig`: ``fan_in =
        neuron_fan_in`` (max_fan_in, or the largest conv patch), ``rows = min(rows, fan_in)``,
        ``input_mode = pe_mode``."""
        from spikepack.config import HardwareConfig
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        return cls(timesteps=config.timesteps, tau_shift=config.tau_shift,
                   weight_bits=config.weight_bits, fan_in=config.neuron_fan_in,
                   rows=min(config.rows, config.neuron_fan_in), bias_bits=config.bias_bits,
                   threshold_bits=config.threshold_bits, input_mode=config.pe_mode, **kwargs)

    # read-only parameters ------------------------------------------------------------------
    params = property(lambda self: self._params)
    timesteps = property(lambda self: self._params.timesteps)
    tau_shift = property(lambda self: self._params.tau_shift)
    weight_bits = property(lambda self: self._params.weight_bits)
    fan_in = property(lambda self: self._params.fan_in)
    rows = property(lambda self: self._params.rows)
    bias_bits = property(lambda self: self._params.bias_bits)
    threshold_bits = property(lambda self: self._params.threshold_bits)
    input_mode = property(lambda self: self._params.input_mode)
    widths = property(lambda self: self._params.widths)
    input_layout = property(lambda self: self._input_layout)
    output_layout = property(lambda self: self._output_layout)

    @property
    def output_depth(self) -> int:
        """Finished results the output stage holds: 2 when T = 1 (so that ``i.ready`` can be a
        function of registers only and still sustain one neuron per cycle), else 1. (A unit
        may override it; the SpikePack unit does.)"""
        return 2 if self.timesteps == 1 else 1

    @staticmethod
    def latency_of(timesteps: int) -> int:
        """The unit's latency for ``timesteps`` (each unit states its own formula; both are
        T + 3), without building a unit."""
        raise NotImplementedError

    @property
    def latency(self) -> int:
        """Cycles from the handshake of a neuron's ``last`` beat to its ``o.valid`` (output
        free): :meth:`latency_of` T; a layer engine must use this, not a formula of its own."""
        return self.latency_of(self.timesteps)

    def cycles_per_neuron(self, groups: int) -> int:
        """Sustained input cycles per neuron of ``groups`` beats-groups with the output never
        stalled: G*T in serial mode, max(G, T) in packed mode."""
        if self.input_mode == "serial":
            return groups * self.timesteps
        return max(groups, self.timesteps)


def neuron_class(kind: str) -> type[NeuronBase]:
    """The unit class of a neuron ``kind`` (``HardwareConfig.neuron``): "spikepack" or "lif"."""
    if kind == "spikepack":
        from .neuron_spikepack import SpikePackNeuron
        return SpikePackNeuron
    if kind == "lif":
        from .neuron_lif import LIFNeuron
        return LIFNeuron
    raise ValueError(f"kind must be 'spikepack' or 'lif', not {kind!r}")


def add_output_stage(m: Module, port, depth: int, *, width: int | None = None, connect=None):
    """Drive the ``o`` stream ``port`` from a register stage holding up to ``depth`` (>= 1)
    results, oldest first (slot 0 presents). Returns a namespace with

    * ``w_en``, ``w_data`` (inputs): write one result at the clock edge; only when a slot is free or
      the oldest result leaves in this cycle (``~valid[-1] | port.ready``);
    * ``free`` (a function of registers only): a write can happen now whatever ``port.ready`` is;
    * ``free_after_write`` (registers only): a write now would still leave a slot free at the
      next cycle whatever ``port.ready`` is (always 0 when ``depth`` = 1);
    * ``valid``: the slots' valid flags (``valid[i]`` implies ``valid[i - 1]``).

    By default a result is a whole payload (``w_data`` has the payload layout). With ``width``
    and ``connect``, a result is a plain ``width``-bit value and ``connect(held)`` returns the
    statements that drive ``port.payload`` from the register ``held`` that presents it: several
    payload fields can then share the register's bits.
    """
    layout = port.payload.shape()
    if (width is None) != (connect is None):
        raise ValueError("give both width and connect, or neither")
    if not isinstance(depth, int) or depth < 1:
        raise ValueError(f"output depth must be a positive integer, not {depth!r}")
    shape = layout if width is None else width
    w_en = Signal()
    w_data = Signal(shape)
    free = Signal()
    free_after_write = Signal()

    def present(held):
        return [port.payload.eq(held)] if connect is None else connect(held)

    # data registers: meaningless while not valid
    valid = [Signal(name=f"out_valid{i}") for i in range(depth)]
    held = [Signal(shape, name=f"out_held{i}", reset_less=True) for i in range(depth)]
    pop = Signal()
    m.d.comb += [port.valid.eq(valid[0]), *present(held[0]), pop.eq(valid[0] & port.ready),
                 free.eq(~valid[-1]),
                 free_after_write.eq(~valid[-2] if depth > 1 else 0)]
    if depth == 1:
        with m.If(w_en):
            m.d.sync += [held[0].eq(w_data), valid[0].eq(1)]
        with m.Elif(port.ready):
            m.d.sync += valid[0].eq(0)
    else:
        # after the pop, slot i holds what slot i + 1 held; the write fills the first empty slot
        shifted = [Signal(name=f"out_keep{i}") for i in range(depth)]
        for i in range(depth):
            above = valid[i + 1] if i + 1 < depth else 0
            m.d.comb += shifted[i].eq(Mux(pop, above, valid[i]))
            here = w_en & ~shifted[i] & (shifted[i - 1] if i else 1)
            m.d.sync += valid[i].eq(shifted[i] | here)
            with m.If(here):
                m.d.sync += held[i].eq(w_data)
            if i + 1 < depth:
                with m.Elif(pop):
                    m.d.sync += held[i].eq(held[i + 1])
    return SimpleNamespace(w_en=w_en, w_data=w_data, free=free,
                           free_after_write=free_after_write, valid=valid)

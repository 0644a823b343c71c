"""One processing element of the weight-stationary spike array (``docs/array.md``).

Serial pe_mode (the only one built so far): the PE has **no multiplier**. Each cycle it receives
one spike bit ``spike`` (one input neuron's spike at one time step, a bit of a bit plane) and the
partial sum ``psum_in`` coming down its column, and registers

    psum_out <= psum_in + (spike ? w : 0)

where ``w`` is its active weight. The weight is double-buffered: ``shadow`` is written through
``wr_en``/``wr_data`` (from the weight memory) while ``active`` computes; ``first`` marks the
first bit plane of a new tile, and in that cycle the PE computes with the shadow weight and
copies it into ``active`` (``w = first ? shadow : active``). A shadow write in the very cycle of
the swap is allowed: the swap reads the old shadow and the write lands after it, so the write
window for the next tile's weight is every cycle from this PE's swap to the cycle before the
next one.

All state advances every cycle; a parent stalls the PE with ``EnableInserter``.

Ports: ``spike`` In(1), ``first`` In(1), ``psum_in`` In(signed(in_bits)) (absent when
``in_bits`` is 0, the top row), ``psum_out`` Out(signed(out_bits)) (registered),
``wr_en`` In(1), ``wr_data`` In(signed(weight_bits)).

Latency 1 cycle (spike/psum_in to psum_out); throughput one spike-weighted add per cycle.
Cost: 2 * weight_bits + out_bits flip-flops, one out_bits-wide adder, no multiplier.

Packed pe_mode (``psum += w * p(z)`` in one cycle, a DSP multiplier per PE) is not built: the
constructor raises ``NotImplementedError`` for it.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["ProcessingElement", "PE_MODES"]

PE_MODES = ("serial", "packed")


def _check_int(name, value, lo, hi):
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
    if not lo <= value <= hi:
        raise ValueError(f"{name} must be between {lo} and {hi}, not {value}")


class ProcessingElement(wiring.Component):
    """Spike-gated accumulate PE with a double-buffered weight (see the module docstring)."""

    def __init__(self, *, weight_bits: int, in_bits: int, out_bits: int, mode: str = "serial"):
        try:
            self._check(weight_bits, in_bits, out_bits, mode)
        except Exception:
            self._MustUse__silence = True   # a rejected PE is not an unused elaboratable
            raise
        self._weight_bits = weight_bits
        self._in_bits = in_bits
        self._out_bits = out_bits
        members = {
            "spike": In(1),
            "first": In(1),
            "psum_out": Out(signed(out_bits)),
            "wr_en": In(1),
            "wr_data": In(signed(weight_bits)),
        }
        if in_bits:
            members["psum_in"] = In(signed(in_bits))
        super().__init__(members)

    @staticmethod
    def _check(weight_bits, in_bits, out_bits, mode):
        _check_int("weight_bits", weight_bits, 2, 16)
        _check_int("in_bits", in_bits, 0, 64)
        _check_int("out_bits", out_bits, 1, 64)
        if mode not in PE_MODES:
            raise ValueError(f"mode must be one of {PE_MODES}, not {mode!r}")
        if mode == "packed":
            raise NotImplementedError(
                "pe_mode 'packed' (a weight x p(z) multiplier per PE) is not implemented; "
                "use pe_mode 'serial'")
        if out_bits < max(in_bits, weight_bits):
            raise ValueError(f"out_bits ({out_bits}) must hold psum_in ({in_bits} bits) and a "
                             f"weight ({weight_bits} bits)")

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def in_bits(self) -> int:
        return self._in_bits

    @property
    def out_bits(self) -> int:
        return self._out_bits

    def elaborate(self, platform):
        m = Module()
        active = Signal(signed(self._weight_bits))
        shadow = Signal(signed(self._weight_bits))
        weight = Signal(signed(self._weight_bits))
        m.d.comb += weight.eq(Mux(self.first, shadow, active))
        with m.If(self.first):
            m.d.sync += active.eq(shadow)
        with m.If(self.wr_en):
            m.d.sync += shadow.eq(self.wr_data)
        addend = Mux(self.spike, weight, 0)
        if self._in_bits:
            m.d.sync += self.psum_out.eq(self.psum_in + addend)
        else:
            m.d.sync += self.psum_out.eq(addend)
        return m

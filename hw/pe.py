"""One processing element of the weight-stationary spike array (``docs/array.md``).

Two modes (``mode``, the generator's ``pe_mode``):

**serial** (default): the PE has **no multiplier**. Each cycle it receives one spike bit
``spike`` (one input neuron's spike at one time step, a bit of a bit plane) and the partial sum
``psum_in`` coming down its column, and registers

    psum_out <= psum_in + (spike ? w : 0)

where ``w`` is its active weight. The weight is double-buffered: ``shadow`` is written through
``wr_en``/``wr_data`` (from the weight memory) while ``active`` computes; ``first`` comes one
cycle BEFORE the first bit plane of a new tile and copies ``shadow`` into ``active`` at the end
of that cycle (so the add never waits for a weight multiplexer: ``w`` is always ``active``,
and the spike only selects between ``psum_in + w`` and ``psum_in``). A shadow write in the very
cycle of the swap is allowed: the swap reads the old shadow and the write lands after it, so
the write window for the next tile's weight is every cycle from this PE's swap to the cycle
before the next one.

**packed**: one multiplier (a DSP on Xilinx / ECP5). Each cycle it receives the packed value
``value`` = p(z) of its input's spike word (p(z) = sum_t s_t * tau**(T-t), expanded from z by
the array, once per row) and registers

    psum_out <= psum_in + w * value

i.e. a whole T-step spike word in one cycle. A tile is a single beat, so the PE only needs the
weight register ``w``, written through ``wr_en``/``wr_data`` (the array delivers the weight of
a tile in the cycle before its beat reaches this row; a write in the cycle of the beat lands
after it, exactly like the serial shadow register). A beat with ``value`` = 0 adds nothing, so
the array gates ``value`` with its valid bit.

All state advances every cycle; a parent stalls the PE with ``EnableInserter``.

Ports: serial ``spike`` In(1), ``first`` In(1) (the swap, a cycle ahead of the tile's first
spike); packed ``value`` In(unsigned(value_bits));
both ``psum_in`` In(signed(in_bits)) (absent when ``in_bits`` is 0, the top row), ``psum_out``
Out(signed(out_bits)) (registered), ``wr_en`` In(1), ``wr_data`` In(signed(weight_bits)).

Latency 1 cycle (spike/value/psum_in to psum_out); throughput one spike-weighted add per cycle
(serial: one weight x time-step product) or one weight x p(z) multiply-accumulate per cycle
(packed: T weight x time-step products). Cost: serial 2 * weight_bits + out_bits flip-flops
and one out_bits-wide adder, no multiplier; packed weight_bits + out_bits flip-flops and one
weight_bits x value_bits multiply-add (one DSP slice; its post-adder takes ``psum_in``).
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import PE_MODES, check_int

__all__ = ["ProcessingElement", "PE_MODES"]


class ProcessingElement(wiring.Component):
    """Spike-gated accumulate (serial) or weight x p(z) multiply-accumulate (packed) PE (see
    the module docstring). ``value_bits`` (packed mode only, required there) is the width of
    the packed value p(z): k*(T-1) + 1 bits for T steps and tau = 2**k."""

    def __init__(self, *, weight_bits: int, in_bits: int, out_bits: int, mode: str = "serial",
                 value_bits: int | None = None):
        self._check(weight_bits, in_bits, out_bits, mode, value_bits)
        self._weight_bits = weight_bits
        self._in_bits = in_bits
        self._out_bits = out_bits
        self._mode = mode
        self._value_bits = value_bits
        members = {}
        if mode == "serial":
            members["spike"] = In(1)
            members["first"] = In(1)
        else:
            members["value"] = In(unsigned(value_bits))
        members.update({
            "psum_out": Out(signed(out_bits)),
            "wr_en": In(1),
            "wr_data": In(signed(weight_bits)),
        })
        if in_bits:
            members["psum_in"] = In(signed(in_bits))
        super().__init__(members)

    @staticmethod
    def _check(weight_bits, in_bits, out_bits, mode, value_bits):
        check_int("weight_bits", weight_bits, limits.WEIGHT_BITS)
        check_int("in_bits", in_bits, 0, 64)
        check_int("out_bits", out_bits, 1, 64)
        if not isinstance(mode, str) or mode not in PE_MODES:
            raise ValueError(f"mode must be one of {PE_MODES}, not {mode!r}")
        if mode == "serial":
            if value_bits is not None:
                raise ValueError("value_bits is a packed-mode parameter; leave it out in "
                                 "mode 'serial'")
        else:
            if value_bits is None:
                raise TypeError("mode 'packed' needs value_bits (the width of p(z))")
            check_int("value_bits", value_bits, 1, 46)
        # out_bits may be narrower than weight_bits + value_bits: the array sizes it to the
        # true range of the partial sum (p(z) <= (tau**T - 1)/(tau - 1), not 2**value_bits - 1)
        if out_bits < max(in_bits, weight_bits):
            raise ValueError(f"out_bits ({out_bits}) must hold psum_in ({in_bits} bits) and a "
                             f"weight ({weight_bits} bits)")

    @property
    def mode(self) -> str:
        return self._mode

    @property
    def weight_bits(self) -> int:
        return self._weight_bits

    @property
    def value_bits(self) -> int | None:
        """Width of the packed value p(z) (packed mode), None in serial mode."""
        return self._value_bits

    @property
    def in_bits(self) -> int:
        return self._in_bits

    @property
    def out_bits(self) -> int:
        return self._out_bits

    def elaborate(self, platform):
        m = Module()
        # data registers without reset (a partial sum is only used with its valid bit, which
        # the array delays and resets), so the reset net does not fan out to every PE bit
        psum = Signal(signed(self._out_bits), reset_less=True)
        m.d.comb += self.psum_out.eq(psum)
        if self._mode == "packed":
            w = Signal(signed(self._weight_bits), reset_less=True)
            with m.If(self.wr_en):
                m.d.sync += w.eq(self.wr_data)
            product = w * self.value   # signed x unsigned: Amaranth extends value by a 0 bit
            if self._in_bits:
                m.d.sync += psum.eq(self.psum_in + product)
            else:
                m.d.sync += psum.eq(product)
            return m
        active = Signal(signed(self._weight_bits), reset_less=True)
        shadow = Signal(signed(self._weight_bits), reset_less=True)
        with m.If(self.first):
            m.d.sync += active.eq(shadow)
        with m.If(self.wr_en):
            m.d.sync += shadow.eq(self.wr_data)
        # the spike selects after the adder: the row-wide spike net then drives a multiplexer
        # in front of the register, not the carry chain
        if self._in_bits:
            m.d.sync += psum.eq(Mux(self.spike, self.psum_in + active, self.psum_in))
        else:
            m.d.sync += psum.eq(Mux(self.spike, active, 0))
        return m

"""Stage 2 of the SpikePack neuron unit: the integrator (see :class:`CarrySaveAccumulator`)."""

from __future__ import annotations

from amaranth import Cat, Module, ResetSignal, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import check_int

from .spikepack_beat import AddendSignature

__all__ = ["CarrySaveAccumulator"]


class CarrySaveAccumulator(wiring.Component):
    """The SpikePack unit's integrator: ONE signed ``width``-bit accumulator ``acc`` that sums
    the beats from -1, ``acc + add + bias + carry`` for every ``addend.valid``, in one carry
    chain behind a carry-save layer (one LUT per bit, which also restarts acc at -1; the carry
    in sits at the free bit 0 of the carry vector).

    * ``addend`` In(:class:`~spikepack.hw.spikepack_beat.AddendSignature`): stage 1;
    * ``restart_next`` In(1): the sum acc holds at the next edge is a finished neuron's
      (``pending`` of the unit's decode control): the beat after it starts again from -1;
    * ``load`` In(1) (a register): the decode stage takes acc at this edge: acc becomes -1
      unless a beat adds at this edge;
    * ``acc`` Out(signed ``width``).

    The reset of the clock domain restarts acc at -1 (a reset cuts a neuron short, and its
    partial sum must not start the next). It is written into the restart condition, not as the
    register's reset, so that synthesis keeps ONE synchronous set (``rst | load & ~valid``, an
    ECP5 flip-flop's LSR) and the adder's sum goes straight into the flip-flop (as a register
    reset, a second set for load sat as a LUT between the carry chain and D: 255 -> 218 MHz).
    So reset the unit through its domain: an ``amaranth.hdl.ResetInserter`` would not reach acc.

    Latency: 1 cycle (a beat in at an edge is in acc at the next). Throughput: one beat a cycle.
    """

    def __init__(self, *, width: int, add_bits: int, bias_bits: int):
        check_int("width", width, 2, limits.MAX_POTENTIAL_BITS + 2)
        check_int("add_bits", add_bits, 1, limits.MAX_POTENTIAL_BITS + 2)
        check_int("bias_bits", bias_bits, limits.BIAS_BITS)
        self._width = width
        super().__init__({
            "addend": In(AddendSignature(add_bits=add_bits, bias_bits=bias_bits)),
            "restart_next": In(1), "load": In(1),
            "acc": Out(signed(width)),
        })

    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        N = self._width
        a = self.addend
        acc = Signal(signed(N), init=-1, reset_less=True)
        rst = ResetSignal()
        # copies of pending for the carry-save layer's 2N LUTs, half each (they differ from
        # pending and from each other in their reset, so that synthesis keeps them apart)
        restart = [Signal(name="restart_lo", reset_less=True), Signal(name="restart_hi", init=1)]
        m.d.sync += [restart[0].eq(self.restart_next), restart[1].eq(self.restart_next)]
        csa_a = Signal(N)
        csa_b = Signal(N)
        csa_c = Signal(N)
        csa_sum = Signal(N)
        csa_carry = Signal(N)
        m.d.comb += [
            csa_a.eq(Cat(acc[:N // 2] | restart[0].replicate(N // 2),
                         acc[N // 2:] | restart[1].replicate(N - N // 2))),
            csa_b.eq(a.add),
            csa_c.eq(a.bias),
            csa_sum.eq(csa_a ^ csa_b ^ csa_c),
            csa_carry.eq(Cat(a.carry, ((csa_a & csa_b) | (csa_a & csa_c) | (csa_b & csa_c))[:-1])),
        ]
        with m.If(a.valid & ~rst):
            m.d.sync += acc.eq(csa_sum + csa_carry)
        with m.Elif(self.load | rst):
            m.d.sync += acc.eq(-1)
        m.d.comb += self.acc.eq(acc)
        return m

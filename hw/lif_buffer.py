"""The LIF neuron unit's integration: the step-current buffer (see :class:`StepCurrentBuffer`)."""

from __future__ import annotations

from amaranth import Module, Mux, Signal, signed
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import check_int

from .neuron_common import NeuronParams, checked_params, neuron_input_layout

__all__ = ["StepCurrentBuffer"]


class StepCurrentBuffer(wiring.Component):
    """The LIF unit's integration (two stages): a T-entry buffer (a memory, one write port, two
    asynchronous read ports) accumulates the step currents C_t = bias + sum_g I_(g,t) of a
    neuron of G groups of T beats (a readout neuron: the bias in entry T-1 only).

    * ``valid``, ``ready`` In(1): the unit's ``i`` handshake (a beat moves when both are high);
      ``payload`` In: its fields ``current``, ``bias``, ``readout``, ``last``;
    * ``t_in`` Out(range(max(T, 2))): the step of the next beat (a register);
    * ``c_addr`` In, ``c_data`` Out(signed :attr:`width`): R's asynchronous read of entry
      ``c_addr`` (T = 1: the sum stage 2 writes at this edge when it is a last beat's).

    Stage 1 registers the beat's current, its entry (``t_in``) and the old entry, read at the
    handshake (the bias instead in the first group; T = 1: the sum stage 2 writes at this
    edge); stage 2 adds them and writes the entry.

    Latency: a beat's sum is in its entry 2 edges after the handshake (T = 1: readable at
    ``c_data`` 1 edge after it, the bypass). Throughput: one beat a cycle.
    """

    def __init__(self, *, params: NeuronParams, width: int):
        self._params = checked_params(params)
        if self._params.input_mode != "serial":
            raise ValueError("StepCurrentBuffer needs input_mode 'serial'")
        current = self._params.widths.current
        check_int("width", width, max(current, self._params.bias_bits),
                  limits.MAX_POTENTIAL_BITS + 2)
        self._width = width
        T = self._params.timesteps
        super().__init__({
            "valid": In(1), "ready": In(1), "payload": In(neuron_input_layout(self._params)),
            "t_in": Out(range(max(T, 2))),
            "c_addr": In(range(max(T, 2))), "c_data": Out(signed(width)),
        })

    params = property(lambda self: self._params)
    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        T, B = self._params.timesteps, self._width
        pay = self.payload
        beat = Signal()
        m.d.comb += beat.eq(self.valid & self.ready)
        # depth >= 2: a one-entry memory would have a zero-width address (Verilog [-1:0])
        m.submodules.buffer = buffer = memory.Memory(shape=signed(B), depth=max(T, 2), init=[])
        wr = buffer.write_port()
        rd_in = buffer.read_port(domain="comb")
        rd_dyn = buffer.read_port(domain="comb")

        t_in = self.t_in
        first_group = Signal(init=1)
        with m.If(beat):
            with m.If(t_in == T - 1):
                m.d.sync += [t_in.eq(0), first_group.eq(pay.last)]
            with m.Else():
                m.d.sync += t_in.eq(t_in + 1)
        s1_valid = Signal()
        s1_last = Signal()
        # data registers: meaningless without s1_valid, so they load every cycle
        s1_addr = Signal.like(t_in, reset_less=True)
        s1_cur = Signal(signed(self._params.widths.current), reset_less=True)
        s1_old = Signal(signed(B), reset_less=True)
        wr_sum = Signal(signed(B))
        m.d.comb += [
            wr_sum.eq(s1_old + s1_cur),
            wr.addr.eq(s1_addr), wr.data.eq(wr_sum), wr.en.eq(s1_valid),
            rd_in.addr.eq(t_in),
        ]
        # T = 1: stage 2 writes the entry the beat reads; take the sum it writes
        old = Mux(s1_valid, wr_sum, rd_in.data) if T == 1 else rd_in.data
        # the first group starts from the bias (a readout neuron: in entry T-1 only)
        base = Mux(pay.readout & (t_in != T - 1), 0, pay.bias)
        m.d.sync += [s1_valid.eq(beat), s1_last.eq(beat & pay.last), s1_addr.eq(t_in),
                     s1_cur.eq(pay.current), s1_old.eq(Mux(first_group, base, old))]

        # R's read; T = 1: R's first read meets stage 2 writing the same entry (the last
        # beat's sum)
        m.d.comb += rd_dyn.addr.eq(self.c_addr)
        m.d.comb += self.c_data.eq(Mux(s1_valid & s1_last, wr_sum, rd_dyn.data) if T == 1
                                   else rd_dyn.data)
        return m

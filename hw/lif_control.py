"""The LIF neuron unit's dynamics control (see :class:`LIFControl`)."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .neuron_common import NeuronParams, checked_params, neuron_input_layout

__all__ = ["LIFControl"]


class LIFControl(wiring.Component):
    """The LIF unit's dynamics control: R (the read of C_t), D and U advance together (``adv``),
    one step a cycle, and stop only while U holds a neuron's last step (``u_fin``) and the
    output stage is full (``out_free`` low: a registered flag, not ``o.ready``).

    * ``valid`` In(1), ``payload`` In (fields ``last``, ``threshold``, ``readout``): the unit's
      ``i`` stream; ``ready`` Out(1): its ``i.ready``, a function of registers only;
    * ``t_in`` In: the integration's step of the next beat;
    * ``out_free`` In(1): the output stage's registered free flag;
    * ``adv`` Out(1): R, D and U advance at this edge;
    * registers: ``r_active``, ``r_step`` (R's entry), ``r_first`` (R at step 0), ``d_first``,
      ``d_final`` (D at step 0, at step T - 1), ``u_fin`` (U at its last step);
    * ``rec_theta``, ``rec_readout`` Out: the record of the last beat's threshold and readout
      flag, read when R starts the neuron (T = 1: at that edge only; else also at D's step 0):
      written by any last beat on offer, taken or not, unless it still belongs to a neuron.

    R starts a neuron as its ``last`` beat is taken. ``ready`` lets a beat of step t in only once
    R has read entry t of an earlier neuron (the beat's stage 2 writes it at the next edge), so
    t_in <= r_step while R is active, and a last beat only when R is free or at step T - 1.

    Latency: R at step 0 the edge after the last beat's handshake, D a step later, U a step
    after D, ``u_fin`` T steps after R's step 0. Throughput: one step a cycle while
    ``out_free`` or not ``u_fin``: a neuron of G groups per G*T cycles.
    """

    def __init__(self, *, params: NeuronParams):
        self._params = checked_params(params)
        T = self._params.timesteps
        super().__init__({
            "valid": In(1), "payload": In(neuron_input_layout(self._params)),
            "ready": Out(1), "t_in": In(range(max(T, 2))), "out_free": In(1),
            "adv": Out(1), "r_active": Out(1), "r_step": Out(range(max(T, 2))),
            "r_first": Out(1), "d_first": Out(1), "d_final": Out(1), "u_fin": Out(1),
            "rec_theta": Out(self._params.threshold_bits), "rec_readout": Out(1),
        })

    params = property(lambda self: self._params)

    def elaborate(self, platform):
        m = Module()
        T = self._params.timesteps
        pay, t_in = self.payload, self.t_in
        u_fin, adv = self.u_fin, self.adv
        m.d.comb += adv.eq(~u_fin | self.out_free)
        r_active, r_step, r_first = self.r_active, self.r_step, self.r_first
        r_final = Signal()              # R is at step T - 1
        # i.ready lets a beat of step t in only once R has read entry t of an earlier neuron
        # (the beat's stage 2 writes it at the next edge), so t_in <= r_step while R is active,
        # and a last beat (t_in = T - 1) goes in only when R is free: R starts the neuron at
        # once. lag: R is active and t_in = r_step (the next beat waits for R to advance)
        lag = Signal()
        near = Signal()                 # t_in + 1 = r_step
        start = Signal()
        beat = Signal()
        m.d.comb += [
            self.ready.eq(~lag | adv),
            beat.eq(self.valid & self.ready),
            start.eq(beat & pay.last),
            near.eq(t_in + 1 == r_step),
        ]
        with m.If(adv & r_active):
            m.d.sync += [r_step.eq(r_step + 1), r_first.eq(0), r_final.eq(r_step == T - 2)]
            with m.If(r_final):
                m.d.sync += [r_active.eq(0), r_step.eq(0)]
        with m.If(start):
            m.d.sync += [r_active.eq(1), r_step.eq(0), r_first.eq(1), r_final.eq(T == 1)]
        with m.If(start):
            m.d.sync += lag.eq(1)
        with m.Elif(~r_active | (adv & r_final)):
            m.d.sync += lag.eq(0)
        with m.Elif(adv):               # R advances; t_in with it or not
            m.d.sync += lag.eq(lag & beat)
        with m.Elif(beat):              # only t_in advances (it was behind: lag = 0)
            m.d.sync += lag.eq(near)
        # D's and U's step flags march with R
        with m.If(adv):
            m.d.sync += [self.d_first.eq(r_first), self.d_final.eq(r_final),
                         u_fin.eq(self.d_final)]

        # the record of the last beat's threshold and readout flag: written by any last beat on
        # offer, taken or not, unless it still belongs to a neuron (none is taken then: a last
        # beat needs R at step T - 1 or free)
        rec_theta = Signal(self._params.threshold_bits, reset_less=True)
        rec_readout = Signal(reset_less=True)
        d_first = self.d_first
        hold = (r_first & ~adv) if T == 1 else (r_first | (d_first & ~adv))
        with m.If(self.valid & pay.last & ~hold):
            m.d.sync += [rec_theta.eq(pay.threshold), rec_readout.eq(pay.readout)]
        m.d.comb += [self.rec_theta.eq(rec_theta), self.rec_readout.eq(rec_readout)]
        return m

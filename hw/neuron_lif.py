"""The LIF neuron unit, the baseline the SpikePack paper compares against (SPEC section 3).

See :class:`LIFNeuron`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed
from amaranth.lib import memory

from spikepack.sim.golden import signed_bits

from .neuron_common import NeuronBase, add_output_stage

__all__ = ["LIFNeuron"]

_FAULTS = (None, "compare_ge")


class LIFNeuron(NeuronBase):
    """LIF neuron unit (SPEC section 3); same parameters and ports as
    :class:`~spikepack.hw.neuron_spikepack.SpikePackNeuron`, serial input mode only.

    **Integration stage.** A neuron is G >= 1 groups of T beats; beat t of a group carries the
    row tile's step current I_(g,t). A T-entry partial-current buffer (a memory, one write port,
    two asynchronous read ports) accumulates J_t = sum_g I_(g,t): the first group writes, later
    groups add.

    **Dynamics stage.** Started by the ``last`` beat (bias, threshold and readout captured). Step
    t reads J_t from the buffer: ``v = (v >> k) + J_t + bias - theta*s_(t-1)``,
    ``s_t = v > theta``, with a membrane register v and the spike word as the shift register of
    the s_t. A readout neuron runs Horner's rule instead, ``v = (v << k) + J_t`` (+ bias at
    step T), and outputs spikes = 0 and that global potential. After T steps the spike word and
    v move to the output register.

    **Timing** (o.ready never low): one beat per cycle without bubbles, across neuron
    boundaries too (a neuron of G groups occupies the input for G*T cycles); throughput one
    neuron per G*T cycles; latency: ``o.valid`` rises T + 1 cycles after the cycle whose edge
    accepts the ``last`` beat. The next neuron's first group overwrites buffer entry t only
    once the dynamics stage has read it; ``i.ready`` enforces that and is a function of
    registers only (neither ``i.valid`` nor ``o.ready``).

    ``_fault`` (private, for tests only): "compare_ge" fires on ``v >= theta``.
    """

    kind = "lif"

    def __init__(self, *, _fault=None, **kwargs):
        if _fault not in _FAULTS:
            self._mark_used()
            raise ValueError(f"_fault must be one of {_FAULTS}, not {_fault!r}")
        self._fault = _fault
        if kwargs.get("input_mode", "serial") == "packed":
            self._mark_used()
            raise ValueError("LIFNeuron needs input_mode 'serial': LIF integrates step "
                             "currents and cannot use packed partial potentials")
        super().__init__(**kwargs)

    @property
    def buffer_bits(self) -> int:
        """Signed width of one partial-current buffer entry (bias excluded)."""
        return signed_bits(*self.params.step_sum_range)

    @property
    def membrane_bits(self) -> int:
        """Signed width of the membrane register (also the readout's Horner sum)."""
        return max(self.widths.lif, self.widths.potential)

    def elaborate(self, platform):
        m = Module()
        T, k = self.timesteps, self.tau_shift
        pay = self.i.payload
        beat = Signal()
        m.d.comb += beat.eq(self.i.valid & self.i.ready)

        out = add_output_stage(m, self.o, self.output_depth)

        # depth >= 2: a one-entry memory would have a zero-width address (Verilog [-1:0])
        m.submodules.buffer = buffer = memory.Memory(shape=signed(self.buffer_bits),
                                                     depth=max(T, 2), init=[])
        wr = buffer.write_port()
        rd_in = buffer.read_port(domain="comb")
        rd_dyn = buffer.read_port(domain="comb")

        # --- dynamics stage -------------------------------------------------------------------
        d_active = Signal()
        d_step = Signal(range(max(T, 2)))
        d_final = Signal()
        # data registers need no reset: they are loaded with every neuron
        d_readout = Signal(reset_less=True)
        bias = Signal(signed(self.bias_bits), reset_less=True)
        theta = Signal(self.threshold_bits, reset_less=True)
        membrane = Signal(signed(self.membrane_bits), reset_less=True)
        word = Signal(T, reset_less=True)
        v_next = Signal(signed(self.membrane_bits))
        fire = Signal()
        word_next = Signal(T)
        last_step = Signal()
        m.d.comb += [
            rd_dyn.addr.eq(d_step),
            last_step.eq(d_step == T - 1),
            d_final.eq(d_active & last_step),
            v_next.eq(Mux(d_readout, membrane << k, membrane >> k) + rd_dyn.data
                      + Mux(d_readout & ~last_step, 0, bias)
                      - Mux(~d_readout & word[0], theta, 0)),
            word_next.eq(Cat(fire, word[:T - 1]) if T > 1 else fire),
        ]
        if self._fault == "compare_ge":
            m.d.comb += fire.eq(~d_readout & (v_next >= theta))
        else:
            m.d.comb += fire.eq(~d_readout & (v_next > theta))

        with m.If(d_active & (~d_final | out.can_write)):
            m.d.sync += [membrane.eq(v_next), word.eq(word_next), d_step.eq(d_step + 1)]
            with m.If(d_final):
                m.d.sync += [d_active.eq(0), d_step.eq(0)]
                m.d.comb += [out.w_en.eq(1), out.w_data.spikes.eq(word_next),
                             out.w_data.potential.eq(v_next)]

        # --- integration stage ----------------------------------------------------------------
        t_in = Signal(range(max(T, 2)))
        first_group = Signal(init=1)
        group_end = Signal()
        m.d.comb += [
            group_end.eq(t_in == T - 1),
            rd_in.addr.eq(t_in),
            wr.addr.eq(t_in),
            wr.data.eq(Mux(first_group, 0, rd_in.data) + pay.current),
            wr.en.eq(beat),
            # entry t_in may be written once the dynamics stage has read it (or reads it now
            # and surely moves on); a last beat (t_in = T-1) also needs the stage to be free
            self.i.ready.eq(~d_active | (t_in < d_step)
                            | ((t_in == d_step) & (~last_step | out.free))),
        ]
        with m.If(beat):
            with m.If(group_end):
                m.d.sync += [t_in.eq(0), first_group.eq(pay.last)]
            with m.Else():
                m.d.sync += t_in.eq(t_in + 1)
        with m.If(beat & pay.last):
            m.d.sync += [d_active.eq(1), d_step.eq(0), membrane.eq(0), word.eq(0),
                         bias.eq(pay.bias), theta.eq(pay.threshold), d_readout.eq(pay.readout)]
        return m

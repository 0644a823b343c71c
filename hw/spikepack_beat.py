"""Stage 1 of the SpikePack neuron unit: the beat, registered (see :class:`SpikePackBeat`)."""

from __future__ import annotations

from amaranth import C, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .neuron_common import FAULTS, NeuronParams, checked_params, neuron_input_layout

__all__ = ["AddendSignature", "SpikePackBeat", "addend_bits"]


def addend_bits(params: NeuronParams) -> int:
    """Signed width of the registered addend: the serial current shifted by up to k*(T-1), or
    the packed partial potential."""
    if params.input_mode == "serial":
        return params.widths.current + params.tau_shift * (params.timesteps - 1)
    return params.widths.potential


class AddendSignature(wiring.Signature):
    """Stage 1 to the integrator (driver's view): ``valid`` (a beat is in stage 1), ``add``
    (signed ``add_bits``), ``bias`` (signed ``bias_bits``) and ``carry`` (1), the last two zero
    except on a neuron's last beat. Only ``valid`` is a handshake term: the integrator ignores
    the data without it."""

    def __init__(self, *, add_bits: int, bias_bits: int):
        for name, value in (("add_bits", add_bits), ("bias_bits", bias_bits)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        super().__init__({"valid": Out(1), "add": Out(signed(add_bits)),
                          "bias": Out(signed(bias_bits)), "carry": Out(1)})


class SpikePackBeat(wiring.Component):
    """Stage 1 of :class:`~spikepack.hw.neuron_spikepack.SpikePackNeuron`: registers each beat
    taken on the unit's ``i`` stream (``valid & ready``, both inputs here: the unit's decode
    control drives ``ready``).

    * ``addend`` Out(:class:`AddendSignature`): ``valid``, and the addend: serial beat t of a
      group as ``current << k*(T-1-t)`` (the shift chosen by a beat counter in front of the
      register, so that the integration add has no multiplexer in front of it), packed the
      partial potential; ``bias`` and ``carry`` (readout, or always with ``fault="compare_ge"``:
      the unit then decodes v instead of v - 1) of a ``last`` beat, zero on other beats;
    * ``last`` Out(1): the beat in stage 1 was a ``last`` one;
    * ``threshold``, ``readout`` Out: the last beat's fields, kept until the decode stage loads
      the neuron. Serial mode with T >= 2: written by any last beat on offer (taken or not)
      unless ``hold`` (In(1): they still belong to a neuron not loaded yet); otherwise through
      stage-1 registers, taken from them when ``last``.

    Latency: 1 cycle (a beat's addend, ``last``, bias and carry at the next edge; threshold and
    readout at that edge in serial mode with T >= 2, else one edge later). Throughput: one beat
    a cycle.
    """

    def __init__(self, *, params: NeuronParams, fault=None):
        self._params = checked_params(params)
        if fault not in FAULTS:
            raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
        self._fault = fault
        super().__init__({
            "valid": In(1), "ready": In(1), "payload": In(neuron_input_layout(self._params)),
            "hold": In(1),
            "addend": Out(AddendSignature(add_bits=addend_bits(self._params),
                                          bias_bits=self._params.bias_bits)),
            "last": Out(1),
            "threshold": Out(self._params.threshold_bits), "readout": Out(1),
        })

    params = property(lambda self: self._params)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        T, k = p.timesteps, p.tau_shift
        serial = p.input_mode == "serial"
        pay = self.payload
        beat = Signal()
        m.d.comb += beat.eq(self.valid & self.ready)

        a_valid = Signal()
        a_last = Signal()
        # the last beat's bias and carry in (readout: v, hidden: v - 1), zero on other beats
        a_bias = Signal(signed(p.bias_bits), reset_less=True)
        a_carry = Signal(reset_less=True)
        # fault: decode v instead of v - 1, i.e. fire on r >= level instead of r > level
        carry = C(1, 1) if self._fault == "compare_ge" else pay.readout
        # (a_bias and a_carry need no handshake term: acc ignores them without a_valid)
        m.d.sync += [a_valid.eq(beat), a_last.eq(beat & pay.last),
                     a_bias.eq(Mux(pay.last, pay.bias, 0)), a_carry.eq(pay.last & carry)]
        a_add = Signal(signed(addend_bits(p)), reset_less=True)
        if serial:
            # the addend: serial beat t of a group weighs tau**(T-1-t), a shift chosen here,
            # before the register, so that the integration add has no multiplexer in front of it
            t_in = Signal(range(max(T, 2)))
            with m.Switch(t_in):
                for t in range(T - 1):
                    with m.Case(t):
                        m.d.sync += a_add.eq(pay.current << (k * (T - 1 - t)))
                with m.Default():       # t = T - 1 (t_in never exceeds it)
                    m.d.sync += a_add.eq(pay.current)
            with m.If(beat):
                m.d.sync += t_in.eq(Mux(t_in == T - 1, 0, t_in + 1))
        else:
            m.d.sync += a_add.eq(pay.current)
        m.d.comb += [self.addend.valid.eq(a_valid), self.addend.add.eq(a_add),
                     self.addend.bias.eq(a_bias), self.addend.carry.eq(a_carry),
                     self.last.eq(a_last)]

        # the last beat's threshold and readout flag, read when the neuron loads into the decode
        # stage. Serial mode with T >= 2: the next neuron's last beat comes T - 1 >= 1 beats
        # after that load at the earliest, so registers written at the handshake hold them. A
        # neuron of one beat (packed, or T = 1) may follow at once: its fields pass through
        # stage-1 registers first.
        threshold = Signal(p.threshold_bits, reset_less=True)
        readout = Signal(reset_less=True)
        if serial and T >= 2:
            # written by any last beat on offer, taken or not, unless they still belong to a
            # neuron that X has not loaded (in stage 1, or pending and not loading now): a taken
            # last beat is never refused (the only beat i.ready lets through while a neuron
            # waits is the next neuron's first), and the guard is shallower than i.ready
            with m.If(self.valid & pay.last & ~self.hold):
                m.d.sync += [threshold.eq(pay.threshold), readout.eq(pay.readout)]
        else:
            a_threshold = Signal(p.threshold_bits, reset_less=True)
            a_readout = Signal(reset_less=True)
            m.d.sync += [a_threshold.eq(pay.threshold), a_readout.eq(pay.readout)]
            with m.If(a_last):
                m.d.sync += [threshold.eq(a_threshold), readout.eq(a_readout)]
        m.d.comb += [self.threshold.eq(threshold), self.readout.eq(readout)]
        return m

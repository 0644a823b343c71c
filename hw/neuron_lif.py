"""The LIF neuron unit, the baseline the SpikePack paper compares against (SPEC section 3).

See :class:`LIFNeuron`.
"""

from __future__ import annotations

from amaranth import Module

from .lif_buffer import StepCurrentBuffer
from .lif_control import LIFControl
from .lif_dynamics import LIFDrive, LIFMembrane, membrane_bits
from .neuron_common import FAULTS as _FAULTS
from .neuron_common import NeuronBase, add_output_stage

__all__ = ["LIFNeuron"]



class LIFNeuron(NeuronBase):
    """LIF neuron unit (SPEC section 3); same parameters and ports as
    :class:`~spikepack.hw.neuron_spikepack.SpikePackNeuron`, serial input mode only. A pipeline
    built for the same clock as the SpikePack unit: every carry chain has at most one LUT
    between it and a register on either side.

    **Integration** (two stages). A neuron is G >= 1 groups of T beats; beat t of a group carries
    the row tile's step current I_(g,t). A T-entry buffer (a memory, one write port, two
    asynchronous read ports) accumulates the step currents C_t = bias + sum_g I_(g,t) (a readout
    neuron: the bias in entry T-1 only). Stage 1 registers the beat's current and the old entry
    (read at the handshake; the bias instead in the first group), stage 2 adds them and writes.

    **Dynamics** (three stages, one step per cycle; R starts as the ``last`` beat enters stage
    1). The unit keeps u_t = v_t - theta - 1, so that the spike s_t = (v_t > theta) = (u_t >= 0)
    is a sign bit and the reset by subtraction needs no comparator; it holds it inverted,
    w = ~u = theta - v (the sign bit is then s itself). With theta = a*2**k + b,
    ``v >> k = (u >> k) + a + c``, c = ((u mod 2**k) + b >= 2**k - 1), so:

    * R reads C_t from the buffer into a register;
    * D adds a constant: D_0 = C_0 - 1, D_t = C_t + a - theta - 1 for t >= 1 (computed from a
      record of the last beat's threshold as R starts). A readout neuron runs Horner's rule here
      instead, D_t = (D_(t-1) << k) + C_t, and D ends at its global potential v;
    * U: ``u_t = (u_(t-1) >> k) + D_t + c - theta*s_(t-1)``, three operands in one carry chain
      behind a carry-save layer, with c in the carry vector's free bit 0; s and c come from
      registers (c from the previous step's low bits). A neuron starts from u = 0, s = 1,
      c = 0: step 0 computes D_0 - theta = C_0 - theta - 1 (v_(-1) = 0, s_(-1) = 0).

    After T steps the spike word (step 1 in the MSB) and D go to the output register: ``spikes``
    is the spike word of a hidden neuron, ``potential`` the global potential v of a readout
    neuron; the other field is unspecified (the neuron-unit contract).

    **Timing** (o.ready never low): one beat per cycle without bubbles, across neuron
    boundaries too (a neuron of G groups occupies the input for G*T cycles); throughput one
    neuron per G*T cycles; latency (:attr:`latency`): ``o.valid`` rises T + 3 cycles after the
    cycle whose edge accepts the ``last`` beat (R's first read beside stage 1, D's step 0, T
    steps of U, the output register).
    R, D and U advance together, and stop only while U holds a neuron's last step and the output
    register is full (a registered flag, not ``o.ready``). The next neuron's first group writes
    entry t only once R has read it: ``i.ready`` enforces that and is a function of registers
    only (neither ``i.valid`` nor ``o.ready``). ``o.valid`` holds with a stable payload until
    ``o.ready``.

    **Components** (elaborate only wires them): the integration
    :class:`~spikepack.hw.lif_buffer.StepCurrentBuffer`, the control
    :class:`~spikepack.hw.lif_control.LIFControl` (``i.ready``, ``adv``, the step flags, the
    record), R and D :class:`~spikepack.hw.lif_dynamics.LIFDrive`, U
    :class:`~spikepack.hw.lif_dynamics.LIFMembrane`, and
    :func:`~spikepack.hw.neuron_common.add_output_stage`. (None is shared with the SpikePack
    unit: its integration is a per-step buffer, not one accumulator.)

    ``_fault`` (private, for tests only): "compare_ge" fires on ``v >= theta``.
    """

    kind = "lif"

    def __init__(self, *, _fault=None, **kwargs):
        if _fault not in _FAULTS:
            raise ValueError(f"_fault must be one of {_FAULTS}, not {_fault!r}")
        self._fault = _fault
        super().__init__(**kwargs)

    @classmethod
    def check(cls, **params):
        if params.get("input_mode", "serial") == "packed":
            raise ValueError("LIFNeuron needs input_mode 'serial': LIF integrates step "
                             "currents and cannot use packed partial potentials")
        return super().check(**params)

    @property
    def buffer_bits(self) -> int:
        """Signed width of one buffer entry: a step current C_t, bias included."""
        return self.widths.lif_current

    @property
    def membrane_bits(self) -> int:
        """Signed width of the membrane register w = theta - v. With step currents in
        [c_lo, c_hi] (c_lo <= 0 <= c_hi), v stays within [min(2*c_lo - 1, c_lo - theta), 2*c_hi]:
        v_t <= v_(t-1)/2 + c_hi; without a spike v_t >= floor(v_(t-1)/2) + c_lo, and after one
        (v_(t-1) > theta >= 0) v_t >= c_lo - theta."""
        return membrane_bits(self.params)

    @staticmethod
    def latency_of(timesteps: int) -> int:
        """Cycles from the handshake of a neuron's ``last`` beat to its ``o.valid`` (output
        free): T + 3."""
        return timesteps + 3

    def elaborate(self, platform):
        m = Module()
        p = self.params
        out = add_output_stage(m, self.o, self.output_depth)
        m.submodules.integ = integ = StepCurrentBuffer(params=p, width=self.buffer_bits)
        m.submodules.ctrl = ctrl = LIFControl(params=p)
        m.submodules.drive = drive = LIFDrive(params=p, c_bits=self.buffer_bits,
                                              fault=self._fault)
        m.submodules.membrane = mem = LIFMembrane(params=p, fault=self._fault)
        m.d.comb += [
            # the beats: integrated into the buffer, i.ready from the control
            integ.valid.eq(self.i.valid), integ.ready.eq(self.i.ready),
            integ.payload.eq(self.i.payload),
            ctrl.valid.eq(self.i.valid), ctrl.payload.eq(self.i.payload),
            self.i.ready.eq(ctrl.ready), ctrl.t_in.eq(integ.t_in),
            ctrl.out_free.eq(out.free),
            # R reads C_t; D and U advance with it
            integ.c_addr.eq(ctrl.r_step), drive.c.eq(integ.c_data),
            drive.adv.eq(ctrl.adv), drive.r_first.eq(ctrl.r_first),
            drive.r_active.eq(ctrl.r_active),
            drive.rec_theta.eq(ctrl.rec_theta), drive.rec_readout.eq(ctrl.rec_readout),
            mem.adv.eq(ctrl.adv), mem.d_first.eq(ctrl.d_first), mem.u_fin.eq(ctrl.u_fin),
            mem.d.eq(drive.d), mem.theta.eq(drive.theta),
            # the result, after T steps of U
            out.w_en.eq(mem.w_en), out.w_data.spikes.eq(mem.spikes),
            out.w_data.potential.eq(mem.potential),
        ]
        return m

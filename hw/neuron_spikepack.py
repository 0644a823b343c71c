"""The SpikePack neuron unit: integrate one neuron's global potential, decode it serially.

See :class:`SpikePackNeuron`.
"""

from __future__ import annotations

from amaranth import Cat, Module
from amaranth.lib import wiring

from .neuron_common import FAULTS as _FAULTS
from .neuron_common import NeuronBase, add_output_stage
from .spikepack_acc import CarrySaveAccumulator
from .spikepack_beat import SpikePackBeat, addend_bits
from .spikepack_decode import DecodeControl, DecodeDatapath, accumulator_bits, decode_bits

__all__ = ["SpikePackNeuron", "decode_model"]



def decode_model(v: int, theta: int, readout: bool, *, timesteps: int, tau_shift: int,
                 width: int, potential_bits: int) -> tuple[int, int]:
    """The decode stage of :class:`SpikePackNeuron`, bit for bit, in Python integers: returns
    (spikes, potential) as the ``o`` payload presents them (the potential of a hidden neuron and
    the spikes of a readout neuron are whatever the shared register holds). ``width`` is the
    unit's ``decode_bits``. It exists so that a test can hold the datapath (widths, the
    never-firing flag, saturation, the shifted comparison) against ``golden.decode_serial``
    exhaustively, far faster than a simulation."""
    T, k, W = timesteps, tau_shift, width
    lo = k * (T - 1)
    h = W - lo
    if W <= k or h < 2:
        raise ValueError(f"width {W} is too narrow for T = {T}, k = {k}")
    mask = (1 << W) - 1
    if readout:
        x = v & mask
        nofire = True
    else:
        if not v - 1 < 1 << W:
            raise ValueError(f"v = {v} does not fit the decode register ({W} bits)")
        x = (v - 1) & mask
        nofire = v - 1 < 0
    sat = False
    held = 0
    for _ in range(T):
        hi = x >> lo
        # the never-firing flag is the subtrahend's bit h: the difference is then negative
        neg = hi - (theta + (int(nofire) << h)) < 0
        fire = not neg or sat
        x_sub = (x & ((1 << lo) - 1)) | (((hi if neg else hi - theta) & ((1 << h) - 1)) << lo)
        overflow = not nofire and (x_sub >> (W - k)) != 0
        bottom = (x >> (W - k)) if readout else int(fire)
        x_shift = ((x_sub << k) & mask) | bottom
        held = (x_shift & ((1 << k) - 1)) | ((x << k) & mask)
        x = x_shift
        sat = sat or overflow
    spikes = sum(((held >> (k * j)) & 1) << j for j in range(T))
    rot = (k * T) % W
    potential = ((held >> rot) | (held << (W - rot))) & mask & ((1 << potential_bits) - 1)
    if potential >> (potential_bits - 1):
        potential -= 1 << potential_bits
    return spikes, potential


class SpikePackNeuron(NeuronBase):
    """SpikePack neuron unit (SPEC section 2), a two-stage pipeline.

    Parameters (keyword-only): ``timesteps`` T (1..16), ``tau_shift`` k (1..3), ``weight_bits``,
    ``fan_in`` (largest N), ``rows`` (inputs per row tile, at most ``fan_in``), ``bias_bits``,
    ``threshold_bits``, ``input_mode`` "serial" | "packed". Ports ``i`` and ``o``: see
    :mod:`spikepack.hw.neuron_common`.

    **Stage 1** registers the beat: the serial addend ``I << k*(T-1-t)`` (beat t of a group,
    the shift chosen in front of the register), or the packed partial potential; the bias and
    the carry in (readout) of a ``last`` beat, zero on other beats; the ``last`` beat's threshold
    and readout flag (kept until the neuron loads into the decode stage).

    **Stage 2, integration**: ONE accumulator sums every beat from -1, and the ``last`` beat
    also adds bias + readout, so that acc ends at v - 1 (hidden) or v (readout). The three
    operands (acc, addend, bias) pass a carry-save layer (one LUT per bit, which also restarts
    acc at -1) in front of a single carry chain. acc then holds the neuron (pending) until the
    decode register loads it, while it restarts with the next neuron's first beat.

    **Reset**: the reset of the unit's clock domain (in the top, the core domain's registered
    ``rst | SOFT_RESET``) restarts acc at -1 and abandons any neuron in flight. acc reads
    ``ResetSignal()`` itself (see :class:`~spikepack.hw.spikepack_acc.CarrySaveAccumulator`),
    so reset the unit through its domain: an ``amaranth.hdl.ResetInserter`` around it would not
    reach acc.

    **Decode stage** (no membrane register, no multiplier, no level register): one W-bit
    register X (:attr:`decode_bits`) and the threshold theta. It loads X = acc, with a flag
    ``nofire`` for readout neurons and for a hidden v - 1 < 0 (v <= 0 decodes to 0). Step t
    compares the bits of X above its k*(T-1) low bits with theta, ``fire = X_hi >= theta``
    (X holds r'_(t-1) * tau**(t-1) with r' = r - 1, so this is r_(t-1) > theta*tau**(T-t),
    strictly greater), subtracts theta from X_hi when it fires, and shifts X left by k with the
    spike entering at bit 0 (the bits the shift frees are exactly those below the remainder's
    k*(t-1) zero bits, so spike s_t ends at bit k*(T-t)). X_hi >= 2*theta means a remainder
    above the sum of all remaining levels (it is below 2*theta*tau**(T-1-t) for every tau >= 2),
    so every remaining step fires. X_hi has threshold_bits + 1 bits, so a bit shifted out of
    the top means X_hi > 2*theta: a saturation flag then makes every later step fire, as the
    true remainder would. ``nofire`` and the load are the subtrahend's top bits: the compare's
    sign is then "keep X_hi" directly (no gate between the carry chain and the per-bit
    multiplexers). ``decode_model`` mirrors this datapath and the tests hold it against
    ``golden.decode_serial``. A readout neuron never fires: X rotates left by k per step, so v
    survives rotated by k*T (undone by wiring at the output).

    **Components** (elaborate only wires them): stage 1
    :class:`~spikepack.hw.spikepack_beat.SpikePackBeat`, stage 2
    :class:`~spikepack.hw.spikepack_acc.CarrySaveAccumulator` (joined by an ``AddendSignature``),
    the decode stage's :class:`~spikepack.hw.spikepack_decode.DecodeControl` (``i.ready``) and
    :class:`~spikepack.hw.spikepack_decode.DecodeDatapath` (joined by a ``StepSignature``), and
    :func:`~spikepack.hw.neuron_common.add_output_stage`.

    **Output stage** (:attr:`output_depth` registers, shared fields): after T steps X goes out;
    ``spikes`` bit j is its bit k*j, ``potential`` is it rotated right by k*T. So ``spikes`` is
    the spike word of a hidden neuron and ``potential`` the global potential v of a readout
    neuron; the other field is unspecified (the neuron-unit contract).

    **Timing** (o.ready never low):

    * input: one beat per cycle without bubbles, across neuron boundaries too; a neuron of G
      groups occupies the input for G*T cycles (serial) or G cycles (packed, when G >= T);
    * throughput: one neuron per G*T cycles (serial), per max(G, T) cycles (packed);
    * latency (:attr:`latency`): ``o.valid`` rises T + 3 cycles after the cycle whose edge
      accepts the ``last`` beat (both modes): stage 1, stage 2, the load, T steps.

    ``i.ready`` is a function of registers only (it depends neither on ``i.valid`` nor on
    ``o.ready``): a beat taken now reaches stage 2 at the next edge, so it falls only when acc
    may then still hold a pending neuron, i.e. when the decode stage cannot be sure, from its
    registers and assuming no pop from the output stage, to load it at that edge. The decode
    stage finishes a neuron on the output stage's registered free flag, not on ``o.ready``.
    ``o.valid`` holds with a stable payload until ``o.ready``.

    ``_fault`` (private, for tests only): "compare_ge" decodes with ``>=`` instead of ``>``.
    """

    kind = "spikepack"

    def __init__(self, *, _fault=None, **kwargs):
        if _fault not in _FAULTS:
            raise ValueError(f"_fault must be one of {_FAULTS}, not {_fault!r}")
        self._fault = _fault
        super().__init__(**kwargs)

    @property
    def accumulator_bits(self) -> int:
        """Signed width of the integration accumulator: it sums the beats from -1 (v - bias - 1
        at most) and ends at v - 1 (hidden) or v (readout) once the last beat adds the bias."""
        return accumulator_bits(self.params)

    @property
    def decode_bits(self) -> int:
        """Width W of the decode register X: it holds v (readout, signed) or the remainder
        (hidden, unsigned), which needs threshold_bits + 1 bits above its k*(T-1) low bits."""
        return decode_bits(self.params)

    @property
    def output_depth(self) -> int:
        """Finished results the output stage holds: 3 when T = 1, 2 when T = 2, else 1 (so that
        ``i.ready`` can be a function of registers only and still sustain one beat per cycle)."""
        return {1: 3, 2: 2}.get(self.timesteps, 1)

    @staticmethod
    def latency_of(timesteps: int) -> int:
        """Cycles from the handshake of a neuron's ``last`` beat to its ``o.valid`` (decode stage
        and output free): T + 3, both input modes."""
        return timesteps + 3

    def elaborate(self, platform):
        m = Module()
        T, k = self.timesteps, self.tau_shift
        W = self.decode_bits
        rot = (k * T) % W               # a readout neuron's v ends rotated left by k*T bits


        m.submodules.control = ctrl = DecodeControl(timesteps=T)
        m.submodules.decode = dec = DecodeDatapath(params=self.params,
                                                   acc_bits=self.accumulator_bits)
        m.submodules.stage1 = beat = SpikePackBeat(params=self.params, fault=self._fault)
        m.submodules.integrator = integ = CarrySaveAccumulator(
            width=self.accumulator_bits, add_bits=addend_bits(self.params),
            bias_bits=self.bias_bits)
        def connect(held):
            return [self.o.payload.spikes.eq(Cat(held[k * j] for j in range(T))),
                    self.o.payload.potential.eq(held.rotate_right(rot)[:self.widths.potential])]
        out = add_output_stage(m, self.o, self.output_depth, width=W, connect=connect)
        wiring.connect(m, beat.addend, integ.addend)
        wiring.connect(m, ctrl.step, dec.step)
        m.d.comb += [
            # stage 1 takes the beat; the decode control says when (i.ready)
            beat.valid.eq(self.i.valid), beat.ready.eq(self.i.ready),
            beat.payload.eq(self.i.payload), self.i.ready.eq(ctrl.ready),
            beat.hold.eq(ctrl.hold),
            # stage 2: acc holds a finished neuron until the decode stage loads it
            integ.restart_next.eq(ctrl.pending_next), integ.load.eq(ctrl.step.load),
            # the decode stage, on the output stage's registered flags
            ctrl.a_last.eq(beat.last),
            ctrl.out_free.eq(out.free), ctrl.out_free_after_write.eq(out.free_after_write),
            dec.acc.eq(integ.acc), dec.threshold.eq(beat.threshold), dec.readout.eq(beat.readout),
            out.w_en.eq(dec.w_en), out.w_data.eq(dec.w_data),
        ]
        return m

"""The decode stage of the SpikePack neuron unit: its control (:class:`DecodeControl`) and its
datapath (:class:`DecodeDatapath`), joined by a :class:`StepSignature`."""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import check_int
from spikepack.sim.golden import signed_bits

from .neuron_common import NeuronParams, checked_params

__all__ = ["StepSignature", "DecodeControl", "DecodeDatapath", "accumulator_bits",
           "decode_bits"]


def accumulator_bits(params: NeuronParams) -> int:
    """Signed width of the integration accumulator: it sums the beats from -1 (v - bias - 1
    at most) and ends at v - 1 (hidden) or v (readout) once the last beat adds the bias."""
    lo, hi = params.potential_range
    blo, bhi = params.bias_range
    return signed_bits(min(lo - 1, lo - blo - 1), max(hi, hi - bhi))


def decode_bits(params: NeuronParams) -> int:
    """Width W of the decode register X: it holds v (readout, signed) or the remainder
    (hidden, unsigned), which needs threshold_bits + 1 bits above its k*(T-1) low bits."""
    return max(params.widths.potential,
               params.threshold_bits + 1 + params.tau_shift * (params.timesteps - 1),
               params.tau_shift + 1)


class StepSignature(wiring.Signature):
    """Decode control to datapath (driver's view), for this edge: ``load`` (a register: X loads
    the pending neuron from acc), ``advance`` (X takes a step), ``wrote`` (the last step writes
    the output stage)."""

    def __init__(self):
        super().__init__({"load": Out(1), "advance": Out(1), "wrote": Out(1)})


class DecodeControl(wiring.Component):
    """The SpikePack unit's decode control: when X loads a neuron, steps, and finishes; and
    ``ready`` (the unit's ``i.ready``).

    * ``a_last`` In(1): stage 1 holds a neuron's last beat (acc holds the neuron at the next
      edge);
    * ``out_free``, ``out_free_after_write`` In(1): the output stage's registered flags;
    * ``step`` Out(:class:`StepSignature`);
    * ``pending_next`` Out(1): acc holds a finished neuron not loaded yet at the next edge;
      ``hold`` Out(1), the same (a separate net, as the stage-1 guard of the latched threshold);
    * ``ready`` Out(1): a beat may be taken now.

    A neuron in acc (``pending``) loads when the decode stage will be free: decided a cycle
    ahead (``load`` is a register), from registers only and assuming no pop from the output
    stage. Then T steps (``advance``), one a cycle; the last (``d_final``) waits for
    ``out_free`` and writes (``wrote``). ``ready`` = ``~pending_next | x_free_next``: a beat taken
    now reaches acc at the next edge, where acc must not still hold a pending neuron. No input
    depends on ``i.valid`` or ``o.ready``.

    Latency: ``load`` 1 cycle after ``a_last`` when the decode stage is free (then ``wrote`` T
    cycles after ``load``, the output stage free). Throughput: one neuron per T cycles.
    """

    def __init__(self, *, timesteps: int):
        check_int("timesteps", timesteps, limits.TIMESTEPS)
        self._timesteps = timesteps
        super().__init__({
            "a_last": In(1), "out_free": In(1), "out_free_after_write": In(1),
            "step": Out(StepSignature()), "pending_next": Out(1), "hold": Out(1),
            "ready": Out(1),
        })

    timesteps = property(lambda self: self._timesteps)

    def elaborate(self, platform):
        m = Module()
        T = self._timesteps
        d_active = Signal()
        d_step = Signal(range(max(T, 2)))
        d_final = Signal()              # step T: the result goes out
        d_penult = Signal()             # step T - 1 (never when T = 1)
        pending = Signal()              # acc holds a finished neuron that X has not loaded
        # the output stage's registered free flag, not o.ready, lets the last step finish: the
        # decode control depends on registers only
        wrote = self.step.wrote         # the last step writes the output stage at this edge
        advance = self.step.advance
        # X loads the pending neuron at this edge: decided a cycle ahead, from the same
        # prediction as i.ready, so that the flag is a register (it enters the compare chain)
        load = Signal()
        m.d.comb += [
            self.step.load.eq(load),
            wrote.eq(d_final & self.out_free),
            advance.eq(d_active & (~d_final | self.out_free)),
        ]
        with m.If(advance):
            m.d.sync += [d_step.eq(d_step + 1), d_final.eq(d_step == T - 2),
                         d_penult.eq(d_step == T - 3)]
            with m.If(d_final):
                m.d.sync += [d_active.eq(0), d_step.eq(0), d_final.eq(0), d_penult.eq(0)]
        with m.If(load):
            m.d.sync += [d_active.eq(1), d_step.eq(0), d_final.eq(T == 1), d_penult.eq(T == 2)]

        # a beat taken now reaches stage 2 at the next edge, where acc must not still hold a
        # pending neuron. Predict from registers, assuming no pop from the output stage, whether
        # X will be able to load then.
        pending_next = self.pending_next
        x_free_next = Signal()
        m.d.comb += [pending_next.eq(self.a_last | (pending & ~load)),
                     self.hold.eq(self.a_last | (pending & ~load))]
        # X free at the next edge if no load now: idle, or the last step writes now, or it comes
        # next (no write before it, no pop assumed). A LUT of its own (keep), so that i.ready
        # and load's input are one LUT of (a_last, pending, load, free_idle): left to itself,
        # synthesis made x_free_next a 5-input LUT (two LUTs and a PFUMX) whose multiplexer it
        # picked by the order of the flip-flops, and with the decode control in its own module
        # it picked d_final, so load went through a LUT and the PFUMX (4.28 -> 4.54).
        free_idle = Signal(attrs={"keep": 1})
        with m.If(~d_active | wrote):
            m.d.comb += free_idle.eq(1)
        with m.Elif(~d_final):
            m.d.comb += free_idle.eq(d_penult & self.out_free)
        # a neuron starts now: free at the next edge only when T = 1
        if T == 1:
            m.d.comb += x_free_next.eq(Mux(load, Mux(wrote, self.out_free_after_write,
                                                     self.out_free), free_idle))
        else:
            m.d.comb += x_free_next.eq(~load & free_idle)
        m.d.sync += [pending.eq(pending_next), load.eq(pending_next & x_free_next)]
        m.d.comb += self.ready.eq(~pending_next | x_free_next)
        return m


class DecodeDatapath(wiring.Component):
    """The SpikePack unit's decode datapath (no membrane register, no multiplier, no level
    register): the W-bit register X (:func:`decode_bits`), theta and the flags, driven by
    ``step`` (In(:class:`StepSignature`)).

    * ``acc`` In(signed ``acc_bits``), ``threshold``, ``readout`` In: loaded at ``step.load``;
    * ``w_en`` Out(1) (= ``step.wrote``), ``w_data`` Out(W): X as it goes out after the last
      step (zero without ``w_en``).

    A load takes X = acc with ``nofire`` = readout or acc < 0. Each ``advance`` compares X_hi
    (the bits above the k*(T-1) low ones) with theta, subtracts it when it fires, shifts X left
    by k with the spike (hidden) or X's top bits (readout: a rotation) in at bit 0; a bit
    shifted out of a firing or kept X_hi sets the saturation flag (every later step fires).
    ``decode_model`` in :mod:`spikepack.hw.neuron_spikepack` is this, bit for bit.

    Latency: ``w_data`` holds the result at the T-th ``advance`` after a load (the one with
    ``wrote``), combinationally. Throughput: one step a cycle, one neuron per T cycles.
    """

    def __init__(self, *, params: NeuronParams, acc_bits: int):
        self._params = checked_params(params)
        check_int("acc_bits", acc_bits, 2, limits.MAX_POTENTIAL_BITS + 2)
        self._width = decode_bits(self._params)
        super().__init__({
            "step": In(StepSignature()),
            "acc": In(signed(acc_bits)),
            "threshold": In(self._params.threshold_bits), "readout": In(1),
            "w_en": Out(1), "w_data": Out(self._width),
        })

    params = property(lambda self: self._params)
    width = property(lambda self: self._width)

    def elaborate(self, platform):
        m = Module()
        T, k, W = self._params.timesteps, self._params.tau_shift, self._width
        tb = self._params.threshold_bits
        load, advance, wrote, acc = self.step.load, self.step.advance, self.step.wrote, self.acc
        lo_bits = k * (T - 1)           # X[:lo_bits] never reaches the comparator
        h = W - lo_bits                 # X[lo_bits:]: the compared part (>= threshold_bits + 1)
        # data registers need no reset: they are loaded with every neuron
        d_readout = Signal(reset_less=True)
        d_nofire = Signal(reset_less=True)  # readout, or a hidden v - 1 < 0 (decodes to 0)
        d_sat = Signal(reset_less=True)     # the remainder is above every remaining level
        theta = Signal(tb, reset_less=True)
        x = Signal(W, reset_less=True)
        # X_hi - theta, with two flags as the subtrahend's top bits (X_hi < 2**h): d_nofire at
        # bit h makes the difference negative (never fire, keep X_hi), load at bit h + 1 as
        # well. So the sign, keep = X_hi < theta or nofire or load, is the carry chain's own
        # output and drives the per-bit multiplexers with no gate in between; bit h + 1 is
        # (X_hi < theta or nofire) xor load, the true compare of a last step that coincides
        # with a load.
        diff = Signal(h + 3)
        keep = Signal()
        keep_x = Signal()               # (X_hi < theta or nofire) xor load
        m.d.comb += [
            diff.eq(x[lo_bits:] - Cat(theta, C(0, h - tb), d_nofire, load)),
            keep.eq(diff[h + 2]),
            keep_x.eq(diff[h + 1]),
        ]
        # what X takes where it keeps X_hi (or loads), prepared from registers beside the chain
        kept = Signal(W, attrs={"keep": 1})
        spike_kept = Signal(attrs={"keep": 1})      # bit 0 where keep: readout, saturated, load
        m.d.comb += [
            # hidden: shift left by k, the spike in at bit 0; readout: rotate by k
            kept.eq(Mux(load, acc[:W],
                        Cat(Mux(d_readout, x[W - k:], C(0, k)), x[:W - k]))),
            spike_kept.eq(Mux(load, acc[0], Mux(d_readout, x[W - k], d_sat))),
        ]
        x_next = Signal(W)
        m.d.comb += x_next.eq(Cat(Mux(keep, spike_kept, 1), kept[1:lo_bits + k],
                                  Mux(keep, kept[lo_bits + k:], diff[:h - k])))
        with m.If(advance | load):
            m.d.sync += x.eq(x_next)

        # saturation: bits shifted out of a firing (so hidden, d_nofire = 0) or kept X_hi mean
        # that the remainder is above every remaining level: every later step fires
        sat_kept = Signal(attrs={"keep": 1})
        m.d.comb += sat_kept.eq(~load & (d_sat | (~d_nofire & x[W - k:].any())))
        with m.If(advance | load):     # a load keeps (keep = 1) and sat_kept = 0: cleared
            m.d.sync += d_sat.eq(Mux(keep, sat_kept, d_sat | diff[h - k:h].any()))

        # the last step: X goes out, with this step's spike (or rotated bits) in at bit 0 (X,
        # not the subtracted X: the subtraction only changes bits that the shift moves beyond
        # the spike positions, and a readout neuron never subtracts)
        out_spike = [Signal(name=f"out_spike_{v}", attrs={"keep": 1}) for v in (0, 1)]
        m.d.comb += [
            out_spike[1].eq(Mux(d_readout, x[W - k], load | d_sat)),    # keep_x = 1
            out_spike[0].eq(Mux(d_readout, x[W - k], ~load | d_sat)),   # keep_x = 0
        ]
        # bits 1 .. k-1 of the bottom: readout rotates, hidden shifts zeros in (none when k = 1)
        out_rest = [Mux(d_readout, x[W - k + 1:], C(0, k - 1))] if k > 1 else []
        with m.If(wrote):
            m.d.comb += [self.w_en.eq(1),
                         self.w_data.eq(Cat(Mux(keep_x, out_spike[1], out_spike[0]), *out_rest,
                                            x[:W - k]))]
        with m.If(load):
            m.d.sync += [theta.eq(self.threshold), d_readout.eq(self.readout),
                         d_nofire.eq(self.readout | acc[-1])]
        return m

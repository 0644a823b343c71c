"""The LIF neuron unit's dynamics datapath: the D stage (:class:`LIFDrive`) and the U stage, the
membrane (:class:`LIFMembrane`). Both advance on the control's ``adv``
(:class:`spikepack.hw.lif_control.LIFControl`)."""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack import limits
from spikepack.limits import check_int
from spikepack.sim.golden import signed_bits

from .neuron_common import FAULTS, NeuronParams, checked_params

__all__ = ["LIFDrive", "LIFMembrane", "membrane_bits"]


def membrane_bits(params: NeuronParams) -> int:
    """Signed width of the membrane register w = theta - v. With step currents in
    [c_lo, c_hi] (c_lo <= 0 <= c_hi), v stays within [min(2*c_lo - 1, c_lo - theta), 2*c_hi]:
    v_t <= v_(t-1)/2 + c_hi; without a spike v_t >= floor(v_(t-1)/2) + c_lo, and after one
    (v_(t-1) > theta >= 0) v_t >= c_lo - theta."""
    (wl, wh), (bl, bh) = params.weight_range, params.bias_range
    c_lo, c_hi = min(params.fan_in * wl + bl, 0), max(params.fan_in * wh + bh, 0)
    t_max = params.threshold_max
    return signed_bits(-2 * c_hi, t_max - min(2 * c_lo - 1, c_lo - t_max))


def _drive_bits(params: NeuronParams) -> int:
    return max(params.widths.potential, membrane_bits(params))


def _check_fault(fault):
    if fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}, not {fault!r}")
    return fault


class LIFDrive(wiring.Component):
    """The LIF unit's R register and D stage: ``d_raw`` takes C_t (``c`` In, R's read) at each
    ``adv``; D adds a constant: D_0 = C_0 - 1, D_t = C_t + a - theta - 1 for t >= 1
    (theta = a*2**k + b, from the record as R starts the neuron). A readout neuron runs
    Horner's rule instead, D_t = (D_(t-1) << k) + C_t, and D ends at its global potential v.

    * ``adv``, ``r_first``, ``r_active`` In(1): the control's; ``rec_theta``, ``rec_readout``
      In: the record;
    * ``c`` In(signed ``c_bits``): R's read;
    * ``d`` Out(signed max(potential, membrane bits)): D; ``theta`` Out: theta for U's -theta
      (the record; T = 1: its copy taken as R starts, D's ``z``).

    ``fault="compare_ge"`` (tests only): v - theta instead of v - theta - 1 (hidden neurons).

    Latency: D_t 2 ``adv`` edges after R reads C_t's entry (``d_raw``, then ``d``).
    Throughput: one step a cycle.
    """

    def __init__(self, *, params: NeuronParams, c_bits: int, fault=None):
        self._params = checked_params(params)
        check_int("c_bits", c_bits, 2, limits.MAX_POTENTIAL_BITS + 2)
        self._c_bits = c_bits
        self._fault = _check_fault(fault)
        p = self._params
        super().__init__({
            "adv": In(1), "r_first": In(1), "r_active": In(1),
            "rec_theta": In(p.threshold_bits), "rec_readout": In(1),
            "c": In(signed(c_bits)),
            "d": Out(signed(_drive_bits(p))), "theta": Out(p.threshold_bits),
        })

    params = property(lambda self: self._params)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        T, k, tb = p.timesteps, p.tau_shift, p.threshold_bits
        adv, r_first = self.adv, self.r_first
        rec_theta, rec_readout = self.rec_theta, self.rec_readout
        # --- R: read C_t ---
        d_raw = Signal(signed(self._c_bits), reset_less=True)
        with m.If(adv):
            m.d.sync += d_raw.eq(self.c)
        # --- D: D_t = C_t + Z (hidden) or (D << k) + C_t (readout) ---
        DW = _drive_bits(p)
        d_minus = Signal()              # D holds step 0 of a hidden neuron: Z = -1
        d_readout = Signal(reset_less=True)
        horner = Signal(reset_less=True)    # readout, step >= 1: D = (D << k) + C_t
        d = Signal(signed(DW), reset_less=True)
        with m.If(adv):
            m.d.sync += [d_minus.eq(r_first & ~rec_readout),
                         horner.eq(d_readout & self.r_active & ~r_first)]
        # z: Z for steps >= 1, a - theta - 1 (hidden) or 0 (readout), from the record as R
        # starts the neuron. T = 1 has no such step: z keeps theta for U instead.
        z = Signal(signed(tb + 1) if T > 1 else tb, reset_less=True)
        with m.If(adv & r_first):
            m.d.sync += d_readout.eq(rec_readout)
            if T > 1:
                m.d.sync += z.eq(Mux(rec_readout, 0, (rec_theta >> k) - rec_theta - 1))
            else:
                m.d.sync += z.eq(rec_theta)
        addend = Signal(signed(DW))
        if T > 1:
            m.d.comb += addend.eq(Mux(horner, d << k, z | d_minus.replicate(DW)))
        else:
            m.d.comb += addend.eq(d_minus.replicate(DW))
        # fault: v - theta instead of v - theta - 1 (hidden neurons only), see the c flag
        fault_cin = (~d_readout) if self._fault == "compare_ge" else C(0, 1)
        with m.If(adv):
            m.d.sync += d.eq(addend + d_raw + fault_cin)
        m.d.comb += [self.d.eq(d), self.theta.eq(rec_theta if T > 1 else z)]
        return m


class LIFMembrane(wiring.Component):
    """The LIF unit's U stage: one LIF step per ``adv``,
    ``u_t = (u_(t-1) >> k) + D_t + c - theta*s_(t-1)``, held inverted as w = ~u = theta - v
    (u = v - theta - 1, so the spike s_t = (v_t > theta) is w's sign bit and the reset by
    subtraction needs no comparator). Three operands in one carry chain behind a carry-save
    layer, with c (from the previous step's low bits: ``v >> k = (u >> k) + a + c``) in the carry
    vector's free bit 0; s and c come from registers. A neuron starts from u = 0, s = 1, c = 0:
    step 0 computes D_0 - theta = C_0 - theta - 1 (v_(-1) = 0, s_(-1) = 0).

    * ``adv``, ``d_first`` (D holds step 0), ``u_fin`` (U holds the last step) In(1): the
      control's; ``d`` In: D; ``theta`` In: theta, taken at ``adv & d_first``;
    * ``w_en`` Out(1) (= ``adv & u_fin``), ``spikes`` Out(T) (step 1 in the MSB), ``potential``
      Out(signed potential bits) (D: a readout neuron's v): the result, zero without ``w_en``.

    ``fault="compare_ge"`` (tests only): the c flag fires on ``>=``.

    Latency: s_t at U's step t, the result (``w_en``) at the ``adv`` after U's step T - 1 (the
    T-th of U). Throughput: one step a cycle, one neuron per T cycles.
    """

    def __init__(self, *, params: NeuronParams, fault=None):
        self._params = checked_params(params)
        self._fault = _check_fault(fault)
        p = self._params
        super().__init__({
            "adv": In(1), "d_first": In(1), "u_fin": In(1),
            "d": In(signed(_drive_bits(p))), "theta": In(p.threshold_bits),
            "w_en": Out(1), "spikes": Out(p.timesteps),
            "potential": Out(signed(p.widths.potential)),
        })

    params = property(lambda self: self._params)

    def elaborate(self, platform):
        m = Module()
        p = self._params
        T, k, tb = p.timesteps, p.tau_shift, p.threshold_bits
        adv, d = self.adv, self.d
        N = membrane_bits(p)
        # The chain runs two bits beyond N: the true u_t fits in N bits, so bits N and N + 1 are
        # copies of its sign, each computed next to its own flip-flop: w[N] drives half of the
        # carry-save layer's LUTs (w[N - 1] the other half), bit N + 1 the output's last spike.
        # (w starts as the step-0 value: an ECP5 flip-flop's synchronous set or reset goes to its
        # initial value, or costs a LUT)
        NU = N + 2
        w = Signal(N + 1, init=-1, reset_less=True)
        neg_theta = Signal(signed(tb + 1), reset_less=True)    # -theta
        nc = Signal(init=1, reset_less=True)    # ~c
        with m.If(adv & self.d_first):
            m.d.sync += neg_theta.eq(-self.theta)
        h = N // 2
        x = Signal(NU)                  # ~w >> k = u >> k, u = v - theta - 1
        y = Signal(NU)                  # s ? -theta : 0
        dn = Signal(NU)
        s_vec = Signal(NU)
        m.d.comb += [
            x.eq(Cat(~w[k:N], (~w[N]).replicate(k + 2))),
            s_vec.eq(Cat(w[N - 1].replicate(h), w[N].replicate(NU - h))),
            y.eq(s_vec & neg_theta),
            dn.eq(d[:N].as_signed()),
        ]
        # ~(a + b) = ~a + ~b + 1: the carry-save layer's outputs come inverted (free in its
        # LUTs), ~c sits at the free bit 0 of the carry vector, the chain's carry in is 1
        csa_sum = Signal(NU)
        csa_carry = Signal(NU)
        w_next = Signal(NU)
        m.d.comb += [
            csa_sum.eq(~(x ^ dn ^ y)),
            csa_carry.eq(Cat(nc, ~((x & dn) | (x & y) | (dn & y))[:-1])),
            w_next.eq(csa_sum + csa_carry + 1),
        ]
        fire = w_next[N + 1]            # s_t, for the output register
        # next c = (u mod 2**k) + b >= 2**k - 1, i.e. ~c = (w mod 2**k) > b (fault: >=)
        w_low, b = w_next[:k], (-neg_theta[:k])[:k]
        nc_next = (w_low >= b) if self._fault == "compare_ge" else (w_low > b)
        # s_0 .. s_(t-2), the latest in bit 0: it takes the spikes from w's sign bit a step
        # later (w holds s_(t-1)), so that the chain's sign outputs drive one register each
        word = Signal(max(T - 2, 1), reset_less=True)
        with m.If(adv):
            if T > 2:
                m.d.sync += word.eq(Cat(w[N - 1], word[:T - 3]))
            # a neuron starts: u = 0 with s = 1 and c = 0, so that step 0 computes
            # 0 + D_0 - theta = C_0 - theta - 1 (D_0 = C_0 - 1): v_(-1) = 0, s_(-1) = 0
            with m.If(self.d_first):
                m.d.sync += [w.eq(-1), nc.eq(1)]
            with m.Else():
                m.d.sync += [w.eq(w_next[:N + 1]), nc.eq(nc_next)]
            with m.If(self.u_fin):      # adv: the output register is free
                m.d.comb += [self.w_en.eq(1),
                             self.spikes.eq(Cat(fire, w[N - 1], word[:T - 2])[:T]),
                             self.potential.eq(d[:p.widths.potential])]
        return m

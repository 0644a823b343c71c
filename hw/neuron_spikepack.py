"""The SpikePack neuron unit: integrate one neuron's global potential, decode it serially.

See :class:`SpikePackNeuron`.
"""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, ResetSignal, Signal, signed

from spikepack.sim.golden import signed_bits

from .neuron_common import NeuronBase, add_output_stage

__all__ = ["SpikePackNeuron", "decode_model"]

_FAULTS = (None, "compare_ge")


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
    ``ResetSignal()`` itself (see the comment at acc), so reset the unit through its domain:
    an ``amaranth.hdl.ResetInserter`` around it would not reach acc.

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
        lo, hi = self.params.potential_range
        blo, bhi = self.params.bias_range
        return signed_bits(min(lo - 1, lo - blo - 1), max(hi, hi - bhi))

    @property
    def decode_bits(self) -> int:
        """Width W of the decode register X: it holds v (readout, signed) or the remainder
        (hidden, unsigned), which needs threshold_bits + 1 bits above its k*(T-1) low bits."""
        return max(self.widths.potential,
                   self.threshold_bits + 1 + self.tau_shift * (self.timesteps - 1),
                   self.tau_shift + 1)

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
        widths = self.widths
        serial = self.input_mode == "serial"
        pay = self.i.payload
        beat = Signal()
        m.d.comb += beat.eq(self.i.valid & self.i.ready)

        W = self.decode_bits
        rot = (k * T) % W               # a readout neuron's v ends rotated left by k*T bits

        def connect(held):
            return [self.o.payload.spikes.eq(Cat(held[k * j] for j in range(T))),
                    self.o.payload.potential.eq(held.rotate_right(rot)[:widths.potential])]
        out = add_output_stage(m, self.o, self.output_depth, width=W, connect=connect)

        # --- stage 1: the beat, registered ----------------------------------------------------
        lo_bits = k * (T - 1)           # X[:lo_bits] never reaches the comparator
        a_valid = Signal()
        a_last = Signal()
        # the last beat's bias and carry in (readout: v, hidden: v - 1), zero on other beats
        a_bias = Signal(signed(self.bias_bits), reset_less=True)
        a_carry = Signal(reset_less=True)
        # fault: decode v instead of v - 1, i.e. fire on r >= level instead of r > level
        carry = C(1, 1) if self._fault == "compare_ge" else pay.readout
        # (a_bias and a_carry need no handshake term: acc ignores them without a_valid)
        m.d.sync += [a_valid.eq(beat), a_last.eq(beat & pay.last),
                     a_bias.eq(Mux(pay.last, pay.bias, 0)), a_carry.eq(pay.last & carry)]
        # the addend: serial beat t of a group weighs tau**(T-1-t), a shift chosen here, before
        # the register, so that the integration add has no multiplexer in front of it
        if serial:
            a_add = Signal(signed(widths.current + lo_bits), reset_less=True)
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
            a_add = Signal(signed(widths.potential), reset_less=True)
            m.d.sync += a_add.eq(pay.current)
        # the last beat's threshold and readout flag, read when the neuron loads into the decode
        # stage. Serial mode with T >= 2: the next neuron's last beat comes T - 1 >= 1 beats
        # after that load at the earliest, so registers written at the handshake hold them. A
        # neuron of one beat (packed, or T = 1) may follow at once: its fields pass through
        # stage-1 registers first.
        threshold = Signal(self.threshold_bits, reset_less=True)
        readout = Signal(reset_less=True)
        if serial and T >= 2:
            # written by any last beat on offer, taken or not, unless they still belong to a
            # neuron that X has not loaded (in stage 1, or pending and not loading now): a taken
            # last beat is never refused (the only beat i.ready lets through while a neuron
            # waits is the next neuron's first), and the guard is shallower than i.ready
            hold = Signal()
            with m.If(self.i.valid & pay.last & ~hold):
                m.d.sync += [threshold.eq(pay.threshold), readout.eq(pay.readout)]
        else:
            a_threshold = Signal(self.threshold_bits, reset_less=True)
            a_readout = Signal(reset_less=True)
            m.d.sync += [a_threshold.eq(pay.threshold), a_readout.eq(pay.readout)]
            with m.If(a_last):
                m.d.sync += [threshold.eq(a_threshold), readout.eq(a_readout)]

        # --- control of the decode stage -----------------------------------------------------
        d_active = Signal()
        d_step = Signal(range(max(T, 2)))
        d_final = Signal()              # step T: the result goes out
        d_penult = Signal()             # step T - 1 (never when T = 1)
        pending = Signal()              # acc holds a finished neuron that X has not loaded
        # the output stage's registered free flag, not o.ready, lets the last step finish: the
        # decode control depends on registers only
        wrote = Signal()                # the last step writes the output stage at this edge
        advance = Signal()
        # X loads the pending neuron at this edge: decided a cycle ahead, from the same
        # prediction as i.ready, so that the flag is a register (it enters the compare chain)
        load = Signal()
        m.d.comb += [
            wrote.eq(d_final & out.free),
            advance.eq(d_active & (~d_final | out.free)),
        ]
        with m.If(advance):
            m.d.sync += [d_step.eq(d_step + 1), d_final.eq(d_step == T - 2),
                         d_penult.eq(d_step == T - 3)]
            with m.If(d_final):
                m.d.sync += [d_active.eq(0), d_step.eq(0), d_final.eq(0), d_penult.eq(0)]
        with m.If(load):
            m.d.sync += [d_active.eq(1), d_step.eq(0), d_final.eq(T == 1), d_penult.eq(T == 2)]

        # --- stage 2: integration -------------------------------------------------------------
        # acc sums the beats from -1; the last beat also adds bias + readout, so acc ends at
        # v - 1 (hidden) or v (readout) and holds it (pending) until X loads it, while acc
        # restarts from -1 with the next beat, if any. Three operands (acc or -1, addend, bias)
        # in one carry chain: a carry-save layer (one LUT per bit, like the restart multiplexer
        # it absorbs) in front of it, the carry in at the free bit 0 of the carry vector.
        N = self.accumulator_bits
        # a reset (or the layer engine's soft reset) can cut a neuron short, and its partial sum
        # must not become the start of the next neuron: the reset restarts acc at -1 like a
        # load does. It is written into the restart condition, not as the register's reset, so
        # that synthesis keeps ONE synchronous set (rst | load & ~a_valid, an ECP5 flip-flop's
        # LSR) and the adder's sum goes straight into the flip-flop (as a register reset, a
        # second set for load sat as a LUT between the carry chain and D: 255 -> 218 MHz)
        acc = Signal(signed(N), init=-1, reset_less=True)
        rst = ResetSignal()
        # copies of pending for the carry-save layer's 2N LUTs, half each (they differ from
        # pending and from each other in their reset, so that synthesis keeps them apart)
        restart = [Signal(name="restart_lo", reset_less=True), Signal(name="restart_hi", init=1)]
        csa_a = Signal(N)
        csa_b = Signal(N)
        csa_c = Signal(N)
        csa_sum = Signal(N)
        csa_carry = Signal(N)
        m.d.comb += [
            csa_a.eq(Cat(acc[:N // 2] | restart[0].replicate(N // 2),
                         acc[N // 2:] | restart[1].replicate(N - N // 2))),
            csa_b.eq(a_add),
            csa_c.eq(a_bias),
            csa_sum.eq(csa_a ^ csa_b ^ csa_c),
            csa_carry.eq(Cat(a_carry, ((csa_a & csa_b) | (csa_a & csa_c) | (csa_b & csa_c))[:-1])),
        ]
        with m.If(a_valid & ~rst):
            m.d.sync += acc.eq(csa_sum + csa_carry)
        with m.Elif(load | rst):
            m.d.sync += acc.eq(-1)

        # --- decode datapath ------------------------------------------------------------------
        h = W - lo_bits                 # X[lo_bits:]: the compared part (>= threshold_bits + 1)
        # data registers need no reset: they are loaded with every neuron
        d_readout = Signal(reset_less=True)
        d_nofire = Signal(reset_less=True)  # readout, or a hidden v - 1 < 0 (decodes to 0)
        d_sat = Signal(reset_less=True)     # the remainder is above every remaining level
        theta = Signal(self.threshold_bits, reset_less=True)
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
            diff.eq(x[lo_bits:] - Cat(theta, C(0, h - self.threshold_bits), d_nofire, load)),
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
            m.d.comb += [out.w_en.eq(1),
                         out.w_data.eq(Cat(Mux(keep_x, out_spike[1], out_spike[0]), *out_rest,
                                           x[:W - k]))]
        with m.If(load):
            m.d.sync += [theta.eq(threshold), d_readout.eq(readout),
                         d_nofire.eq(readout | acc[-1])]

        # --- i.ready and the next load: a beat taken now reaches stage 2 at the next edge,
        # where acc must not still hold a pending neuron. Predict from registers, assuming no
        # pop from the output stage, whether X will be able to load then.
        pending_next = Signal()
        x_free_next = Signal()
        m.d.comb += pending_next.eq(a_last | (pending & ~load))
        with m.If(load):        # a neuron starts now: free at the next edge only when T = 1
            if T == 1:
                m.d.comb += x_free_next.eq(Mux(wrote, out.free_after_write, out.free))
        with m.Elif(~d_active | wrote):     # idle, or the last step writes now
            m.d.comb += x_free_next.eq(1)
        with m.Elif(~d_final):  # the last step comes next; no write before it, no pop assumed
            m.d.comb += x_free_next.eq(d_penult & out.free)
        if serial and T >= 2:
            m.d.comb += hold.eq(a_last | (pending & ~load))
        m.d.sync += [pending.eq(pending_next), restart[0].eq(pending_next),
                     restart[1].eq(pending_next),
                     load.eq(pending_next & x_free_next)]
        m.d.comb += self.i.ready.eq(~pending_next | x_free_next)
        return m

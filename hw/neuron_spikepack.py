"""The SpikePack neuron unit: integrate one neuron's global potential, decode it serially.

See :class:`SpikePackNeuron`.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import C, Cat, Module, Mux, Signal, signed

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
    """SpikePack neuron unit (SPEC section 2): a three-stage integration pipeline and a decode
    stage.

    Parameters (keyword-only): ``timesteps`` T (1..16), ``tau_shift`` k (1..3), ``weight_bits``,
    ``fan_in`` (largest N), ``rows`` (inputs per row tile, at most ``fan_in``), ``bias_bits``,
    ``threshold_bits``, ``input_mode`` "serial" | "packed". Ports ``i`` and ``o``: see
    :mod:`spikepack.hw.neuron_common`.

    **Stage 1** registers the beat: the serial addend ``I << k*(T-1-t)`` (beat t of a group,
    the shift chosen in front of the register), or the packed partial potential, zero without
    a beat (the beat flag is ``i.valid`` and the register that drives ``i.ready``: one gate
    after flip-flops in front of the synchronous resets); the bias of a ``last`` beat, zero on
    other beats. The ``last`` beat's threshold and readout flag go to a record that X reads
    when it loads the neuron (:attr:`record_delay`); stage 2's carry in (readout) is stage 1's
    ``last`` flag and that record's readout flag (or its stage-1 copy).

    **Stage 2, bias**: ``b = addend + bias + carry``, two registers and the carry in straight
    into one carry chain (:attr:`addend_bits_biased`), so that the loop behind it has two
    operands.

    **Stage 3, integration**: the loop ``acc += b`` is a flip-flop -> carry chain -> flip-flop
    path with no LUT in it. acc sums a neuron's beats from -1; on the ``last`` beat the sum
    (v - 1 hidden, v readout) goes to the register ``pend`` instead, and acc restarts at -1
    by a synchronous set (both controlled by the register of stage 2's ``last`` flag). pend
    holds the neuron until X loads it, while acc sums the next one.

    **Decode stage** (no membrane register, no multiplier, no level register): one W-bit
    register X (:attr:`decode_bits`) and the threshold theta. It loads X = pend, with a flag
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
    * latency (:attr:`latency`): ``o.valid`` rises T + 4 cycles after the cycle whose edge
      accepts the ``last`` beat (both modes): stages 1, 2 and 3, the load, T steps.

    ``i.ready`` is a register, computed a cycle ahead from the next values of the registers it
    is a function of (it depends neither on ``i.valid`` nor on ``o.ready``). Only a ``last`` beat needs room: it writes pend two edges after its
    handshake and the threshold record :attr:`record_delay` edges after it, so the neuron
    before it must by then have loaded into X. ``i.ready`` falls only for a beat that may be
    a last one (serial: beat T - 1 of a group; packed or T = 1: any beat) when the decode stage
    cannot be sure, from its registers and assuming no pop from the output stage, of that load.
    The decode stage finishes a neuron on the output stage's registered free flag, not on
    ``o.ready``. ``o.valid`` holds with a stable payload until ``o.ready``.

    ``_fault`` (private, for tests only): "compare_ge" decodes with ``>=`` instead of ``>``.
    """

    kind = "spikepack"

    def __init__(self, *, _fault=None, **kwargs):
        if _fault not in _FAULTS:
            self._mark_used()
            raise ValueError(f"_fault must be one of {_FAULTS}, not {_fault!r}")
        self._fault = _fault
        super().__init__(**kwargs)

    @property
    def addend_bits(self) -> int:
        """Signed width of a beat's addend (stage 1): the serial current shifted by up to
        k*(T-1) bits, or the packed partial potential."""
        lo, hi = self._addend_range
        return signed_bits(lo, hi)

    @property
    def _addend_range(self) -> tuple[int, int]:
        if self.input_mode == "serial":
            lo, hi = self.params.current_range
            s = 1 << (self.tau_shift * (self.timesteps - 1))
            return min(lo, lo * s), max(hi, hi * s)
        return self.params.tile_potential_range

    @property
    def addend_bits_biased(self) -> int:
        """Signed width of the addend with the last beat's bias and carry (stage 2). A serial
        last beat is beat T - 1 of its group: its current is not shifted."""
        lo, hi = self._addend_range
        if self.input_mode == "serial":
            llo, lhi = self.params.current_range
        else:
            llo, lhi = lo, hi
        blo, bhi = self.params.bias_range
        return signed_bits(min(lo, llo + blo), max(hi, lhi + bhi + 1))

    @property
    def accumulator_bits(self) -> int:
        """Signed width of the integration accumulator: it sums a neuron's beats but the last
        from -1 (the bias comes with the last beat, whose sum goes to the pending register)."""
        lo, hi = self.params.potential_range
        blo, bhi = self.params.bias_range
        return signed_bits(lo - blo - 1, hi - bhi)

    @property
    def record_delay(self) -> int:
        """Edges from a ``last`` beat's handshake to the write of its threshold record, which
        must wait until X has loaded the neuron before: 0 in serial mode with T >= 3 (straight
        from the input), 1 when T = 2 (serial), else 2 (packed, T = 1: any beat may be a last
        one, even the one right after a last beat)."""
        if self.input_mode == "serial" and self.timesteps >= 2:
            return 0 if self.timesteps >= 3 else 1
        return 2

    @property
    def load_bits(self) -> int:
        """Signed width of the pending register, loaded into the decode stage: v - 1 (hidden)
        or v (readout)."""
        lo, hi = self.params.potential_range
        return signed_bits(lo - 1, hi)

    @property
    def decode_bits(self) -> int:
        """Width W of the decode register X: it holds v (readout, signed) or the remainder
        (hidden, unsigned), which needs threshold_bits + 1 bits above its k*(T-1) low bits."""
        return max(self.widths.potential,
                   self.threshold_bits + 1 + self.tau_shift * (self.timesteps - 1),
                   self.tau_shift + 1)

    @property
    def output_depth(self) -> int:
        """Finished results the output stage holds: 3 when T = 1, 2 when T = 2, else 1, and one
        more in packed mode or when T = 1 (:attr:`record_delay` 2): ``i.ready``, a function of
        registers only, then predicts loads two edges ahead, assuming no pop, and still
        sustains one beat per cycle."""
        return {1: 3, 2: 2}.get(self.timesteps, 1) + (self.record_delay == 2)

    @property
    def latency(self) -> int:
        """Cycles from the handshake of a neuron's ``last`` beat to its ``o.valid`` (decode stage
        and output free): T + 4, both input modes (stage 1, the bias stage, integration, the
        load, T - 1 steps and the last step's write)."""
        return self.timesteps + 4

    def elaborate(self, platform):
        m = Module()
        T, k = self.timesteps, self.tau_shift
        widths = self.widths
        serial = self.input_mode == "serial"
        pay = self.i.payload
        # i.ready is the register ready_q, computed a cycle ahead from the next values of the
        # registers it depends on (see the end), so that the beat flag, which zeroes every
        # stage-1 register, is a single gate after flip-flops
        ready_q = Signal(init=1)
        beat = Signal(attrs={"keep": 1})
        m.d.comb += [self.i.ready.eq(ready_q), beat.eq(self.i.valid & ready_q)]

        W = self.decode_bits
        rot = (k * T) % W               # a readout neuron's v ends rotated left by k*T bits

        def connect(held):
            return [self.o.payload.spikes.eq(Cat(held[k * j] for j in range(T))),
                    self.o.payload.potential.eq(held.rotate_right(rot)[:widths.potential])]
        out = add_output_stage(m, self.o, self.output_depth, width=W, connect=connect)

        # --- stage 1: the beat, registered ----------------------------------------------------
        # Every stage-1 operand is zero without a beat (a synchronous reset, no gate): the adds
        # behind them run every cycle and need no valid flag.
        lo_bits = k * (T - 1)           # X[:lo_bits] never reaches the comparator
        a_last = Signal()
        # the last beat's bias, zero on other beats, and its carry in (readout: v, hidden:
        # v - 1): a_last & the readout flag of stage 1 (the threshold record's flag, written by
        # the same edge, or its stage-1 copy; see the end), no register of its own
        a_bias = Signal(signed(self.bias_bits), reset_less=True)
        a_carry = Signal()
        taken_last = Signal()
        # from the flip-flop and the inputs, not from beat: one gate in front of the resets
        m.d.comb += taken_last.eq(self.i.valid & ready_q & pay.last)
        m.d.sync += [a_last.eq(taken_last), a_bias.eq(Mux(taken_last, pay.bias, 0))]
        # the addend: serial beat t of a group weighs tau**(T-1-t), a shift chosen here, before
        # the register, so that no multiplexer sits in front of an adder
        a_add = Signal(signed(self.addend_bits), reset_less=True)
        t_in = Signal(range(max(T, 2)))     # serial: the beat's index in its group
        if serial:
            with m.If(beat):
                m.d.sync += t_in.eq(Mux(t_in == T - 1, 0, t_in + 1))
                with m.Switch(t_in):
                    for t in range(T - 1):
                        with m.Case(t):
                            m.d.sync += a_add.eq(pay.current << (k * (T - 1 - t)))
                    with m.Default():   # t = T - 1 (t_in never exceeds it)
                        m.d.sync += a_add.eq(pay.current)
            with m.Else():
                m.d.sync += a_add.eq(0)
        else:
            m.d.sync += a_add.eq(Mux(beat, pay.current, 0))

        # --- stage 2: the bias folded into the addend -----------------------------------------
        # two operands and the carry in, straight from registers into one carry chain, so that
        # the integration loop behind it adds two operands only
        b_add = Signal(signed(self.addend_bits_biased), reset_less=True)
        b_last = Signal()
        m.d.sync += [b_add.eq(a_add + a_bias + a_carry), b_last.eq(a_last)]

        # --- stage 3: integration -------------------------------------------------------------
        # acc sums the beats from -1; the last beat's sum (v - 1 hidden, v readout, the bias
        # included by stage 2) goes to pend instead, and acc restarts at -1 by a synchronous
        # set. So the loop is acc -> carry chain -> acc with no LUT in it (the set and the
        # write enable of pend are the register b_last), and pend holds the neuron until the
        # decode register X loads it while acc already sums the next one.
        acc = Signal(signed(self.accumulator_bits), init=-1, reset_less=True)
        pend = Signal(signed(self.load_bits), reset_less=True)
        total = Signal(signed(self.load_bits))
        m.d.comb += total.eq(acc + b_add)
        with m.If(b_last):
            m.d.sync += [acc.eq(-1), pend.eq(total)]
        with m.Else():
            m.d.sync += acc.eq(total)

        # the last beat's threshold and readout flag, read when the neuron loads into X
        threshold = Signal(self.threshold_bits, reset_less=True)
        readout = Signal(reset_less=True)

        # --- control of the decode stage -----------------------------------------------------
        d_active = Signal()
        d_step = Signal(range(max(T, 2)))   # 0 while idle

        # the step flags, decoded from d_step (flip-flops are the scarcer resource here)
        def final_of(active, step):     # step T: the result goes out
            return (step == T - 1) if T >= 2 else active

        def penult_of(active, step):    # step T - 1 (never when T = 1)
            return C(0, 1) if T == 1 else (step == T - 2) if T >= 3 else active & (step == 0)

        d_final = Signal()
        d_penult = Signal()
        m.d.comb += [d_final.eq(final_of(d_active, d_step)),
                     d_penult.eq(penult_of(d_active, d_step))]
        pending = Signal()              # pend holds a finished neuron that X has not loaded
        # the output stage's registered free flag, not o.ready, lets the last step finish: the
        # decode control depends on registers only
        wrote = Signal()                # the last step writes the output stage at this edge
        advance = Signal()
        # X loads pend at this edge: decided a cycle ahead, so that the flag is a register (it
        # enters the compare chain)
        load = Signal()
        m.d.comb += [
            wrote.eq(d_final & out.free),
            advance.eq(d_active & (~d_final | out.free)),
        ]
        with m.If(advance):
            m.d.sync += d_step.eq(d_step + 1)
            with m.If(d_final):
                m.d.sync += [d_active.eq(0), d_step.eq(0)]
        with m.If(load):
            m.d.sync += [d_active.eq(1), d_step.eq(0)]

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
            kept.eq(Mux(load, pend[:W],
                        Cat(Mux(d_readout, x[W - k:], C(0, k)), x[:W - k]))),
            spike_kept.eq(Mux(load, pend[0], Mux(d_readout, x[W - k], d_sat))),
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
                         d_nofire.eq(readout | pend[-1])]

        # --- the next load and i.ready -------------------------------------------------------
        # A state of the control registers (no pop from the output stage assumed) and its
        # successor, to predict loads from registers only.
        def x_free(st):
            """X can load at the edge after next (st: the registers now)."""
            again = Mux(st.wrote, st.free_after_write, st.free) if T == 1 else C(0, 1)
            return Mux(st.load, again,
                       ~st.d_active | st.wrote | (~st.d_final & st.d_penult & st.free))

        def pending_next(st):
            return st.b_last | (st.pending & ~st.load)

        def successor(st, a_last_in=C(0, 1), pop=C(0, 1)):
            """The registers after the next edge; by default with no beat taken and nothing
            popped (a_last_in: a last beat is taken; pop: the output stage pops), else the
            true next values (the output stage's flags as :func:`add_output_stage` updates
            them)."""
            adv = st.d_active & (~st.d_final | st.free)
            shifted = [Mux(pop, st.valid[i + 1] if i + 1 < len(st.valid) else 0, v)
                       for i, v in enumerate(st.valid)]
            valid = [s | (st.wrote & (shifted[i - 1] if i else 1))
                     for i, s in enumerate(shifted)]
            nxt = SimpleNamespace(
                a_last=a_last_in, b_last=st.a_last, pending=pending_next(st),
                load=pending_next(st) & x_free(st),
                d_active=st.load | Mux(adv, ~st.d_final, st.d_active),
                d_step=Mux(st.load | (adv & st.d_final), 0,
                           Mux(adv, st.d_step + 1, st.d_step))[:len(d_step)],
                valid=valid, free=~valid[-1],
                free_after_write=~valid[-2] if len(valid) > 1 else C(0, 1))
            nxt.d_final = final_of(nxt.d_active, nxt.d_step)
            nxt.d_penult = penult_of(nxt.d_active, nxt.d_step)
            nxt.wrote = nxt.d_final & nxt.free
            return nxt

        now = SimpleNamespace(a_last=a_last, b_last=b_last, pending=pending, load=load,
                              d_active=d_active, d_final=d_final, d_penult=d_penult,
                              d_step=d_step, wrote=wrote, valid=out.valid, free=out.free,
                              free_after_write=out.free_after_write)
        m.d.sync += [pending.eq(pending_next(now)), load.eq(pending_next(now) & x_free(now))]

        # A last beat taken now writes pend two edges later and the threshold record
        # record_delay edges later; both must by then be free, i.e. the newest neuron taken
        # so far loaded into X. Only a beat that may be a last one waits for that.
        def loaded_by(st, j):
            """The newest neuron is loaded into X by edge j (0: the next edge)."""
            if j == 0:
                return ~(st.a_last | st.b_last | (st.pending & ~st.load))
            if j == 1:
                return ~(st.a_last | (pending_next(st) & ~x_free(st)))
            return loaded_by(successor(st), j - 1)

        j = self.record_delay

        # i.ready as a function of the registers is ~may_be_last | loaded_by(now, j), with
        # may_be_last = (t_in == T - 1) in serial mode with T >= 2, else 1; the register ready_q
        # holds it, computed from the registers' next values (the beat taken now, the pop of
        # the output stage): the same value one cycle earlier, so the same handshakes. Its
        # initial value is that of the reset state, 1. It may depend on i.valid and o.ready:
        # a register, i.ready does not. The handshake enters only the last gate: both
        # outcomes are prepared from registers (and o.ready).
        pop = self.o.valid & self.o.ready
        ready_d = Signal()
        if serial and T >= 2:
            # a last beat is beat T - 1 of its group, so t_in restarts at 0 and i.ready is 1
            # whatever the new a_last: the next values assume a_last = 0
            loaded = Signal(attrs={"keep": 1})
            r_beat = Signal(attrs={"keep": 1})
            r_idle = Signal(attrs={"keep": 1})
            m.d.comb += [loaded.eq(loaded_by(successor(now, pop=pop), j)),
                         r_beat.eq((t_in != T - 2) | loaded),   # t_in + 1 != T - 1
                         r_idle.eq((t_in != T - 1) | loaded),
                         ready_d.eq(Mux(beat, r_beat, r_idle))]
        else:
            r_last = Signal(attrs={"keep": 1})
            r_other = Signal(attrs={"keep": 1})
            m.d.comb += [r_last.eq(loaded_by(successor(now, a_last_in=C(1, 1), pop=pop), j)),
                         r_other.eq(loaded_by(successor(now, pop=pop), j)),
                         ready_d.eq(Mux(taken_last, r_last, r_other))]
        m.d.sync += ready_q.eq(ready_d)

        # the last beat's threshold and readout flag, kept until the neuron loads into X
        if j == 0:
            # straight from the input, written by a taken last beat (i.ready is low for it
            # while the record still belongs to a neuron that X has not loaded)
            with m.If(taken_last):
                m.d.sync += [threshold.eq(pay.threshold), readout.eq(pay.readout)]
            a_readout = readout     # written with a_last; the next last beat is >= 3 beats later
        else:
            # neurons may come closer than the load: the fields follow the beat for j stages
            thr, ro, last = pay.threshold, pay.readout, None
            for stage, flag in list(zip("ab", (a_last, b_last)))[:j]:
                t_s = Signal(self.threshold_bits, name=f"{stage}_threshold", reset_less=True)
                r_s = Signal(name=f"{stage}_readout", reset_less=True)
                m.d.sync += [t_s.eq(thr), r_s.eq(ro)]
                thr, ro, last = t_s, r_s, flag
                if stage == "a":
                    a_readout = r_s
            with m.If(last):
                m.d.sync += [threshold.eq(thr), readout.eq(ro)]
        # stage 2's carry in; fault: decode v instead of v - 1, i.e. fire on r >= level
        # instead of r > level
        m.d.comb += a_carry.eq(a_last & (1 if self._fault == "compare_ge" else a_readout))
        return m

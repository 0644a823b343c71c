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
    unit's ``decode_bits``. It exists so that a test can hold the datapath (widths, clamping,
    saturation, the shifted comparison) against ``golden.decode_serial`` exhaustively, far
    faster than a simulation."""
    T, k, W = timesteps, tau_shift, width
    lo = k * (T - 1)
    h = W - lo
    if W <= k or h < 2:
        raise ValueError(f"width {W} is too narrow for T = {T}, k = {k}")
    mask = (1 << W) - 1
    if readout:
        x = v & mask
    else:
        if not v - 1 < 1 << W:
            raise ValueError(f"v = {v} does not fit the decode register ({W} bits)")
        x = 0 if v - 1 < 0 else v - 1
    held = 0
    for _ in range(T):
        hi = x >> lo
        diff = hi - theta
        fire = not readout and diff >= 0
        x_sub = (x & ((1 << lo) - 1)) | ((diff if fire else hi) << lo)
        overflow = not readout and (x_sub >> (W - k)) != 0
        bottom = (x >> (W - k)) if readout else int(fire)
        x_shift = ((x_sub << k) & mask) | bottom
        held = (x_shift & ((1 << k) - 1)) | ((x << k) & mask)
        x = x_shift | ((((1 << h) - 1) << lo) if overflow else 0)
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

    **Integration stage.** Serial mode: a neuron is G >= 1 groups of T beats; beat t of a group
    carries the row tile's step current I_(g,t). ONE accumulator sums every beat at its weight,
    ``acc += I << k*(T-t)`` (a T-way shift multiplexer on the current), so that after the last
    beat acc + I = v - bias - 1: acc is set to -1 (all ones, the flip-flops' synchronous set) by
    the ``last`` beat and by reset. The ``last`` beat loads ``acc + I + bias + readout`` into the
    decode stage: v - 1 for a hidden neuron, v for a readout neuron (``readout`` is the adder's
    carry in). Packed mode: each beat carries a tile's packed partial potential; the accumulator
    sums them from -1, adds bias + readout on the ``last`` beat and holds the value until the
    decode stage takes it.

    **Decode stage** (no membrane register, no multiplier, no level register): one W-bit
    register X (:attr:`decode_bits`) and the threshold theta. A hidden neuron loads X = v - 1,
    or 0 when v - 1 < 0 (v <= 0 decodes to 0; the flip-flops' synchronous reset). Step t
    compares the bits of X above its k*(T-1) low bits with theta, ``fire = X_hi >= theta``
    (X holds r'_(t-1) * tau**(t-1) with r' = r - 1, so this is r_(t-1) > theta*tau**(T-t),
    strictly greater), subtracts theta from X_hi when it fires, and shifts X left by k with the
    spike entering at bit 0 (the bits the shift frees are exactly those below the remainder's
    k*(t-1) zero bits, so spike s_t ends at bit k*(T-t)). X_hi >= 2*theta means a remainder
    above the sum of all remaining levels (it is below 2*theta*tau**(T-1-t) for every tau >= 2),
    so every remaining step fires. X_hi has threshold_bits + 1 bits, so a bit shifted out of
    the top means X_hi > 2*theta: X_hi is then set to all ones (>= 2*theta + 1), which fires in
    every remaining step, as the true remainder would. ``decode_model`` mirrors this datapath
    and the tests hold it against ``golden.decode_serial``. A readout neuron never fires: X
    rotates left by k per step, so v survives rotated by k*T (undone by wiring at the output).

    **Output register** (one, shared): after T steps X goes to the output register; ``spikes``
    bit j is its bit k*j, ``potential`` is it rotated right by k*T. So ``spikes`` is the spike
    word of a hidden neuron and ``potential`` the global potential v of a readout neuron; the
    other field is unspecified (the neuron-unit contract).

    **Timing** (o.ready never low):

    * input: one beat per cycle without bubbles, across neuron boundaries too; a neuron of G
      groups occupies the input for G*T cycles (serial) or G cycles (packed, when G >= T);
    * throughput: one neuron per G*T cycles (serial), per max(G, T) cycles (packed);
    * latency: ``o.valid`` rises T + 1 cycles (serial; packed: T + 2) after the cycle whose
      edge accepts the ``last`` beat.

    ``i.ready`` is a function of registers only (it depends neither on ``i.valid`` nor on
    ``o.ready``): it falls only for a beat that may be a neuron's last while the decode stage
    cannot be sure to take it. ``o.valid`` holds with a stable payload until ``o.ready``.

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
    def accumulator_bits(self) -> int:
        """Signed width of the integration accumulator: v - bias - 1 (serial), v - 1 + readout
        (packed)."""
        lo, hi = self.params.potential_range
        if self.input_mode == "serial":
            blo, bhi = self.params.bias_range
            return signed_bits(lo - blo - 1, hi - bhi)
        return signed_bits(lo - 1, hi)

    @property
    def load_bits(self) -> int:
        """Signed width of the value loaded into the decode stage: v - 1 (hidden) or v
        (readout)."""
        lo, hi = self.params.potential_range
        return signed_bits(lo - 1, hi)

    @property
    def decode_bits(self) -> int:
        """Width W of the decode register X: it holds v (readout, signed) or the remainder
        (hidden, unsigned), which needs threshold_bits + 1 bits above its k*(T-1) low bits."""
        return max(self.widths.potential,
                   self.threshold_bits + 1 + self.tau_shift * (self.timesteps - 1),
                   self.tau_shift + 1)

    def elaborate(self, platform):
        m = Module()
        T, k = self.timesteps, self.tau_shift
        widths = self.widths
        pay = self.i.payload
        beat = Signal()
        m.d.comb += beat.eq(self.i.valid & self.i.ready)

        W = self.decode_bits
        rot = (k * T) % W               # a readout neuron's v ends rotated left by k*T bits

        def connect(held):
            return [self.o.payload.spikes.eq(Cat(held[k * j] for j in range(T))),
                    self.o.payload.potential.eq(held.rotate_right(rot)[:widths.potential])]
        out = add_output_stage(m, self.o, self.output_depth, width=W, connect=connect)

        # --- decode stage ---------------------------------------------------------------------
        lo_bits = k * (T - 1)           # X[:lo_bits] never reaches the comparator
        h = W - lo_bits                 # X[lo_bits:]: the compared part (>= threshold_bits + 1)
        d_active = Signal()
        d_step = Signal(range(max(T, 2)))
        d_final = Signal()
        # data registers need no reset: they are loaded with every neuron
        d_readout = Signal(reset_less=True)
        theta = Signal(self.threshold_bits, reset_less=True)
        x = Signal(W, reset_less=True)
        diff = Signal(signed(h + 1))
        fire = Signal()
        x_sub = Signal(W)
        overflow = Signal()
        x_shift = Signal(W)
        x_next = Signal(W)
        m.d.comb += [
            d_final.eq(d_active & (d_step == T - 1)),
            diff.eq(x[lo_bits:] - theta),
            fire.eq(~d_readout & ~diff[h]),
            x_sub.eq(Cat(x[:lo_bits], Mux(fire, diff[:h], x[lo_bits:]))),
            # bits shifted out: the true remainder is beyond all levels, saturate
            overflow.eq(~d_readout & x_sub[W - k:].any()),
            # hidden: shift left by k, the spike in at bit 0; readout (x_sub = x): rotate by k
            x_shift.eq(Cat(Mux(d_readout, x[W - k:], Cat(fire, C(0, k - 1))), x_sub[:W - k])),
            x_next.eq(Cat(x_shift[:lo_bits], x_shift[lo_bits:] | overflow.replicate(h))),
        ]

        d_free_reg = Signal()   # the stage is sure to be able to load a neuron at this edge,
        m.d.comb += d_free_reg.eq(~d_active | (d_final & out.free))  # whatever o.ready is
        step = Signal()
        m.d.comb += step.eq(d_active & (~d_final | out.can_write))
        with m.If(step):
            m.d.sync += d_step.eq(d_step + 1)
            with m.If(d_final):
                m.d.sync += [d_active.eq(0), d_step.eq(0)]
                # x, not x_sub: the last subtraction only changes bits that the shift moves
                # beyond the spike positions (and a readout neuron never subtracts)
                m.d.comb += [out.w_en.eq(1), out.w_data.eq(Cat(x_shift[:k], x[:W - k]))]

        load = Signal()
        load_x = Signal(signed(self.load_bits))     # v - 1 (hidden) or v (readout)
        load_threshold = Signal(self.threshold_bits)
        load_readout = Signal()
        with m.If(load):
            m.d.sync += [d_active.eq(1), d_step.eq(0), d_readout.eq(load_readout),
                         theta.eq(load_threshold)]
        # X: one clear condition for the whole register (a hidden v - 1 < 0 decodes to 0), so
        # that it maps onto the flip-flops' synchronous reset pins
        with m.If(load & ~load_readout & load_x[-1]):
            m.d.sync += x.eq(0)
        with m.Elif(load):
            m.d.sync += x.eq(load_x[:W])
        with m.Elif(step):
            m.d.sync += x.eq(x_next)
        # fault: decode v instead of v - 1, i.e. fire on r >= level instead of r > level
        carry = C(1, 1) if self._fault == "compare_ge" else pay.readout

        # --- integration stage ----------------------------------------------------------------
        if self.input_mode == "serial":
            acc = Signal(signed(self.accumulator_bits), init=-1, reset_less=True)
            t_in = Signal(range(max(T, 2)))
            addend = Signal(signed(widths.current + lo_bits))
            total = Signal(signed(W))
            group_end = Signal()
            with m.Switch(t_in):        # beat t of a group: weight tau**(T-1-t)
                for t in range(T - 1):
                    with m.Case(t):
                        m.d.comb += addend.eq(pay.current << (k * (T - 1 - t)))
                with m.Default():       # t = T - 1 (t_in never exceeds it)
                    m.d.comb += addend.eq(pay.current)
            m.d.comb += [
                group_end.eq(t_in == T - 1),
                total.eq(acc + addend),
                self.i.ready.eq(~group_end | d_free_reg),
                load.eq(beat & pay.last),
                load_x.eq(total + pay.bias + carry),
                load_threshold.eq(pay.threshold),
                load_readout.eq(pay.readout),
            ]
            # one set condition (reset or the neuron's last beat) for the whole register: it maps
            # onto the flip-flops' synchronous set pins, no logic per bit
            with m.If(ResetSignal() | (beat & pay.last)):
                m.d.sync += acc.eq(-1)
            with m.Elif(beat):
                m.d.sync += acc.eq(total)
            with m.If(beat):
                with m.If(group_end):
                    m.d.sync += t_in.eq(0)
                with m.Else():
                    m.d.sync += t_in.eq(t_in + 1)
        else:
            acc = Signal(signed(self.accumulator_bits))
            first = Signal(init=1)
            pending = Signal()
            p_threshold = Signal(self.threshold_bits)
            p_readout = Signal()
            total = Signal(signed(W))
            d_free = Signal()   # the stage can load at this edge (may depend on o.ready)
            m.d.comb += [
                d_free.eq(~d_active | (d_final & out.can_write)),
                total.eq(Mux(first, -1, acc) + pay.current),
                self.i.ready.eq(~pending | d_free_reg),
                load.eq(pending & d_free),
                load_x.eq(acc),
                load_threshold.eq(p_threshold),
                load_readout.eq(p_readout),
            ]
            with m.If(load):
                m.d.sync += pending.eq(0)
            with m.If(beat):
                with m.If(pay.last):
                    m.d.sync += [acc.eq(total + pay.bias + carry), first.eq(1), pending.eq(1),
                                 p_threshold.eq(pay.threshold), p_readout.eq(pay.readout)]
                with m.Else():
                    m.d.sync += [acc.eq(total), first.eq(0)]
        return m

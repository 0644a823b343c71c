"""The LIF neuron unit, the baseline the SpikePack paper compares against (SPEC section 3).

See :class:`LIFNeuron`.
"""

from __future__ import annotations

from amaranth import C, Cat, Module, Mux, Signal, signed
from amaranth.lib import memory

from spikepack.sim.golden import signed_bits

from .neuron_common import NeuronBase, add_output_stage

__all__ = ["LIFNeuron"]

_FAULTS = (None, "compare_ge")


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
        (wl, wh), (bl, bh) = self.params.weight_range, self.params.bias_range
        c_lo, c_hi = min(self.fan_in * wl + bl, 0), max(self.fan_in * wh + bh, 0)
        t_max = self.params.threshold_max
        return signed_bits(-2 * c_hi, t_max - min(2 * c_lo - 1, c_lo - t_max))

    @staticmethod
    def latency_of(timesteps: int) -> int:
        """Cycles from the handshake of a neuron's ``last`` beat to its ``o.valid`` (output
        free): T + 3."""
        return timesteps + 3

    def elaborate(self, platform):
        m = Module()
        T, k = self.timesteps, self.tau_shift
        tb = self.threshold_bits
        pay = self.i.payload
        beat = Signal()
        m.d.comb += beat.eq(self.i.valid & self.i.ready)

        out = add_output_stage(m, self.o, self.output_depth)

        # depth >= 2: a one-entry memory would have a zero-width address (Verilog [-1:0])
        B = self.buffer_bits
        m.submodules.buffer = buffer = memory.Memory(shape=signed(B), depth=max(T, 2), init=[])
        wr = buffer.write_port()
        rd_in = buffer.read_port(domain="comb")
        rd_dyn = buffer.read_port(domain="comb")

        # --- dynamics control: R (read), D, U advance together ---------------------------------
        u_fin = Signal()                # U holds a neuron's last step
        adv = Signal()                  # R, D and U advance at this edge
        m.d.comb += adv.eq(~u_fin | out.free)
        r_active = Signal()
        r_step = Signal(range(max(T, 2)))
        r_first = Signal()              # R is at step 0
        r_final = Signal()              # R is at step T - 1
        t_in = Signal(range(max(T, 2)))     # the step of the next beat
        # i.ready lets a beat of step t in only once R has read entry t of an earlier neuron
        # (the beat's stage 2 writes it at the next edge), so t_in <= r_step while R is active,
        # and a last beat (t_in = T - 1) goes in only when R is free: R starts the neuron at
        # once. lag: R is active and t_in = r_step (the next beat waits for R to advance)
        lag = Signal()
        near = Signal()                 # t_in + 1 = r_step
        start = Signal()
        m.d.comb += [
            self.i.ready.eq(~lag | adv),
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

        # the record of the last beat's threshold and readout flag, read when R starts the
        # neuron (T = 1: at that edge only; else also at D's step 0): written by any last beat on
        # offer, taken or not, unless it still belongs to a neuron (none is taken then: a last
        # beat needs R at step T - 1 or free)
        rec_theta = Signal(tb, reset_less=True)
        rec_readout = Signal(reset_less=True)
        d_first = Signal()              # D holds step 0
        hold = (r_first & ~adv) if T == 1 else (r_first | (d_first & ~adv))
        with m.If(self.i.valid & pay.last & ~hold):
            m.d.sync += [rec_theta.eq(pay.threshold), rec_readout.eq(pay.readout)]

        # --- integration: stage 1 registers the beat and the old entry, stage 2 writes --------
        first_group = Signal(init=1)
        with m.If(beat):
            with m.If(t_in == T - 1):
                m.d.sync += [t_in.eq(0), first_group.eq(pay.last)]
            with m.Else():
                m.d.sync += t_in.eq(t_in + 1)
        s1_valid = Signal()
        s1_last = Signal()
        # data registers: meaningless without s1_valid, so they load every cycle
        s1_addr = Signal.like(t_in, reset_less=True)
        s1_cur = Signal(signed(self.widths.current), reset_less=True)
        s1_old = Signal(signed(B), reset_less=True)
        wr_sum = Signal(signed(B))
        m.d.comb += [
            wr_sum.eq(s1_old + s1_cur),
            wr.addr.eq(s1_addr), wr.data.eq(wr_sum), wr.en.eq(s1_valid),
            rd_in.addr.eq(t_in),
        ]
        # T = 1: stage 2 writes the entry the beat reads; take the sum it writes
        old = Mux(s1_valid, wr_sum, rd_in.data) if T == 1 else rd_in.data
        # the first group starts from the bias (a readout neuron: in entry T-1 only)
        base = Mux(pay.readout & (t_in != T - 1), 0, pay.bias)
        m.d.sync += [s1_valid.eq(beat), s1_last.eq(start), s1_addr.eq(t_in),
                     s1_cur.eq(pay.current), s1_old.eq(Mux(first_group, base, old))]

        # --- R: read C_t ----------------------------------------------------------------------
        d_raw = Signal(signed(B), reset_less=True)
        m.d.comb += rd_dyn.addr.eq(r_step)
        # T = 1: R's first read meets stage 2 writing the same entry (the last beat's sum)
        c_in = Mux(s1_valid & s1_last, wr_sum, rd_dyn.data) if T == 1 else rd_dyn.data
        with m.If(adv):
            m.d.sync += d_raw.eq(c_in)

        # --- D: D_t = C_t + Z (hidden) or (D << k) + C_t (readout) ----------------------------
        P = self.widths.potential
        N = self.membrane_bits
        DW = max(P, N)
        d_final = Signal()              # D holds step T - 1
        d_minus = Signal()              # D holds step 0 of a hidden neuron: Z = -1
        d_readout = Signal(reset_less=True)
        horner = Signal(reset_less=True)    # readout, step >= 1: D = (D << k) + C_t
        d = Signal(signed(DW), reset_less=True)
        with m.If(adv):
            m.d.sync += [d_first.eq(r_first), d_final.eq(r_final),
                         d_minus.eq(r_first & ~rec_readout),
                         horner.eq(d_readout & r_active & ~r_first)]
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

        # --- U: one LIF step, w = theta - v ---------------------------------------------------
        # The chain runs two bits beyond N: the true u_t fits in N bits, so bits N and N + 1 are
        # copies of its sign, each computed next to its own flip-flop: w[N] drives half of the
        # carry-save layer's LUTs (w[N - 1] the other half), bit N + 1 the output's last spike.
        # (w starts as the step-0 value: an ECP5 flip-flop's synchronous set or reset goes to its
        # initial value, or costs a LUT)
        NU = N + 2
        w = Signal(N + 1, init=-1, reset_less=True)
        neg_theta = Signal(signed(tb + 1), reset_less=True)    # -theta
        nc = Signal(init=1, reset_less=True)    # ~c
        with m.If(adv & d_first):
            m.d.sync += neg_theta.eq(-(rec_theta if T > 1 else z))
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
            m.d.sync += u_fin.eq(d_final)
            if T > 2:
                m.d.sync += word.eq(Cat(w[N - 1], word[:T - 3]))
            # a neuron starts: u = 0 with s = 1 and c = 0, so that step 0 computes
            # 0 + D_0 - theta = C_0 - theta - 1 (D_0 = C_0 - 1): v_(-1) = 0, s_(-1) = 0
            with m.If(d_first):
                m.d.sync += [w.eq(-1), nc.eq(1)]
            with m.Else():
                m.d.sync += [w.eq(w_next[:N + 1]), nc.eq(nc_next)]
            with m.If(u_fin):           # adv: the output register is free
                m.d.comb += [out.w_en.eq(1),
                             out.w_data.spikes.eq(Cat(fire, w[N - 1], word[:T - 2])[:T]),
                             out.w_data.potential.eq(d[:P])]
        return m

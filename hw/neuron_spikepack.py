"""The SpikePack neuron unit: integrate one neuron's global potential, decode it serially.

See :class:`SpikePackNeuron`.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal, signed

from spikepack.sim.golden import signed_bits

from .neuron_common import NeuronBase, add_output_stage

__all__ = ["SpikePackNeuron"]

_FAULTS = (None, "compare_ge")


class SpikePackNeuron(NeuronBase):
    """SpikePack neuron unit (SPEC section 2), a two-stage pipeline.

    Parameters (keyword-only): ``timesteps`` T (1..16), ``tau_shift`` k (1..3), ``weight_bits``,
    ``fan_in`` (largest N), ``rows`` (inputs per row tile, at most ``fan_in``), ``bias_bits``,
    ``threshold_bits``, ``input_mode`` "serial" | "packed". Ports ``i`` and ``o``: see
    :mod:`spikepack.hw.neuron_common`.

    **Integration stage.** Serial mode: a neuron is G >= 1 groups of T beats; beat t of a group
    carries the row tile's step current I_(g,t). A Horner register u restarts each group
    (``u = (u << k) + I``); at a group's last beat its sum is added to the group accumulator;
    at the neuron's ``last`` beat v = group sum + Horner sum + bias goes straight into the decode
    stage. Packed mode: each beat carries a tile's packed partial potential; an accumulator sums
    them, adds the bias on the ``last`` beat and holds v until the decode stage takes it.

    **Decode stage** (no membrane register, no multiplier): the remainder r' = v - 1 and the level
    register L = theta << k*(T-1) are loaded; each cycle ``d = r' - L`` decides the spike
    (``s = d >= 0``, i.e. r > theta*tau**(T-t), strictly greater), ``r' = d`` when it fires, and
    the level shifts right by k. After T cycles the spike word and v move to the output register.
    A readout neuron (``readout = 1``) is not decoded: spikes = 0, potential = v.

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
    def remainder_bits(self) -> int:
        """Signed width of the decode remainder r' = v - 1."""
        lo, hi = self.params.potential_range
        return signed_bits(lo - 1, hi - 1)

    @property
    def horner_bits(self) -> int:
        """Signed width of one group's Horner sum (serial mode)."""
        return signed_bits(*self.params.tile_potential_range)

    def elaborate(self, platform):
        m = Module()
        T, k = self.timesteps, self.tau_shift
        widths = self.widths
        pay = self.i.payload
        beat = Signal()
        m.d.comb += beat.eq(self.i.valid & self.i.ready)

        out = add_output_stage(m, self.o, self.output_depth)

        # --- decode stage ---------------------------------------------------------------------
        d_active = Signal()
        d_step = Signal(range(max(T, 2)))
        d_final = Signal()
        d_readout = Signal()
        level = Signal(widths.decode)
        remainder = Signal(signed(self.remainder_bits))
        word = Signal(T)
        v_hold = Signal(signed(widths.potential))
        diff = Signal(signed(max(self.remainder_bits, widths.decode + 1) + 1))
        fire = Signal()
        word_next = Signal(T)
        m.d.comb += [
            d_final.eq(d_active & (d_step == T - 1)),
            diff.eq(remainder - level),
            word_next.eq(Cat(fire, word[:T - 1]) if T > 1 else fire),
        ]
        if self._fault == "compare_ge":
            m.d.comb += fire.eq(~d_readout & (~diff[-1] | (diff == -1)))
        else:
            m.d.comb += fire.eq(~d_readout & ~diff[-1])

        d_free_reg = Signal()   # the stage is sure to be able to load a neuron at this edge,
        m.d.comb += d_free_reg.eq(~d_active | (d_final & out.free))  # whatever o.ready is
        with m.If(d_active & (~d_final | out.can_write)):
            m.d.sync += [level.eq(level >> k), word.eq(word_next), d_step.eq(d_step + 1)]
            with m.If(fire):
                m.d.sync += remainder.eq(diff)
            with m.If(d_final):
                m.d.sync += [d_active.eq(0), d_step.eq(0)]
                m.d.comb += [out.w_en.eq(1), out.w_data.spikes.eq(word_next),
                             out.w_data.potential.eq(v_hold)]

        load = Signal()
        load_v = Signal(signed(widths.potential))
        load_threshold = Signal(self.threshold_bits)
        load_readout = Signal()
        with m.If(load):
            m.d.sync += [
                d_active.eq(1), d_step.eq(0), word.eq(0), d_readout.eq(load_readout),
                v_hold.eq(load_v), remainder.eq(load_v - 1),
                level.eq(load_threshold << (k * (T - 1))),
            ]

        # --- integration stage ----------------------------------------------------------------
        if self.input_mode == "serial":
            t_in = Signal(range(max(T, 2)))
            first_group = Signal(init=1)
            horner = Signal(signed(self.horner_bits))
            group_sum = Signal(signed(widths.potential))
            horner_next = Signal(signed(self.horner_bits))
            sum_next = Signal(signed(widths.potential))
            group_end = Signal()
            m.d.comb += [
                group_end.eq(t_in == T - 1),
                horner_next.eq(Mux(t_in == 0, 0, horner << k) + pay.current),
                sum_next.eq(Mux(first_group, 0, group_sum) + horner_next),
                self.i.ready.eq(~group_end | d_free_reg),
                load.eq(beat & pay.last),
                load_v.eq(sum_next + pay.bias),
                load_threshold.eq(pay.threshold),
                load_readout.eq(pay.readout),
            ]
            with m.If(beat):
                m.d.sync += horner.eq(horner_next)
                with m.If(group_end):
                    m.d.sync += [t_in.eq(0), group_sum.eq(sum_next), first_group.eq(pay.last)]
                with m.Else():
                    m.d.sync += t_in.eq(t_in + 1)
        else:
            acc = Signal(signed(widths.potential))
            first = Signal(init=1)
            pending = Signal()
            p_threshold = Signal(self.threshold_bits)
            p_readout = Signal()
            total = Signal(signed(widths.potential))
            d_free = Signal()   # the stage can load at this edge (may depend on o.ready)
            m.d.comb += [
                d_free.eq(~d_active | (d_final & out.can_write)),
                total.eq(Mux(first, 0, acc) + pay.current),
                self.i.ready.eq(~pending | d_free_reg),
                load.eq(pending & d_free),
                load_v.eq(acc),
                load_threshold.eq(p_threshold),
                load_readout.eq(p_readout),
            ]
            with m.If(load):
                m.d.sync += pending.eq(0)
            with m.If(beat):
                with m.If(pay.last):
                    m.d.sync += [acc.eq(total + pay.bias), first.eq(1), pending.eq(1),
                                 p_threshold.eq(pay.threshold), p_readout.eq(pay.readout)]
                with m.Else():
                    m.d.sync += [acc.eq(total), first.eq(0)]
        return m

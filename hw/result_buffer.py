"""The layer engine's result buffer: the neuron units' results of each column tile, in one
LUT-RAM slot, sent on ``o`` one per cycle in index order (:class:`ResultBuffer`), with the
credits that tell the engine's controller a slot is free, and a conv layer's slot sequence
(first index, channel, pool_first, ends) from a generator that runs ahead (:class:`ConvSlots`).

The layouts shared with the rest of the engine are defined here once: ``output_layout`` (the
engine's ``o``, re-exported by :mod:`spikepack.hw.layer_engine`), ``bounds_layout`` (a layer's
loop bounds, derived by the engine's setup cycles) and ``counter_bits`` (the widths of the
engine's tile counters and neuron indices, from the configuration's limits).
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, ResetInserter, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from .stream import RunAheadFifo, SkidBuffer

__all__ = ["ResultBuffer", "ConvSlots", "output_layout", "bounds_layout", "slot_layout",
           "counter_bits", "result_bits"]


def output_layout(config: HardwareConfig) -> data.StructLayout:
    """The layer engine's ``o`` beat: index, channel, pool_first (conv only), spikes, potential,
    last."""
    return data.StructLayout({
        "index": max(16, (config.activation_depth * config.rows).bit_length()),
        "channel": max(1, (config.max_channels - 1).bit_length()),
        "pool_first": 1,
        "spikes": unsigned(config.timesteps),
        "potential": signed(config.widths.potential),
        "last": 1,
    })


def counter_bits(config: HardwareConfig) -> tuple[int, int, int]:
    """(row tile, column tile, neuron index) counter widths: as wide as the configuration's
    limits need (fan_in <= max_fan_in or max_patch, neurons <= max_neurons or max_channels, a
    conv layer's indices <= max_map_words; the loader rejects larger layers)."""
    R, C, conv = config.rows, config.cols, config.conv
    out_max = max(config.max_neurons, config.max_channels if conv else 0)
    rt_bits = max(1, (-(-config.neuron_fan_in // R)).bit_length())
    ct_bits = max(1, (-(-out_max // C)).bit_length())
    idx_bits = max(1, (max(config.max_neurons, config.max_map_words if conv else 0)
                       + C + R).bit_length())
    return rt_bits, ct_bits, idx_bits


def result_bits(config: HardwareConfig) -> int:
    """Bits kept per neuron result: the spike word (hidden) or the potential (readout)."""
    return max(config.timesteps, config.widths.potential)


def bounds_layout(config: HardwareConfig, *, pos_bits: int = 1,
                  win_bits: int = 1) -> data.StructLayout:
    """A layer's bounds as the result buffer needs them, registered by the engine's setup:
    ``ct_max`` = CT - 1 (and == 0, == 1 flags), ``last_sel`` = (M - 1) mod C (and == 0);
    conv configurations also the slot generator's (``cgr_out`` = CG_out*R, the pool window
    less one and its == 1, == 2 flags, and the values its counters start from: positions and
    window positions after the first slot's, with their flags, and whether the first slot is
    the layer's last). ``pos_bits``/``win_bits``: the patch generator's ``positions`` and
    ``window`` widths."""
    _, ct_bits, idx_bits = counter_bits(config)
    fields = {"ct_max": ct_bits, "ct_max_zero": 1, "ct_max_one": 1,
              "last_sel": max(1, (max(2, config.cols) - 1).bit_length()), "last_sel_zero": 1}
    if config.conv:
        fields.update({"cgr_out": idx_bits, "window_m1": win_bits, "window_one": 1,
                       "window_two": 1, "pos_left": pos_bits, "pos_zero": 1, "pos_one": 1,
                       "win_left": win_bits, "win_zero": 1, "win_one": 1, "next_end": 1})
    return data.StructLayout(fields)


def slot_layout(config: HardwareConfig) -> data.StructLayout:
    """A conv slot: its first ``base`` index and channel, ``first`` (a pool window's first
    position), ``end`` (the layer's last slot), ``zero`` (its position's last column tile)."""
    return data.StructLayout({"base": counter_bits(config)[2],
                              "chan": output_layout(config)["channel"].shape,
                              "first": 1, "end": 1, "zero": 1})


class ConvSlots(wiring.Component):
    """A conv layer's slot sequence, generated ahead of the result buffer through a 4-word
    :class:`spikepack.hw.stream.RunAheadFifo`: per computed position its CT column tiles; a
    slot's first index is the storage index of the pooled word of channel ct*C (the pooled
    position's base + ct*C), ``first`` marks a pool window's first position, ``end`` the
    layer's last slot (last position, last column tile). Each down-counter keeps its == 0 and
    == 1 flags as registers, so no compare of a counter feeds another flag.

    Ports: ``start`` In(1) (the layer's ``bounds`` are valid: restart), ``bounds``
    In(``bounds_layout``), ``o`` Out(stream of ``slot_layout``): ``o.ready`` pops the head slot
    and must only be raised while ``o.valid`` (the FIFO's read is unguarded).

    Latency: the first slot is on ``o`` 3 cycles after ``start`` (the generator's enable is a
    register, the FIFO's latency 1). Throughput: one slot a cycle; the generator runs up to 3
    slots ahead of the pops (it steps while the FIFO held at most 2 a cycle before).
    """

    def __init__(self, *, config: HardwareConfig, pos_bits: int, win_bits: int):
        self._config = config
        self._bounds = bounds_layout(config, pos_bits=pos_bits, win_bits=win_bits)
        self._pos_bits, self._win_bits = pos_bits, win_bits
        super().__init__({"start": In(1), "bounds": In(self._bounds),
                          "o": Out(stream.Signature(slot_layout(config)))})

    def elaborate(self, platform):
        m = Module()
        C = self._config.cols
        b = self.bounds
        slot = slot_layout(self._config)
        idx_bits = len(self.o.payload.base)
        next_base = Signal(idx_bits)
        next_chan = Signal(len(self.o.payload.chan))
        next_first = Signal()
        next_end = Signal()                 # the next slot is the layer's last
        next_left = Signal(len(b.ct_max))   # column tiles after the next slot's
        next_zero = Signal()                # the next slot is its position's last column tile
        next_one = Signal()
        pos_base = Signal(idx_bits)         # storage index of the next slot's pooled position
        pos_next = Signal(idx_bits)         # pos_base + CG_out*R
        s_pos_left = Signal(self._pos_bits)     # positions after the next slot's
        s_pos_zero = Signal()
        s_pos_one = Signal()
        s_win_left = Signal(self._win_bits)     # positions of its window after it
        s_win_zero = Signal()
        s_win_one = Signal()

        fifo = ResetInserter(self.start)(RunAheadFifo(width=slot.size, depth=4, read_guard=False))
        m.submodules.fifo = fifo
        gen_on = Signal()
        gen_adv = Signal()                  # the generator steps: it held < 3 slots a cycle ago
        with m.If(self.start):
            m.d.sync += gen_on.eq(1)
        m.d.sync += gen_adv.eq((gen_on | self.start) & (self.start | fifo.room))
        m.d.comb += [
            fifo.w_en.eq(gen_adv),
            fifo.w_data.eq(Cat(next_base, next_chan, next_first, next_end, next_zero)),
            fifo.r_en.eq(self.o.ready),
            self.o.valid.eq(fifo.r_rdy), self.o.payload.eq(fifo.r_data),
        ]
        with m.If(gen_adv):
            with m.If(next_zero):
                # the slot after it starts the next position
                m.d.sync += [
                    next_left.eq(b.ct_max), next_zero.eq(b.ct_max_zero),
                    next_one.eq(b.ct_max_one), next_chan.eq(0),
                    s_pos_left.eq(s_pos_left - 1), s_pos_zero.eq(s_pos_one),
                    s_pos_one.eq(s_pos_left == 2),
                    next_end.eq(b.ct_max_zero & s_pos_one),
                ]
                with m.If(s_win_zero):
                    # ... and the next pool window: the next pooled word
                    m.d.sync += [
                        s_win_left.eq(b.window_m1), s_win_zero.eq(b.window_one),
                        s_win_one.eq(b.window_two),
                        next_first.eq(1), pos_base.eq(pos_next), next_base.eq(pos_next),
                        pos_next.eq(pos_next + b.cgr_out),
                    ]
                with m.Else():
                    m.d.sync += [
                        s_win_left.eq(s_win_left - 1), s_win_zero.eq(s_win_one),
                        s_win_one.eq(s_win_left == 2),
                        next_first.eq(0), next_base.eq(pos_base),
                    ]
            with m.Else():
                m.d.sync += [
                    next_left.eq(next_left - 1), next_zero.eq(next_one),
                    next_one.eq(next_left == 2),
                    next_end.eq(s_pos_zero & next_one),
                    next_base.eq(next_base + C), next_chan.eq(next_chan + C),
                ]
        with m.If(self.start):
            m.d.sync += [
                next_base.eq(0), next_left.eq(b.ct_max), next_zero.eq(b.ct_max_zero),
                next_one.eq(b.ct_max_one), next_chan.eq(0), next_first.eq(1),
                pos_base.eq(0), pos_next.eq(b.cgr_out),
                # (a dense layer: one position, no pooling)
                s_pos_left.eq(b.pos_left), s_pos_zero.eq(b.pos_zero), s_pos_one.eq(b.pos_one),
                s_win_left.eq(b.win_left), s_win_zero.eq(b.win_zero), s_win_one.eq(b.win_one),
                next_end.eq(b.next_end),
            ]
        return m


class ResultBuffer(wiring.Component):
    """The neuron units' results, a column tile at a time, to ``o`` one per cycle in index order.

    A column tile's C results arrive together on ``i`` (the units run in lock-step; hidden
    layers give the spike words, readout layers the potentials, ``result_bits`` each) and take
    one slot of a LUT-RAM of ``slots`` column tiles; ``i`` never waits (the engine reserves a
    slot with ``finish`` before it computes the tile). The slot being sent is copied into a
    shift register ``cur`` (no C-way multiplexer between the LUT-RAM and ``o``), the next slot
    copied in (a *refill*) as its last result leaves; the results leave through
    :class:`spikepack.hw.stream.SkidBuffer`, so ``o.ready`` reaches only that buffer's
    registers. Results of neurons beyond M (the last column tile's units after ``last_sel``)
    are dropped. Dense layers: ``index`` counts from 0; conv layers: the slots' first indices,
    channels, pool_first and the layer's end come from :class:`ConvSlots`.

    Credits: ``finish`` (one a cycle at most) reserves a slot, a refill frees one; ``room``
    (a flip-flop, ``room_next`` its next value) says fewer than ``slots - 2`` are reserved, the
    count being a cycle stale (two more may be reserved before ``room`` falls).

    Ports: ``start`` In(1) (setup: ``bounds`` valid, the slot sequence restarts), ``bounds``
    In(``bounds_layout``), ``i`` In(always-ready stream of C * ``result_bits``),
    ``finish`` In(1), ``room``/``room_next`` Out(1), ``o`` Out(stream of ``output_layout``).

    Latency: 3 cycles from a column tile on ``i`` to its first result on ``o`` (the slot
    write, ``cur``, the output register), when ``cur`` and the output are free. Throughput: one
    result a cycle on ``o`` (a slot's C_t results in C_t cycles, back to back across slots);
    one column tile a cycle on ``i``, ``slots - 2`` column tiles ahead of ``o`` at most.
    """

    def __init__(self, *, config: HardwareConfig, slots: int, pos_bits: int = 1,
                 win_bits: int = 1):
        if not isinstance(slots, int) or slots < 4 or slots & (slots - 1):
            raise ValueError(f"slots must be a power of two >= 4, not {slots!r}")
        self._config, self._slots = config, slots
        self._pos_bits, self._win_bits = pos_bits, win_bits
        super().__init__({
            "start": In(1),
            "bounds": In(bounds_layout(config, pos_bits=pos_bits, win_bits=win_bits)),
            "i": In(stream.Signature(unsigned(config.cols * result_bits(config)),
                                     always_ready=True)),
            "finish": In(1), "room": Out(1), "room_next": Out(1),
            "o": Out(stream.Signature(output_layout(config))),
        })

    @property
    def slots(self) -> int:
        return self._slots

    def elaborate(self, platform):
        m = Module()
        cfg, D, b = self._config, self._slots, self.bounds
        C, conv, rbits = cfg.cols, cfg.conv, result_bits(cfg)
        _, ct_bits, idx_bits = counter_bits(cfg)
        m.submodules.results = results = memory.Memory(shape=unsigned(C * rbits), depth=D,
                                                       init=[])
        wr, rd = results.write_port(), results.read_port(domain="comb")
        wr_ptr, rd_ptr = Signal(range(D)), Signal(range(D))
        write = self.i.valid
        m.d.comb += [wr.en.eq(write), wr.addr.eq(wr_ptr), wr.data.eq(self.i.payload),
                     rd.addr.eq(rd_ptr)]
        with m.If(write):
            m.d.sync += wr_ptr.eq(wr_ptr + 1)

        beat = {"index": idx_bits, "result": rbits, "last": 1}
        if conv:
            beat.update({"channel": len(self.o.payload.channel), "pool_first": 1})
        m.submodules.o_skid = skid = SkidBuffer(data.StructLayout(beat))
        m.d.comb += [
            self.o.valid.eq(skid.o.valid), skid.o.ready.eq(self.o.ready),
            self.o.payload.index.eq(skid.o.payload.index),
            self.o.payload.spikes.eq(skid.o.payload.result[:cfg.timesteps]),
            self.o.payload.potential.eq(skid.o.payload.result[:len(self.o.payload.potential)]),
            self.o.payload.last.eq(skid.o.payload.last),
        ]
        if conv:
            m.d.comb += [self.o.payload.channel.eq(skid.o.payload.channel),
                         self.o.payload.pool_first.eq(skid.o.payload.pool_first)]
        cur = Signal(C * rbits)
        cur_has = Signal()
        sel = Signal(range(max(2, C)))
        sel_left = Signal.like(sel)         # units of the slot after sel (to its last one)
        cur_last = Signal()                 # sel_left == 0, kept as a register
        out_zero = Signal()                 # the slot is the layer's last column tile
        take = Signal()
        avail = Signal()                    # a written slot waits (wr_ptr != rd_ptr)
        refill = Signal(attrs={"keep": 1})   # (kept: one LUT of four registers)
        # refill reads its own copies of cur_has and cur_last (each written from its own
        # feedback, so synthesis keeps both): from the originals, LUT mapping folds refill into
        # cur_ce and cur_load and puts two more gates before its fan-out
        cur_has_r = Signal()
        cur_last_r = Signal()
        m.d.comb += [take.eq(cur_has & skid.i.ready),
                     refill.eq(avail & (~cur_has_r | (skid.i.ready & cur_last_r)))]
        # the written slots not yet copied out, as a thermometer code (occ[i]: more than i), so
        # that avail = occ[0] is a register whose next value needs no pointer comparison; it
        # moves when a write or a refill comes alone (refill reaches its enable only), up on a
        # write
        occ = Signal(D + 1)
        with m.If(write ^ refill):
            m.d.sync += occ.eq(Mux(write, Cat(1, occ[:-1]), occ[1:]))
        m.d.comb += avail.eq(occ[0])
        # cur moves on take (shift) or refill (load): take | refill reduces to one gate of
        # three registers, written so, as the enable of its C * result_bits flip-flops
        # cur_load = ~cur_has | cur_last selects load or shift (a gate of two registers, so
        # that the output buffer's ready reaches cur and the result counters through their
        # enable only): under cur_ce it is a refill, or a take of the slot's last result that
        # finds no slot waiting, which leaves cur and the counters unused (cur_has falls) until
        # the refill that loads them all again
        cur_ce, cur_load = Signal(), Signal()
        refill_last = Signal()              # the value cur_last takes on a refill
        m.d.comb += [cur_ce.eq((cur_has & skid.i.ready) | (avail & ~cur_has)),
                     cur_load.eq(~cur_has | cur_last)]
        with m.If(cur_ce):
            m.d.sync += cur.eq(Mux(cur_load, rd.data, cur >> rbits))
        with m.If(take & cur_last):
            m.d.sync += cur_has.eq(0)
        with m.If(cur_has_r & skid.i.ready & cur_last_r):
            m.d.sync += cur_has_r.eq(0)
        with m.If(refill):
            m.d.sync += [cur_has.eq(1), cur_has_r.eq(1), rd_ptr.eq(rd_ptr + 1)]
        # the result counters move with cur, under cur_ce, loaded where cur_load says so (a
        # take alone otherwise): their enable is cur_ce's one gate of registers, not
        # take | refill, and their next values need no refill
        slot_zero = self._slot_sequence(m, cur_ce, cur_load, refill, sel, out_zero,
                                        skid.i.payload)
        m.d.comb += refill_last.eq(Mux(slot_zero, b.last_sel_zero, C == 1))
        with m.If(cur_ce):
            m.d.sync += [sel_left.eq(Mux(cur_load, Mux(slot_zero, b.last_sel, C - 1),
                                         sel_left - 1)),
                         cur_last.eq(Mux(cur_load, refill_last, sel_left == 1)),
                         cur_last_r.eq(Mux(~cur_has_r | cur_last_r, refill_last, sel_left == 1))]
        m.d.comb += [skid.i.valid.eq(cur_has), skid.i.payload.result.eq(cur[:rbits]),
                     skid.i.payload.last.eq(out_zero & cur_last)]

        # credits: slots reserved from a column tile's finishing planes to its last result
        reserved = Signal(range(D + 1))
        freed = Signal()                    # a slot was copied out last cycle
        m.d.sync += [freed.eq(refill), reserved.eq(reserved + self.finish - freed)]
        m.d.comb += self.room_next.eq(reserved < D - 2)   # one cycle stale: two more may come
        m.d.sync += self.room.eq(self.room_next)
        return m

    def _slot_sequence(self, m, cur_ce, cur_load, refill, sel, out_zero, beat):
        """The index (and conv: channel, pool_first) of the result being sent, and out_zero
        (the slot is the layer's last) at each refill; returns ``zero``, the next slot is its
        position's last column tile (it holds C_last results)."""
        cfg, b, C = self._config, self.bounds, self._config.cols
        _, ct_bits, idx_bits = counter_bits(cfg)
        if not cfg.conv:
            out_base = Signal(idx_bits)     # index of the slot's unit 0
            next_base = Signal(idx_bits)
            next_left = Signal(ct_bits)     # column tiles after the next slot's
            next_zero = Signal()
            with m.If(cur_ce):
                m.d.sync += sel.eq(Mux(cur_load, 0, sel + 1))
            with m.If(refill):
                m.d.sync += [
                    out_base.eq(next_base), out_zero.eq(next_zero),
                    next_base.eq(next_base + C), next_left.eq(next_left - 1),
                    next_zero.eq(next_left == 1),
                ]
            with m.If(self.start):
                m.d.sync += [next_base.eq(0), next_left.eq(b.ct_max), next_zero.eq(b.ct_max_zero)]
            m.d.comb += beat.index.eq(out_base | sel)
            return next_zero
        # conv: the slots' sequence runs ahead in a generator of its own; a refill pops it, so
        # its counters sit behind a flip-flop enable and not behind the output buffer's ready
        m.submodules.slots = slots = ConvSlots(config=cfg, pos_bits=self._pos_bits,
                                               win_bits=self._win_bits)
        nxt = slots.o.payload
        m.d.comb += [slots.start.eq(self.start), slots.bounds.eq(b), slots.o.ready.eq(refill)]
        cur_index = Signal(idx_bits)
        cur_chan = Signal(len(nxt.chan))
        cur_first = Signal()
        with m.If(cur_ce):
            m.d.sync += [cur_index.eq(Mux(cur_load, nxt.base, cur_index + 1)),
                         cur_chan.eq(Mux(cur_load, nxt.chan, cur_chan + 1))]
        with m.If(refill):
            m.d.sync += [cur_first.eq(nxt.first), out_zero.eq(nxt.end)]
        m.d.comb += [beat.index.eq(cur_index), beat.channel.eq(cur_chan),
                     beat.pool_first.eq(cur_first)]
        return nxt.zero

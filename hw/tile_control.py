"""The layer engine's tile controller (:class:`TileController`): the schedule of a layer's tiles,
period by period, as one decision a cycle (which plane, which weight word, which activation
entry) leaving through the command register (``command_layout``), and the one pause of the
engine: before a column tile's last row tile while the result buffer has no slot or, packed,
the neuron units' decode stages are still busy with the previous column tile."""

from __future__ import annotations

from types import SimpleNamespace

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from .array import load_schedule
from .layer_setup import LayerSignature
from .patch_sums import tile_layout
from .plane_feed import command_layout, hold_words
from .result_buffer import counter_bits

__all__ = ["TileController"]


class TileController(wiring.Component):
    """Runs a layer's Q*K tiles (K = G*CT, Q positions: 1 for a dense layer) through the load
    schedule (:func:`spikepack.hw.array.load_schedule`: period P, warm-up W, advance) and
    registers each cycle's decision on ``cmd``.

    Period pm (pm = 0, 1, ...) presents the B planes (packed: 1 beat) of tile pm - W at offsets
    0 .. B - 1, reads weight group q of tile pm - W + advance[q] at offset q (word
    weight_base + (tile within its position)*(R/g) + q) and the activation entry of tile
    pm - W + 1 at offset P - 1 (dense: entry rt; conv: the patch generator's next tile on
    ``tiles``, popped by the read; a padding tile is ``azero``, no read). Tiles run column tile
    by column tile, row tile by row tile, position by position. ``tag`` [1] marks the first
    beat of a row tile 0, [0] the last beat of row tile G - 1; with :func:`hold_words` a word
    read in one decision launches with the next (``launch``).

    The pause: a decision at offset 0 of a period whose plane tile is its column tile's last row
    tile (``finish``: it reserves a result slot) waits while ``room_next`` was low a cycle before
    or fewer than ``spacing`` cycles have passed since the previous ``finish``. ``go``, the
    activation read and ``at_finish`` are flip-flops computed from the next values of the
    registers they depend on (no decision compares tile numbers: per-period shift registers and
    down-counters).

    Ports: ``bounds`` In(:class:`~spikepack.hw.layer_setup.LayerSignature`: ``setup1``,
    ``setup2``, ``layer``; :class:`~spikepack.hw.layer_setup.LayerSetup`'s, the weight base
    taken at ``setup1``, the rest at ``setup2``), ``tiles`` (conv configurations) In(stream of
    :func:`~spikepack.hw.patch_sums.tile_layout`, always valid once ``setup2`` came),
    ``room_next`` In(1) (the result buffer's), ``cmd`` Out(``command_layout``), ``finish``
    Out(1).

    Latency: with ``setup2`` in cycle s, the first decision is on ``cmd`` in s + 2 and, never
    paused, the layer's last beat in s + 1 + (W + Q*K - 1)*P + B; each pause cycle adds one.
    ``finish`` is high in the decision cycle, a cycle before its ``cmd``. Throughput: one
    decision a cycle, one tile per P cycles; one ``finish`` per ``spacing`` cycles at most.
    """

    def __init__(self, *, config: HardwareConfig, pos_bits: int = 1, win_bits: int = 1,
                 spacing: int = 1):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        for name, value in (("pos_bits", pos_bits), ("win_bits", win_bits),
                            ("spacing", spacing)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self._config, self._spacing = config, spacing
        self._schedule = load_schedule(rows=config.rows, rows_per_word=config.rows_per_word,
                                       beats=1 if config.pe_mode == "packed" else config.timesteps)
        members = {
            "bounds": In(LayerSignature(config, pos_bits=pos_bits, win_bits=win_bits)),
            "room_next": In(1),
            "cmd": Out(command_layout(config)), "finish": Out(1),
        }
        if config.conv:
            members["tiles"] = In(stream.Signature(tile_layout(config)))
        super().__init__(members)

    @property
    def spacing(self) -> int:
        """Cycles from one ``finish`` to the next, at least."""
        return self._spacing

    def elaborate(self, platform):
        m = Module()
        cfg, lay = self._config, self.bounds.layer
        sched = self._schedule
        P, W = sched.period, sched.warmup
        span = W + sched.tail               # periods from a tile's first read to its last
        rt_bits, ct_bits, _ = counter_bits(cfg)
        setup2, finish, empty = self.bounds.setup2, self.finish, lay.empty

        # Period pm (pm = 0, 1, ...) presents the planes of tile pm - W, reads weight group q of
        # tile pm - W + advance[q] at offset q and the activation entry of tile pm - W + 1 at
        # offset P - 1. valid[d] says tile pm - d exists (0 <= pm - d < K) and lastrt[d] that it
        # is the last row tile of its column tile: per-period shift registers, so that no
        # decision compares tile numbers. The "ahead" tile pm is tracked by down-counters.
        t = SimpleNamespace()               # the controller's state, shared with the helpers
        t.running = Signal()                # the controller runs (from setup2 to the last tile)
        t.valid = Signal(span + 1)
        t.lastrt = Signal(span + 1)
        t.rt_left = Signal(rt_bits)         # of the ahead tile: row tiles after it
        t.ct_left = Signal(ct_bits)
        t.rt_zero = Signal()
        t.ct_zero = Signal()
        # conv: computed output positions after the ahead tile's (a dense layer has one)
        t.pos_left = Signal.like(lay.positions_m1, name="pos_left") if cfg.conv else None
        t.pos_zero = Signal()
        t.off = Signal(range(max(2, P)))
        # off == 0 and off == P - 1, kept as registers that move with off (they gate the
        # clock enables of every counter)
        t.off_first = Signal(init=1)
        t.off_end = Signal(init=int(P == 1))
        # The one pause: the planes of a column tile's last row tile (the beats that finish C
        # neurons) wait until the result buffer has a slot (and, packed, the units' decode
        # stages have had time). Registers only, so the pause is cheap to compute.
        t.go = go = Signal()
        # at_finish = off_first & plane_tile & plane_last, kept as a register (set as the period
        # before ends), so that go is one gate from registers in front of its fan-out
        at_finish = Signal()
        # go itself is a register too: go_next is go computed from the next values of the
        # registers it depends on (running, at_finish and the credit and cooldown)
        t.running_next = running_next = Signal()
        at_finish_next = Signal()
        may_finish_next = self._cooldown(m)
        m.d.comb += [running_next.eq(t.running), at_finish_next.eq(at_finish)]
        # what the period's end will decide, from registers that only change at period ends:
        # with P >= 2 they can be registered a cycle ahead, which keeps go's next value to a
        # few inputs
        # rt_zero & ct_zero, kept as a register: the ahead tile is its position's last (conv)
        # or the layer's last tile (dense: with pos_zero always set)
        t.ahead_wrap = Signal()
        # a copy of it for the weight addresses (w_tile, tile_base, base_inc: a mux per address
        # bit): ahead_wrap's route to them was critical at nextpnr seeds 1, 5, 6 (dense) and 7
        # (conv). Reset-less, so that synthesis keeps it apart; those registers are set by
        # setup2, which sets it too, before go can first use it
        t.ahead_wrap_w = Signal(reset_less=True)
        t.next_valid = next_valid = t.valid[0] & ~(t.ahead_wrap & t.pos_zero)
        fin_soon = Signal()                 # the next plane tile finishes a column tile
        t.any_soon = Signal()               # a tile is in flight after the period's end
        soon = [fin_soon.eq(t.valid[W - 1] & t.lastrt[W - 1]),
                t.any_soon.eq(Cat(next_valid, t.valid[:-1]).any())]
        if P >= 2:
            m.d.sync += soon
        else:
            m.d.comb += soon
        with m.If(go):
            m.d.comb += at_finish_next.eq((t.off_end if P > 1 else 1) & fin_soon)
        m.d.sync += [
            t.running.eq(running_next), at_finish.eq(at_finish_next),
            go.eq(running_next & ~(at_finish_next & ~may_finish_next)),
        ]
        m.d.comb += finish.eq(go & at_finish)
        self._periods(m, t)
        with m.If(setup2):
            m.d.comb += at_finish_next.eq(0)

        # a_on = go & off_end & valid[W - 1] (an activation read: the last offset of a period
        # whose tile W - 1 exists), kept as a flip-flop set from the next values of the three,
        # so that the activation counters and the patch generator's FIFO are enabled by a
        # register and not through go's fan-out
        a_on = Signal()
        off, off_end, valid = t.off, t.off_end, t.valid
        off_end_next = Mux(setup2, P == 1, Mux(go, Mux(off_end, P == 1, off == P - 2), off_end))
        valid_w1_next = Mux(setup2, ~empty if W == 1 else 0,
                            Mux(go & off_end, next_valid if W == 1 else valid[W - 2],
                                valid[W - 1]))
        m.d.sync += a_on.eq(running_next & ~(at_finish_next & ~may_finish_next)
                            & off_end_next & valid_w1_next)

        w_on, w_addr = self._weights(m, t)
        self._command(m, t, a_on, w_on, w_addr)
        return m

    def _periods(self, m, t):
        """The end of each period (``go`` at its last offset) moves the offset to 0, shifts
        ``valid``/``lastrt`` and steps the ahead tile's counters; ``setup2`` starts them."""
        lay, setup2, conv = self.bounds.layer, self.bounds.setup2, self._config.conv
        P = self._schedule.period
        rt_max, rt_max_zero, empty = lay.rt_max, lay.rt_max_zero, lay.empty
        ct_max, ct_max_zero = lay.results.ct_max, lay.results.ct_max_zero
        valid, lastrt, off = t.valid, t.lastrt, t.off
        rt_left, rt_zero, ct_left, ct_zero = t.rt_left, t.rt_zero, t.ct_left, t.ct_zero
        pos_left, pos_zero = t.pos_left, t.pos_zero
        with m.If(t.go):
            with m.If(t.off_end):
                # the next ahead tile, pm + 1
                m.d.comb += t.running_next.eq(t.any_soon)
                m.d.sync += [
                    off.eq(0), t.off_first.eq(1), t.off_end.eq(P == 1),
                    valid.eq(Cat(t.next_valid, valid[:-1])),
                    lastrt.eq(Cat(Mux(rt_zero, rt_max_zero, rt_left == 1), lastrt[:-1])),
                    rt_left.eq(Mux(rt_zero, rt_max, rt_left - 1)),
                    rt_zero.eq(Mux(rt_zero, rt_max_zero, rt_left == 1)),
                ]
                rt_zero_next = Mux(rt_zero, rt_max_zero, rt_left == 1)
                ct_zero_next = Mux(rt_zero, Mux(ct_zero, ct_max_zero, ct_left == 1), ct_zero)
                m.d.sync += [t.ahead_wrap.eq(rt_zero_next & ct_zero_next),
                             t.ahead_wrap_w.eq(rt_zero_next & ct_zero_next)]
                with m.If(rt_zero):
                    m.d.sync += [ct_left.eq(Mux(ct_zero, ct_max, ct_left - 1)),
                                 ct_zero.eq(Mux(ct_zero, ct_max_zero, ct_left == 1))]
                    if conv:
                        with m.If(ct_zero):
                            m.d.sync += [pos_left.eq(pos_left - 1), pos_zero.eq(pos_left == 1)]
            with m.Else():
                m.d.sync += [off.eq(off + 1), t.off_first.eq(0), t.off_end.eq(off == P - 2)]
        with m.If(setup2):
            m.d.comb += t.running_next.eq(~empty)
            m.d.sync += [
                valid.eq(~empty), lastrt.eq(rt_max_zero),
                rt_left.eq(rt_max), rt_zero.eq(rt_max_zero),
                ct_left.eq(ct_max), ct_zero.eq(ct_max_zero),
                t.ahead_wrap.eq(rt_max_zero & ct_max_zero),
                t.ahead_wrap_w.eq(rt_max_zero & ct_max_zero),
                off.eq(0), t.off_first.eq(1), t.off_end.eq(P == 1),
            ]
            if conv:
                m.d.sync += [pos_left.eq(lay.positions_m1), pos_zero.eq(lay.results.pos_zero)]
            else:
                m.d.sync += pos_zero.eq(1)

    def _cooldown(self, m):
        """may_finish_next: the result buffer's credit and (``spacing`` > 1, packed) the units'
        decode stages will allow a ``finish`` in the next cycle (the cooldown's count a
        register, cool_zero its == 0 as a register)."""
        spacing = self._spacing
        if spacing == 1:
            return self.room_next
        cool = Signal(range(spacing))
        cool_zero = Signal(init=1)          # cool == 0, as a register
        cool_zero_next = Signal()
        m.d.comb += cool_zero_next.eq(cool_zero)
        with m.If(self.finish):
            m.d.sync += cool.eq(spacing - 1)
            m.d.comb += cool_zero_next.eq(0)
        with m.Elif(~cool_zero):
            m.d.sync += cool.eq(cool - 1)
            m.d.comb += cool_zero_next.eq(cool == 1)
        m.d.sync += cool_zero.eq(cool_zero_next)
        may_finish_next = Signal()
        m.d.comb += may_finish_next.eq(self.room_next & cool_zero_next)
        return may_finish_next

    def _weights(self, m, t):
        """The weight read of each decision: (w_on, w_addr), the address from the per-period
        shift register of tile bases."""
        cfg, setup1, setup2 = self._config, self.bounds.setup1, self.bounds.setup2
        sched = self._schedule
        P, W, adv = sched.period, sched.warmup, sched.advance
        span = W + sched.tail
        n = cfg.rows // cfg.rows_per_word
        waddr_bits = len(self.cmd.waddr)
        wbase = self.bounds.layer.wbase
        go, off, off_first, off_end, valid = t.go, t.off, t.off_first, t.off_end, t.valid
        ahead_wrap = t.ahead_wrap_w
        # weight_base + (tile number of pm - d within its position) * n, d = 0 .. span: the
        # first word of tile pm - d (tile_base[0]: the ahead tile's; mod 2**bits)
        tile_base = [Signal(waddr_bits, name=f"tile_base{d}")
                     for d in range(span + 1 if n > 1 else 1)]
        w_on = Signal()
        w_addr = Signal(waddr_bits)
        # The weights of the tile after the ahead one start n words after the ahead tile's, or
        # at weight_base again when the ahead tile is its position's last (conv: the same
        # tiles at every position; dense: past the layer's end, never read).
        # (base_inc = tile_base[0] + n, kept as a register: no adder in front of the selections)
        base_next = Signal(waddr_bits)
        base_inc = Signal(waddr_bits)
        wbase_n = Signal(waddr_bits)
        with m.If(setup1):
            m.d.sync += wbase_n.eq(wbase + n)
        m.d.comb += base_next.eq(Mux(ahead_wrap, wbase, base_inc))
        with m.If(go & off_end):
            m.d.sync += [tile_base[0].eq(base_next),
                         base_inc.eq(Mux(ahead_wrap, wbase_n, base_inc + n))] + [
                tile_base[d].eq(tile_base[d - 1]) for d in range(1, len(tile_base))]
        with m.If(setup2):
            m.d.sync += [tile_base[0].eq(wbase), base_inc.eq(wbase_n)]
        if n > 1:
            w_ok = Array(valid[W - a] for a in adv)
            # word q of a period is group q of tile pm - W + advance[q]: the first word of that
            # tile (w_tile, a register selected a cycle ahead: the next offset's tile base, at a
            # period's end the next ahead tile's, advance[0] = W) plus q, added on the way
            # into the command register
            w_tile = Signal(waddr_bits)
            w_next = Array(tile_base[W - adv[q + 1]] if q + 1 < n else Const(0, waddr_bits)
                           for q in range(P))
            with m.If(go):
                m.d.sync += w_tile.eq(Mux(off_end, base_next, w_next[off]))
            with m.If(setup2):
                m.d.sync += w_tile.eq(wbase)
            m.d.comb += [w_on.eq(go & (off < n) & w_ok[off]), w_addr.eq(w_tile + off)]
        else:
            # advance[0] = W: the word of the period is the ahead tile's
            m.d.comb += [w_on.eq(go & off_first & valid[W - adv[0]]), w_addr.eq(tile_base[0])]
        return w_on, w_addr

    def _command(self, m, t, a_on, w_on, w_addr):
        """The command register: every read and beat leaves the controller through it (with the
        activation counters and, conv, the patch tiles the activation reads pop)."""
        cfg, cmd, lay, setup2 = self._config, self.cmd, self.bounds.layer, self.bounds.setup2
        sched = self._schedule
        W = sched.warmup
        span = W + sched.tail
        n = cfg.rows // cfg.rows_per_word
        B = 1 if cfg.pe_mode == "packed" else cfg.timesteps
        rt_bits = counter_bits(cfg)[0]
        rt_max, rt_max_zero = lay.rt_max, lay.rt_max_zero
        go, off, off_first, off_end = t.go, t.off, t.off_first, t.off_end
        valid, lastrt = t.valid, t.lastrt
        plane_tile, plane_last = valid[W], lastrt[W]
        plane_on = Signal()
        m.d.comb += plane_on.eq(go & plane_tile & (off < B))
        act_rt = Signal(cfg.act_addr_bits)  # row tile of the next activation read
        act_left = Signal(rt_bits)          # row tiles after it
        act_zero = Signal()                 # act_left == 0
        with m.If(a_on):
            m.d.sync += [act_rt.eq(Mux(act_zero, 0, act_rt + 1)),
                         act_left.eq(Mux(act_zero, rt_max, act_left - 1)),
                         act_zero.eq(Mux(act_zero, rt_max_zero, act_left == 1))]
        with m.If(setup2):
            m.d.sync += [act_rt.eq(0), act_left.eq(rt_max), act_zero.eq(rt_max_zero)]
        rt_first = Signal()                 # the plane tile is its column tile's first row tile
        rt_first_d = Signal(span + 1)
        m.d.comb += rt_first.eq(rt_first_d[W])
        with m.If(go & off_end):
            # lastrt shifted: a tile is first when the one before it was last (or it is tile 0)
            m.d.sync += rt_first_d.eq(Cat(lastrt[0] | ~valid[0], rt_first_d[:-1]))
        with m.If(setup2):
            m.d.sync += rt_first_d.eq(1)
        m.d.sync += [
            cmd.plane.eq(plane_on), cmd.first.eq(off_first),
            cmd.tag.eq(Cat(plane_last & (off == B - 1), rt_first & off_first)),
            cmd.wren.eq(w_on), cmd.waddr.eq(w_addr), cmd.wgroup.eq(off if n > 1 else 0),
        ]
        if cfg.conv:
            # a conv layer's entries come from the patch generator, one per activation read
            # (a_on takes the tile on its o; padding tiles are not read, their word cleared)
            tiles, is_conv = self.tiles, lay.is_conv
            pad = is_conv & tiles.payload.pad
            # (a dense layer's reads pop the idle generator's tiles too: harmless, and one
            # gate less on a_on's fan-out)
            m.d.comb += tiles.ready.eq(a_on)
            m.d.sync += [cmd.aren.eq(a_on & ~pad), cmd.azero.eq(a_on & pad),
                         cmd.aaddr.eq(Mux(is_conv, tiles.payload.addr, act_rt))]
        else:
            m.d.sync += [cmd.aren.eq(a_on), cmd.aaddr.eq(act_rt)]
        # The pause inserts cycles between two controller decisions, and the schedule's
        # windows hold across it only if a launch falls on the same side of the pause as the
        # planes its window is measured against: a word read at the end of a period (offset
        # P - 1) for a tile up to the next plane tile launches Lw cycles after its read, but
        # with P = 1 and advance 2 the word belongs two tiles ahead, must not overwrite the
        # weight of the tile still waiting, and so launches with the next decision (the memory
        # holds the word until the next read: hold_words).
        if hold_words(cfg):
            launch_pending = Signal()
            with m.If(go):
                m.d.sync += launch_pending.eq(w_on)
            m.d.sync += cmd.launch.eq(go & launch_pending)

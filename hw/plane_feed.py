"""The layer engine's plane feeding: from the controller's command register to the spike array
(:class:`PlaneFeed`): the weight and activation reads, the words' entry registers, the bit plane
(serial) or the whole entry (packed) a beat, and the weight launches of the load schedule.
``command_layout`` is the command register's layout, defined here once."""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from .array import load_schedule
from .memories import ReadPortSignature
from .stream import delay

__all__ = ["PlaneFeed", "command_layout", "hold_words", "MEMORY_READ_LATENCY"]

#: read latency of the memories the engine reads (NetworkMemories and the sequencer's activation
#: buffers): a synchronous read and the block RAM's output register
MEMORY_READ_LATENCY = 2


def _schedule(config: HardwareConfig):
    return load_schedule(rows=config.rows, rows_per_word=config.rows_per_word,
                         beats=1 if config.pe_mode == "packed" else config.timesteps)


def hold_words(config: HardwareConfig) -> bool:
    """True when a weight word must wait in the memory for a decision-time launch: one word a
    tile (R/g = 1) read two tiles ahead (advance 2), which happens with one-cycle periods."""
    sched = _schedule(config)
    return config.rows // config.rows_per_word == 1 and sched.advance[0] >= 2


def command_layout(config: HardwareConfig) -> data.StructLayout:
    """One controller decision: ``plane`` (a beat of the plane tile), ``first`` (the period's
    first offset: the serial array's swap), ``tag`` ([0] a neuron's last beat, [1] its first),
    ``wren``/``waddr``/``wgroup`` (a weight read, its word and its group q), ``aren``/``aaddr``
    (an activation read), ``azero`` (the tile's entry is padding: no read, a zero word),
    ``launch`` (with ``hold_words``: launch the word the memory holds)."""
    n = config.rows // config.rows_per_word
    return data.StructLayout({
        "plane": 1, "first": 1, "tag": 2,
        "wren": 1, "waddr": config.memories["weight"].addr_bits,
        "wgroup": max(1, (max(2, n) - 1).bit_length()),
        "aren": 1, "azero": 1, "aaddr": config.act_addr_bits, "launch": 1,
    })


class PlaneFeed(wiring.Component):
    """Issues a command's reads and presents its beat and weight launch to the array.

    From a command in cycle t (the command register's output): the activation read issues in
    t, its word arrives Lm = ``MEMORY_READ_LATENCY`` cycles later and is registered on entry,
    and the plane selected from it (serial: bit T - 1 of a per-row shift register loaded with
    the word and moved one bit a plane; packed: the whole entry) is registered, so the array's
    ``valid``/``tag``/``plane`` (``words``) of the command come in t + Lp, Lp = Lm + 1, and the
    serial swap (``first``) in t + Lp - 1. Weight reads issue Lp - Lw cycles after the command
    (packed: one more), Lw = Lm + 1 (the word's entry register), and the launch (``wload``,
    ``wgroup``, ``wdata``) follows the read by Lw cycles: in t + Lp (+ 1 packed), the load
    schedule's distances. With :func:`hold_words` the launch comes from the command's
    ``launch`` Lp - 1 (+ 1 packed) cycles after it instead, the memory holding the word (its
    read enable is then ``wren``; otherwise the weight port reads every cycle). A padding
    entry (``azero``) is not read and clears the entry register.

    Ports: ``cmd`` In(``command_layout``), ``weight`` and ``act`` In(ReadPortSignature) (the
    engine's ports), to the array: ``plane`` Out(R) and ``first`` Out(1) (serial) or ``words``
    Out(R*T) (packed), ``valid`` Out(1), ``tag`` Out(2), ``wload`` Out(1), ``wgroup``, ``wdata``.

    Latency: Lp = 3 cycles from a command to its beat on the array. Throughput: one command a
    cycle (a beat and a weight word a cycle).
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        R, T, g = config.rows, config.timesteps, config.rows_per_word
        mems = config.memories
        layout = command_layout(config)
        members = {
            "cmd": In(layout),
            "weight": In(ReadPortSignature(mems["weight"].addr_bits, mems["weight"].word_bits)),
            "act": In(ReadPortSignature(config.act_addr_bits, R * T)),
            "valid": Out(1), "tag": Out(2), "wload": Out(1),
            "wgroup": Out(layout["wgroup"].shape),
            "wdata": Out(g * config.cols * config.weight_bits),
        }
        if config.pe_mode == "packed":
            members["words"] = Out(R * T)
        else:
            members.update({"plane": Out(R), "first": Out(1)})
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, c = self._config, self.cmd
        R, T = cfg.rows, cfg.timesteps
        packed = cfg.pe_mode == "packed"
        Lm = MEMORY_READ_LATENCY
        Lp = Lm + 1        # the activation word is registered once more inside the engine
        Lw = Lm + 1        # so are the weight, bias and threshold words
        w_delay = Lp - Lw + packed
        r_wren = delay(m, c.wren, w_delay, name="r_wren")
        r_waddr = delay(m, c.waddr, w_delay, name="r_waddr")
        r_wgroup = delay(m, c.wgroup, w_delay, name="r_wgroup")
        hold = hold_words(cfg)
        m.d.comb += [self.weight.addr.eq(r_waddr), self.weight.en.eq(r_wren if hold else 1),
                     self.act.addr.eq(c.aaddr), self.act.en.eq(c.aren)]
        if hold:
            m.d.comb += [self.wload.eq(delay(m, c.launch, Lp - 1 + packed, name="launch")),
                         self.wgroup.eq(Const(0, len(self.wgroup)))]
        else:
            m.d.comb += [self.wload.eq(delay(m, r_wren, Lw, name="launch")),
                         self.wgroup.eq(delay(m, r_wgroup, Lw, name="launch_group"))]
        # the activation word from the sequencer's buffers is registered on entry (it crosses
        # the chip from their block RAMs)
        act_in = Signal(R * T, reset_less=True)
        if cfg.conv:
            # a padding tile's word: cleared in the entry register (the flip-flops' clear)
            with m.If(delay(m, c.azero, Lm, name="act_zero")):
                m.d.sync += act_in.eq(0)
            with m.Else():
                m.d.sync += act_in.eq(self.act.data)
            act_fresh = delay(m, c.aren | c.azero, Lp, name="act_fresh")
        else:
            m.d.sync += act_in.eq(self.act.data)
            act_fresh = delay(m, c.aren, Lp, name="act_fresh")
        w_word = Signal(len(self.wdata), reset_less=True)
        m.d.sync += w_word.eq(self.weight.data[:len(w_word)])
        m.d.comb += [self.valid.eq(delay(m, c.plane, Lp, name="plane_valid")),
                     self.tag.eq(delay(m, c.tag, Lp, name="plane_tag")), self.wdata.eq(w_word)]
        if packed:
            # the whole entry (R spike words) is the tile's one beat
            act_reg = Signal(R * T)
            with m.If(act_fresh):
                m.d.sync += act_reg.eq(act_in)
            p_words = Signal(R * T)
            m.d.sync += p_words.eq(Mux(act_fresh, act_in, act_reg))
            m.d.comb += self.words.eq(p_words)
            return m
        # A tile's T planes are consecutive decisions, step 1 (word bit T - 1) first, and its
        # word arrives (act_fresh) with its first plane's selection or, after a pause, before
        # it: a shift register per row word, loaded when the word arrives and moved one bit
        # per plane, so that the plane is bit T - 1 of act_in or of the shift register (no
        # T-way selection between the word and the plane register).
        plane_sel = delay(m, c.plane, Lp - 1, name="plane_sel")   # a plane is selected
        act_sh = Signal(R * T, reset_less=True)
        p_bits = Signal(R)

        def shifted(word):      # every row word one step on (bit j <- bit j - 1)
            return Cat(Cat(Const(0, 1), word[r * T:(r + 1) * T - 1]) for r in range(R))
        with m.If(act_fresh):
            m.d.sync += act_sh.eq(Mux(plane_sel, shifted(act_in), act_in))
        with m.Elif(plane_sel):
            m.d.sync += act_sh.eq(shifted(act_sh))
        top = Mux(act_fresh, act_in, act_sh)
        # gated by the plane flag here (the array trusts it: plane_gated). Row 0's bit is held
        # inverted: it is the synchronous reset of row 0's partial sums (psum <= spike ? w : 0)
        # and the ECP5 flip-flops' reset is active high, so the plain bit needed an inverter LUT
        # between this register and the row (critical at nextpnr seed 1); the inversion here
        # cancels the one there
        p_rest = Signal(R - 1) if R > 1 else None
        p_bits_n0 = Signal(init=1)
        nxt = Cat(top[r * T + T - 1] for r in range(R)) & plane_sel.replicate(R)
        m.d.sync += p_bits_n0.eq(~nxt[0])
        if p_rest is not None:
            m.d.sync += p_rest.eq(nxt[1:])
        m.d.comb += p_bits.eq(Cat(~p_bits_n0, p_rest) if p_rest is not None else ~p_bits_n0)
        m.d.comb += [self.plane.eq(p_bits),
                     self.first.eq(delay(m, c.plane & c.first, Lp - 1, name="swap"))]
        return m

"""The input writer: images from ``s_axis_in`` into the sequencer's two input buffers.

Format (``s_axis_in``): K = 32 // T spike words a beat, word i of an image in beat i // K at
bits (i % K)*T .. +T-1, TLAST on the image's last beat. The buffers hold entries of R spike
words (entry e: words e*R .. e*R+R-1, word e*R+i at bits i*T ..), one memory with the bank
(buffer) as its top address bit, written a whole entry at a time (no T-bit write columns, which
Vivado would split into one RAM per column): the write register keeps the words already
written to the entry, which arrive in stream order.

A beat goes into a beat register (through a one-entry skid register,
:class:`~spikepack.hw.stream.SkidEntry`, when the beat register cannot take it, so ``i.ready``
is a flip-flop) and is written from there, one entry a cycle, in as many cycles as buffer
entries it touches (``K / R`` when R divides K, otherwise ``ceil(K/R)`` or ``ceil(K/R) + 1``),
through a write register stage.

Latency: an entry loaded into the beat register at the edge ending cycle t is written at the
edge ending t + 2. Throughput: the next beat enters in the cycle in which the current one's
last entry is written, so one beat a cycle streams when each beat fills at most one entry; the
first beat of an image enters 2 cycles after the previous image's TLAST beat at the earliest
(its buffer is known to be free then). The TLAST beat also zeroes the rest of its last entry.
Words beyond ``depth * R`` are dropped; ``overflow`` pulses for every beat that starts there.
The image ends at TLAST: its length is not checked against the network.

Buffers: ``full[b]`` says buffer b holds a complete image. Images fill the buffers alternately
(``wsel``); ``bank`` is the buffer of the next (or running) inference, ``release`` (a one-cycle
strobe from the sequencer, when that inference's layer 0 has ended) frees it and moves
``bank`` on; ``image_ready`` already looks past a release in the same cycle.
"""

from __future__ import annotations

from math import gcd

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.hw.stream import SkidEntry

__all__ = ["InputWriter", "input_beat_layout"]


def input_beat_layout() -> data.StructLayout:
    """The payload of ``s_axis_in`` as a stream: 32 data bits and TLAST."""
    return data.StructLayout({"data": 32, "last": 1})


class InputWriter(wiring.Component):
    """Writes images from a beat stream into two input buffers (see the module docstring).

    Members: ``i`` In(stream of :func:`input_beat_layout`); ``mem``
    In(``memory.WritePort.Signature``, flipped: the writer drives it; addr = the bank bit on
    top of the entry, data R*T bits), connected to the input buffers' write port;
    ``release`` In(1); ``bank``, ``image_ready`` Out(1); ``images`` Out(2); strobes
    ``overflow``, ``beat``, ``stall`` Out(1) (a beat taken, a beat offered but not taken).
    """

    def __init__(self, *, rows: int, timesteps: int, depth: int):
        for name, value in (("rows", rows), ("timesteps", timesteps), ("depth", depth)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if rows & (rows - 1):
            raise ValueError(f"rows must be a power of two, not {rows}")
        if timesteps > 32:
            raise ValueError(f"timesteps must be at most 32, not {timesteps}")
        self._rows, self._timesteps, self._depth = rows, timesteps, depth
        super().__init__({
            "i": In(stream.Signature(input_beat_layout())),
            "mem": In(memory.WritePort.Signature(addr_width=self.addr_bits + 1,
                                                  shape=unsigned(rows * timesteps))),
            "release": In(1),
            "bank": Out(1), "image_ready": Out(1), "images": Out(2),
            "overflow": Out(1), "beat": Out(1), "stall": Out(1),
        })

    @classmethod
    def from_config(cls, config) -> "InputWriter":
        return cls(rows=config.rows, timesteps=config.timesteps, depth=config.activation_depth)

    @property
    def words_per_beat(self) -> int:
        """K: spike words a 32-bit beat carries."""
        return 32 // self._timesteps

    @property
    def addr_bits(self) -> int:
        """Bits of an entry address within one buffer."""
        return max(1, (self._depth - 1).bit_length())

    def elaborate(self, platform):
        m = Module()
        R, T, K, depth = self._rows, self._timesteps, self.words_per_beat, self._depth
        abits = self.addr_bits

        full = Signal(2)            # input buffer b holds a complete image
        wsel = Signal()             # input buffer being filled
        rsel = Signal()             # input buffer of the next / running inference
        m.d.comb += [self.images.eq(full[0] + full[1]), self.bank.eq(rsel),
                     self.image_ready.eq(full.bit_select(rsel ^ self.release, 1))]

        # A beat's word 0 lands at lane `pos` of its first entry; pos is a multiple of
        # g = gcd(K, R), kept as q = pos / g (a constant 0 when R divides K).
        g = gcd(K, R)
        NQ = R // g
        NS = -(-(R - g + K) // R) if NQ > 1 else K // R     # entries a beat can touch
        q = Signal(range(NQ), name="in_q") if NQ > 1 else Const(0, 1)

        # Beat register: S = the beat's words moved to their lanes (entry-aligned, NS entries),
        # E = lanes to write (its words, and on TLAST the rest of its last entry), both shifted
        # down by one entry per write cycle. A beat enters it only when its buffer has room, so
        # once in, it is written one entry a cycle without waiting.
        bvalid = Signal()
        blast = Signal()
        S = Signal(NS * R * T)
        E = Signal(NS * R)
        # the beat's current entry is its last (always, when a beat fills at most one entry)
        cyc_last = Signal(init=1) if NS > 1 else Const(1, 1)
        entry = Signal(range(depth + 1))    # buffer entry written next (depth: overflowed)
        ovf = Signal()                      # entry == depth
        done_beat = Signal()                # the beat leaves the beat register this cycle
        complete = Signal()                 # ... and it is its image's TLAST beat
        # the beat is in its first write cycle (always, when a beat fills at most one entry)
        bfirst = Signal(init=1) if NS > 1 else Const(1, 1)
        m.d.comb += [done_beat.eq(bvalid & cyc_last),
                     complete.eq(bvalid & cyc_last & blast),
                     # a beat that starts beyond the buffer is dropped (words of a beat that
                     # runs past its end are dropped silently: the zeros beyond N0)
                     self.overflow.eq(bvalid & ovf & bfirst)]

        # space: the buffer being filled is free (~full[wsel]), registered; 0 for the cycle after
        # an image completes (wsel flips then, maybe to a full buffer). A beat is loaded only
        # with space and not while the beat register holds a TLAST beat (the next beat is for
        # the other buffer): so every image waits 2 cycles after the previous one's TLAST beat.
        space = Signal()
        m.d.sync += space.eq(~full.bit_select(wsel, 1) & ~complete)
        ldok = Signal()                     # the beat register takes a beat this cycle
        m.d.comb += ldok.eq(space & (~bvalid | cyc_last & ~blast))

        # skid entry (stream.SkidEntry): holds a beat that arrived while the beat register
        # could not take it, so i.ready is a flip-flop
        m.submodules.skid = skid = SkidEntry(input_beat_layout())
        wiring.connect(m, wiring.flipped(self.i), skid.i)
        load = Signal()                     # into the beat register, from the skid entry or i
        m.d.comb += [skid.o.ready.eq(ldok), load.eq(ldok & skid.o.valid),
                     self.beat.eq(self.i.valid & self.i.ready),
                     self.stall.eq(self.i.valid & ~self.i.ready)]
        words, in_last = skid.o.payload.data[:K * T], skid.o.payload.last

        # when the beat register may take a beat it takes whatever is offered (maybe nothing)
        with m.If(ldok):
            m.d.sync += [bvalid.eq(skid.o.valid), blast.eq(in_last)]
            with m.Switch(q):
                for qv in range(NQ):
                    pos = qv * g
                    ends = -(-(pos + K) // R) * R           # end of the beat's last entry
                    norm = ((1 << K) - 1) << pos
                    last = ((1 << (ends - pos)) - 1) << pos
                    with m.Case(qv):
                        m.d.sync += [S.eq(Cat(Const(0, pos * T), words) if pos else words),
                                     E.eq(Mux(in_last, last, norm))]
                        if NS > 1:
                            m.d.sync += [cyc_last.eq(pos + K <= R), bfirst.eq(1)]
        with m.Elif(done_beat):
            m.d.sync += bvalid.eq(0)
        if NQ > 1:
            with m.If(load):
                with m.If(in_last):
                    m.d.sync += q.eq(0)
                with m.Else():
                    m.d.sync += q.eq((q + K // g) % NQ)

        # write register stage: a whole entry, its lanes not written by this beat held from the
        # previous write (the lanes below the beat's first word come from the beat before, in
        # the same entry; lanes above are written later, or zeroed by the TLAST beat)
        w_addr = Signal(abits + 1)
        w_data = Signal(R * T)
        w_en = Signal()
        m.d.sync += [w_addr.eq(Cat(entry[:abits], wsel)),
                     w_en.eq(bvalid & ~ovf & (E[:R] != 0))]
        for lane in range(R):
            with m.If(bvalid & E[lane]):
                m.d.sync += w_data[lane * T:lane * T + T].eq(S[lane * T:lane * T + T])
        m.d.comb += [self.mem.addr.eq(w_addr), self.mem.data.eq(w_data), self.mem.en.eq(w_en)]

        # a beat takes its cycles even beyond the buffer (writing nothing there), so that the
        # end of a beat does not depend on `ovf`
        step = Signal()                     # move to the next entry
        with m.If(bvalid):
            with m.If(~cyc_last):           # the beat goes on in the next entry
                m.d.sync += [S.eq(S >> (R * T)), E.eq(E >> R)]
                if NS > 1:
                    m.d.sync += [cyc_last.eq(E[2 * R:] == 0 if NS > 2 else 1), bfirst.eq(0)]
                m.d.comb += step.eq(1)
            with m.Elif(E[R - 1]):          # the beat fills its last entry to the end
                m.d.comb += step.eq(1)
        with m.If(complete):
            m.d.sync += [entry.eq(0), ovf.eq(0), full.bit_select(wsel, 1).eq(1), wsel.eq(~wsel)]
        with m.Elif(step & ~ovf):
            m.d.sync += [entry.eq(entry + 1), ovf.eq(entry == depth - 1)]
        # the running inference's buffer is free again
        with m.If(self.release):
            m.d.sync += [full.bit_select(rsel, 1).eq(0), rsel.eq(~rsel)]
        return m

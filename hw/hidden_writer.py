"""The hidden writer: a hidden layer's output beats into the next layer's activation buffer, max
pooled on the way when the layer is a conv layer.

Beats (the layer engine's ``o``, never stalled here) carry ``index`` (the storage index of the
word: entry ``index >> log2 R``, lane ``index % R``), ``channel``, ``pool_first`` and
``spikes``. The buffer (the sequencer's ping-pong hidden buffers: one memory, ``parity`` as the
top address bit) is written a whole entry at a time: the write register keeps the lanes below
the word (the entry's earlier words: beats arrive in index order within an entry) and zeroes
the lanes above it, so every entry holds zeros beyond the layer's outputs (a dense layer's M, a
map's padding channels).

Max pooling (``pooling``; the convolution contract in ``docs/architecture.md``): a conv
layer's beats come per output position, the positions of a pool window one after the other,
each carrying the storage index of its POOLED word. ``pool``, a LUT-RAM of ``channels`` T-bit
words, keeps the running maximum of each channel: ``word = spikes`` on a window's first
position (and always outside a conv layer: ``conv`` low), otherwise
``max(pool[channel], spikes)`` (unsigned), and ``pool[channel] <= word``. The read-modify-write
takes two register stages, so that no path crosses the LUT-RAM twice (its read, then its write
data: on ECP5 that path alone ran at 177 MHz): the read is registered, and the words of the two
beats before, not in ``pool`` yet, are forwarded by registered channel compares. Each window
position rewrites the pooled pixel's entries from lane 0 up, so the last one leaves the window's
maximum in every lane.

Latency: a beat in cycle t is written at the edge ending t + 2 (the beat register, the write
register), t + 4 with ``pooling`` (two more stages). Throughput: one beat a cycle, back-to-back
beats of one channel included. Beats whose entry lies beyond ``depth`` are dropped.
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["HiddenWriter", "hidden_beat_layout"]


def hidden_beat_layout(*, index_bits: int, channel_bits: int, timesteps: int) -> data.StructLayout:
    """A hidden beat: the members of the engine's output layout the writer uses."""
    return data.StructLayout({"index": index_bits, "channel": channel_bits, "pool_first": 1,
                              "spikes": unsigned(timesteps)})


class HiddenWriter(wiring.Component):
    """Writes hidden-layer beats into the hidden buffers (see the module docstring).

    Members: ``valid`` In(1) and ``beat`` In(:func:`hidden_beat_layout`): a beat this cycle
    (never stalled); ``parity`` In(1): the hidden buffer written (top address bit); ``conv``
    In(1): the layer's beats max-pool (ignored without ``pooling``); ``mem``
    In(``memory.WritePort.Signature``, flipped: the writer drives it) to the hidden buffers'
    write port.
    """

    def __init__(self, *, rows: int, timesteps: int, depth: int, index_bits: int,
                 channels: int = 1, pooling: bool = False):
        for name, value in (("rows", rows), ("timesteps", timesteps), ("depth", depth),
                            ("index_bits", index_bits), ("channels", channels)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
        if rows & (rows - 1):
            raise ValueError(f"rows must be a power of two, not {rows}")
        if not isinstance(pooling, bool):
            raise TypeError(f"pooling must be true or false, not {pooling!r}")
        self._rows, self._timesteps, self._depth = rows, timesteps, depth
        self._channels, self._pooling = channels, pooling
        self._layout = hidden_beat_layout(index_bits=index_bits,
                                          channel_bits=max(1, (channels - 1).bit_length()),
                                          timesteps=timesteps)
        super().__init__({
            "valid": In(1), "beat": In(self._layout), "parity": In(1), "conv": In(1),
            "mem": In(memory.WritePort.Signature(addr_width=self.addr_bits + 1,
                                                  shape=unsigned(rows * timesteps))),
        })

    @classmethod
    def from_config(cls, config, *, index_bits: int) -> "HiddenWriter":
        return cls(rows=config.rows, timesteps=config.timesteps, depth=config.activation_depth,
                   index_bits=index_bits, channels=config.max_channels, pooling=config.conv)

    @property
    def addr_bits(self) -> int:
        """Bits of an entry address within one buffer."""
        return max(1, (self._depth - 1).bit_length())

    @property
    def latency(self) -> int:
        """Cycles from a beat to the edge that writes it: 2, or 4 with pooling."""
        return 4 if self._pooling else 2

    def elaborate(self, platform):
        m = Module()
        R, T, depth, abits = self._rows, self._timesteps, self._depth, self.addr_bits
        LR = (R - 1).bit_length()           # log2(R)
        b = self.beat

        # the beat is registered first (the engine's output register is far away)
        ob_write = Signal()
        ob_index = Signal.like(b.index)
        ob_spikes = Signal.like(b.spikes)
        ob_parity = Signal()
        ob_fits = Signal()                  # the index is inside the buffer (index < cap)
        m.d.sync += [ob_write.eq(self.valid), ob_index.eq(b.index),
                     ob_fits.eq((b.index >> LR) < depth),
                     ob_spikes.eq(b.spikes), ob_parity.eq(self.parity)]
        # the write register's lanes, decoded from the beat's lane bits as it enters (one LUT
        # a flag, valid left out: it arrives late, through the sequencer's run state) and
        # carried with it: the word's lane (set) and the lanes above it (clear). Each lane's
        # enable is then one LUT of flip-flops (the write, the fit and its flag); decoded in
        # front of the write register it was four LUT levels, the critical path of the
        # dense-only top at three of nextpnr seeds 1-8
        in_lane = b.index[:LR] if LR else Const(0, 1)
        ob_set, ob_clear = Signal(R, name="ob_lane_set"), Signal(R, name="ob_lane_clear")
        m.d.sync += [ob_set.eq(Cat(in_lane == lane for lane in range(R))),
                     ob_clear.eq(Cat(in_lane < lane if lane else Const(0, 1)
                                     for lane in range(R)))]
        if self._pooling:
            # The pool read-modify-write over three stages:
            #   A (ob_*): pool read at ob_channel, or the word of the beat in C when it has
            #      the same channel (it is not in the LUT-RAM yet), registered (older);
            #      ob_channel compared with the channel of the beat in B (registered hit1);
            #   B (pb_*): the running max is the word of the beat in C (hit1: it was in B when
            #      A chose) or older; word registered into pw_word;
            #   C (pw_*): pool[pw_channel] <= pw_word (only in conv layers: a dense layer's
            #      channel, its index's low bits, may lie beyond the channels), and the word
            #      goes to the write register.
            pool = memory.Memory(shape=unsigned(T), depth=self._channels, init=[],
                                 attrs={"ram_style": "distributed"})
            m.submodules.pool = pool
            pool_rd = pool.read_port(domain="comb")
            pool_wr = pool.write_port()
            ob_channel = Signal.like(b.channel)
            ob_keep = Signal()              # word = spikes: the window's first position, dense
            ob_conv = Signal()              # a conv layer's beat (it updates pool)
            m.d.sync += [ob_channel.eq(b.channel),
                         ob_keep.eq(b.pool_first | ~self.conv),
                         ob_conv.eq(self.valid & self.conv)]

            def stage(name, like):
                return Signal.like(like, name=name)
            pb_write, pb_index, pb_fits, pb_parity, pb_spikes, pb_keep, pb_conv, pb_channel = (
                stage(f"pb_{n}", v) for n, v in (
                    ("write", ob_write), ("index", ob_index), ("fits", ob_fits),
                    ("parity", ob_parity), ("spikes", ob_spikes), ("keep", ob_keep),
                    ("conv", ob_conv), ("channel", ob_channel)))
            pw_write, pw_index, pw_fits, pw_parity, pw_conv, pw_channel = (
                stage(f"pw_{n}", v) for n, v in (
                    ("write", ob_write), ("index", ob_index), ("fits", ob_fits),
                    ("parity", ob_parity), ("conv", ob_conv), ("channel", ob_channel)))
            pw_word = Signal.like(ob_spikes, name="pw_word", reset_less=True)
            hit1 = Signal(name="pool_hit1")
            m.d.comb += pool_rd.addr.eq(ob_channel)
            pb_set, pb_clear = Signal(R, name="pb_lane_set"), Signal(R, name="pb_lane_clear")
            pw_set, pw_clear = Signal(R, name="pw_lane_set"), Signal(R, name="pw_lane_clear")
            m.d.sync += [pb_set.eq(ob_set), pb_clear.eq(ob_clear),
                         pw_set.eq(pb_set), pw_clear.eq(pb_clear)]
            m.d.sync += [hit1.eq(pb_conv & (pb_channel == ob_channel)),
                         pb_write.eq(ob_write), pb_index.eq(ob_index), pb_fits.eq(ob_fits),
                         pb_parity.eq(ob_parity), pb_spikes.eq(ob_spikes), pb_keep.eq(ob_keep),
                         pb_conv.eq(ob_conv), pb_channel.eq(ob_channel)]
            # the running max is pw_word (hit1: the recurrence of back-to-back beats of one
            # channel) or `older`, chosen from the LUT-RAM's read and the word leaving C while
            # the beat was in A (registered there); both
            # maxima with the beat's spikes are formed side by side, the hit picks one
            older = Signal.like(ob_spikes, name="pool_older", reset_less=True)
            m.d.sync += older.eq(Mux(pw_conv & (pw_channel == ob_channel), pw_word,
                                     pool_rd.data))
            max1 = Mux(pw_word < pb_spikes, pb_spikes, pw_word)
            max0 = Mux(older < pb_spikes, pb_spikes, older)
            word = Mux(pb_keep, pb_spikes, Mux(hit1, max1, max0))
            m.d.sync += [pw_write.eq(pb_write), pw_index.eq(pb_index), pw_fits.eq(pb_fits),
                         pw_parity.eq(pb_parity), pw_conv.eq(pb_conv),
                         pw_channel.eq(pb_channel), pw_word.eq(word)]
            m.d.comb += [pool_wr.addr.eq(pw_channel), pool_wr.data.eq(pw_word),
                         pool_wr.en.eq(pw_conv)]
            w_write, index, w_fits, w_parity, w_word = (pw_write, pw_index, pw_fits, pw_parity,
                                                        pw_word)
            lane_set, lane_clear = pw_set, pw_clear
        else:
            w_write, index, w_fits, w_parity, w_word = (ob_write, ob_index, ob_fits, ob_parity,
                                                        ob_spikes)
            lane_set, lane_clear = ob_set, ob_clear
        h_addr = Signal(abits + 1)
        # a data register: every layer writes its entries from lane 0 up (lanes above a word are
        # zeroed), so it needs no reset, and a reset on it would join the core reset into the
        # LSR of its lane clears (the top's critical path, 222-238 MHz)
        h_data = Signal(R * T, reset_less=True)
        h_en = Signal()
        hidden_write = w_write & w_fits
        m.d.sync += [h_addr.eq(Cat((index >> LR)[:abits], w_parity)), h_en.eq(hidden_write)]
        # a whole entry: lanes below this word hold the entry's earlier words (index order),
        # lanes above are zeroed (a later word of the entry overwrites them; after the layer's
        # last word they stay zero)
        for lane in range(R):
            with m.If(hidden_write & lane_clear[lane]):
                m.d.sync += h_data[lane * T:lane * T + T].eq(0)
            with m.Elif(hidden_write & lane_set[lane]):
                m.d.sync += h_data[lane * T:lane * T + T].eq(w_word)
        m.d.comb += [self.mem.addr.eq(h_addr), self.mem.data.eq(h_data), self.mem.en.eq(h_en)]
        return m

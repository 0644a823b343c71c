"""The layer engine's column parameters: each column tile's bias and threshold words, read so
that they reach the neuron units with the tile's first beat out of the array
(:class:`ColumnParams`)."""

from __future__ import annotations

from amaranth import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from .memories import ReadPortSignature
from .result_buffer import counter_bits
from .stream import delay

__all__ = ["ColumnParams"]


class ColumnParams(wiring.Component):
    """Reads word column_base + ct of the bias and threshold memories for each column tile ct
    (conv layers: back to column_base after a position's last column tile) and registers both
    words on entry; they stay on ``bias_words``/``threshold_words`` until the next read.

    ``first`` is the command register's first-beat flag of a column tile (a plane command with
    tag[1]); the read issues ``lead`` cycles after it (``lead`` = R: the array's latency), so
    with memories of read latency Lm the words are on the outputs ``lead`` + Lm + 1 cycles after
    ``first``. ``setup1`` loads the addresses with ``cbase``; ``setup2`` (conv) the column tile
    count with ``ct_max`` (CT - 1) and ``ct_max_zero``. Two address counters, one per memory
    (each reaches several block RAMs; counters, unlike plain register copies, are not merged by
    synthesis).

    Ports: ``bias``, ``threshold`` In(ReadPortSignature) (the engine's ports), ``first``,
    ``setup1``, ``setup2`` In(1), ``cbase``, ``ct_max``, ``ct_max_zero`` In, ``bias_words``
    Out(C * bias_bits), ``threshold_words`` Out(C * threshold_bits).

    Latency: ``lead`` + Lm + 1 cycles from ``first`` to the words. Throughput: one column
    tile's words a cycle.
    """

    def __init__(self, *, config: HardwareConfig, lead: int):
        self._config, self._lead = config, lead
        mems, C = config.memories, config.cols
        super().__init__({
            **{name: In(ReadPortSignature(mems[name].addr_bits, mems[name].word_bits))
               for name in ("bias", "threshold")},
            "first": In(1), "setup1": In(1), "setup2": In(1),
            "cbase": In(mems["bias"].addr_bits), "ct_max": In(counter_bits(config)[1]),
            "ct_max_zero": In(1),
            "bias_words": Out(C * config.bias_bits),
            "threshold_words": Out(C * config.threshold_bits),
        })

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        bias_addr = Signal(len(self.bias.addr))
        thr_addr = Signal(len(self.threshold.addr))
        fire = delay(m, self.first, self._lead, name="bias_fire")
        m.d.comb += [self.bias.addr.eq(bias_addr), self.bias.en.eq(fire),
                     self.threshold.addr.eq(thr_addr), self.threshold.en.eq(fire)]
        if cfg.conv:
            # column_base + ct: back to column_base after a position's last column tile
            b_left = Signal(len(self.ct_max))   # column tiles after the one being read
            b_zero = Signal()
            with m.If(fire):
                with m.If(b_zero):
                    m.d.sync += [bias_addr.eq(self.cbase), thr_addr.eq(self.cbase),
                                 b_left.eq(self.ct_max), b_zero.eq(self.ct_max_zero)]
                with m.Else():
                    m.d.sync += [bias_addr.eq(bias_addr + 1), thr_addr.eq(thr_addr + 1),
                                 b_left.eq(b_left - 1), b_zero.eq(b_left == 1)]
            with m.If(self.setup2):
                m.d.sync += [b_left.eq(self.ct_max), b_zero.eq(self.ct_max_zero)]
        else:
            with m.If(fire):
                m.d.sync += [bias_addr.eq(bias_addr + 1), thr_addr.eq(thr_addr + 1)]
        with m.If(self.setup1):
            m.d.sync += [bias_addr.eq(self.cbase), thr_addr.eq(self.cbase)]
        # the words are registered on entry (the block RAMs' output registers sit in the RAM
        # rows, far from the units)
        b_word = Signal(len(self.bias_words), reset_less=True)
        t_word = Signal(len(self.threshold_words), reset_less=True)
        m.d.sync += [b_word.eq(self.bias.data[:len(b_word)]),
                     t_word.eq(self.threshold.data[:len(t_word)])]
        m.d.comb += [self.bias_words.eq(b_word), self.threshold_words.eq(t_word)]
        return m

"""The loader's checks of a layer descriptor that depend on its other lanes or on the previous
layer (``docs/bitstream.md``, "Descriptor checks"; the golden twin is
:func:`spikepack.firmware.layout.descriptor_faults`): :class:`DescriptorCheck`. It captures the
descriptor's fields as its lanes pass, keeps the previous layer's output for the chain, checks
lane 3 (flags, the chain and maxima of a dense layer, a conv layer's channels), and with conv
lanes 4 and 5 (the input map, the kernel, stride, padding and pooling) through
:class:`~spikepack.hw.conv_check.ConvChecker` for the products. Lanes 0-2 (sizes not 0, the
bases) and a dense configuration's lanes 4 and 5 are :mod:`spikepack.hw.header_check`'s.
"""

from __future__ import annotations

from amaranth import Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS, HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.hw.conv_check import ConvChecker, FieldsSignature, conv_check_cycles
from spikepack.hw.frame_tracker import FrameSignature, desc_slot
from spikepack.hw.stream import or_all

__all__ = ["CONV_BIT", "DescriptorFaultsSignature", "DescriptorCheck"]

#: the conv flag's bit in lane 3
CONV_BIT = 1 << (DESCRIPTOR_FIELDS["conv"][0] % WORD_BITS)
_L0, _L3, _L4, _L5 = (desc_slot(lane) for lane in (0, 3, 4, 5))
#: the fields captured from each lane (checker's name: descriptor field)
_LANE_FIELDS = {_L0: {"n": "fan_in", "m": "neurons"},
                _L3: {"hp": "out_height", "wp": "out_width"},
                _L4: {"cin": "in_channels", "h": "in_height", "w": "in_width"},
                _L5: {"kh": "kernel_h", "kw": "kernel_w", "sh": "stride_h", "sw": "stride_w",
                      "ph": "pad_h", "pw": "pad_w", "qh": "pool_h", "qw": "pool_w"}}


def DescriptorFaultsSignature() -> wiring.Signature:
    """The faults of a descriptor's lane 3, 4 or 5 (from :class:`DescriptorCheck`, Out):
    ``desc`` (malformed: BAD_DESCRIPTOR) and ``large`` (beyond the hardware's limits:
    TOO_LARGE; BAD_DESCRIPTOR comes first)."""
    return wiring.Signature({"desc": Out(1), "large": Out(1)})


def _field(word, name: str):
    """A descriptor field in its lane's word."""
    offset, width = DESCRIPTOR_FIELDS[name]
    return word[offset % WORD_BITS:offset % WORD_BITS + width]


class DescriptorCheck(wiring.Component):
    """The descriptor checks of lanes 3-5 (see the module docstring).

    Ports: ``frame`` In(:func:`~spikepack.hw.frame_tracker.FrameSignature`), ``word`` In(32),
    ``valid`` In(1): the loader's stage-0 word, what it is and whether it holds a beat;
    ``valid1`` In(1): a word is in stage 1 (the stage-0 word advanced); ``faults``
    Out(:func:`DescriptorFaultsSignature`): the faults of the stage-2 word; ``conv`` Out(1):
    the descriptor in progress is a conv layer's (from its lane 3 in stage 0 on, a register).

    Latency: a word in stage 0 in cycle ``t`` that advances (it is in stage 1 in ``t + 1``) has
    its ``faults`` in cycle ``t + 2``, but a conv descriptor's lane 5, whose product checks need
    ``F = self.cycles`` (= :func:`~spikepack.hw.conv_check.conv_check_cycles`) more cycles:
    first in stage 0 in cycle ``t``, the loader holds it there F cycles more (it advances in
    ``t + F``), and its ``faults`` are out in ``t + 2 + F``. The fields are captured at the end
    of each lane's cycles in stage 0 (:data:`~spikepack.hw.conv_check.FIELD_READY` holds for
    words back to back); the previous layer's output is updated when a lane 5 is in stage 1.
    Throughput: one word per cycle, but F cycles more for a conv descriptor's lane 5.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        self.cycles = conv_check_cycles(config)
        super().__init__({"frame": In(FrameSignature(config)), "word": In(WORD_BITS),
                          "valid": In(1), "valid1": In(1), "conv": Out(1),
                          "faults": Out(DescriptorFaultsSignature())})

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        c, d0, slot = self._config, self.word, self.frame.slot
        # the descriptor in progress (captured from stage 0) and the previous layer's output
        cur = FieldsSignature().create(path=("cur",))
        words_bits = max(16, c.max_map_words.bit_length()) if c.conv else 16
        prev_words = Signal(words_bits)   # its stored output words (dense: M)
        prev_map = [Signal(16, name="prev_c"), Signal(8, name="prev_h"), Signal(8, name="prev_w")]
        for index, names in _LANE_FIELDS.items():
            if index != _L0 and not c.conv:
                continue
            with m.If(self.valid & slot[index]):
                m.d.sync += [getattr(cur, key).eq(_field(d0, name)) for key, name in names.items()]
                if index == _L3:
                    m.d.sync += self.conv.eq(_field(d0, "conv"))

        # stage 1: which lane it is, and the descriptor's registered comparisons
        k_l3_1, k_l4_1, k_l5_1, first1 = (Signal(name=n) for n in (
            "k_lane3_1", "k_lane4_1", "k_lane5_1", "first_layer1"))
        m.d.sync += [k_l3_1.eq(slot[_L3]), k_l4_1.eq(slot[_L4]), k_l5_1.eq(slot[_L5]),
                     first1.eq(self.frame.first_word)]
        chain_ne, fan_in_large, neurons_large, channels_large = (Signal(name=n) for n in (
            "chain_ne", "fan_in_large", "neurons_large", "channels_large"))
        m.d.sync += [chain_ne.eq(cur.n != prev_words),
                     fan_in_large.eq(cur.n > c.max_fan_in),
                     neurons_large.eq(cur.m > c.max_neurons),
                     channels_large.eq(cur.m > c.max_channels)]
        dense_chain = ~first1 & chain_ne
        dense_large = fan_in_large | neurons_large
        f_lane_desc, f_lane_large = Signal(), Signal()          # stage 2
        if not c.conv:
            with m.If(self.valid1 & k_l5_1):
                m.d.sync += prev_words.eq(cur.m)
            m.d.sync += [f_lane_desc.eq(k_l3_1 & dense_chain),
                         f_lane_large.eq(k_l3_1 & dense_large)]
            m.d.comb += [self.faults.desc.eq(f_lane_desc), self.faults.large.eq(f_lane_large)]
            return m

        m.submodules.conv_check = checker = ConvChecker(config=c)
        wiring.connect(m, cur, checker.fields)
        # a descriptor's lane 5 in stage 1: its output becomes the previous layer's (stage 0
        # may already hold the next descriptor's lane 0, captured at the end of this cycle)
        with m.If(self.valid1 & k_l5_1):
            m.d.sync += [prev_words.eq(Mux(self.conv, checker.out_words, cur.m)),
                         prev_map[0].eq(cur.m),
                         prev_map[1].eq(Mux(self.conv, cur.hp, 1)),
                         prev_map[2].eq(Mux(self.conv, cur.wp, 1))]
        l3, l4, l5 = self._lane_flags(m, prev_map)
        k5c2 = Signal()                   # stage 2: a conv descriptor's lane 5
        m.d.sync += [
            f_lane_desc.eq(k_l3_1 & Mux(l3["conv"], l3["conv_bad"], l3["dense_bad"] | dense_chain)
                           | k_l4_1 & Mux(self.conv, or_all(l4["zero"])
                                          | ~first1 & or_all(l4["chain"]), l4["nonzero"])
                           | k_l5_1 & Mux(self.conv, l5["bad"], l5["nonzero"])),
            f_lane_large.eq(k_l3_1 & Mux(l3["conv"], channels_large, dense_large)
                            | self.conv & (k_l4_1 & or_all(l4["large"]) | k_l5_1 & l5["large"])),
            k5c2.eq(k_l5_1 & self.conv)]
        # a conv lane 5's product checks join in stage 2 (the checker's flags are registers)
        m.d.comb += [self.faults.desc.eq(f_lane_desc | k5c2 & checker.bad),
                     self.faults.large.eq(f_lane_large | k5c2 & checker.large)]
        return m

    def _lane_flags(self, m: Module, prev_map: list) -> tuple[dict, dict, dict]:
        """Stage 1 of conv lanes 3-5: the stage-0 word's own comparisons, whatever lane it is
        (a flag a comparison; the lane selects them in stage 2)."""
        c, d0 = self._config, self.word
        l3 = {n: Signal(name=f"lane3_{n}1") for n in ("conv", "dense_bad", "conv_bad")}
        l4 = {"nonzero": Signal(name="lane4_nonzero1"),
              **{n: [Signal(name=f"lane4_{n}{k}_1") for k in range(3)]
                 for n in ("zero", "chain", "large")}}      # a flag a field
        l5 = {n: Signal(name=f"lane5_{n}1") for n in ("nonzero", "bad", "large")}
        kernel = [_field(d0, "kernel_h"), _field(d0, "kernel_w")]
        pads = [_field(d0, "pad_h"), _field(d0, "pad_w")]
        sizes = [_field(d0, n) for n in ("in_channels", "in_height", "in_width")]
        last = self.frame.last_word
        m.d.sync += [
            l3["conv"].eq(_field(d0, "conv")),
            # dense: lane 3 is the readout flag; conv: bit 1 and the pooled map only, and never
            # on the last layer
            l3["dense_bad"].eq((d0[:8] != last) | (d0[8:] != 0)),
            l3["conv_bad"].eq(((d0[:8] & (0xFF ^ CONV_BIT)) != 0) | (d0[24:] != 0) | last),
            l4["nonzero"].eq(d0 != 0),
            *(z.eq(f == 0) for z, f in zip(l4["zero"], sizes)),
            *(n.eq(f != p) for n, f, p in zip(l4["chain"], sizes, prev_map)),
            *(g.eq(f > top) for g, f, top in zip(l4["large"], sizes, (
                c.max_channels, c.max_map_side, c.max_map_side))),
            l5["nonzero"].eq(d0 != 0),
            l5["bad"].eq(or_all([d0[24:] != 0, *(k == 0 for k in kernel),
                                 *(_field(d0, n) == 0 for n in ("stride_h", "stride_w",
                                                                 "pool_h", "pool_w")),
                                 *(p >= k for p, k in zip(pads, kernel))])),
            l5["large"].eq(or_all(k > c.max_kernel for k in kernel)),
        ]
        return l3, l4, l5

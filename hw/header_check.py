"""The loader's checks of each word by its position (``docs/bitstream.md``):
:class:`HeaderCheck`, a table of the checks of every slot of
:class:`~spikepack.hw.frame_tracker.FrameTracker` (the header fields against the
configuration, the section table's types, lanes and word counts against the memories, the
table's total length, and a descriptor's lanes 0-2: sizes not 0, bases inside their sections;
without conv, lanes 3-5 too), decoded from the one-hot slot. It captures the section word
counts the frame announces (``sections``, for the tracker and the commit).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import NEURON_CODES, WORD_BITS, HardwareConfig
from spikepack.firmware.bitstream_format import (BITSTREAM_MAGIC, FORMAT_VERSION, HEADER_FIELDS,
                                                 HEADER_WORDS, PAYLOAD_OFFSET,
                                                 SECTION_ENTRY_WORDS, SECTION_NAMES, ErrorCode)
from spikepack.hw.frame_tracker import SLOTS, FrameSignature, SectionsSignature, desc_slot
from spikepack.hw.stream import or_all

__all__ = ["ERROR_BITS", "HeaderFaultsSignature", "HeaderCheck"]

#: width of an :class:`~spikepack.firmware.bitstream_format.ErrorCode`
ERROR_BITS = 4
assert max(ErrorCode) < (1 << ERROR_BITS)


def HeaderFaultsSignature() -> wiring.Signature:
    """The faults of a word by its slot's checks (from :class:`HeaderCheck`, Out): ``eq`` (it
    differs from the value its slot requires), ``ge`` (it is at or above its slot's limit),
    both with the slot's error ``code``; ``total`` (the table's last word: the lengths do not
    add up to the total), ``zero`` (a word count of 0), ``desc0`` (a descriptor's fan-in or
    neurons 0)."""
    return wiring.Signature({"code": Out(ERROR_BITS), "eq": Out(1), "ge": Out(1),
                             "total": Out(1), "zero": Out(1), "desc0": Out(1)})


def _decoder(onehot: Signal, values: list, width: int):
    """``values[i]`` where bit ``i`` of ``onehot`` is set (``None``: any value will do). Each
    bit is an OR of the one-hot bits where it is 1, or a NOR of those where it is 0, whichever
    has fewer inputs: two LUT levels at most (a decoder of a binary index is a 5-input function
    per bit, which the synthesizer chains through shared LUTs)."""
    bits = []
    for bit in range(width):
        ones = [i for i, v in enumerate(values) if v is not None and (int(v) >> bit) & 1]
        zeros = [i for i, v in enumerate(values) if v is not None and not (int(v) >> bit) & 1]
        if len(ones) <= len(zeros):
            bits.append(Cat(*(onehot[i] for i in ones)).any() if ones else Const(0))
        else:
            bits.append(~Cat(*(onehot[i] for i in zeros)).any() if zeros else Const(1))
    return Cat(*bits)


def _table(c: HardwareConfig, layers, weight, column, last_word) -> list[dict]:
    """The checks of each slot, in the order of :mod:`spikepack.firmware.bitstream`: ``eq``
    (a constant or a signal the word must equal), ``range`` (a limit the word must be below,
    and not 0) or ``ge`` (a limit it must be below), with the ``code`` of their fault; ``cap``
    (the word is captured as that section count); ``total``; ``desc0``."""
    specs = c.memories
    lanes = [specs[name].lanes for name in SECTION_NAMES]
    depth = {name: specs[name].depth for name in SECTION_NAMES}
    fixed = {"timesteps": c.timesteps, "tau_shift": c.tau_shift,
             "weight_bits": c.weight_bits, "neuron": NEURON_CODES[c.neuron],
             "rows": c.rows, "cols": c.cols, "rows_per_word": c.rows_per_word,
             "bias_bits": c.bias_bits, "threshold_bits": c.threshold_bits}
    table = [{} for _ in range(SLOTS)]
    for index, name in enumerate(HEADER_FIELDS):
        if name == "total_words":
            table[index] = {"cap": "total"}
        elif name == "layer_count":
            table[index] = {"cap": "layers", "range": c.max_layers + 1,
                            "code": ErrorCode.TOO_LARGE}
        else:
            value, error = {"magic": (BITSTREAM_MAGIC, ErrorCode.BAD_MAGIC),
                            "version": (FORMAT_VERSION, ErrorCode.BAD_VERSION),
                            "signature": (c.signature, ErrorCode.BAD_SIGNATURE),
                            "section_count": (len(SECTION_NAMES), ErrorCode.BAD_SECTION),
                            }.get(name, (fixed.get(name), ErrorCode.BAD_HEADER))
            table[index] = {"eq": value, "code": error}
    for k, name in enumerate(SECTION_NAMES):
        base = HEADER_WORDS + SECTION_ENTRY_WORDS * k
        table[base] = {"eq": k, "code": ErrorCode.BAD_SECTION}
        if name == "descriptor":
            table[base + 1] = {"eq": layers, "code": ErrorCode.BAD_LENGTH}
        elif name == "threshold":
            table[base + 1] = {"eq": column, "code": ErrorCode.BAD_LENGTH}
        else:
            table[base + 1] = {"cap": ("weight", "column")[k - 1], "range": depth[name] + 1,
                               "code": ErrorCode.TOO_LARGE}
        table[base + 2] = {"eq": lanes[k], "code": ErrorCode.BAD_SECTION}
    table[PAYLOAD_OFFSET - 1]["total"] = True
    # descriptor lanes: 0 sizes, 1 weight base, 2 column base; without conv, 3 the readout
    # flag and 4, 5 zero (with conv, lanes 3-5 are spikepack.hw.descriptor_check's)
    table[desc_slot(0)] = {"desc0": True}
    table[desc_slot(1)] = {"ge": weight, "code": ErrorCode.BAD_DESCRIPTOR}
    table[desc_slot(2)] = {"ge": column, "code": ErrorCode.BAD_DESCRIPTOR}
    if not c.conv:
        table[desc_slot(3)] = {"eq": last_word, "code": ErrorCode.BAD_DESCRIPTOR}
        table[desc_slot(4)] = {"eq": 0, "code": ErrorCode.BAD_DESCRIPTOR}
        table[desc_slot(5)] = {"eq": 0, "code": ErrorCode.BAD_DESCRIPTOR}
    return table


class HeaderCheck(wiring.Component):
    """The checks of each word by its slot (see the module docstring).

    Ports: ``frame`` In(:func:`~spikepack.hw.frame_tracker.FrameSignature`) and ``word``
    In(32): the loader's stage-0 word and what it is; ``valid1`` In(1), ``word1`` In(32): the
    loader's stage-1 word (the stage-0 word registered, and whether it advanced);
    ``sections`` Out(:func:`~spikepack.hw.frame_tracker.SectionsSignature`): the section word
    counts captured from the stage-1 words of the header and table (registers, from the cycle
    after); ``faults`` Out(:func:`HeaderFaultsSignature`): the faults of the stage-2 word.

    Latency: a word in stage 0 in cycle ``t`` that advances (it is in stage 1 in ``t + 1``) has
    its ``faults`` in cycle ``t + 2`` (stage 1 decodes which checks apply and compares the word
    with constants, stage 2 holds a register a check). The table's total is summed and compared over
    the cycles between the table's words (ready 3 cycles after the column words' stage 1, in
    time for the table's last word however close the words come). Throughput: one word per
    cycle.
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        super().__init__({"frame": In(FrameSignature(config)), "word": In(WORD_BITS),
                          "valid1": In(1), "word1": In(WORD_BITS),
                          "sections": Out(SectionsSignature(config)),
                          "faults": Out(HeaderFaultsSignature())})

    @property
    def config(self) -> HardwareConfig:
        return self._config

    def elaborate(self, platform):
        m = Module()
        c = self._config
        d0, slot, half = self.word, self.frame.slot, WORD_BITS // 2
        depth = {name: c.memories[name].depth for name in SECTION_NAMES}
        total_words = Signal(WORD_BITS)
        caps = {"total": total_words, "layers": self.sections.layers,
                "weight": self.sections.weight, "column": self.sections.column}
        layers, weight_words, column_words = (caps[k] for k in ("layers", "weight", "column"))
        table = _table(c, layers, weight_words, column_words, self.frame.last_word)

        # --- stage 1: which checks apply (decoded from the slot). A check is one of: the word
        # equals exp1 (k_eq: a constant of the slot, or the layer count, column words or readout
        # flag: exp1 ORs the one-hot slot's bits AND their values); it is below opnd1 (k_ge:
        # maxima, descriptor bases); plus the special ones (range: also not 0; total: the
        # table's sum; desc0: descriptor lane 0).
        exp1 = Signal(WORD_BITS)
        ecode1 = Signal(ERROR_BITS)       # the code of a k_eq or k_ge fault of the slot
        opnd_bits = max(depth["weight"] + 1, depth["bias"] + 1, c.max_layers + 1).bit_length()
        opnd1 = Signal(opnd_bits)
        k1 = {name: Signal(name=f"k_{name}1") for name in ("eq", "total", "range", "ge", "desc0")}
        cap1 = {name: Signal(name=f"cap_{name}1") for name in caps}

        def constant(value):
            return None if isinstance(value, Signal) else value

        fields = [(ecode1, lambda e: e.get("code")), (k1["eq"], lambda e: "eq" in e),
                  (k1["total"], lambda e: "total" in e), (k1["range"], lambda e: "range" in e),
                  (k1["ge"], lambda e: "range" in e or "ge" in e),
                  (k1["desc0"], lambda e: "desc0" in e),
                  *((cap1[name], lambda e, name=name: e.get("cap") == name) for name in caps)]
        for target, of in fields:
            m.d.sync += target.eq(_decoder(slot, [of(entry) for entry in table], len(target)))
        variables = [(i, e["eq"]) for i, e in enumerate(table)
                     if "eq" in e and constant(e["eq"]) is None]
        # The decoder's part must be 0 at the slots whose value is ORed in from the stream
        # (not "any value"): where most constants have a bit set, the decoder computes it as a
        # NOR of the zeros, which is 1 at every slot it is not told about, and would set that
        # bit of the layer count, column words or readout flag (a configuration-dependent
        # refusal of good streams, issue 12).
        m.d.sync += exp1.eq(_decoder(slot, [0 if "eq" in e and constant(e["eq"]) is None
                                            else constant(e.get("eq")) for e in table],
                                     WORD_BITS)
                            | or_all(slot[i].replicate(WORD_BITS) & v for i, v in variables))
        limits = [(i, e.get("range", e.get("ge"))) for i, e in enumerate(table)]
        m.d.sync += opnd1.eq(or_all(slot[i].replicate(opnd_bits) & value
                                    for i, value in limits if value is not None))
        dg1 = Signal(opnd_bits, reset_less=True)              # word1's copy for f_ge (fan-out)
        m.d.sync += dg1.eq(d0)
        # which segments of the word are not 0 (bytes, split at opnd_bits; disjoint, so that no
        # flag's LUTs are shared with another's)
        cuts = sorted({*range(0, WORD_BITS + 1, 8), opnd_bits})
        segments = list(zip(cuts, cuts[1:]))
        nonzero1 = [Signal(name=f"nonzero{a}_1") for a, _ in segments]
        m.d.sync += [flag.eq(d0[a:b] != 0) for flag, (a, b) in zip(nonzero1, segments)]
        zero1 = [~or_all(f for f, (a, _) in zip(nonzero1, segments) if a < half),
                 ~or_all(f for f, (a, _) in zip(nonzero1, segments) if a >= half)]
        high1 = or_all(f for f, (a, _) in zip(nonzero1, segments) if a >= opnd_bits)
        with m.If(self.valid1):
            for name, target in caps.items():
                with m.If(cap1[name]):
                    m.d.sync += target.eq(self.word1)

        mismatch = self._total_mismatch(m, total_words, layers, weight_words, column_words)

        # --- stage 2: a register a check (a byte's comparison, or a kind AND a comparison) ---
        k_eq2 = Signal()
        ne_exp = [Signal(name=f"ne_exp{i}_2") for i in range(WORD_BITS // 8)]
        f_ge, f_high, f_total, f_zero, f_desc0 = (Signal(name=n) for n in (
            "f_ge", "f_high", "f_total", "f_zero", "f_desc0"))
        m.d.sync += [k_eq2.eq(k1["eq"]), self.faults.code.eq(ecode1),
                     *(flag.eq(self.word1[8 * i:8 * i + 8] != exp1[8 * i:8 * i + 8])
                       for i, flag in enumerate(ne_exp)),
                     f_ge.eq(k1["ge"] & (dg1 >= opnd1)),
                     f_high.eq(k1["ge"] & high1),
                     f_total.eq(k1["total"] & or_all(mismatch)),
                     f_zero.eq(k1["range"] & zero1[0] & zero1[1]),
                     f_desc0.eq(k1["desc0"] & (zero1[0] | zero1[1]))]
        m.d.comb += [self.faults.eq.eq(k_eq2 & or_all(ne_exp)),
                     self.faults.ge.eq(f_high | f_ge), self.faults.total.eq(f_total),
                     self.faults.zero.eq(f_zero), self.faults.desc0.eq(f_desc0)]
        return m

    def _total_mismatch(self, m: Module, total_words, layers, weight_words, column_words):
        """The table's total against the sum of its section lengths, one flag a byte: summed and
        compared over the cycles between the table's words. column_words (word 22) is captured
        in its stage 1, the comparison is ready 3 cycles later, in time for word 26's stage 1
        however close the words come (the layer count's term, from word 8, has a register more:
        it shares an adder with the frame tracker's, off the critical path)."""
        lanes = [self._config.memories[name].lanes for name in SECTION_NAMES]
        assert PAYLOAD_OFFSET - 1 - (HEADER_WORDS + SECTION_ENTRY_WORDS * 2 + 1) >= 4

        def times(x, k):                  # x * k as shifts and adds
            return sum((x << i) for i in range(k.bit_length()) if (k >> i) & 1) if k else 0

        p_l, p_a, p_b, p_c, p_ab, p_sum = (Signal(24, name=n) for n in (
            "p_l", "p_a", "p_b", "p_c", "p_ab", "p_sum"))
        mismatch = [Signal(name=f"total_mismatch{k}") for k in range(4)]
        m.d.sync += [p_l.eq(times(layers, lanes[0])), p_a.eq(PAYLOAD_OFFSET + 1 + p_l),
                     p_b.eq(times(weight_words, lanes[1])),
                     p_c.eq(times(column_words, lanes[2] + lanes[3])),
                     p_ab.eq(p_a + p_b), p_sum.eq(p_ab + p_c),
                     *(mismatch[k].eq(total_words[8 * k:8 * k + 8] != p_sum[8 * k:8 * k + 8])
                       for k in range(4))]
        return mismatch

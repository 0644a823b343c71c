"""The CRC-32 of the weight bitstream (zlib's, ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC``) in the
state-space-transformed form the loader computes one 32-bit word a cycle with a one-LUT-deep
feedback loop (:class:`CrcTransform`, pure GF(2) algebra derived from ``zlib.crc32`` itself), and
the loader's check built from it (:class:`CrcCheck`). ``tests/test_crc.py`` checks both against
zlib."""

from __future__ import annotations

import functools
import operator
import zlib

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import WORD_BITS

__all__ = ["CrcTransform", "CRC32", "CrcCheck", "gf2_apply"]


def gf2_apply(rows: list[int], v: int) -> int:
    """A GF(2) matrix (``rows[i]``: the inputs of output bit ``i``) times the vector ``v``."""
    return sum((bin(row & v).count("1") & 1) << i for i, row in enumerate(rows))


class CrcTransform:
    """The zlib CRC-32 over 32-bit little-endian words in a state-space-transformed form whose
    feedback loop is one LUT deep, and whose check needs no inverse transform.

    zlib's register ``r`` (reflected: bit 0 is the first bit on the wire; the CRC is ``~r``)
    takes a word ``w`` as ``r' = F(r ^ w)``, ``F`` linear over GF(2) with up to 17 terms a bit:
    too deep for one cycle. With ``B`` the Krylov basis ``[v, Fv, ..., F^31 v]``, ``x = B^-1 r``
    evolves as ``x' = C x ^ H w``: ``C = B^-1 F B`` is a companion matrix (``x << 1``, plus
    ``taps`` where bit 31 was set) and ``H = B^-1 F`` acts on the word alone, so it is computed
    in the stages before. After a frame's CRC word zlib's register holds its residue whatever
    the frame, so the CRC word ``w`` is right iff ``C x ^ H w`` is the transformed residue,
    that is iff ``x == check ^ U w`` with ``U = C^-1 H`` (again the word alone) and
    ``check = C^-1 B^-1 residue``. Everything is derived from ``zlib.crc32`` itself (the same
    CRC as ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC``)."""

    MASK = (1 << WORD_BITS) - 1

    def __init__(self):
        n, mask = WORD_BITS, self.MASK

        def step(r, w):                                 # zlib's register after one word
            return zlib.crc32(w.to_bytes(4, "little"), r ^ mask) ^ mask

        def columns(rows):                              # rows <-> columns of a bit matrix
            return [sum(((rows[j] >> i) & 1) << j for j in range(n)) for i in range(n)]

        def inverse(rows):
            work = [[rows[i], 1 << i] for i in range(n)]
            for col in range(n):
                pivot = next((r for r in range(col, n) if (work[r][0] >> col) & 1), None)
                if pivot is None:
                    return None
                work[col], work[pivot] = work[pivot], work[col]
                for r in range(n):
                    if r != col and (work[r][0] >> col) & 1:
                        work[r] = [work[r][0] ^ work[col][0], work[r][1] ^ work[col][1]]
            return [row[1] for row in work]

        f = columns([step(1 << j, 0) for j in range(n)])
        for start in range(n):
            basis = [1 << start]
            for _ in range(n - 1):
                basis.append(gf2_apply(f, basis[-1]))
            b_inv = inverse(columns(basis))
            if b_inv is not None:
                break
        else:                                            # pragma: no cover
            raise AssertionError("the CRC-32 step has no cyclic vector")
        #: the companion matrix's feedback (F^32 v in the Krylov basis)
        self.taps = gf2_apply(b_inv, gf2_apply(f, basis[-1]))
        #: rows of H and U: bit i of H w is the parity of ``w & data_rows[i]``
        self.data_rows = columns([gf2_apply(b_inv, gf2_apply(f, 1 << j)) for j in range(n)])
        c_inv = inverse(columns([self.step(1 << j, 0) for j in range(n)]))
        self.check_rows = columns([gf2_apply(c_inv, gf2_apply(self.data_rows, 1 << j))
                                   for j in range(n)])
        #: x at the start of a frame
        self.initial = gf2_apply(b_inv, mask)
        residue = None
        for words in ([], [1, 2, 3], [mask, 0x12345678, 0]):
            r, x = mask, self.initial
            for w in words:
                r, x = step(r, w), self.step(x, w)
                assert x == gf2_apply(b_inv, r)
            crc = zlib.crc32(b"".join(w.to_bytes(4, "little") for w in words))
            assert residue in (None, step(r, crc))
            residue = step(r, crc)
            #: x before the CRC word w is ``check ^ U w`` iff w is right
            self.check = x ^ gf2_apply(self.check_rows, crc)
            assert self.check == gf2_apply(c_inv, gf2_apply(b_inv, residue))
            assert x != self.check ^ gf2_apply(self.check_rows, crc ^ 1)

    def step(self, x: int, word: int) -> int:
        """The transformed register after ``word`` (the hardware's update)."""
        x = ((x << 1) & self.MASK) ^ (self.taps if x >> (WORD_BITS - 1) else 0)
        return x ^ gf2_apply(self.data_rows, word)


#: The transform of the zlib CRC-32 that the loader computes.
CRC32 = CrcTransform()


class CrcCheck(wiring.Component):
    """The loader's CRC-32 check of a frame, one 32-bit word a cycle, in the transformed form of
    :class:`CrcTransform` (a one-LUT-deep feedback loop; no inverse transform at the end).

    Ports: ``h_word``, ``u_word`` In(32): the word entering (two copies, so that the fan-out of
    the two term networks is split; they must be equal), in the cycle the loader registers it
    (stage 0). ``valid``, ``last`` In(1): the same word's valid and TLAST flags two cycles
    later (stage 2). ``ok`` Out(1): a cycle after that (stage 3), set iff that word is the right
    CRC of the frame's words before it (one flip-flop: the verdict's commit is then one gate of
    registers; four flags a byte ANDed behind a 2.3 ns route to it were critical at three
    nextpnr seeds).

    Pipeline: stage 1 registers a partial sum of the terms ``H w`` and ``U w`` a byte of the
    word (two LUT levels each), stage 2 their sums; in stage 2 a valid word advances the
    register ``x`` (``x' = C x ^ H w``, or back to its initial value after the frame's TLAST
    word), and ``ok`` compares ``x ^ U w`` with the check constant. Latency: 3 cycles from
    ``*_word`` to ``ok``; throughput: one word a cycle.
    """

    def __init__(self):
        super().__init__({"h_word": In(WORD_BITS), "u_word": In(WORD_BITS), "valid": In(1),
                          "last": In(1), "ok": Out(1)})

    def elaborate(self, platform):
        m = Module()
        parts = {}
        for name, rows, source in (("h", CRC32.data_rows, self.h_word),
                                   ("u", CRC32.check_rows, self.u_word)):
            parts[name] = [Signal(WORD_BITS, name=f"{name}_byte{k}_1") for k in range(4)]
            for k, target in enumerate(parts[name]):
                for i, row in enumerate(rows):
                    bits = [source[j] for j in range(8 * k, 8 * k + 8) if (row >> j) & 1]
                    m.d.sync += target[i].eq(Cat(*bits).xor() if bits else 0)
        h2 = Signal(WORD_BITS)
        u2 = Signal(WORD_BITS)
        m.d.sync += [h2.eq(functools.reduce(operator.xor, parts["h"])),
                     u2.eq(functools.reduce(operator.xor, parts["u"]))]
        x = Signal(WORD_BITS, init=CRC32.initial)
        with m.If(self.valid):
            m.d.sync += x.eq(Mux(self.last, CRC32.initial,
                                 (x << 1)[:WORD_BITS] ^ h2
                                 ^ (x[-1].replicate(WORD_BITS) & CRC32.taps)))
        ok = Signal(name="crc_ok3")
        m.d.sync += ok.eq((x ^ u2) == CRC32.check)
        m.d.comb += self.ok.eq(ok)
        return m

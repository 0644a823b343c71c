"""The CRC-32 of the weight bitstream (zlib's, ``amaranth.lib.crc.catalog.CRC32_ISO_HDLC``) in the
state-space-transformed form the loader computes one 32-bit word a cycle with a one-LUT-deep
feedback loop (:class:`CrcTransform`); pure GF(2) algebra, derived from ``zlib.crc32`` itself.
``tests/test_crc.py`` checks it against zlib."""

from __future__ import annotations

import zlib

from spikepack.config import WORD_BITS

__all__ = ["CrcTransform", "CRC32", "gf2_apply"]


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

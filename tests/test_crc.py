"""The loader's transformed CRC-32 (``spikepack.hw.crc``) against zlib."""

from __future__ import annotations

import random
import zlib

import pytest

from spikepack.hw.crc import CRC32, gf2_apply

SEED = 1


@pytest.fixture
def seed():
    print(f"seed {SEED}")
    return SEED


def test_crc_transform_matches_zlib(seed):
    """The transformed CRC register (x' = C x ^ H w, reset per frame) accepts exactly zlib's CRC
    word: x == check ^ U w before the CRC word w iff w == zlib.crc32 of the words before."""
    rng = random.Random(seed)

    def u(word):
        return sum((bin(row & word).count("1") & 1) << i
                   for i, row in enumerate(CRC32.check_rows))

    for _ in range(200):
        words = [rng.getrandbits(32) for _ in range(rng.randrange(0, 40))]
        x = CRC32.initial
        for w in words:
            x = CRC32.step(x, w)
        crc = zlib.crc32(b"".join(w.to_bytes(4, "little") for w in words))
        assert x == CRC32.check ^ u(crc)
        wrong = crc ^ (1 << rng.randrange(32)) if rng.random() < 0.5 else rng.getrandbits(32)
        assert wrong == crc or x != CRC32.check ^ u(wrong)


def test_gf2_apply_is_a_matrix_vector_product():
    identity = [1 << i for i in range(8)]
    assert gf2_apply(identity, 0b1011_0010) == 0b1011_0010
    assert gf2_apply([0b11, 0b110], 0b010) == 0b11      # row 0: bits 0,1 -> 1; row 1: bits 1,2 -> 1
    assert gf2_apply([0b11], 0b11) == 0                  # parity of two ones

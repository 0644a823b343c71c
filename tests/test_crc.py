"""The loader's transformed CRC-32 (``spikepack.hw.crc``) against zlib."""

from __future__ import annotations

import random
import zlib

import pytest

from amaranth.sim import Simulator

from spikepack.hw.crc import CRC32, CrcCheck, gf2_apply

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


def test_crc_check_hardware_flags_exactly_zlibs_crc_word(seed):
    """CrcCheck in the Amaranth simulator: frames of random words, each ended by zlib's CRC word
    or a corrupted one (TLAST on it); ``ok`` is all ones, 3 cycles after a word, exactly for
    the right CRC words, and the register restarts after each TLAST."""
    rng = random.Random(seed)
    frames = []
    for _ in range(12):
        words = [rng.getrandbits(32) for _ in range(rng.randrange(0, 6))]
        crc = zlib.crc32(b"".join(w.to_bytes(4, "little") for w in words))
        good = rng.random() < 0.5
        frames.append((words + [crc if good else crc ^ (1 << rng.randrange(32))], good))
    stream = [(w, i == len(ws) - 1) for ws, _ in frames for i, w in enumerate(ws)]
    dut = CrcCheck()
    seen = []

    async def tb(ctx):
        pipe = [(0, 0, 0)] * 4          # (valid, last) enter in stage 2, ok shows in stage 3
        for cycle in range(len(stream) + 4):
            word, last = stream[cycle] if cycle < len(stream) else (0, False)
            valid = cycle < len(stream)
            ctx.set(dut.h_word, word)
            ctx.set(dut.u_word, word)
            pipe = [(valid, last, cycle)] + pipe[:-1]
            v2, l2, _ = pipe[2]
            ctx.set(dut.valid, v2)
            ctx.set(dut.last, l2)
            if cycle >= 3 and pipe[-1][0]:
                seen.append((pipe[-1][2], ctx.get(dut.ok) == 1))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    want = {}
    i = 0
    for ws, good in frames:
        i += len(ws)
        want[i - 1] = good
    got = {cycle: ok for cycle, ok in seen if cycle in want}
    assert got == want, f"seed {seed}: CRC verdicts {got} != {want}"

# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the activation buffers (``spikepack.hw.activation_buffers``) alone:
random writes through ``in_wr`` and ``hid_wr`` (often to the entry being read) and random reads
through ``act`` with random ``in_bank``, ``hid_bank`` and ``first``, against a dictionary of
entries per memory: a read in cycle t answers in t + 2 with the entry as it was before the write
of cycle t (no bypass), from the input buffer when ``first`` is high in t + 2, else from the
hidden buffer; the answer holds while ``act.en`` is low."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from spikepack.hw.activation_buffers import ActivationBuffers
from spikepack.hw.memories import READ_LATENCY
from spikepack.sim.runner import bench_seed

PARAMS = {"r4_t3_d6": dict(rows=4, timesteps=3, depth=6),
          "r1_t4_d1": dict(rows=1, timesteps=4, depth=1),
          "r8_t5_d64": dict(rows=8, timesteps=5, depth=64)}


@pytest.mark.parametrize("name", list(PARAMS))
def test_reads_answer_the_picked_buffer_two_cycles_later(name):
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed})")
    rng = random.Random(seed)
    params = PARAMS[name]
    dut = ActivationBuffers(**params)
    width = params["rows"] * params["timesteps"]
    abits = dut.addr_bits
    entries = 2 << abits
    mems = {"in": [0] * entries, "hid": [0] * entries}
    assert READ_LATENCY == 2
    # answers[k]: what the read registers hold after cycle k's read (or hold), oldest first;
    # two entries for the cycles before the first
    answers = [(0, 0), (0, 0)]
    seen = {"reads": 0, "collisions": 0, "held": 0, "first": 0}

    def entry(bank=0):
        # half the time one of two entries, so writes and reads meet
        return (bank << abits) | (rng.randrange(2) if rng.random() < 0.5
                                  else rng.randrange(1 << abits))

    async def bench(ctx):
        for cycle in range(1500):
            writes = {}
            for key, port in (("in", dut.in_wr), ("hid", dut.hid_wr)):
                en = rng.random() < 0.5
                addr, data = entry(rng.randrange(2)), rng.getrandbits(width)
                ctx.set(port.addr, addr)
                ctx.set(port.data, data)
                ctx.set(port.en, en)
                if en:
                    writes[key] = (addr, data)
            en, addr = rng.random() < 0.5, entry()
            in_bank, hid_bank, first = rng.randrange(2), rng.randrange(2), rng.randrange(2)
            for signal, value in ((dut.act.en, en), (dut.act.addr, addr),
                                  (dut.in_bank, in_bank), (dut.hid_bank, hid_bank),
                                  (dut.first, first)):
                ctx.set(signal, value)
            old_in, old_hid = answers[-2]
            want = old_in if first else old_hid
            got = ctx.get(dut.act.data)
            assert got == want, (f"seed {seed}: cycle {cycle}: act.data {got:#x}, want {want:#x} "
                                 f"({'input' if first else 'hidden'} buffer)")
            if en:
                a_in, a_hid = addr | (in_bank << abits), addr | (hid_bank << abits)
                answers.append((mems["in"][a_in], mems["hid"][a_hid]))
                seen["reads"] += 1
                seen["collisions"] += any(writes.get(key, (-1,))[0] == a
                                          for key, a in (("in", a_in), ("hid", a_hid)))
            else:
                answers.append(answers[-1])
                seen["held"] += 1
            seen["first"] += first
            for key, (waddr, data) in writes.items():
                mems[key][waddr] = data
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert min(seen.values()) > 20, f"seed {seed}: stimulus too thin: {seen}"


def test_parameters_are_checked():
    for bad in (dict(rows=0, timesteps=3, depth=4), dict(rows=4, timesteps=True, depth=4),
                dict(rows=4, timesteps=3, depth=2.0)):
        with pytest.raises(ValueError):
            ActivationBuffers(**bad)

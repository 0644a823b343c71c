# amaranth: UnusedElaboratable=no
"""The loader's verdict stage (spikepack.hw.frame_verdict.FrameVerdict) alone in the Amaranth
simulator, against a word-by-word model of its docstring: random frames of stage-2 words (with
idle cycles carrying random garbage, which must be ignored) whose faults come in the
combinations the checks produce (one group a word), CRC words that match or not, with or
without TLAST, frames cut short; the write port at t + 2 (only a good frame's payload words
before its first fault), commit at t + 2, and error, good_loads, bad_loads from t + 3."""

import random

import pytest
from amaranth.sim import Simulator

from spikepack.sim.runner import bench_seed
from spikepack.firmware.bitstream_format import ErrorCode as E
from spikepack.hw.frame_verdict import FrameVerdict
from spikepack.sim.benches.loader import small_config

SEED = bench_seed()     # SPIKEPACK_SEED replays a run
#: the fault combinations the checks produce for one word (header: eq, ge with the slot's code,
#: total, zero, desc0; descriptor: desc, large), with the word's code by the docstring's groups
CODES = [E.BAD_MAGIC, E.BAD_VERSION, E.BAD_SIGNATURE, E.BAD_HEADER, E.BAD_SECTION,
         E.TOO_LARGE, E.BAD_LENGTH, E.BAD_DESCRIPTOR]
FAULTS = [({"eq": 1}, None), ({"ge": 1}, None), ({"eq": 1, "total": 1}, None),
          ({"total": 1}, E.BAD_LENGTH), ({"zero": 1}, E.BAD_LENGTH),
          ({"desc0": 1}, E.BAD_DESCRIPTOR), ({"desc": 1}, E.BAD_DESCRIPTOR),
          ({"large": 1}, E.TOO_LARGE), ({"desc": 1, "large": 1}, E.BAD_DESCRIPTOR),
          ({"eq": 1, "large": 1}, None)]
HEADER = ("eq", "ge", "total", "zero", "desc0")


@pytest.fixture
def seed():
    print(f"seed {SEED}")
    return SEED


def random_frame(rng: random.Random, config) -> list[dict]:
    """A frame's words: payload words (write), then maybe a CRC word and extra words; a fault
    on some word (or none); TLAST on the last word."""
    n = rng.randint(1, 12)
    words = []
    for i in range(n):
        words.append({"write": int(rng.random() < 0.7), "crc": 0, "faults": {}, "code": 0,
                      "sec": rng.getrandbits(2), "word": rng.getrandbits(config.write_addr_bits),
                      "lane": rng.getrandbits(config.lane_bits), "data": rng.getrandbits(32)})
    ending = rng.choice(["good", "good", "crc_bad", "cut", "extra"])
    if ending != "cut":
        words.append({"write": 0, "crc": 1, "crc_ok": int(ending != "crc_bad"), "faults": {},
                      "code": 0, "sec": 0, "word": 0, "lane": 0, "data": rng.getrandbits(32)})
    if ending == "extra":
        words += [{"write": 0, "crc": 0, "faults": {}, "code": 0, "sec": 0, "word": 0,
                   "lane": 0, "data": 0} for _ in range(rng.randint(1, 3))]
    if rng.random() < 0.5:
        fault, group = rng.choice(FAULTS)
        w = rng.choice(words)
        w["faults"] = fault
        w["code"] = rng.choice(CODES) if group is None else int(rng.choice(CODES))
        w["group"] = group
    words[-1]["last"] = 1
    return words


def word_code(w) -> E:
    f = w["faults"]
    if f:
        return E(w["code"]) if w.get("group") is None else w["group"]
    if w["crc"]:
        return (E.NONE if w.get("last") else E.EXTRA_WORDS) if w["crc_ok"] else E.CRC_MISMATCH
    return E.TRUNCATED


def model(frames):
    """Per frame: the words written (their index in the frame), commit, the error code."""
    out = []
    for words in frames:
        faulted, first, written = False, None, []
        for i, w in enumerate(words):
            fault = bool(w["faults"])
            if w["write"] and not faulted and not fault:
                written.append(i)
            if w.get("last"):
                commit = not faulted and not fault and w["crc"] and w["crc_ok"]
                out.append((written, bool(commit), first if faulted else word_code(w)))
            elif not faulted and (fault or w["crc"]):
                first, faulted = word_code(w), True
    return out


def test_verdict_and_write_port(seed):
    config = small_config()
    rng = random.Random(seed)
    dut = FrameVerdict(config=config)
    frames = [random_frame(rng, config) for _ in range(150)]
    expected = model(frames)
    # the schedule: a word of a frame, or an idle cycle (None), each cycle; then drain
    schedule = []
    for fi, words in enumerate(frames):
        for i, w in enumerate(words):
            while rng.random() < 0.3:
                schedule.append(None)
            schedule.append((fi, i, w))
    schedule += [None] * 4
    seen = []                     # per cycle: the outputs
    layers_in = []

    def present(ctx, entry):
        w = entry[2] if entry else None
        for name in ("write", "crc", "sec", "word", "lane", "data"):
            port = getattr(dut.word, name)
            ctx.set(port, w[name] if w else rng.getrandbits(len(port)))
        last = w.get("last", 0) if w else rng.getrandbits(1)
        ctx.set(dut.word.valid, bool(w))
        ctx.set(dut.word.last, last)
        ctx.set(dut.end, bool(w) and last)
        f = w["faults"] if w else {k: rng.getrandbits(1) for k in (*HEADER, "desc", "large")}
        for name in HEADER:
            ctx.set(getattr(dut.header, name), f.get(name, 0))
        for name in ("desc", "large"):
            ctx.set(getattr(dut.descriptor, name), f.get(name, 0))
        ctx.set(dut.header.code, w["code"] if w else rng.getrandbits(4))

    async def bench(ctx):
        previous = None
        for entry in schedule:
            present(ctx, entry)
            # crc_ok is the stage-3 word's: the one presented a cycle ago
            w = previous[2] if previous else None
            if w and w["crc"]:
                ctx.set(dut.crc_ok, 1 if w["crc_ok"] else 0)
            else:
                ctx.set(dut.crc_ok, rng.getrandbits(1))
            layers = rng.getrandbits(len(dut.layers))
            ctx.set(dut.layers, layers)
            layers_in.append(layers)
            wr = dut.write
            seen.append({name: ctx.get(getattr(wr, name)) for name in (
                "en", "mem", "addr", "lane", "data", "commit", "commit_layers")}
                | {name: ctx.get(getattr(dut, name)) for name in ("error", "good_loads",
                                                                   "bad_loads")})
            previous = entry
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()

    # the model's decisions, word by word, at the docstring's cycles
    writes = {fi: set(e[0]) for fi, e in enumerate(expected)}
    good = bad = 0
    commits = set()
    for c, entry in enumerate(schedule):
        if entry is None:
            continue
        fi, i, w = entry
        out = seen[c + 2]
        where = (fi, i, frames[fi], seed)
        assert out["en"] == (i in writes[fi]), where
        if out["en"]:
            assert (out["mem"], out["addr"], out["lane"], out["data"]) == (
                w["sec"], w["word"], w["lane"], w["data"]), where
        if w.get("last"):
            _, commit, code = expected[fi]
            assert out["commit"] == commit, where
            commits.add(c + 2)
            if commit:
                assert out["commit_layers"] == layers_in[c + 1], where
            good, bad = good + commit, bad + (not commit)
            after = seen[c + 3]
            assert (E(after["error"]), after["good_loads"], after["bad_loads"]) == (
                code, good, bad), where
    assert not any(seen[c]["commit"] for c in range(len(seen)) if c not in commits)
    assert {e[2] for e in expected} >= {E.NONE, E.CRC_MISMATCH, E.TRUNCATED, E.EXTRA_WORDS,
                                        E.BAD_LENGTH, E.BAD_DESCRIPTOR, E.TOO_LARGE}

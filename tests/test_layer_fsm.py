# amaranth: UnusedElaboratable=no
"""Amaranth-simulator test of the layer-sequencing state machine (``spikepack.hw.layer_fsm``)
alone, against a Python reference of its docstring (:class:`Reference`: phases IDLE, HOLD, a
descriptor read's two cycles, START, RUN, DRAIN; the registered start decision), cycle by cycle.

The testbench plays everything around it, at random: images arriving at the input writer and
leaving on ``release`` (``image_ready`` looking past a release in its cycle, as the input
writer's), ``run`` and ``start``, commits changing ``layer_count`` between inferences (0
sometimes), a descriptor memory of random words with read latency 2 (its data holds, so a read
at the wrong cycle offers the wrong word), an engine that makes the offer wait W_l cycles and
sends its last beat L_l cycles after the handshake (other beats and readout stalls at random;
beats outside RUN, which must be ignored), and an output slice that reports ``drained`` D
cycles after the readout's last beat (noise on it outside DRAIN). Every inference's
``cycles_last`` must be the docstring's ``1 + sum(3 + W_l + L_l) + D``."""

from __future__ import annotations

import random

import pytest
from amaranth import Shape
from amaranth.sim import Simulator

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import DESCRIPTOR_FIELDS
from spikepack.hw.layer_engine import descriptor_layout
from spikepack.hw.layer_fsm import LayerFSM
from spikepack.sim.runner import bench_seed

CONFIGS = {
    "dense_4layers": HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=1, weight_bits=4,
                                    bias_bits=12, threshold_bits=10, max_fan_in=24,
                                    max_neurons=8, max_layers=4, weight_depth=64),
    "conv_3layers": HardwareConfig(rows=4, cols=2, timesteps=3, tau_shift=1, weight_bits=4,
                                   bias_bits=12, threshold_bits=10, max_fan_in=64,
                                   max_neurons=16, max_layers=3, weight_depth=64, max_channels=6,
                                   max_map_side=8, max_map_words=256, max_kernel=3),
}

REGISTERS = ("busy", "armed", "release", "cycles_last", "runh", "runr", "conv")
STROBES = ("done", "layer_done", "start_ignored")


class Reference:
    """The layer sequencing as its docstring states it, one call of :meth:`step` a cycle:
    ``step(inputs)`` returns the outputs of that cycle (``None``: not specified then) and moves
    to the next."""

    def __init__(self, words, conv: bool):
        self.words, self.conv_config = words, conv
        self.phase = "idle"                 # idle, hold, read, wait, offer, run, drain
        self.layer = self.count = 0
        self.armed = self.ready = self.go = 0
        self.cycles = self.cycles_last = self.done_q = self.release = self.conv = 0

    def step(self, i):
        busy = self.phase != "idle"
        last = self.layer == self.count - 1
        out = {"busy": int(busy), "armed": self.armed, "release": self.release,
               "cycles_last": self.cycles_last, "valid": int(self.phase == "offer"),
               "desc_en": int(self.phase == "read"),
               "runh": int(self.phase == "run" and not last),
               "runr": int(self.phase in ("run", "drain") and last),
               "conv": self.conv if self.phase in ("run", "drain") else None,
               "layer": self.layer if busy else None,
               "first": int(self.layer == 0) if busy else None,
               "hid_bank": (self.layer - 1) % 2 if busy and self.layer else None,
               "readout": int(last) if self.phase == "offer" else None}
        end = (self.phase == "run" and i["beat_valid"] and i["beat_last"]
               and (not last or i["beat_ready"]))
        done = self.phase == "drain" and i["drained"]
        start_now = i["start"] and self.ready and not self.go and not self.armed
        out.update(layer_done=int(end), done=int(done),
                   start_ignored=int(i["start"] and (busy or self.armed)))
        # the next cycle
        armed, release = self.armed, int(end and self.layer == 0)
        if self.phase == "idle":
            if self.go or start_now:
                self.phase, self.layer, armed = "hold", 0, 0
        elif self.phase == "hold":
            self.phase = "read"
        elif self.phase == "read":
            if self.layer == 0:             # FIRST: the layer count of this inference
                self.count = i["layer_count"]
            self.phase = "wait" if self.count else "idle"
        elif self.phase == "wait":
            self.phase = "offer"
        elif self.phase == "offer" and i["eng_ready"]:
            self.phase = "run"
            if self.conv_config:
                self.conv = self.words[self.layer] >> DESCRIPTOR_FIELDS["conv"][0] & 1
        elif end:
            self.phase = "drain" if last else "read"
            self.layer += not last
        elif done:
            self.phase = "idle"
        if i["start"] and not (busy or self.armed) and not start_now:
            armed = 1
        self.release = release
        self.cycles_last = self.cycles if self.done_q else self.cycles_last
        self.cycles = self.cycles + 1 if busy else 0
        self.done_q = int(done)
        ready = i["image_ready"] and i["layer_count"] != 0
        self.go = int(ready and (i["run"] or self.armed))
        self.ready, self.armed = int(ready), armed
        return out


@pytest.mark.parametrize("name", list(CONFIGS))
@pytest.mark.parametrize("case", range(3))
def test_layer_sequencing_follows_the_reference(name, case):
    seed = bench_seed() + case
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed} and case 0)")
    rng = random.Random(seed)
    config = CONFIGS[name]
    dut = LayerFSM(config=config)
    spec = config.memories["descriptor"]
    words = [rng.getrandbits(spec.word_bits) for _ in range(spec.depth)]
    ref = Reference(words, config.conv)
    # the payload's members but the readout flag: (name, offset in the word, width)
    fields = [(f, DESCRIPTOR_FIELDS[f][0], Shape.cast(shape).width)
              for f, shape in descriptor_layout(config).members.items() if f != "readout"]
    seen = {"done": 0, "hidden": 0, "armed": 0, "ignored": 0, "no_layers": 0, "waits": 0}

    async def bench(ctx):
        images, layer_count, run = 0, 1, 1
        desc_pipe = [None, None]            # the descriptor memory's two read stages
        desc_q = 0
        waits = None                        # the engine's remaining wait on an offer
        beats_left = None                   # cycles to the layer's last beat, after a handshake
        readout_last = False                # the readout's last beat is offered
        drain_in = None                     # cycles to `drained`, after the readout's last beat
        plan = {}                           # this inference: HOLD cycle, sum of W_l + L_l, ...
        done_at = None
        for cycle in range(4000):
            busy = ctx.get(dut.busy)
            # the input writer: image_ready looks past a release in the same cycle
            if ctx.get(dut.release):
                images -= 1
                assert images >= 0, f"seed {seed}: cycle {cycle}: a release without an image"
            # the world: images, control, commits between inferences
            if images < 2 and rng.random() < 0.05:
                images += 1
            if rng.random() < 0.01:
                run ^= 1
            start = int(rng.random() < 0.03)
            if not busy and rng.random() < 0.02:
                layer_count = 0 if rng.random() < 0.1 else rng.randint(1, config.max_layers)
            # the descriptor memory: read latency 2, data held
            if desc_pipe[1] is not None:
                desc_q = words[desc_pipe[1]]
            desc_pipe = [ctx.get(dut.descriptor.addr) if ctx.get(dut.descriptor.en) else None,
                         desc_pipe[0]]
            # the engine
            eng_ready = 0
            if ctx.get(dut.eng_start.valid):
                if waits is None:
                    waits = rng.choice([0, 0, 1, 3])
                    plan["cycles"] = plan.get("cycles", 0) + 3 + waits
                    seen["waits"] += waits
                if waits == 0:
                    eng_ready, waits = 1, None
                    beats_left = rng.randint(1, 6)
                else:
                    waits -= 1
            beat_valid = beat_last = 0
            beat_ready = int(rng.random() < 0.6)
            if beats_left is not None and not eng_ready:
                beats_left = max(beats_left - 1, 0)
                if beats_left == 0:
                    beat_valid = beat_last = 1
                else:
                    beat_valid = int(rng.random() < 0.5)
            elif beats_left is None:        # noise outside RUN (DRAIN included): ignored
                beat_valid, beat_last = int(rng.random() < 0.5), int(rng.random() < 0.5)
            drained = int(rng.random() < 0.3)
            if drain_in is not None:
                drain_in -= 1
                drained = int(drain_in == 0)
            inputs = {"image_ready": int(images > 0), "layer_count": layer_count, "run": run,
                      "start": start, "eng_ready": eng_ready, "beat_valid": beat_valid,
                      "beat_ready": beat_ready, "beat_last": beat_last, "drained": drained}
            for key, signal in (("image_ready", dut.image_ready), ("layer_count", dut.layer_count),
                                ("run", dut.run), ("start", dut.start),
                                ("eng_ready", dut.eng_start.ready),
                                ("beat_valid", dut.beat_valid), ("beat_ready", dut.beat_ready),
                                ("beat_last", dut.beat_last), ("drained", dut.drained)):
                ctx.set(signal, inputs[key])
            ctx.set(dut.descriptor.data, desc_q)
            layer = ref.layer
            want = ref.step(inputs)
            got = {key: ctx.get(getattr(dut, key)) for key in REGISTERS + STROBES
                   + ("layer", "first", "hid_bank")}
            got["valid"] = ctx.get(dut.eng_start.valid)
            got["desc_en"] = ctx.get(dut.descriptor.en)
            got["readout"] = ctx.get(dut.eng_start.payload.readout)
            for key, value in want.items():
                if value is not None and key in got:
                    assert got[key] == value, (f"seed {seed}: cycle {cycle}: {key} {got[key]}, "
                                               f"want {value}")
            if want["valid"]:
                assert ctx.get(dut.descriptor.addr) == layer
                for f, offset, width in fields:
                    value = words[layer] >> offset & ((1 << width) - 1)
                    assert ctx.get(getattr(dut.eng_start.payload, f)) == value, \
                        f"seed {seed}: cycle {cycle}: layer {layer}: {f}"
            # bookkeeping for the next cycle and the cycle formula
            if want["busy"] and "hold" not in plan:
                plan["hold"] = cycle
            seen["armed"] += want["armed"] and not busy
            seen["ignored"] += want["start_ignored"]
            if want["layer_done"]:
                beats_left = None
                plan["cycles"] += cycle - plan.pop("handshake")
                if want["runr"]:
                    drain_in = rng.randint(1, 4)
                    plan["cycles"] += drain_in
                else:
                    seen["hidden"] += 1
            if eng_ready:
                plan["handshake"] = cycle
            if want["done"]:
                assert cycle - plan["hold"] + 1 == 1 + plan["cycles"], f"seed {seed}: {plan}"
                done_at, drain_in = (cycle, 1 + plan["cycles"]), None
                plan = {}
                seen["done"] += 1
            if done_at and cycle == done_at[0] + 2:
                assert ctx.get(dut.cycles_last) == done_at[1], f"seed {seed}: cycles_last"
            if plan.get("hold") is not None and not want["busy"] and cycle > plan["hold"]:
                seen["no_layers"] += 1      # FIRST found no layers and went back to IDLE
                plan = {}
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    print(seen)
    assert seen["done"] >= 10 and seen["hidden"] >= 5 and seen["ignored"] and seen["waits"], \
        f"seed {seed}: stimulus too thin: {seen}"


def test_config_is_checked():
    with pytest.raises(TypeError):
        LayerFSM(config={"rows": 4})

"""Bitstream loader benches: shared stream generators (random networks, bad streams), and the
cocotb bench of ``LoaderWithMemories`` under Verilator (run by ``tests/test_loader_rtl.py``).

The reference for every verdict is :func:`spikepack.firmware.bitstream.loader_outcome`, the
software parser's stream phase, which checks in the loader's order; directed bad streams also
carry the code they must produce, written here by hand, and the bench checks both.
"""

from __future__ import annotations

import dataclasses
import zlib
from dataclasses import dataclass

import numpy as np
from amaranth import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator

from spikepack.config import DESCRIPTOR_LANES, HardwareConfig
from spikepack.firmware import bitstream as bs
from spikepack.firmware.layout import (DESCRIPTOR_FIELDS, NetworkImage, lanes_to_words,
                                       layout_network)
from spikepack.hw.loader_harness import LoaderWithMemories
from spikepack.hw.memories import MEMORY_INDEX, MEMORY_NAMES, READ_LATENCY

E = bs.ErrorCode
_FIELD = {name: index for index, name in enumerate(bs.HEADER_FIELDS)}


def small_config(**overrides) -> HardwareConfig:
    """A small configuration with multi-lane words and padded fields (weights 2 rows x 4 cols x
    6 bits = 48 bits in 2 lanes; thresholds 4 x 12 bits in 2 lanes)."""
    fields = dict(rows=4, cols=4, timesteps=2, tau_shift=1, weight_bits=6, bias_bits=16,
                  threshold_bits=12, max_fan_in=12, max_neurons=12, max_layers=3, weight_depth=32)
    fields.update(overrides)
    return HardwareConfig(**fields)


def random_layers(rng: np.random.Generator, config: HardwareConfig, *, extremes: bool = False,
                  sizes=None):
    """A random network that fits ``config``: 1..max_layers layers of 1..max sizes (or of layer
    sizes ``sizes``, ``[N0, M0, M1, ...]``), values over the hardware's full ranges
    (``extremes``: every value at a range end); halved (and layers dropped) until it fits."""
    if sizes is None:
        count = int(rng.integers(1, config.max_layers + 1))
        sizes = [int(rng.integers(1, config.max_fan_in + 1))]
        sizes += [int(rng.integers(1, min(config.max_neurons, config.max_fan_in) + 1))
                  for _ in range(count - 1)]
        sizes += [int(rng.integers(1, config.max_neurons + 1))]
    # keep the weight memory within its depth: shrink until it fits
    while True:
        try:
            layers = _draw(rng, config, sizes, extremes)
            layout_network(layers, config)
            return layers
        except Exception:                      # noqa: BLE001 - too large for the depth: shrink
            if max(sizes) == 1 and len(sizes) > 2:
                sizes = sizes[:-1]                     # ... and then drop layers
            else:
                sizes = [max(1, s // 2) for s in sizes]


def _draw(rng, config, sizes, extremes):
    wb, bb, tb = config.weight_bits, config.bias_bits, config.threshold_bits
    layers = []
    for i in range(len(sizes) - 1):
        N, M = sizes[i], sizes[i + 1]
        lo, hi = -(1 << (wb - 1)), (1 << (wb - 1)) - 1
        b_lo, b_hi = -(1 << (bb - 1)), (1 << (bb - 1)) - 1
        if extremes:
            w = rng.choice([lo, hi], size=(M, N))
            b = rng.choice([b_lo, b_hi], size=M)
            t = rng.choice([1, (1 << tb) - 1], size=M)
        else:
            w = rng.integers(lo, hi + 1, size=(M, N))
            b = rng.integers(b_lo, b_hi + 1, size=M)
            t = rng.integers(1, 1 << tb, size=M)
        layers.append((w.astype(np.int64), b.astype(np.int64),
                       None if i == len(sizes) - 2 else t.astype(np.int64)))
    return layers


def with_crc(words) -> list[int]:
    """``words`` with the last word replaced by the CRC-32 of the others."""
    words = [int(w) & 0xFFFFFFFF for w in words]
    return words[:-1] + [zlib.crc32(bs.bytes_of(words[:-1]))]


def section_span(words, name: str) -> tuple[int, int]:
    """``[start, stop)`` word indices of a section's payload in a good stream."""
    offset = bs.PAYLOAD_OFFSET
    for k, section in enumerate(bs.SECTION_NAMES):
        entry = bs.HEADER_WORDS + bs.SECTION_ENTRY_WORDS * k
        size = words[entry + 1] * words[entry + 2]
        if section == name:
            return offset, offset + size
        offset += size
    raise KeyError(name)


@dataclass
class BadStream:
    label: str
    beats: list[int]
    expected: E | None          # a hand-written expectation, or None (reference only)


BAD_KINDS = ("header", "table", "descriptor", "weight", "bias", "threshold", "crc", "truncate",
             "extra", "signature", "oversize", "total", "bad_descriptor", "version", "garbage",
             "multi", "lengths", "lanes", "geometry", "desc_limits", "ignored", "software")


def bad_streams(rng: np.random.Generator, good: list[int], config: HardwareConfig,
                other: HardwareConfig, count: int, *, offset: int = 0) -> list[BadStream]:
    """``count`` frames derived from the good stream ``good``, cycling through every kind of
    :data:`BAD_KINDS` (from kind number ``offset`` on): bit flips in each header field,
    the table and each section, truncations, extra words, wrong signatures, oversize and
    inconsistent lengths (zero sections, descriptor or threshold words, total), wrong lane
    counts, another geometry, bad descriptors (bases, flags, zero sizes, broken chain, fan-in or neurons above
    the maxima), garbage; and two kinds the loader accepts: random bits in the bits it ignores
    ("ignored", which parse accepts too) and payloads that are no network's layout
    ("software": a hidden threshold of 0, or a weight of an input beyond N, which only parse
    refuses, as BadPayload)."""
    out: list[BadStream] = []
    n = len(good)
    spans = {name: section_span(good, name) for name in bs.SECTION_NAMES}
    table = (bs.HEADER_WORDS, bs.PAYLOAD_OFFSET)
    literal_flip = {"magic": E.BAD_MAGIC, "version": E.BAD_VERSION, "signature": E.BAD_SIGNATURE,
                    "section_count": E.BAD_SECTION, **{f: E.BAD_HEADER for f in (
                        "timesteps", "tau_shift", "weight_bits", "neuron", "rows", "cols",
                        "rows_per_word", "bias_bits", "threshold_bits")}}

    def flip(words, index):
        words = list(words)
        words[index] ^= 1 << int(rng.integers(32))
        return words

    def set_fields(changes, fix_crc=True):
        words = list(good)
        for index, value in changes.items():
            words[index] = value & 0xFFFFFFFF
        return with_crc(words) if fix_crc else words

    def descriptor_lane(layer, lane):
        return spans["descriptor"][0] + DESCRIPTOR_LANES * layer + lane

    layer_count = good[_FIELD["layer_count"]]
    kinds = BAD_KINDS
    entries = {name: bs.HEADER_WORDS + bs.SECTION_ENTRY_WORDS * k
               for k, name in enumerate(bs.SECTION_NAMES)}
    ignored = bs.ignored_stream_bits(bs.bytes_of(good), config)
    while len(out) < count:
        kind = kinds[(offset + len(out)) % len(kinds)]
        if kind == "header":
            field = bs.HEADER_FIELDS[int(rng.integers(bs.HEADER_WORDS))]
            out.append(BadStream(f"flip header {field}", flip(good, _FIELD[field]),
                                 literal_flip.get(field)))
        elif kind == "table":
            index = int(rng.integers(*table))
            part = (index - bs.HEADER_WORDS) % bs.SECTION_ENTRY_WORDS
            out.append(BadStream(f"flip table word {index}", flip(good, index),
                                 E.BAD_SECTION if part != 1 else None))
        elif kind in bs.SECTION_NAMES or kind == "crc":
            start, stop = spans[kind] if kind != "crc" else (n - 1, n)
            index = int(rng.integers(start, stop))
            # CRC-32 catches every single-word error; descriptors are checked before it
            out.append(BadStream(f"flip {kind} word {index}", flip(good, index),
                                 None if kind == "descriptor" else E.CRC_MISMATCH))
        elif kind == "truncate":
            cut = int(rng.integers(1, n))
            out.append(BadStream(f"truncate to {cut} words", good[:cut], E.TRUNCATED))
        elif kind == "extra":
            extra = [int(v) for v in rng.integers(0, 1 << 32, size=int(rng.integers(1, 6)))]
            out.append(BadStream(f"{len(extra)} extra words", good + extra, E.EXTRA_WORDS))
        elif kind == "signature":
            words = set_fields({_FIELD["signature"]: other.signature})
            out.append(BadStream("signature of another config", words, E.BAD_SIGNATURE))
        elif kind == "oversize":
            choice = int(rng.integers(3))
            if choice == 0:
                words = set_fields({_FIELD["layer_count"]: config.max_layers + 1})
            else:
                name = ("weight", "bias")[choice - 1]
                entry = bs.HEADER_WORDS + bs.SECTION_ENTRY_WORDS * bs.SECTION_NAMES.index(name)
                size = int(rng.choice([config.memories[name].depth + 1, 0xFFFFFFFF,
                                       1 << int(rng.integers(12, 32))]))
                words = set_fields({entry + 1: size})
            out.append(BadStream(f"oversize ({choice})", words, E.TOO_LARGE))
        elif kind == "total":
            delta = int(rng.choice([-1, 1, 1000]))
            words = set_fields({_FIELD["total_words"]: good[_FIELD["total_words"]] + delta})
            out.append(BadStream(f"total {delta:+}", words, E.BAD_LENGTH))
        elif kind == "bad_descriptor":
            layer = int(rng.integers(layer_count))
            which = int(rng.integers(4))
            if which == 0:
                weight_words = good[bs.HEADER_WORDS + bs.SECTION_ENTRY_WORDS * 1 + 1]
                changes = {descriptor_lane(layer, 1): weight_words}   # base just past the end
            elif which == 1:
                bias_words = good[bs.HEADER_WORDS + bs.SECTION_ENTRY_WORDS * 2 + 1]
                changes = {descriptor_lane(layer, 2): bias_words}
            elif which == 2:
                changes = {descriptor_lane(layer, 3): good[descriptor_lane(layer, 3)] ^ 1}
            else:
                lane0 = good[descriptor_lane(layer, 0)]
                changes = {descriptor_lane(layer, 0): lane0 & 0xFFFF0000}   # fan-in 0
            out.append(BadStream(f"descriptor {layer} field {which}", set_fields(changes),
                                 E.BAD_DESCRIPTOR))
        elif kind == "version":
            # version 1 (the dense-only format) or any other but the current one
            version = 1 if rng.random() < 0.3 else int(rng.integers(0, 1 << 32))
            if version == bs.FORMAT_VERSION:
                continue
            words = set_fields({_FIELD["version"]: version})
            out.append(BadStream("version", words, E.BAD_VERSION))
        elif kind == "garbage":
            words = [int(v) for v in rng.integers(0, 1 << 32, size=int(rng.integers(1, 40)))]
            expected = E.BAD_MAGIC if words[0] != bs.BITSTREAM_MAGIC else None
            out.append(BadStream("garbage", words, expected))
        elif kind == "multi":
            words = list(good)
            for _ in range(int(rng.integers(2, 6))):
                words = flip(words, int(rng.integers(n)))
            if words == good:
                continue
            out.append(BadStream("multiple flips", words, None))
        elif kind == "lengths":
            choice = int(rng.integers(5))
            if choice == 0:            # descriptor words != layer count
                words = set_fields({entries["descriptor"] + 1: layer_count + int(rng.choice([-1, 1]))})
            elif choice == 1:          # threshold words != bias words
                words = set_fields({entries["threshold"] + 1: good[entries["bias"] + 1] + 1})
            elif choice == 2:          # an empty weight or bias section
                words = set_fields({entries[str(rng.choice(["weight", "bias"]))] + 1: 0})
            elif choice == 3:          # no layers
                words = set_fields({_FIELD["layer_count"]: 0})
            else:                      # one layer fewer in header and table (total stays)
                words = set_fields({_FIELD["layer_count"]: layer_count - 1,
                                    entries["descriptor"] + 1: layer_count - 1})
            out.append(BadStream(f"lengths ({choice})", words, E.BAD_LENGTH))
        elif kind == "lanes":
            name = bs.SECTION_NAMES[int(rng.integers(4))]
            lanes = good[entries[name] + 2]
            words = set_fields({entries[name] + 2: lanes + int(rng.choice([-1, 1, 7]))})
            out.append(BadStream(f"{name} lanes", words, E.BAD_SECTION))
        elif kind == "geometry":       # a fixed header field set to another value
            field = str(rng.choice(["timesteps", "tau_shift", "weight_bits", "neuron", "rows",
                                    "cols", "rows_per_word", "bias_bits", "threshold_bits"]))
            value = good[_FIELD[field]] + int(rng.integers(1, 1 << 32))
            out.append(BadStream(f"header {field} changed", set_fields({_FIELD[field]: value}),
                                 E.BAD_HEADER if value & 0xFFFFFFFF != good[_FIELD[field]]
                                 else None))
        elif kind == "desc_limits":
            layer = int(rng.integers(layer_count))
            lane0 = good[descriptor_lane(layer, 0)]
            fan_in, neurons = lane0 & 0xFFFF, lane0 >> 16
            choice = int(rng.integers(4))
            if choice == 0:            # neurons above max_neurons (the next fan-in follows)
                changes = {descriptor_lane(layer, 0): fan_in | (config.max_neurons + 1) << 16}
                expected = E.TOO_LARGE if config.max_neurons < 0xFFFF else None
            elif choice == 1:          # layer 0's fan-in above max_fan_in (no chain to break)
                first = good[descriptor_lane(0, 0)]
                changes = {descriptor_lane(0, 0): (config.max_fan_in + 1) | (first & 0xFFFF0000)}
                expected = E.TOO_LARGE if config.max_fan_in < 0xFFFF else None
            elif choice == 2:          # zero neurons
                changes = {descriptor_lane(layer, 0): fan_in}
                expected = E.BAD_DESCRIPTOR
            else:                      # the chain: a fan-in that is not the previous neurons
                changes = {descriptor_lane(layer, 0): ((fan_in % 0xFFFF) + 1) | neurons << 16}
                expected = E.BAD_DESCRIPTOR if layer > 0 else None
            out.append(BadStream(f"descriptor {layer} limits ({choice})", set_fields(changes),
                                 expected))
        elif kind == "ignored":
            words = with_crc([w ^ (int(rng.integers(0, 1 << 32)) & m)
                              for w, m in zip(good, ignored)])
            out.append(BadStream("random bits in ignored fields", words, E.NONE))
        else:                          # "software": accepted by the loader, refused by parse
            start, stop = section_span(good, "threshold")
            if layer_count > 1 and rng.random() < 0.5:
                words = set_fields({start: good[start] & ~((1 << config.threshold_bits) - 1)})
                out.append(BadStream("hidden threshold 0", words, E.NONE))
            else:
                # every bit of the weight section: the ones that are neither ignored nor a
                # weight of a real input are inputs beyond N; set one, if the layout has any
                ws, we = section_span(good, "weight")
                words = with_crc([w | (~m & 0xFFFFFFFF) if ws <= i < we else w
                                  for i, (w, m) in enumerate(zip(good, ignored))])
                out.append(BadStream("every used weight bit set", words, E.NONE))
    return out


def conv_config(**overrides) -> HardwareConfig:
    """A small conv configuration (multi-lane weight and threshold words, as
    :func:`small_config`; conv limits small enough that random geometries reach them)."""
    fields = dict(rows=4, cols=4, timesteps=2, tau_shift=1, weight_bits=6, bias_bits=16,
                  threshold_bits=12, max_fan_in=128, max_neurons=12, max_layers=4,
                  weight_depth=256, max_channels=6, max_map_side=8, max_map_words=160,
                  max_kernel=5)
    fields.update(overrides)
    return HardwareConfig(**fields)


def random_conv_layers(rng: np.random.Generator, config: HardwareConfig, *,
                       extremes: bool = False):
    """The hardware layers of a random conv network that fits ``config`` (the benches'
    ``random_plan`` and ``conv_model``: 1-2 conv layers with pooling, then dense layers)."""
    from spikepack.sim.benches.stimulus import conv_model, random_plan
    plan = random_plan(rng, config, max_side=config.max_map_side,
                       max_channels=config.max_channels, max_kernel=config.max_kernel,
                       max_convs=min(2, config.max_layers - 1),
                       max_dense=min(2, config.max_layers - 1), max_neurons=config.max_neurons)
    return conv_model(rng, config, plan, extreme=extremes).hardware_layers(config.rows)


def with_descriptor(words, layer: int, **fields) -> list[int]:
    """A stream ``words`` with fields of layer ``layer``'s descriptor set (each value masked to
    its field's width) and the CRC word recomputed."""
    start = section_span(words, "descriptor")[0] + DESCRIPTOR_LANES * layer
    lanes = list(words[start:start + DESCRIPTOR_LANES])
    word = sum(int(v) << (32 * k) for k, v in enumerate(lanes))
    for name, value in fields.items():
        offset, width = DESCRIPTOR_FIELDS[name]
        mask = ((1 << width) - 1) << offset
        word = word & ~mask | (int(value) << offset) & mask
    out = list(words)
    out[start:start + DESCRIPTOR_LANES] = [(word >> (32 * k)) & 0xFFFFFFFF
                                           for k in range(DESCRIPTOR_LANES)]
    return with_crc(out)


def conv_bad_streams(rng: np.random.Generator, good: list[int], config: HardwareConfig,
                     count: int) -> list[BadStream]:
    """``count`` frames derived from the good conv stream ``good`` by changing layer
    descriptors: one field set to a value at or beyond an edge of its range (0, 1, the
    hardware's limit and one more, the field's largest, its value +-1, any), a conv
    geometry redrawn with the fan-in and pooled map made consistent again (so that the checks
    behind them, kernel, map words and the next layer's chain, are reached), the conv flag
    set on a dense layer or cleared on a conv one, or a random bit of a lane. No expected
    code: the reference is ``loader_outcome``."""
    from spikepack.firmware.layout import ConvGeometry, LayerDescriptor
    start = section_span(good, "descriptor")[0]
    count_layers = good[_FIELD["layer_count"]]
    descs = [LayerDescriptor.from_lanes(good[start + DESCRIPTOR_LANES * i:
                                             start + DESCRIPTOR_LANES * (i + 1)])
             for i in range(count_layers)]
    convs = [i for i, d in enumerate(descs) if d.conv] or [0]
    limit = {"fan_in": config.max_fan_in, "neurons": max(config.max_neurons, config.max_channels),
             "in_channels": config.max_channels, "in_height": config.max_map_side,
             "in_width": config.max_map_side, "kernel_h": config.max_kernel,
             "kernel_w": config.max_kernel, "stride_h": 3, "stride_w": 3, "pad_h": 7,
             "pad_w": 7, "pool_h": 7, "pool_w": 7, "out_height": config.max_map_side,
             "out_width": config.max_map_side}
    out: list[BadStream] = []
    while len(out) < count:
        layer = int(rng.choice(convs)) if rng.random() < 0.8 else int(rng.integers(count_layers))
        d = descs[layer]
        kind = int(rng.integers(5))
        if kind == 0:                  # one field at or beyond an edge
            name = str(rng.choice(list(limit) + ["readout", "conv"]))
            width = DESCRIPTOR_FIELDS[name][1]
            top = (1 << width) - 1
            now = getattr(d, name)
            lim = limit.get(name, 1)
            value = int(rng.choice([0, 1, lim, lim + 1, top, now + 1, max(0, now - 1),
                                    int(rng.integers(0, top + 1))]))
            words = with_descriptor(good, layer, **{name: min(value, top)})
            label = f"descriptor {layer} {name} = {min(value, top)}"
        elif kind == 1:                # a consistent conv geometry
            g = ConvGeometry.of(d) if d.conv else ConvGeometry(1, 1, 1, 1, 1)
            change = {}
            for name in rng.choice(["in_channels", "in_height", "in_width", "kernel_h",
                                    "kernel_w", "stride_h", "stride_w", "pad_h", "pad_w",
                                    "pool_h", "pool_w"], size=int(rng.integers(1, 4))):
                change[str(name)] = int(rng.integers(0 if rng.random() < 0.1 else 1,
                                                     limit[str(name)] + 2))
            g = dataclasses.replace(g, **change)
            fields = dict(change)
            if min(g.kernel_h, g.kernel_w, g.stride_h, g.stride_w, g.pool_h, g.pool_w) > 0:
                fields["fan_in"] = min(g.patch(config.rows), 0xFFFF)
                fields["out_height"] = max(0, min(g.out_height, 255))
                fields["out_width"] = max(0, min(g.out_width, 255))
            fields["conv"] = 1
            words = with_descriptor(good, layer, **fields)
            label = f"descriptor {layer} geometry {fields}"
        elif kind == 2:                # the conv flag toggled
            words = with_descriptor(good, layer, conv=int(not d.conv))
            label = f"descriptor {layer} conv flag toggled"
        elif kind == 3:                # a random bit of a lane
            lane = int(rng.integers(DESCRIPTOR_LANES))
            words = list(good)
            words[start + DESCRIPTOR_LANES * layer + lane] ^= 1 << int(rng.integers(32))
            words = with_crc(words)
            label = f"descriptor {layer} lane {lane} bit flip"
        else:                          # the chain: the next layer's input changed
            if layer + 1 >= count_layers:
                continue
            nxt = descs[layer + 1]
            name = "in_channels" if nxt.conv and rng.random() < 0.5 else (
                "in_height" if nxt.conv and rng.random() < 0.5 else "fan_in")
            value = getattr(nxt, name) + int(rng.choice([-1, 1]))
            words = with_descriptor(good, layer + 1, **{name: max(0, value)})
            label = f"descriptor {layer + 1} {name} off by one"
        if words == good:
            continue
        out.append(BadStream(label, words, None))
    return out


def stream_image(beats, config: HardwareConfig) -> tuple[dict[str, list[int]], int]:
    """What an accepted stream commits: its payload sections as wide words (parse_stream's
    images, whatever their ignored bits hold), and its layer count."""
    stream = bs.parse_stream(bs.bytes_of(beats), config)
    return ({name: lanes_to_words(a) for name, a in stream.images.items()},
            stream.header["layer_count"])


def image_words(image: NetworkImage) -> dict[str, list[int]]:
    """Each memory's used words as wide integers (lane 0 in the low bits)."""
    return {name: lanes_to_words(array) for name, array in image.memories.items()}


# --- the Amaranth-simulator harness (tests/test_loader*.py) -----------------------------------

class Harness:
    """Drives a LoaderWithMemories in an async testbench and tracks what must be committed."""

    def __init__(self, ctx, dut, config, rng):
        self.ctx, self.dut, self.config, self.rng = ctx, dut, config, rng
        self.good = self.bad = self.words = 0
        self.committed = None
        self.layer_count = 0
        self.cycles = 0

    async def tick(self):
        await self.ctx.tick()
        self.cycles += 1

    async def send(self, beats, pause=0.3, *, settle=True):
        ctx, dut = self.ctx, self.dut
        for i, word in enumerate(beats):
            while pause and self.rng.random() < pause:
                ctx.set(dut.s_axis_tvalid, 0)
                await self.tick()
            ctx.set(dut.s_axis_tdata, int(word) & 0xFFFFFFFF)
            ctx.set(dut.s_axis_tlast, i == len(beats) - 1)
            ctx.set(dut.s_axis_tvalid, 1)
            while True:
                ready = ctx.get(dut.s_axis_tready)
                await self.tick()
                if ready:
                    break
        ctx.set(dut.s_axis_tvalid, 0)
        ctx.set(dut.s_axis_tlast, 0)
        self.words += len(beats)
        if settle:
            await self.settle()

    async def settle(self):
        for _ in range(100):
            if not self.ctx.get(self.dut.busy) and not self.ctx.get(self.dut.commit_pending):
                break
            await self.tick()
        else:
            raise AssertionError("the loader stays busy after the frame ended")
        await self.tick()
        await self.tick()

    async def read_back(self):
        ctx, dut = self.ctx, self.dut
        out = {}
        for name in MEMORY_NAMES:
            values = []
            for address in range(len(self.committed[name])):
                ctx.set(getattr(dut, f"{name}_raddr"), address)
                ctx.set(getattr(dut, f"{name}_ren"), 1)
                await self.tick()
                ctx.set(getattr(dut, f"{name}_ren"), 0)
                for _ in range(READ_LATENCY - 1):   # the RAM's output register
                    await self.tick()
                values.append(ctx.get(getattr(dut, f"{name}_rdata")))
            ctx.set(getattr(dut, f"{name}_ren"), 0)
            out[name] = values
        return out

    async def check(self, label, error):
        ctx, dut = self.ctx, self.dut
        status = {"error": ctx.get(dut.error), "good": ctx.get(dut.good_loads),
                  "bad": ctx.get(dut.bad_loads), "words": ctx.get(dut.words_received)}
        want = {"error": int(error), "good": self.good, "bad": self.bad, "words": self.words}
        assert status == want, f"{label}: status {status}, expected {want} ({E(int(error)).name})"
        if self.committed is not None:
            assert ctx.get(dut.layer_count) == self.layer_count, label
            got = await self.read_back()
            for name in MEMORY_NAMES:
                for address, (g, w) in enumerate(zip(got[name], self.committed[name])):
                    assert g == w, (f"{label}: active {name} word {address} reads 0x{g:x}; the "
                                    f"committed image has 0x{w:x}")

    async def load_good(self, layers, label, pause=0.3):
        beats = bs.words_of(bs.pack_network(layers, self.config))
        await self.send(beats, pause)
        self.good += 1
        image = layout_network(layers, self.config)
        self.committed, self.layer_count = image_words(image), image.layer_count
        await self.check(label, E.NONE)
        return beats


class _Top(Elaboratable):
    """The DUT in an explicit sync domain, so that a testbench can drive its reset."""

    def __init__(self, dut):
        self.dut = dut
        self.cd = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.cd
        m.submodules.dut = self.dut
        return m


def simulate(config, scenario, *, monitor=True):
    """Run ``scenario(ctx, dut)`` (or ``(ctx, dut, rst)`` if it takes three arguments)."""
    dut = LoaderWithMemories(config=config)
    top = _Top(dut)
    sim = Simulator(top)
    sim.add_clock(1e-8, domain="sync")
    writes = []

    async def tb(ctx):
        if scenario.__code__.co_argcount == 3:
            await scenario(ctx, dut, top.cd.rst)
        else:
            await scenario(ctx, dut)

    async def watch(ctx):
        loader = dut._loader
        async for _, _, en, mem, addr, lane in ctx.tick().sample(
                loader.write.en, loader.write.mem, loader.write.addr, loader.write.lane):
            if en:
                writes.append((mem, addr, lane))

    sim.add_testbench(tb)
    if monitor:
        sim.add_process(watch)
    sim.run()
    return writes


def check_writes_in_bounds(config, writes):
    specs = config.memories
    names = {index: name for name, index in MEMORY_INDEX.items()}
    assert writes, "no write was seen at all"
    for mem, addr, lane in writes:
        spec = specs[names[mem]]
        assert addr < spec.depth and lane < spec.lanes, (
            f"write outside {spec.name}: word {addr} lane {lane} (depth {spec.depth}, "
            f"{spec.lanes} lanes)")


# --- the cocotb bench -----------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.clock import Clock
    from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly, RisingEdge
except ImportError:                                           # pragma: no cover
    cocotb = None


if cocotb is not None:
    import random

    from cocotbext.axi import AxiStreamBus, AxiStreamFrame, AxiStreamSource

    from spikepack.hw.loader import FRAME_GAP
    from spikepack.sim.runner import bench_args

    class Bench:
        def __init__(self, dut, config: HardwareConfig, seed: int):
            self.dut = dut
            self.config = config
            self.rng = np.random.default_rng(seed)
            self.prng = random.Random(seed)
            self.source = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis"), dut.clk,
                                          dut.rst)
            self.good = self.bad = self.words = 0
            self.committed: dict[str, list[int]] | None = None
            self.layer_count = 0

        def pauses(self, probability):
            while True:
                yield self.prng.random() < probability

        async def reset(self, cycles=2):
            dut = self.dut
            await FallingEdge(dut.clk)
            dut.rst.value = 1
            await ClockCycles(dut.clk, cycles)
            await FallingEdge(dut.clk)
            dut.rst.value = 0
            self.good = self.bad = self.words = 0

        async def start(self):
            dut = self.dut
            cocotb.start_soon(Clock(dut.clk, 10, unit="ns").start())
            dut.hold.value = 0
            for name in bs.SECTION_NAMES:
                getattr(dut, f"{name}_ren").value = 0
                getattr(dut, f"{name}_raddr").value = 0
            dut.rst.value = 0
            await ClockCycles(dut.clk, 1)
            await self.reset(3)

        def set_pauses(self, probability):
            self.source.set_pause_generator(self.pauses(probability) if probability else None)
            if not probability:
                self.source.pause = False        # clearing the generator keeps its last value

        async def send(self, beats, pause=0.3):
            self.set_pauses(pause)
            await self.source.send(AxiStreamFrame(bs.bytes_of(beats)))
            await self.source.wait()
            await self.settle()
            self.words += len(beats)

        async def settle(self):
            dut = self.dut
            for _ in range(1000):
                await RisingEdge(dut.clk)
                await ReadOnly()
                if not int(dut.busy.value) and not int(dut.commit_pending.value):
                    break
            else:
                raise AssertionError("the loader stays busy 1000 cycles after the frame ended")
            await ClockCycles(dut.clk, 3)

        async def read_back(self) -> dict[str, list[int]]:
            """Read every word of the committed image from the active bank."""
            dut = self.dut
            out = {}
            for name in bs.SECTION_NAMES:
                count = len(self.committed[name])
                raddr, ren = getattr(dut, f"{name}_raddr"), getattr(dut, f"{name}_ren")
                rdata = getattr(dut, f"{name}_rdata")
                values = []
                await FallingEdge(dut.clk)
                for address in range(count):
                    raddr.value, ren.value = address, 1
                    await RisingEdge(dut.clk)            # the read port samples the address
                    await FallingEdge(dut.clk)
                    ren.value = 0
                    for _ in range(READ_LATENCY - 1):    # the RAM's output register
                        await RisingEdge(dut.clk)
                    await ReadOnly()                     # and shows the word after this edge
                    values.append(rdata.value.to_unsigned())
                    await FallingEdge(dut.clk)
                ren.value = 0
                out[name] = values
            return out

        async def check(self, label, expected_error, seed):
            dut = self.dut
            await ReadOnly()
            status = {"error": int(dut.error.value), "good": int(dut.good_loads.value),
                      "bad": int(dut.bad_loads.value), "words": int(dut.words_received.value)}
            want = {"error": int(expected_error), "good": self.good, "bad": self.bad,
                    "words": self.words}
            assert status == want, (f"{label}: status {status} != expected {want} (error "
                                    f"{E(status['error']).name if status['error'] < 16 else '?'}"
                                    f" vs {E(expected_error).name}; seed {seed})")
            if self.committed is not None:
                assert int(dut.layer_count.value) == self.layer_count, (
                    f"{label}: layer_count {int(dut.layer_count.value)} != {self.layer_count}")
                got = await self.read_back()
                for name in bs.SECTION_NAMES:
                    for address, (g, w) in enumerate(zip(got[name], self.committed[name])):
                        assert g == w, (f"{label}: active {name} word {address} reads 0x{g:x}, "
                                        f"the committed image has 0x{w:x} (seed {seed})")

        async def load_good(self, layers, label, pause=0.3):
            config = self.config
            image = layout_network(layers, config)
            beats = bs.words_of(bs.pack_network(layers, config))
            await self.send(beats, pause)
            self.good += 1
            self.committed = image_words(image)
            self.layer_count = image.layer_count
            await self.check(label, E.NONE, self.seed)
            return beats

    @cocotb.test(timeout_time=50, timeout_unit="ms")
    async def loads_and_rejects(dut):
        args = bench_args()
        seed = args["seed"]
        config = HardwareConfig(**args["config"])
        other = HardwareConfig(**{**args["config"], "bias_bits": config.bias_bits + 1})
        bench = Bench(dut, config, seed)
        bench.seed = seed
        rng = bench.rng
        await bench.start()
        assert int(dut.s_axis_tready.value) == 1

        # good streams under back-pressure (random pauses), incl. extreme values
        beats = None
        for i in range(args["good"]):
            layers = random_layers(rng, config, extremes=i % 3 == 1)
            beats = await bench.load_good(layers, f"good stream {i}", pause=(0.0, 0.3, 0.7)[i % 3])

        # bad streams: each leaves the committed network intact, with the right code
        streams = bad_streams(rng, beats, config, other, args["bad"])
        for i, stream in enumerate(streams):
            reference = bs.loader_outcome(stream.beats, config)
            assert stream.expected is None or stream.expected == reference, (
                f"bench error: {stream.label} expected {stream.expected!r} but the reference "
                f"says {reference!r}")
            dut._log.info("bad stream %d: %s (%d beats, expect %s)", i, stream.label,
                          len(stream.beats), reference.name)
            await bench.send(stream.beats, pause=0.25 if i % 2 else 0.0)
            if reference == E.NONE:          # ignored bits changed, or a mutation undone
                bench.good += 1
                bench.committed, bench.layer_count = stream_image(stream.beats, config)
            else:
                bench.bad += 1
            await bench.check(f"bad stream {i} ({stream.label})", reference, seed)
            if i % 50 == 49:                                  # and a good one still loads
                layers = random_layers(rng, config)
                beats = await bench.load_good(layers, f"good stream after bad {i}")
        dut._log.info("%d good + %d bad streams checked", args["good"], len(streams))

        # conv networks (with conv limits that hold them): good ones commit, conv descriptor
        # faults get the parser's verdict
        for net in range(args.get("conv_good", 0)):
            layers = random_conv_layers(rng, config, extremes=net % 2 == 1)
            beats = await bench.load_good(layers, f"good conv network {net}",
                                          pause=(0.0, 0.3)[net % 2])
            conv_streams = conv_bad_streams(rng, beats, config,
                                            args.get("conv_bad", 0) // args["conv_good"])
            for i, stream in enumerate(conv_streams):
                reference = bs.loader_outcome(stream.beats, config)
                dut._log.info("conv stream %d.%d: %s (%d beats, expect %s)", net, i,
                              stream.label, len(stream.beats), reference.name)
                await bench.send(stream.beats, pause=0.25 if i % 2 else 0.0)
                if reference == E.NONE:
                    bench.good += 1
                    bench.committed, bench.layer_count = stream_image(stream.beats, config)
                else:
                    bench.bad += 1
                await bench.check(f"conv stream {net}.{i} ({stream.label})", reference, seed)

        # a reset in the middle of a stream: the committed network stays, nothing hangs
        for i in range(args["resets"]):
            layers = random_layers(rng, config)
            data = bs.pack_network(layers, config)
            bench.set_pauses(0.2)
            await bench.source.send(AxiStreamFrame(data))
            await ClockCycles(dut.clk, int(rng.integers(1, len(data) // 4)))
            await bench.reset(int(rng.integers(1, 4)))
            await bench.source.wait()
            await bench.settle()
            assert int(dut.busy.value) == 0
            await bench.check(f"reset mid-stream {i}", E.NONE, seed)
            beats = await bench.load_good(random_layers(rng, config), f"good after reset {i}")

        # hold: the commit waits, the loader stalls the next frame until the swap
        dut.hold.value = 1
        bench.set_pauses(0)
        layers = random_layers(rng, config)
        beats = bs.words_of(bs.pack_network(layers, config))
        await bench.source.send(AxiStreamFrame(bs.bytes_of(beats)))
        await bench.source.wait()
        await ClockCycles(dut.clk, FRAME_GAP)          # the commit pulses FRAME_GAP cycles on
        await FallingEdge(dut.clk)
        assert int(dut.commit_pending.value) == 1, "no commit pending while hold is high"
        assert int(dut.s_axis_tready.value) == 0, "tready is high while a commit is pending"
        bench.good += 1
        bench.words += len(beats)
        await bench.check("commit held", E.NONE, seed)          # the old network is still active
        await FallingEdge(dut.clk)
        dut.hold.value = 0
        bench.committed = image_words(layout_network(layers, config))
        bench.layer_count = len(layers)
        await bench.settle()
        await bench.check("commit released", E.NONE, seed)

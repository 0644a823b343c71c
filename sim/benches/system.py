"""System bench of the whole accelerator (``spikepack_top``) under Verilator, through its real AXI
interfaces with cocotbext-axi (the benches' whole-system driver,
:class:`spikepack.sim.benches.host.AxiSystem`): AxiLiteMaster on ``s_axil``, AxiStreamSource on
``s_axis_load`` and ``s_axis_in`` (random pauses), AxiStreamSink on ``m_axis_out`` (random
backpressure).

Every readout potential of every image is compared with :func:`spikepack.sim.golden.run_network`
for the network that was committed when the image ran. Run by ``tests/test_system_rtl.py``. The
networks and images come from the benches' stimulus generator
(:mod:`spikepack.sim.benches.stimulus`), the stream formats from :mod:`spikepack.protocol`; the
host-side checkers at the top (the golden readout, the expected constant registers) are plain
Python, also used by the Amaranth-simulator tests.
"""

from __future__ import annotations

import functools
import math
import random

import numpy as np

from spikepack.config import HardwareConfig, input_words_per_beat
from spikepack.firmware.layout import hardware_input
from spikepack.protocol import RegisterMap, input_beats, stream_words
from spikepack.sim.benches.stimulus import (classes, conv_model, describe, fitting_network,
                                            hardware_layers, input_shape, is_model, layer_cycles,
                                            foldable_plan, net_fold, pack_net, random_images,
                                            random_plan, random_sizes)
from spikepack.sim.golden import run_network

__all__ = ["expected_constants", "golden_logits", "config_from_args"]


# --- host-side checkers ---------------------------------------------------------------------------

def golden_logits(z, layers, config: HardwareConfig) -> np.ndarray:
    """The readout potentials of images ``z`` on ``layers`` (dense layer tuples, or a
    :class:`~spikepack.firmware.model.SpikePackModel`: its own golden model)."""
    if is_model(layers):
        return layers.forward(np.asarray(z, dtype=np.int64))[0]
    logits, _ = run_network(np.asarray(z, dtype=np.int64), layers, config.timesteps,
                            config.tau_shift, config.neuron)
    return logits


def expected_constants(c: HardwareConfig) -> dict[str, int]:
    """The configuration registers' values, written out from docs/registers.md's field layout
    (independently of the register table)."""
    mems = c.memories
    return {
        "ID": 0x53504B31,
        "VERSION": 0x00010001,
        "SIGNATURE": c.signature,
        "ARRAY": (c.rows | c.cols << 8 | c.timesteps << 16 | c.tau_shift << 24
                  | (c.neuron == "lif") << 28 | (c.pe_mode == "packed") << 29),
        "WIDTHS": (c.weight_bits | c.bias_bits << 8 | c.threshold_bits << 16
                   | c.widths.potential << 24),
        "MAX_FAN_IN": c.max_fan_in, "MAX_NEURONS": c.max_neurons, "MAX_LAYERS": c.max_layers,
        "WEIGHT_DEPTH": c.weight_depth,
        # a conv layer has up to max_channels outputs, and a stored map up to max_map_words
        # words (docs/config.md)
        "COLUMN_DEPTH": c.max_layers * math.ceil(
            max(c.max_neurons, c.max_channels if c.conv else 0) / c.cols),
        "ACT_DEPTH": math.ceil(
            max(c.max_fan_in, c.max_neurons, c.max_map_words if c.conv else 0) / c.rows),
        "GEOMETRY": (c.rows_per_word | mems["weight"].lanes << 8 | mems["bias"].lanes << 16
                     | mems["threshold"].lanes << 24),
        "STREAMS": (32 // c.timesteps) | (32 * math.ceil(c.widths.potential / 32)) << 8,
        "CONV": int(c.conv) | c.max_kernel << 4 | c.max_map_side << 8 | c.max_channels << 16,
        "MAX_MAP_WORDS": c.max_map_words,
    }


def config_from_args(args) -> HardwareConfig:
    return HardwareConfig(**args["config"])


# --- the cocotb bench -----------------------------------------------------------------------------

try:
    import cocotb
    from cocotb.triggers import ClockCycles, RisingEdge
    from cocotb.utils import get_sim_time
except ImportError:                                           # pragma: no cover
    cocotb = None

if cocotb is not None:
    from cocotbext.axi import AxiResp, AxiStreamFrame

    from spikepack.firmware import bitstream as bs
    from spikepack.hw.registers import ADDR_BITS, REGISTERS
    from spikepack.sim.benches.host import AxiSystem
    from spikepack.sim.runner import bench_args

    E = bs.ErrorCode
    CLOCK_NS = 10

    class System(AxiSystem):
        """The whole-system driver (:class:`AxiSystem`, registers by the names of the
        configuration's register table) with the bench's arguments and seeded generators, the
        committed network as the host knows it, and helpers that check every output against
        the golden model."""

        def __init__(self, dut):
            args = bench_args()
            self.seed = args["seed"]
            self.args = args
            self.config = config_from_args(args)
            self.rng = np.random.default_rng(self.seed)
            super().__init__(dut, RegisterMap.of_config(self.config),
                             prng=random.Random(self.seed), clock_ns=CLOCK_NS, quiet=True)
            self.T = self.config.timesteps
            self.network = None            # layers of the committed network
            #: the committed network's first-layer fold (None: its images are sent as they are)
            self.fold = None
            self.good = self.bad = self.words = 0
            self.images_done = 0
            #: optional dict of tallies (outputs, mismatches, first_mismatch) that check updates
            self.tally = None

        async def start(self):
            await super().start(reset_cycles=3, release_on_falling_edge=True)

        # registers
        async def read(self, name_or_addr):
            addr = (self.regs.map.offset(name_or_addr) if isinstance(name_or_addr, str)
                    else name_or_addr)
            data, resp = await self.bus.read(addr)
            assert resp == AxiResp.OKAY, f"read {name_or_addr}: {AxiResp(resp)!r}"
            return data

        async def write(self, name_or_addr, value):
            addr = (self.regs.map.offset(name_or_addr) if isinstance(name_or_addr, str)
                    else name_or_addr)
            return AxiResp(await self.bus.write(addr, value))

        async def status(self) -> dict[str, int]:
            return await self.regs.fields("STATUS")

        # loading
        async def send_bitstream(self, beats):
            """A bitstream of 32-bit words on ``s_axis_load``; returns once the loader is idle
            again (its error and counters update after TLAST)."""
            await super().send_bitstream(bs.bytes_of(beats))
            self.words += len(beats)
            for _ in range(200):
                await RisingEdge(self.dut.clk)
                if not (await self.status())["loader_busy"]:
                    break
            await ClockCycles(self.dut.clk, 4)

        async def load_network(self, layers, what, *, fold=True):
            """Load ``layers`` (packed with its first layer folded when ``fold`` and the rule
            allow: :func:`net_fold`), check the loader's verdict and the layer count."""
            beats = bs.words_of(pack_net(layers, self.config, fold=fold))
            await self.send_bitstream(beats)
            self.good += 1
            self.network = layers
            self.fold = net_fold(layers, self.config, fold=fold)
            await self.check_loader(E.NONE, what)
            st = await self.status()
            count = len(hardware_layers(layers, self.config.rows))
            assert st["loaded"] == 1 and st["layers"] == count, \
                f"{what}: STATUS {st} after loading {count} layers"

        async def load_bad(self, beats, what):
            expected = bs.loader_outcome(beats, self.config)
            assert expected != E.NONE, f"{what}: the bad stream is good"
            layers_before = (await self.status())["layers"]
            await self.send_bitstream(beats)
            self.bad += 1
            await self.check_loader(expected, what)
            assert (await self.status())["layers"] == layers_before
            return expected

        async def check_loader(self, code, what):
            got = {name: await self.read(name)
                   for name in ("LOAD_ERROR", "LOAD_GOOD", "LOAD_BAD", "LOAD_WORDS")}
            want = {"LOAD_ERROR": int(code), "LOAD_GOOD": self.good, "LOAD_BAD": self.bad,
                    "LOAD_WORDS": self.words}
            assert got == want, f"{what} (seed {self.seed}): loader registers {got} != {want}"

        # inference
        async def send_images(self, images):
            """The committed network's images (its model's input), folded for the hardware
            when its first layer is (``firmware.layout.hardware_input``)."""
            for z in images:
                await self.send_image(hardware_input(z, self.fold), self.config.rows, self.T)

        async def receive(self, count, timeout_us=2000):
            frames = []
            timeout_cycles = round(timeout_us * 1000 / self.clock_ns)
            for i in range(count):
                frame = await self.receive_potentials(timeout_cycles)
                if frame is None:
                    regs = {name: await self.read(name) for name in (
                        "STATUS", "IN_BEATS", "OUT_BEATS", "INFERENCES", "LAYERS_RUN",
                        "CYCLES_BUSY", "ENGINE_BUSY", "EVENTS")}
                    raise AssertionError(
                        f"no output frame {i} of {count} after {timeout_us} us (seed "
                        f"{self.seed}); STATUS {await self.status()}; registers {regs}")
                frames.append(frame)
            return frames

        def check(self, frames, images, layers, what):
            want = golden_logits(images, layers, self.config)
            assert len(frames) == len(want)
            failure = None
            for i, (got, row) in enumerate(zip(frames, want)):
                row = [int(v) for v in row]
                wrong = sum(a != b for a, b in zip(got, row)) + abs(len(got) - len(row))
                if self.tally is not None:
                    self.tally["outputs"] += len(row)
                    self.tally["mismatches"] += wrong
                if wrong and failure is None:
                    first = next((j for j, (a, b) in enumerate(zip(got, row)) if a != b),
                                 min(len(got), len(row)))
                    failure = (
                        f"{what} (seed {self.seed}): image {i} output {first}: hardware "
                        f"{got[first] if first < len(got) else 'missing'} != golden "
                        f"{row[first] if first < len(row) else 'missing'} "
                        f"(hardware {got}, golden {row}, input {np.asarray(images[i]).ravel().tolist()}, "
                        f"{describe(layers)})")
            if failure is not None:
                if self.tally is not None and self.tally.get("first_mismatch") is None:
                    self.tally["first_mismatch"] = failure
                raise AssertionError(failure)

        async def soft_reset(self):
            """CONTROL.SOFT_RESET (RUN kept as it is); the host then drops what the cut-short
            output packet left (the partial frame in the sink, and a frame that completed just
            before the reset took effect)."""
            run = (await self.read("CONTROL")) & 1
            await self.write("CONTROL", 0b10 | run)
            await ClockCycles(self.dut.clk, 4)
            self.out.clear()
            self.out.assert_reset()        # restarts the sink: its partial frame is dropped

        async def cycles_until(self, predicate, what, limit=200_000):
            """Wait, a clock edge at a time, until ``predicate()`` (sampled after the edge)."""
            for _ in range(limit):
                await RisingEdge(self.dut.clk)
                if predicate():
                    return
            raise AssertionError(f"{what}: not reached in {limit} cycles (seed {self.seed})")

        async def infer(self, images, what):
            """Stream ``images`` through the committed network and check every output."""
            await self.send_images(images)
            frames = await self.receive(len(images))
            self.check(frames, images, self.network, what)
            self.images_done += len(images)
            return frames

    def _network_sizes(net):
        return [net[0][0].shape[1]] + [w.shape[0] for w, _, _ in net]

    def soft_reset_phases(layers: int) -> list[str]:
        """The phases :func:`soft_reset_in` can hit for a network of ``layers`` layers."""
        return (["idle", "load"] + [f"layer {l}" for l in range(layers - 1)]
                + ["readout compute", "output sending", "output blocked"])

    async def soft_reset_in(sy, phase, net, other, images=3):
        """Take a SOFT_RESET in ``phase`` (:func:`soft_reset_phases`) of an inference of ``net``
        (the committed network; ``other`` is loaded during the "load" phase), then check that
        ``images`` random images run bit-exactly. Returns the phase the reset landed in, as
        the STATUS read just before the CONTROL write saw it."""
        dut, rng = sy.dut, sy.rng
        hw = hardware_layers(net, sy.config.rows)
        L = len(hw)
        what = f"SOFT_RESET in {phase} of {describe(net)}"
        landed = phase
        if phase == "idle":
            await sy.soft_reset()
        elif phase == "load":
            beats = bs.words_of(pack_net(other, sy.config))
            sending = cocotb.start_soon(sy.load.send(AxiStreamFrame(bs.bytes_of(beats))))
            await sy.cycles_until(lambda: int(dut.s_axis_load_tvalid.value)
                                  and int(dut.s_axis_load_tready.value), f"{what}: load")
            await ClockCycles(dut.clk, sy.prng.randrange(1, max(2, len(beats) // 2)))
            landed = "load" if (await sy.status())["loader_busy"] else "after the load"
            await sy.soft_reset()
            await sending
            await sy.load.wait()
            sy.words += len(beats)
            for _ in range(200):
                if not (await sy.status())["loader_busy"]:
                    break
            sy.good += 1
            sy.network = other
            sy.fold = net_fold(other, sy.config)
            await sy.check_loader(E.NONE, f"{what}: the load across the reset")
        else:
            z = random_images(rng, 1, input_shape(net), sy.T)
            if phase == "output blocked":
                sy.out.set_pause_generator(iter(lambda: True, False))
            await sy.send_images(z)
            await sy.inp.wait()
            if phase.startswith("layer") or phase == "readout compute":
                want = L - 1 if phase == "readout compute" else int(phase.split()[1])
                for _ in range(20_000):
                    st = await sy.status()
                    if st["busy"] and st["layer"] >= want:
                        break
                    if not sy.out.empty():  # a tiny network ended between two STATUS reads
                        break
                else:
                    raise AssertionError(f"{what}: the inference did not reach layer {want}")
                if st["busy"] and st["layer"] == want:
                    # somewhere inside the layer, not just at its start (where the engine is
                    # still filling and the neuron units hold nothing yet)
                    span = layer_cycles(sy.config, hw[want])
                    await ClockCycles(dut.clk, sy.prng.randrange(1, max(2, span - 8)))
                    st = await sy.status()
                if not st["busy"]:
                    landed = "idle (the inference had ended)"
                elif st["layer"] != want:
                    landed = f"layer {st['layer']}"
                elif phase == "readout compute" and int(dut.m_axis_out_tvalid.value):
                    landed = "output sending"
            elif phase == "output sending":
                await sy.cycles_until(lambda: int(dut.m_axis_out_tvalid.value)
                                      and int(dut.m_axis_out_tready.value), f"{what}: output")
                await ClockCycles(dut.clk, sy.prng.randrange(1, max(2, classes(net))))
            else:
                await sy.cycles_until(lambda: int(dut.m_axis_out_tvalid.value), f"{what}: output")
                await ClockCycles(dut.clk, sy.prng.randrange(1, 40))
            await sy.soft_reset()
            sy.traffic()
        st = await sy.status()
        assert (st["busy"], st["images_buffered"]) == (0, 0), f"{what}: STATUS {st}"
        await sy.infer(random_images(rng, images, input_shape(sy.network), sy.T),
                       f"{what} (landed in {landed}), then")
        return landed

    @cocotb.test()
    async def registers(dut):
        """Every register after reset against the configuration; RO writes ignored; unmapped
        addresses SLVERR; RW byte strobes; W1C."""
        sy = System(dut)
        await sy.start()
        consts = expected_constants(sy.config)
        after_reset = {"CONTROL": 1}          # RUN = 1; everything else reads 0
        expected = {}
        for r in REGISTERS:
            expected[r.name] = consts.get(r.name, after_reset.get(r.name, 0))
        for r in REGISTERS:
            got = await sy.read(r.name)
            assert got == expected[r.name], \
                f"{r.name} at {r.offset:#x}: {got:#010x} != {expected[r.name]:#010x}"
        # writes to read-only registers are accepted and ignored
        for r in REGISTERS:
            if r.access == "RO":
                assert await sy.write(r.name, 0xFFFFFFFF) == AxiResp.OKAY, r.name
                assert await sy.read(r.name) == expected[r.name], f"{r.name} changed"
        # every unmapped word address answers SLVERR and returns 0
        mapped = {r.offset for r in REGISTERS}
        for addr in range(0, 1 << ADDR_BITS, 4):
            if addr in mapped:
                continue
            resp = await sy.axil.read(addr, 4)
            assert resp.resp == AxiResp.SLVERR and resp.data == bytes(4), hex(addr)
            wresp = await sy.axil.write(addr, b"\xff\xff\xff\xff")
            assert wresp.resp == AxiResp.SLVERR, hex(addr)
        for r in REGISTERS:                    # and nothing changed
            assert await sy.read(r.name) == expected[r.name], f"{r.name} changed"
        # SCRATCH: full words and single bytes (wstrb)
        model = 0
        for _ in range(16):
            if sy.prng.random() < 0.5:
                value = sy.prng.getrandbits(32)
                await sy.write("SCRATCH", value)
                model = value
            else:
                byte, value = sy.prng.randrange(4), sy.prng.getrandbits(8)
                resp = await sy.axil.write(sy.regs.map.offset("SCRATCH") + byte,
                                           bytes([value]))
                assert resp.resp == AxiResp.OKAY
                model = (model & ~(0xFF << 8 * byte)) | value << 8 * byte
            assert await sy.read("SCRATCH") == model
        # concurrent reads and writes from separate coroutines
        tasks = [cocotb.start_soon(sy.read(name)) for name in ("ID", "SIGNATURE", "ARRAY")]
        await sy.write("SCRATCH", 0x12345678)
        assert [await t for t in tasks] == [consts["ID"], consts["SIGNATURE"], consts["ARRAY"]]
        assert await sy.read("SCRATCH") == 0x12345678
        # CONTROL: RUN is RW, the pulses read 0
        await sy.write("CONTROL", 0b1100)                     # RUN = 0, START, clear counters
        assert await sy.read("CONTROL") == 0
        assert (await sy.status())["start_armed"] == 1        # START while idle arms
        await sy.write("CONTROL", 0b0100)                     # START while armed: ignored
        assert await sy.read("EVENTS") == 1
        await sy.write("EVENTS", 2)                           # W1C of another bit: no effect
        assert await sy.read("EVENTS") == 1
        await sy.write("EVENTS", 1)
        assert await sy.read("EVENTS") == 0
        await sy.write("CONTROL", 0b0010)                     # soft reset clears the arm
        assert (await sy.status())["start_armed"] == 0
        await sy.write("CONTROL", 1)
        assert await sy.read("CONTROL") == 1

    @cocotb.test()
    async def inference(dut):
        """Random networks (and an extreme one) loaded through the loader and run on random
        images under random stream pauses and backpressure, bit-exact with the golden model;
        networks reloaded between inferences; bad bitstreams leave the committed network
        working and LOAD_ERROR says why; back-to-back images stream without draining."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        n_images = sy.args.get("images", 5)
        await sy.write("CONTROL", 0b1001)                     # RUN, clear counters
        sy.traffic()
        networks = [fitting_network(rng, c, random_sizes(rng, c)) for _ in range(sy.args.get("networks", 3))]
        networks.append(fitting_network(rng, c, random_sizes(rng, c), extreme=True))
        networks.append(fitting_network(rng, c, random_sizes(rng, c, layers=1)))
        counted = {"in": 0, "out": 0, "layers": 0, "images": 0}
        count = functools.partial(_count, counted, c)
        dense = [net for net in networks if not is_model(net)]
        for n, net in enumerate(networks):
            what = f"network {n} {describe(net)}"
            await sy.load_network(net, what)
            images = random_images(rng, n_images, input_shape(net), sy.T)
            await sy.infer(images, what)
            dut._log.warning(f"{what}: {len(images)} images bit-exact, last inference "
                             f"{await sy.read('CYCLES_LAST')} cycles")
            count(net, images)
            if n == 0:
                # bad bitstreams between two inferences: the first network stays
                good = bs.words_of(pack_net(dense[1], c))
                crc = list(good)
                crc[-1] ^= 1 << sy.prng.randrange(32)
                assert await sy.load_bad(crc, "CRC flipped") == E.CRC_MISMATCH
                payload = list(good)
                payload[len(payload) // 2 + 1] ^= 1 << sy.prng.randrange(32)
                await sy.load_bad(payload, "payload bit flipped")
                other = HardwareConfig(**{**c.as_dict(), "max_layers": c.max_layers + 1})
                foreign = bs.words_of(pack_net(dense[1], other))
                assert await sy.load_bad(foreign, "other hardware") == E.BAD_SIGNATURE
                assert await sy.load_bad(good[:len(good) // 2], "truncated") == E.TRUNCATED
                images = random_images(rng, 3, input_shape(net), sy.T)
                await sy.infer(images, f"{what} after bad bitstreams")
                count(net, images)
        # activity counters
        for name, key in (("IN_BEATS", "in"), ("OUT_BEATS", "out"), ("LAYERS_RUN", "layers"),
                          ("INFERENCES", "images")):
            assert await sy.read(name) == counted[key], f"{name} != {counted[key]}"
        busy, engine = await sy.read("CYCLES_BUSY"), await sy.read("ENGINE_BUSY")
        assert 0 < engine < busy, (engine, busy)
        assert await sy.read("IN_STALLS") > 0 and await sy.read("OUT_STALLS") > 0

        # throughput: back-to-back images without pauses stream without draining
        net = fitting_network(rng, c, [c.max_fan_in, c.max_neurons // 2 + 1, 3])
        await sy.load_network(net, "throughput network")
        sy.traffic(0, 0, 0)
        count = 8
        images = random_images(rng, count, c.max_fan_in, sy.T)
        await sy.write("CONTROL", 0b1001)
        t0 = get_sim_time("ns")
        await sy.send_images(images)
        frames = await sy.receive(count)
        elapsed = round((get_sim_time("ns") - t0) / CLOCK_NS)
        sy.check(frames, images, net, "throughput network")
        busy, last = await sy.read("CYCLES_BUSY"), await sy.read("CYCLES_LAST")
        beats = math.ceil(c.max_fan_in / input_words_per_beat(sy.T))
        first_image = beats * (math.ceil(input_words_per_beat(sy.T) / c.rows) + 1) + 4
        idle = elapsed - busy
        dut._log.warning(f"throughput: {count} images in {elapsed} cycles, {busy} busy, last "
                      f"inference {last} cycles, idle {idle} (first image {first_image})")
        assert busy <= count * last + count, (busy, last)
        assert idle <= first_image + 2 * count + 8, \
            f"the pipeline drains between images: {idle} idle cycles in {elapsed}"

    def _count(counted, c, net, images, fold=None):
        """Add an inference batch to the activity counters the registers must show (the input
        beats of the images as sent: folded with ``fold``, the network's first-layer fold)."""
        K = input_words_per_beat(c.timesteps)
        sent = stream_words(hardware_input(images[0], fold), c.rows)
        counted["in"] += len(images) * math.ceil(len(sent) / K)
        counted["out"] += len(images) * classes(net)
        counted["layers"] += len(images) * len(hardware_layers(net, c.rows))
        counted["images"] += len(images)

    @cocotb.test()
    async def conv_networks(dut):
        """Random conv networks (:func:`random_plan` within the configuration's conv limits
        and a cost cap: conv layers with random channels, maps, kernels, strides, padding and
        2 x 2 / 1 x 2 / 2 x 1 max pooling, then dense layers) as format-v2 models, packed by
        ``bitstream.pack``, loaded and run on random (C, H, W) images sent in storage order,
        under random pauses and backpressure, bit-exact with the model's golden
        (``run_network``); one with every value at an end of its range; a dense network
        between them (the sequencer switches between conv and dense layers); back-to-back
        images of a conv network; the activity counters count hardware layers (a pooling
        merges into its conv) and stored input words. The first layer runs folded
        (docs/array.md, "The first layer": network 0 is drawn until its first layer folds
        on this configuration, if any plan's can) and unfolded (network 1 packed with
        ``fold=False``; the others as the packer decides), the folded images sent."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        n_images = sy.args.get("images", 4)
        budget = sy.args.get("conv_cycles", 6000)
        await sy.write("CONTROL", 0b1001)                     # RUN, clear counters
        sy.traffic()
        plans = [foldable_plan(rng, c, max_cycles=budget)] + [
            random_plan(rng, c, max_cycles=budget)
            for _ in range(sy.args.get("networks", 3) - 1)]
        networks = [conv_model(rng, c, plan) for plan in plans]
        networks.append(conv_model(rng, c, random_plan(rng, c, max_cycles=budget),
                                   extreme=True))
        networks.insert(2, fitting_network(rng, c, random_sizes(rng, c)))
        counted = {"in": 0, "out": 0, "layers": 0, "images": 0}
        folded = []
        for n, net in enumerate(networks):
            what = f"network {n} {describe(net)}"
            await sy.load_network(net, what, fold=n != 1)
            what += " (first layer folded)" if sy.fold is not None else ""
            folded.append(sy.fold is not None)
            images = random_images(rng, n_images, input_shape(net), sy.T)
            await sy.infer(images, what)
            dut._log.warning(f"{what}: {len(images)} images bit-exact, last inference "
                             f"{await sy.read('CYCLES_LAST')} cycles")
            _count(counted, c, net, images, sy.fold)
        assert not folded[1], "network 1 was packed unfolded"
        if networks[0].input_fold(c) is None:
            dut._log.warning(f"no drawn plan's first layer folds on this configuration "
                             f"(R = {c.rows}): every first layer ran unfolded")
        else:
            assert folded[0], "network 0's first layer folds but was not folded"
        for name, key in (("IN_BEATS", "in"), ("OUT_BEATS", "out"), ("LAYERS_RUN", "layers"),
                          ("INFERENCES", "images")):
            assert await sy.read(name) == counted[key], f"{name} != {counted[key]}"
        # back-to-back images of a conv network, no pauses
        net = networks[0]
        await sy.load_network(net, "conv network 0 again")
        sy.traffic(0, 0, 0)
        await sy.infer(random_images(rng, 6, input_shape(net), sy.T),
                       f"{describe(net)}, back-to-back")

    @cocotb.test()
    async def control(dut):
        """RUN = 0 and START (a START while busy is ignored and flagged), SOFT_RESET in the
        middle of an inference, and a commit that waits for the running inference."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        sy.traffic(0.2, 0.2, 0.2)
        # a network whose inference takes long enough to write registers while it runs
        sizes = [c.max_fan_in, c.max_neurons, max(2, c.max_neurons // 2)]
        net_a = fitting_network(rng, c, sizes)
        net_b = fitting_network(rng, c, random_sizes(rng, c, layers=2))
        await sy.load_network(net_a, "network A")

        # RUN = 0: an image waits until START
        await sy.write("CONTROL", 0b1000)
        img = random_images(rng, 4, _network_sizes(net_a)[0], sy.T)
        await sy.send_images(img[:1])
        await sy.inp.wait()
        await ClockCycles(dut.clk, 50)
        st = await sy.status()
        assert (st["busy"], st["images_buffered"], await sy.read("INFERENCES")) == (0, 1, 0), st
        sy.out.set_pause_generator(iter(lambda: True, False))  # hold the output: stays busy
        await sy.write("CONTROL", 0b0100)                      # START
        st = await sy.status()
        assert st["busy"] == 1 and st["start_armed"] == 0, st
        assert await sy.write("CONTROL", 0b0100) == AxiResp.OKAY   # START while busy
        st = await sy.status()
        assert st["busy"] == 1 and st["start_armed"] == 0, f"START while busy armed: {st}"
        assert await sy.read("EVENTS") == 1, "START while busy did not set START_IGNORED"
        await sy.write("EVENTS", 1)

        # a network committed while the inference runs waits for its end
        await sy.send_bitstream(bs.words_of(bs.pack_network(net_b, c)))
        sy.good += 1
        await sy.check_loader(E.NONE, "network B (pending)")
        st = await sy.status()
        assert st["commit_pending"] == 1 and st["layers"] == len(net_a), st
        sy.out.set_pause_generator(sy.pauses(0.2))
        sy.check(await sy.receive(1), img[:1], net_a, "network A while B waits")
        await ClockCycles(dut.clk, 3)
        st = await sy.status()
        assert st["commit_pending"] == 0 and st["layers"] == len(net_b) and st["busy"] == 0, st
        sy.network = net_b
        sy.fold = net_fold(net_b, c)
        assert await sy.read("INFERENCES") == 1
        # the ignored START did not arm: the next image waits for its own START
        img_b = random_images(rng, 3, _network_sizes(net_b)[0], sy.T)
        await sy.send_images(img_b[:1])
        await sy.inp.wait()
        await ClockCycles(dut.clk, 50)
        assert (await sy.status())["images_buffered"] == 1
        assert await sy.read("INFERENCES") == 1
        await sy.write("CONTROL", 0b0100)
        sy.check(await sy.receive(1), img_b[:1], net_b, "network B after START")
        # START while idle arms one inference; the image then runs at once
        await sy.write("CONTROL", 0b0100)
        assert (await sy.status())["start_armed"] == 1
        await sy.infer(img_b[1:2], "network B, armed START")
        assert (await sy.status())["start_armed"] == 0
        assert await sy.read("EVENTS") == 0

        # SOFT_RESET in the middle of an inference: the network survives, nothing hangs
        await sy.write("CONTROL", 0b0001)                      # RUN = 1
        sy.out.set_pause_generator(iter(lambda: True, False))
        await sy.send_images(img_b[2:3])
        await sy.inp.wait()
        for _ in range(100):
            if (await sy.status())["busy"]:
                break
        else:
            raise AssertionError("the inference did not start")
        counters = await sy.read("INFERENCES")
        await sy.write("CONTROL", 0b0011)                      # SOFT_RESET
        st = await sy.status()
        assert (st["busy"], st["images_buffered"], st["layers"]) == (0, 0, len(net_b)), st
        assert await sy.read("INFERENCES") == counters        # counters survive
        assert await sy.read("CONTROL") == 1
        sy.out.set_pause_generator(sy.pauses(0.2))
        await ClockCycles(dut.clk, 20)
        assert sy.out.empty(), "output after a soft reset"
        await sy.infer(img_b, "network B after soft reset")

        # an image longer than the activation buffer: the excess is dropped and flagged
        K = input_words_per_beat(sy.T)
        cap = expected_constants(c)["ACT_DEPTH"] * c.rows
        n0 = _network_sizes(net_b)[0]
        z = random_images(rng, 3, n0, sy.T)[2]
        words = list(map(int, z)) + [0] * (cap - n0)
        beats = input_beats(words, sy.T).tolist()
        beats += [sy.prng.getrandbits(K * sy.T) for _ in range(2)]
        assert await sy.read("EVENTS") == 0
        await sy.inp.send(AxiStreamFrame(b"".join(w.to_bytes(4, "little") for w in beats)))
        sy.check(await sy.receive(1), z[None], net_b, "overlong image")
        assert await sy.read("EVENTS") == 2, "INPUT_OVERFLOW not set"
        await sy.write("EVENTS", 2)
        await sy.infer(img_b[:2], "network B after an overlong image")
        assert await sy.read("EVENTS") == 0

    @cocotb.test()
    async def soft_reset(dut):
        """SOFT_RESET in every phase of an inference (idle, during a load, in each layer, while
        the output is being sent, while it is blocked by m_axis_out_tready low), each followed
        by inferences that must be bit-exact."""
        sy = System(dut)
        await sy.start()
        c, rng = sy.config, sy.rng
        sy.traffic()
        layers = sy.args.get("layers", min(3, c.max_layers))
        sizes = [c.max_fan_in] + [c.max_neurons] * layers
        net = fitting_network(rng, c, sizes)
        other = fitting_network(rng, c, random_sizes(rng, c))
        await sy.load_network(net, "network A")
        await sy.infer(random_images(rng, 2, _network_sizes(net)[0], sy.T), "network A")
        for phase in soft_reset_phases(len(net)) * sy.args.get("rounds", 1):
            if sy.network is not net:
                await sy.load_network(net, "network A again")
            landed = await soft_reset_in(sy, phase, net, other)
            dut._log.warning(f"SOFT_RESET in {phase} (landed in {landed}): then bit-exact")

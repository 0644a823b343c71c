"""cocotb bench behind ``spikepack run``: load a bitstream and infer images on ``spikepack_top``
through its real AXI ports (cocotbext-axi), writing the readout potentials and cycle counts to
a JSON file for the host to check against the golden model.

Arguments (``spikepack.sim.runner.bench_args``): manifest, bitstream, inputs (.npy of spike
words: (S, N0), or (S, C, H, W) for a conv network, sent in storage order), results (JSON to write), progress (a file holding the count of finished images),
pauses (random pauses and backpressure on every stream).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, RisingEdge, SimTimeoutError, with_timeout
from cocotb.utils import get_sim_time
from cocotbext.axi import (AxiLiteBus, AxiLiteMaster, AxiStreamBus, AxiStreamFrame,
                           AxiStreamSink, AxiStreamSource)

from spikepack.config import input_words_per_beat
from spikepack.firmware.layout import to_storage
from spikepack.sim.runner import bench_args

CLOCK_NS = 10


class Registers:
    """Register access by the names of the manifest's register map."""

    def __init__(self, axil: AxiLiteMaster, manifest: dict):
        self.axil = axil
        self.by_name = {r["name"].lower(): r for r in manifest["registers"]}

    def offset(self, name: str) -> int:
        try:
            return int(self.by_name[name.lower()]["offset"])
        except KeyError:
            raise KeyError(f"register {name!r} is not in the manifest's register map "
                           f"({', '.join(sorted(self.by_name))})") from None

    async def read(self, name: str) -> int:
        return await self.axil.read_dword(self.offset(name))

    async def write(self, name: str, value: int) -> None:
        await self.axil.write_dword(self.offset(name), value)

    async def dump(self) -> dict:
        return {name: await self.axil.read_dword(int(r["offset"])) for name, r in self.by_name.items()
                if "r" in str(r.get("access", "RO")).lower()}


def pack_image(words: np.ndarray, timesteps: int) -> bytes:
    """Input spike words -> s_axis_in beats (K = 32 // T words a beat, word i at bits (i % K)*T)."""
    per_beat = input_words_per_beat(timesteps)
    beats = []
    for start in range(0, len(words), per_beat):
        beat = 0
        for i, w in enumerate(words[start:start + per_beat]):
            beat |= int(w) << (i * timesteps)
        beats.append(beat)
    return b"".join(b.to_bytes(4, "little") for b in beats)


def unpack_potentials(data: bytes, out_bits: int) -> list[int]:
    size = out_bits // 8
    return [int.from_bytes(data[i:i + size], "little", signed=True)
            for i in range(0, len(data), size)]


def _pauses(rng: random.Random, probability: float):
    while True:
        yield rng.random() < probability


async def reset(dut, cycles: int = 5) -> None:
    dut.rst.value = 1
    await ClockCycles(dut.clk, cycles)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 2)


async def wait_until(dut, predicate, what: str, limit: int = 2_000_000, every: int = 16):
    for _ in range(0, limit, every):
        if await predicate():
            return
        await ClockCycles(dut.clk, every)
    raise TimeoutError(f"timed out after {limit} cycles waiting for {what}")


class Accelerator:
    """Driver for the whole top: registers, load port, input port, output port."""

    def __init__(self, dut, manifest: dict, *, rng: random.Random | None = None,
                 pauses: bool = False):
        self.dut = dut
        self.manifest = manifest
        self.timesteps = manifest["config"]["timesteps"]
        self.rows = manifest["config"]["rows"]
        self.out_bits = manifest["derived"]["output_bits"]
        self.axil = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.regs = Registers(self.axil, manifest)
        self.load = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_load"), dut.clk, dut.rst)
        self.inp = AxiStreamSource(AxiStreamBus.from_prefix(dut, "s_axis_in"), dut.clk, dut.rst)
        self.out = AxiStreamSink(AxiStreamBus.from_prefix(dut, "m_axis_out"), dut.clk, dut.rst)
        if pauses:
            rng = rng or random.Random(0)
            self.load.set_pause_generator(_pauses(rng, 0.2))
            self.inp.set_pause_generator(_pauses(rng, 0.2))
            self.out.set_pause_generator(_pauses(rng, 0.3))

    async def load_bitstream(self, data: bytes) -> None:
        await self.load.send(AxiStreamFrame(data))
        await self.load.wait()

    async def send_image(self, words) -> None:
        """One image: a vector of spike words, or a (C, H, W) map, sent in storage order
        (``to_storage``: channels last, zeros in the padding lanes; CONV.md)."""
        words = np.asarray(words)
        if words.ndim == 3:
            words = to_storage(words, self.rows)
        await self.inp.send(AxiStreamFrame(pack_image(words, self.timesteps)))

    async def receive(self, timeout_cycles: int) -> list[int]:
        try:
            frame = await with_timeout(self.out.recv(), timeout_cycles * CLOCK_NS, "ns")
        except SimTimeoutError:
            raise AssertionError(f"no readout frame within {timeout_cycles} cycles: the "
                                 f"accelerator hangs") from None
        return unpack_potentials(bytes(frame.tdata), self.out_bits)


@cocotb.test()
async def infer(dut):
    args = bench_args()
    manifest = json.loads(Path(args["manifest"]).read_text())
    bitstream = Path(args["bitstream"]).read_bytes()
    z = np.load(args["inputs"])
    progress = Path(args["progress"])
    rng = random.Random(args["seed"])
    cocotb.start_soon(Clock(dut.clk, CLOCK_NS, unit="ns").start())
    acc = Accelerator(dut, manifest, rng=rng, pauses=bool(args.get("pauses")))
    await reset(dut)

    signature = await acc.regs.read("signature")
    assert signature == manifest["signature"], \
        f"hardware signature 0x{signature:08x} != manifest 0x{manifest['signature']:08x}"
    good_before = await acc.regs.read("load_good")
    await acc.load_bitstream(bitstream)
    await wait_until(dut, lambda: _loaded(acc, good_before), "the bitstream to commit")
    error = await acc.regs.read("load_error")
    assert error == 0, f"the loader rejected the bitstream with error code {error}"
    await acc.regs.write("control", _field_value(manifest, "control", "run", 1))

    outputs: list[list[int]] = []

    async def feed():
        for image in z:
            await acc.send_image(image)

    await RisingEdge(dut.clk)
    start_ns = get_sim_time("ns")
    cocotb.start_soon(feed())
    for count in range(1, len(z) + 1):
        outputs.append(await acc.receive(int(args.get("timeout_cycles", 1_000_000))))
        if count % 8 == 0 or count == len(z):
            progress.write_text(str(count))
    cycles_total = int((get_sim_time("ns") - start_ns) // CLOCK_NS)
    latency = await acc.regs.read("cycles_last")
    registers = await acc.regs.dump()
    Path(args["results"]).write_text(json.dumps({
        "logits": outputs, "cycles_total": cycles_total, "latency_cycles": latency,
        "registers": registers}))


async def _loaded(acc: Accelerator, good_before: int) -> bool:
    good = await acc.regs.read("load_good")
    bad = await acc.regs.read("load_bad")
    if bad:
        raise AssertionError(f"the loader counted a bad load (error code "
                             f"{await acc.regs.read('load_error')})")
    return good > good_before


def _field_value(manifest: dict, register: str, field: str, value: int) -> int:
    for reg in manifest["registers"]:
        if reg["name"].lower() == register:
            for f in reg.get("fields", []) or []:
                name = f["name"] if isinstance(f, dict) else f[0]
                if name.lower() == field:
                    lsb = f.get("lsb", f.get("offset", 0)) if isinstance(f, dict) else f[1]
                    return value << int(lsb)
    raise KeyError(f"register {register!r} has no field {field!r} in the manifest")

"""The host driver's protocol, sans IO: what a host does with a generated SpikePack accelerator
(check it, load a weight bitstream, run images, read results, counters and errors), written once
as generators of bus requests, from ``manifest.json`` alone.

* :class:`RegisterMap`: register offsets, fields and decoding, from the manifest's register map
  (the plain data of :func:`spikepack.hw.registers.register_map`), or from a configuration;
* :class:`Registers`: register access by name over any ``async`` bus with ``read32`` and
  ``write32`` (the cocotb benches' :class:`~spikepack.sim.benches.host.CocotbBus`, the Amaranth
  tests' ``AxilMaster``);
* the stream formats, the one packer every bench and front end uses: :func:`stream_words` (an
  image in the order ``s_axis_in`` carries it), :func:`input_beats` and :func:`pack_image`
  (spike words -> ``s_axis_in`` beats), :func:`unpack_potentials` (an ``m_axis_out`` packet ->
  readout potentials);
* :class:`Protocol`: every operation a generator that yields bus requests (:class:`Read`,
  :class:`Write`, :class:`Send`, :class:`Receive`, :class:`Pause`) and receives their results;
  :func:`run_sync` and :func:`run_async` run one over a bus, :class:`Driver` and
  :class:`AsyncDriver` offer every operation (:data:`OPERATIONS`) as a method.

A bus has five methods (``async`` for :class:`AsyncDriver`):

* ``read32(offset) -> int`` and ``write32(offset, value)``: one AXI4-Lite register access at a
  byte offset of the accelerator's register block;
* ``send(stream, data: bytes)``: one packet (TLAST on its last beat) on ``"load"``
  (``s_axis_load``) or ``"in"`` (``s_axis_in``); it may return once the packet is queued;
* ``receive(stream, max_bytes) -> bytes``: the next packet of ``"out"`` (``m_axis_out``);
* ``pause()``: let some time pass before polling a register again.

This module sits below the simulation layer (``docs/architecture.md``, "Layering"), so the RTL
benches run it; the buses of boards, the cocotb bus and the front ends that read a manifest
file are in :mod:`spikepack.driver`, which re-exports everything here. It needs only numpy.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Generator

import numpy as np

from spikepack.hw.registers import ID_MAGIC, register_map

__all__ = ["stream_words", "input_beats", "pack_image", "unpack_potentials", "RegisterMap", "Registers", "Read", "Write", "Send", "Receive", "Pause",
           "DriverError", "LoadError", "Protocol", "OPERATIONS", "run_sync", "run_async",
           "Driver", "AsyncDriver", "STREAMS", "MAGIC"]

#: The ID register's value, ASCII "SPK1" (the register table's ``ID_MAGIC``).
MAGIC = ID_MAGIC
#: Stream names of the bus and the ports they stand for.
STREAMS = {"load": "s_axis_load", "in": "s_axis_in", "out": "m_axis_out"}


# --- stream formats ------------------------------------------------------------------------------

def stream_words(image, rows: int | None = None, fold=None) -> np.ndarray:
    """One image as ``s_axis_in`` carries it: a vector of spike words as it is, a (C, H, W) map
    in storage order (:func:`spikepack.firmware.layout.to_storage` with ``rows`` = R: channels
    last, zeros in the padding lanes; the convolution contract, docs/architecture.md). With
    ``fold``, the :class:`~spikepack.firmware.layout.InputFold` of a bitstream whose first
    layer was folded (``model.input_fold(config)``; docs/bitstream.md, "The first layer"), the
    model's image is folded first (:func:`spikepack.firmware.layout.hardware_input`)."""
    z = np.asarray(image)
    if fold is not None:
        from spikepack.firmware.layout import hardware_input
        z = hardware_input(z, fold)
    if z.ndim == 3:
        if rows is None:
            raise ValueError("an image (C, H, W) needs rows (R) for its storage order")
        from spikepack.firmware.layout import to_storage
        return to_storage(z, rows)
    return z


def input_beats(words, timesteps: int) -> np.ndarray:
    """Spike words (..., N0) -> the ``s_axis_in`` beats (..., B) as uint32: K = 32 // T words a
    32-bit beat, word i in beat i // K at bits (i % K)*T, zeros beyond N0 (one image (N0,), or
    a batch (S, N0))."""
    from spikepack.config import input_words_per_beat
    z = np.asarray(words)
    T, K = int(timesteps), input_words_per_beat(timesteps)
    if z.size and not np.issubdtype(z.dtype, np.integer):
        raise ValueError(f"spike words are integers, not {z.dtype}")
    if z.size and (z.min() < 0 or z.max() >= (1 << T)):
        raise ValueError(f"spike words must lie in 0..{(1 << T) - 1} (T = {T})")
    n = z.shape[-1]
    B = -(-n // K)
    padded = np.zeros(z.shape[:-1] + (B * K,), dtype=np.uint64)
    padded[..., :n] = z
    shifts = np.arange(K, dtype=np.uint64) * np.uint64(T)
    beats = (padded.reshape(z.shape[:-1] + (B, K)) << shifts).sum(axis=-1, dtype=np.uint64)
    return beats.astype(np.uint32)


def pack_image(words, timesteps: int) -> bytes:
    """One image's spike words (N0,) -> the ``s_axis_in`` packet: :func:`input_beats` as
    little-endian bytes."""
    return input_beats(words, timesteps).astype("<u4").tobytes()


def unpack_potentials(data: bytes, out_bits: int) -> np.ndarray:
    """An ``m_axis_out`` packet -> readout potentials: one ``out_bits``-wide little-endian
    signed value a beat."""
    size = out_bits // 8
    if len(data) % size:
        raise DriverError(f"an output packet of {len(data)} bytes is not a whole number of "
                          f"{out_bits}-bit beats")
    if size in (4, 8):
        return np.frombuffer(data, dtype=f"<i{size}").astype(np.int64)
    return np.array([int.from_bytes(data[i:i + size], "little", signed=True)
                     for i in range(0, len(data), size)], dtype=object)


# --- the register map ----------------------------------------------------------------------------

class RegisterMap:
    """Offsets and fields by name (any case), from a register map as plain data: a manifest's
    ``registers`` list, or :meth:`of_config`."""

    def __init__(self, registers: list[dict]):
        self.by_name = {r["name"].upper(): r for r in registers}

    @classmethod
    def of_config(cls, config) -> "RegisterMap":
        """The map of the register table (:mod:`spikepack.hw.registers`) for a configuration."""
        return cls(register_map(config))

    def offset(self, register: str) -> int:
        try:
            return int(self.by_name[register.upper()]["offset"])
        except KeyError:
            raise KeyError(f"register {register!r} is not in the manifest's register map") from None

    def field(self, register: str, field: str) -> tuple[int, int]:
        """(lsb, width) of a field."""
        for f in self.by_name[register.upper()]["fields"]:
            if f["name"].lower() == field.lower():
                return int(f["lsb"]), int(f["width"])
        raise KeyError(f"register {register!r} has no field {field!r}")

    def decode(self, register: str, value: int) -> dict[str, int]:
        """A register's value -> {field: value}."""
        return {f["name"].lower(): (value >> f["lsb"]) & ((1 << f["width"]) - 1)
                for f in self.by_name[register.upper()]["fields"]}

    def bit(self, register: str, field: str, value: int = 1) -> int:
        """``value`` placed in a field (to OR into a write)."""
        lsb, width = self.field(register, field)
        return (value & ((1 << width) - 1)) << lsb

    def readable(self) -> list[str]:
        """Names of the registers that read back (all but write-only ones), in map order."""
        return [name for name, r in self.by_name.items() if r["access"] != "WO"]


class Registers:
    """Register access by name over an ``async`` bus (``read32``, ``write32``)."""

    def __init__(self, bus, register_map: RegisterMap):
        self.bus, self.map = bus, register_map

    async def read(self, register: str) -> int:
        return int(await self.bus.read32(self.map.offset(register)))

    async def write(self, register: str, value: int) -> None:
        await self.bus.write32(self.map.offset(register), value)

    async def fields(self, register: str) -> dict[str, int]:
        """The register read and decoded: {field: value}."""
        return self.map.decode(register, await self.read(register))

    async def dump(self) -> dict[str, int]:
        """Every readable register: {NAME: value}."""
        return {name: await self.read(name) for name in self.map.readable()}


# --- bus requests --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Read:
    offset: int


@dataclass(frozen=True)
class Write:
    offset: int
    value: int


@dataclass(frozen=True)
class Send:
    stream: str
    data: bytes


@dataclass(frozen=True)
class Receive:
    stream: str
    max_bytes: int


@dataclass(frozen=True)
class Pause:
    pass


class DriverError(RuntimeError):
    """The accelerator is not the one the manifest describes, or it did not answer in time."""


class LoadError(DriverError):
    """The loader rejected a bitstream; ``code`` is its LOAD_ERROR code, ``name`` the code's
    name (:class:`spikepack.firmware.bitstream.ErrorCode`)."""

    def __init__(self, code: int):
        from spikepack.firmware.bitstream import ErrorCode
        try:
            self.name = ErrorCode(code).name
        except ValueError:
            self.name = f"UNKNOWN_{code}"
        self.code = code
        super().__init__(f"the loader rejected the bitstream: error {code} ({self.name})")


Op = Generator[Any, Any, Any]


class Protocol:
    """Everything the driver knows, from ``manifest.json`` alone: register offsets and fields,
    T, the stream formats. Its methods are generators of bus requests (run them with
    :class:`Driver` or :class:`AsyncDriver`)."""

    def __init__(self, manifest: dict, *, max_polls: int = 100_000):
        if not isinstance(manifest, dict) or "registers" not in manifest:
            raise TypeError("manifest must be the dict of a SpikePack manifest.json")
        if not isinstance(max_polls, int) or max_polls < 1:
            raise ValueError(f"max_polls must be a positive integer, not {max_polls!r}")
        self.manifest = manifest
        self.max_polls = max_polls
        self.signature = int(manifest["signature"])
        self.timesteps = int(manifest["config"]["timesteps"])
        self.inputs_per_beat = int(manifest["derived"]["inputs_per_beat"])
        self.out_bits = int(manifest["derived"]["output_bits"])
        self.max_outputs = int(manifest["config"]["max_neurons"])
        self.map = RegisterMap(manifest["registers"])
        self.registers_by_name = self.map.by_name

    # --- the register map (:class:`RegisterMap`) ------------------------------------------------

    def offset(self, register: str) -> int:
        return self.map.offset(register)

    def field(self, register: str, field: str) -> tuple[int, int]:
        """(lsb, width) of a field."""
        return self.map.field(register, field)

    def decode(self, register: str, value: int) -> dict[str, int]:
        return self.map.decode(register, value)

    def bit(self, register: str, field: str, value: int = 1) -> int:
        return self.map.bit(register, field, value)

    # --- stream formats -----------------------------------------------------------------------

    def pack_image(self, words) -> bytes:
        """One image's spike words (N0,) -> the ``s_axis_in`` packet (:func:`pack_image`)."""
        z = np.asarray(words)
        if z.ndim != 1 or not np.issubdtype(z.dtype, np.integer):
            raise ValueError(f"an image is a 1-D array of integer spike words, not {z.dtype} "
                             f"of shape {z.shape}")
        if z.size == 0:
            raise ValueError("an image needs at least one spike word")
        return pack_image(z, self.timesteps)

    def unpack_potentials(self, data: bytes) -> np.ndarray:
        """An ``m_axis_out`` packet -> readout potentials (:func:`unpack_potentials`)."""
        return unpack_potentials(data, self.out_bits)

    # --- operations (generators of bus requests) ------------------------------------------------

    def check_hardware(self) -> Op:
        """Check ID and SIGNATURE against the manifest; return the signature."""
        ident = yield Read(self.offset("ID"))
        if ident != MAGIC:
            raise DriverError(f"ID register reads 0x{ident:08x}, not 0x{MAGIC:08x} (\"SPK1\"): "
                              f"no SpikePack accelerator at this address")
        signature = yield Read(self.offset("SIGNATURE"))
        if signature != self.signature:
            raise DriverError(f"hardware signature 0x{signature:08x} differs from the "
                              f"manifest's 0x{self.signature:08x}: another configuration")
        return signature

    def load_network(self, bitstream: bytes) -> Op:
        """Stream a weight bitstream into the loader and wait for its verdict: return when it is
        committed, raise :class:`LoadError` with the loader's code when it is rejected."""
        data = bytes(bitstream)
        if not data or len(data) % 4:
            raise ValueError(f"a bitstream is a whole number of 32-bit words, not {len(data)} bytes")
        good = yield Read(self.offset("LOAD_GOOD"))
        bad = yield Read(self.offset("LOAD_BAD"))
        yield Send("load", data)
        for _ in range(self.max_polls):
            if (yield Read(self.offset("LOAD_BAD"))) != bad:
                code = yield Read(self.offset("LOAD_ERROR"))
                raise LoadError(self.decode("LOAD_ERROR", code)["load_error_code"])
            if (yield Read(self.offset("LOAD_GOOD"))) != good:
                return
            yield Pause()
        raise DriverError(f"the loader gave no verdict after {self.max_polls} polls")

    def run_images(self, images, *, window: int = 2) -> Op:
        """Run images (S, N0) of spike words in free-running mode (CONTROL.RUN = 1); return the
        readout potentials (S, M). At most ``window`` images are in flight (sent, output not
        yet received): the accelerator buffers two, so with 2 the next image is always waiting
        when one ends, and a blocking send never waits on an unread output."""
        z = np.asarray(images)
        if z.ndim != 2:
            raise ValueError(f"images must be a 2-D array (images, inputs), not shape {z.shape}")
        if window < 1:
            raise ValueError(f"window must be at least 1, not {window}")
        packets = [self.pack_image(row) for row in z]
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "run"))
        outputs: list[np.ndarray] = []
        max_bytes = self.max_outputs * self.out_bits // 8
        for sent, packet in enumerate(packets):
            if sent - len(outputs) >= window:
                outputs.append(self.unpack_potentials((yield Receive("out", max_bytes))))
            yield Send("in", packet)
        while len(outputs) < len(packets):
            outputs.append(self.unpack_potentials((yield Receive("out", max_bytes))))
        sizes = {len(o) for o in outputs}
        if len(sizes) > 1:
            raise DriverError(f"output packets of different lengths: {sorted(sizes)}")
        return np.stack(outputs) if outputs else np.zeros((0, 0), dtype=np.int64)

    def registers(self) -> Op:
        """Every readable register: {name: value}."""
        out = {}
        for name in self.map.readable():
            out[name] = yield Read(self.map.offset(name))
        return out

    def status(self) -> Op:
        """STATUS decoded: {field: value}."""
        return self.decode("STATUS", (yield Read(self.offset("STATUS"))))

    def errors(self) -> Op:
        """The loader's last error code and the sticky events: {"load_error": code,
        "load_error_name": name, "events": {field: bit}}."""
        code = self.decode("LOAD_ERROR", (yield Read(self.offset("LOAD_ERROR"))))["load_error_code"]
        events = self.decode("EVENTS", (yield Read(self.offset("EVENTS"))))
        return {"load_error": code, "load_error_name": LoadError(code).name if code else "NONE",
                "events": events}

    def clear_events(self) -> Op:
        yield Write(self.offset("EVENTS"), sum(self.bit("EVENTS", f) for f in
                                               self.decode("EVENTS", 0)))

    def set_run(self, run: bool) -> Op:
        """CONTROL.RUN: 1 free-running, 0 one inference per :meth:`start`."""
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "run", int(bool(run))))

    def start(self, *, run: bool = False) -> Op:
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "start")
                    | self.bit("CONTROL", "run", int(bool(run))))

    def soft_reset(self, *, run: bool = True) -> Op:
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "soft_reset")
                    | self.bit("CONTROL", "run", int(bool(run))))

    def clear_counters(self, *, run: bool = True) -> Op:
        yield Write(self.offset("CONTROL"), self.bit("CONTROL", "clear_counters")
                    | self.bit("CONTROL", "run", int(bool(run))))


#: The operations every front end offers, run over its bus.
OPERATIONS = ("check_hardware", "load_network", "run_images", "registers", "status", "errors",
              "clear_events", "set_run", "start", "soft_reset", "clear_counters")


def _step_sync(bus, request):
    if isinstance(request, Read):
        return int(bus.read32(request.offset))
    if isinstance(request, Write):
        return bus.write32(request.offset, request.value)
    if isinstance(request, Send):
        return bus.send(request.stream, request.data)
    if isinstance(request, Receive):
        return bytes(bus.receive(request.stream, request.max_bytes))
    if isinstance(request, Pause):
        return bus.pause()
    raise TypeError(f"unknown bus request {request!r}")


async def _step_async(bus, request):
    if isinstance(request, Read):
        return int(await bus.read32(request.offset))
    if isinstance(request, Write):
        return await bus.write32(request.offset, request.value)
    if isinstance(request, Send):
        return await bus.send(request.stream, request.data)
    if isinstance(request, Receive):
        return bytes(await bus.receive(request.stream, request.max_bytes))
    if isinstance(request, Pause):
        return await bus.pause()
    raise TypeError(f"unknown bus request {request!r}")


def run_sync(bus, gen: Op):
    """Run an operation (a generator of bus requests) over a bus with plain methods."""
    result = None
    try:
        while True:
            result = _step_sync(bus, gen.send(result))
    except StopIteration as stop:
        return stop.value


async def run_async(bus, gen: Op):
    """Run an operation over a bus whose methods are coroutines."""
    result = None
    try:
        while True:
            result = await _step_async(bus, gen.send(result))
    except StopIteration as stop:
        return stop.value


class Driver:
    """Synchronous front end: ``Driver(bus, manifest)`` (the manifest's dict;
    :class:`spikepack.driver.Driver` also takes its path); every :class:`Protocol` operation
    (:data:`OPERATIONS`) is a method that returns its result."""

    def __init__(self, bus, manifest: dict, **kwargs):
        self.bus = bus
        self.protocol = Protocol(self._manifest(manifest), **kwargs)

    @staticmethod
    def _manifest(manifest) -> dict:
        return manifest

    def _run(self, gen: Op):
        return run_sync(self.bus, gen)


class AsyncDriver:
    """``async`` front end: ``AsyncDriver(bus, manifest)`` (the manifest's dict;
    :class:`spikepack.driver.AsyncDriver` also takes its path); every :class:`Protocol` operation
    (:data:`OPERATIONS`) is a coroutine method (``await drv.run_images(z)``)."""

    def __init__(self, bus, manifest: dict, **kwargs):
        self.bus = bus
        self.protocol = Protocol(self._manifest(manifest), **kwargs)

    @staticmethod
    def _manifest(manifest) -> dict:
        return manifest

    async def _run(self, gen: Op):
        return await run_async(self.bus, gen)


def _sync_op(name):
    @functools.wraps(getattr(Protocol, name))
    def op(self, *args, **kwargs):
        return self._run(getattr(self.protocol, name)(*args, **kwargs))
    return op


def _async_op(name):
    @functools.wraps(getattr(Protocol, name))
    async def op(self, *args, **kwargs):
        return await self._run(getattr(self.protocol, name)(*args, **kwargs))
    return op


for _name in OPERATIONS:
    setattr(Driver, _name, _sync_op(_name))
    setattr(AsyncDriver, _name, _async_op(_name))

"""Stream and pipeline helpers shared by every block: a skid buffer (register slice), a delay
line and a wide OR.

* :class:`SkidBuffer`: cuts every combinational path of a ``stream.Signature`` (``i.ready`` is a
  flip-flop, ``o.valid`` and ``o.payload`` are registers) at full throughput.
* :class:`SkidEntry`: cuts only the ``ready`` path of a stream (``i.ready`` is a flip-flop),
  for a consumer that takes beats straight from it in their cycle.
* :class:`RunAheadFifo`: a small FIFO for a producer that runs ahead of its consumer, whose
  ``r_rdy`` and ``room`` are flip-flops.
* :func:`delay`: a value through ``cycles`` registers.
* :func:`or_all`: the OR of a list of values.
"""

from __future__ import annotations

import functools
import operator

from amaranth import Cat, Const, Module, Mux, Signal
from amaranth.lib import memory, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer", "SkidEntry", "RunAheadFifo", "delay", "or_all"]


def or_all(terms):
    """The bitwise OR of a non-empty sequence of values."""
    terms = list(terms)
    if not terms:
        raise ValueError("or_all needs at least one term")
    return functools.reduce(operator.or_, terms)


def delay(m: Module, value, cycles: int, *, name: str, domain: str = "sync"):
    """``value`` through ``cycles`` (>= 0) registers of ``domain`` named ``<name>_d<i>``;
    ``cycles = 0`` returns ``value`` itself. Latency: ``cycles``."""
    if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 0:
        raise ValueError(f"cycles must be a non-negative integer, not {cycles!r}")
    for i in range(cycles):
        nxt = Signal.like(value, name=f"{name}_d{i}")
        m.d[domain] += nxt.eq(value)
        value = nxt
    return value


class SkidBuffer(wiring.Component):
    """Two-register skid buffer (register slice) for a stream of ``shape`` payloads.

    Ports: ``i`` In(stream.Signature(shape)), ``o`` Out(stream.Signature(shape)).

    ``i.ready`` is a flip-flop (the spare register is empty), ``o.valid`` and ``o.payload`` are
    registers, so no combinational path crosses the buffer in either direction. The output
    register is loaded whenever it may change, ``o.ready | ~o.valid`` (two inputs, whatever
    ``i`` does), with the spare register's payload when that holds a beat, else with
    ``i.payload``; the spare register copies ``i.payload`` whenever it is empty and keeps it
    when a beat is taken that the output register cannot. So a consumer's ``ready`` reaches the
    payload flip-flops through one gate and ``i.valid`` none of their enables (``o.payload``
    while ``o.valid`` is low is whatever ``i`` offered).

    Latency: 1 cycle from the ``i`` handshake to ``o.valid``. Throughput: one beat per cycle
    (``i.ready`` stays high while ``o.ready`` is high). Storage: two payloads.
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        spare = Signal.like(self.i.payload)
        spare_valid = Signal()
        load = Signal()                     # the output register takes a value this cycle
        m.d.comb += [self.i.ready.eq(~spare_valid), load.eq(self.o.ready | ~self.o.valid)]
        with m.If(~spare_valid):
            m.d.sync += spare.eq(self.i.payload)
        with m.If(load):
            m.d.sync += [self.o.payload.eq(Mux(spare_valid, spare, self.i.payload)),
                         self.o.valid.eq(spare_valid | self.i.valid)]
        m.d.sync += spare_valid.eq(~load & (spare_valid | self.i.valid))
        return m


class SkidEntry(wiring.Component):
    """A one-entry skid register in front of a consumer that decides every cycle whether it
    takes a beat (``o.ready``): ``i.ready`` is a flip-flop (the entry is empty), so the
    consumer's decision never reaches the producer in the same cycle; ``o.valid`` and
    ``o.payload`` come from the entry when it is full, else straight from ``i`` (one
    multiplexer). A beat offered while the entry is empty and not taken goes into it; the entry
    copies ``i.payload`` whenever it is empty.

    Ports: ``i`` In(stream.Signature(shape)), ``o`` Out(stream.Signature(shape)).
    Latency: 0 cycles (a beat taken on ``i`` is on ``o`` in the same cycle). Throughput: one
    beat a cycle (``i.ready`` stays high while ``o.ready`` is high). Storage: one payload.
    """

    def __init__(self, shape):
        self._shape = shape
        super().__init__({"i": In(stream.Signature(shape)), "o": Out(stream.Signature(shape))})

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        full = Signal()
        entry = Signal.like(self.i.payload)
        m.d.comb += [self.i.ready.eq(~full), self.o.valid.eq(full | self.i.valid),
                     self.o.payload.eq(Mux(full, entry, self.i.payload))]
        m.d.sync += full.eq((full | self.i.valid) & ~self.o.ready)
        with m.If(~full):                   # (unused unless full rises)
            m.d.sync += entry.eq(self.i.payload)
        return m


class RunAheadFifo(wiring.Component):
    """A first-word-fall-through FIFO of ``depth`` (a power of two, >= 2) ``width``-bit words
    for a producer that runs ahead of its consumer (a generator of addresses or of slots),
    with its level kept as a thermometer code so that the flags are flip-flops.

    Ports (the names of :class:`amaranth.lib.fifo.SyncFIFO`): ``w_en``, ``w_data`` In;
    ``r_en`` In, ``r_data`` Out (the head word, from the storage's asynchronous read: valid
    while ``r_rdy``), ``r_rdy`` Out (a flip-flop: the FIFO holds a word); ``room`` Out (a
    flip-flop: the FIFO holds at most ``depth - 2`` words).

    The contract that replaces a write handshake: a producer whose enable for cycle t is a
    register set from ``room`` in cycle t - 1 never overflows it (the level can have grown by
    one since). A read with ``r_rdy`` low is ignored, or, with ``read_guard=False``, is the
    consumer's promise never to make (one gate less behind ``r_en``). ``r_en`` reaches only the
    read pointer and the level's flip-flops.

    Latency: a word written in cycle t is on ``r_data`` with ``r_rdy`` in t + 1. Throughput:
    one write and one read a cycle.
    """

    def __init__(self, *, width: int, depth: int, read_guard: bool = True):
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"width must be a positive integer, not {width!r}")
        if not isinstance(depth, int) or depth < 2 or depth & (depth - 1):
            raise ValueError(f"depth must be a power of two >= 2, not {depth!r}")
        self._width, self._depth, self._read_guard = width, depth, bool(read_guard)
        super().__init__({"w_en": In(1), "w_data": In(width), "r_en": In(1),
                          "r_data": Out(width), "r_rdy": Out(1), "room": Out(1)})

    @property
    def width(self) -> int:
        return self._width

    @property
    def depth(self) -> int:
        return self._depth

    def elaborate(self, platform):
        m = Module()
        n = self._depth
        m.submodules.storage = storage = memory.Memory(shape=self._width, depth=n, init=[])
        wr = storage.write_port()
        rd = storage.read_port(domain="comb")
        produce = Signal(range(n))
        consume = Signal(range(n))
        level = Signal(n)                   # level[k]: more than k words held
        push = self.w_en & ~level[n - 1]
        pop = self.r_en & level[0] if self._read_guard else self.r_en
        m.d.comb += [wr.addr.eq(produce), wr.data.eq(self.w_data), wr.en.eq(push),
                     rd.addr.eq(consume), self.r_data.eq(rd.data),
                     self.r_rdy.eq(level[0]), self.room.eq(~level[n - 2])]
        with m.If(push):
            m.d.sync += produce.eq(produce + 1)
        with m.If(pop):
            m.d.sync += consume.eq(consume + 1)
        with m.If(push & ~pop):
            m.d.sync += level.eq(Cat(Const(1, 1), level[:-1]))
        with m.Elif(pop & ~push):
            m.d.sync += level.eq(level[1:])
        return m

"""cocotb helpers for ``amaranth.lib.stream`` ports on generated Verilog.

An Amaranth stream member ``x`` of the top level becomes the Verilog ports ``x__valid``,
``x__ready`` and ``x__payload`` (a struct payload is one packed vector, field 0 in the low bits).
This module gives every bench the same pieces, in the structure of cocotb's matrix_multiplier
example (driver -> DUT -> monitor, golden model -> checker):

* :class:`PayloadCodec`: pack and unpack payloads given as dicts (field -> int) for a struct layout
  (field -> ``(offset, width, signed)``, or straight from an Amaranth ``StructLayout``).
* :class:`StreamDriver`: drives ``__valid``/``__payload`` from a queue, honours ``__ready``,
  inserts random valid gaps with probability ``gap``.
* :class:`StreamMonitor`: drives ``__ready`` with random backpressure (probability ``stall``) and
  collects the payloads of every transfer.
* :func:`run_agents`: ONE clocked coroutine that steps any number of drivers and monitors each
  cycle (far cheaper than a coroutine per agent); agents also run alone with ``start()``.
* :func:`check_records`: compares expected and actual records and fails on the first mismatch
  with every field and the seed.

Sampling: values read right after ``await RisingEdge(clk)`` are the values the DUT saw at that
edge (checked under Verilator 5.048 / cocotb 2.1), so a transfer happened at an edge when
valid and ready read there are both 1; new values written then apply until the next edge.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Iterable, Mapping, Sequence

import cocotb
from cocotb.triggers import RisingEdge

from spikepack.hw.verilog import fields_of

__all__ = ["PayloadCodec", "fields_of", "StreamDriver", "StreamMonitor", "run_agents",
           "check_records", "MismatchError"]


class PayloadCodec:
    """Pack/unpack payload integers of a struct layout. ``fields`` maps a field name to
    ``(offset, width, signed)``, or is an Amaranth ``StructLayout``."""

    def __init__(self, fields):
        if not isinstance(fields, Mapping):
            fields = fields_of(fields)
        self.fields = dict(fields)
        self.width = max((o + w for o, w, _ in self.fields.values()), default=0)

    def pack(self, record: Mapping[str, int]) -> int:
        """A dict of field values -> the payload integer. Every value must fit its field."""
        word = 0
        for name, (offset, width, sig) in self.fields.items():
            value = int(record.get(name, 0))
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if sig else (0, (1 << width) - 1)
            if not lo <= value <= hi:
                raise ValueError(f"field {name}={value} does not fit {'signed' if sig else 'unsigned'}"
                                 f"({width})")
            word |= (value & ((1 << width) - 1)) << offset
        return word

    def pack_columns(self, columns: Mapping[str, Sequence[int]]) -> list[int]:
        """Columns (field -> sequence of values, all the same length) -> payload integers."""
        names = list(columns)
        n = len(columns[names[0]]) if names else 0
        words = [0] * n
        for name in names:
            offset, width, sig = self.fields[name]
            lo, hi = (-(1 << (width - 1)), (1 << (width - 1)) - 1) if sig else (0, (1 << width) - 1)
            mask = (1 << width) - 1
            for index, value in enumerate(columns[name]):
                value = int(value)
                if not lo <= value <= hi:
                    raise ValueError(f"beat {index}: field {name}={value} does not fit "
                                     f"{'signed' if sig else 'unsigned'}({width})")
                words[index] |= (value & mask) << offset
        return words

    def unpack(self, word: int) -> dict[str, int]:
        """The payload integer -> a dict of field values (signed fields sign-extended)."""
        out = {}
        for name, (offset, width, sig) in self.fields.items():
            value = (word >> offset) & ((1 << width) - 1)
            if sig and value >> (width - 1):
                value -= 1 << width
            out[name] = value
        return out


class _Agent:
    def __init__(self, dut, name: str, *, rng: random.Random | None = None):
        self.name = name
        self.valid = getattr(dut, f"{name}__valid")
        self.ready = getattr(dut, f"{name}__ready")
        self.payload = getattr(dut, f"{name}__payload")
        self.rng = rng or random.Random(0)
        self.cycle = 0

    def start(self, clk, done=None, max_cycles: int | None = None):
        """Run this agent alone, in its own coroutine."""
        return cocotb.start_soon(run_agents(clk, [self], done=done, max_cycles=max_cycles))


class StreamDriver(_Agent):
    """Drives stream ``name`` of ``dut`` from a queue of payload integers.

    ``gap``: probability that ``valid`` stays low for a cycle when a beat is waiting. Once
    ``valid`` is high it stays high with the same payload until ``ready`` (stream rule).
    ``transfer_cycles`` records the cycle (edge count) of every transfer.
    """

    def __init__(self, dut, name: str, *, gap: float = 0.0, rng=None):
        super().__init__(dut, name, rng=rng)
        self.gap = float(gap)
        self.queue: deque[int] = deque()
        self.sent = 0
        self.transfer_cycles: list[int] = []
        self._valid = 0       # a beat is presented (valid high) this cycle
        self._driven = 0      # the value last written to __valid
        self.valid.value = 0

    def send(self, payloads: Iterable[int]):
        self.queue.extend(payloads)

    @property
    def idle(self) -> bool:
        return not self.queue and not self._valid

    def sample(self):
        if self._valid and self.ready.value:
            self.queue.popleft()
            self.sent += 1
            self.transfer_cycles.append(self.cycle)
            self._valid = 0

    def drive(self):
        self.cycle += 1
        if self._valid:
            return  # hold valid and payload until the transfer
        if self.queue and (self.gap <= 0 or self.rng.random() >= self.gap):
            self.payload.value = self.queue[0]
            if not self._driven:
                self.valid.value = 1
                self._driven = 1
            self._valid = 1
        elif self._driven:
            self.valid.value = 0   # written only on a change: each write costs a VPI call
            self._driven = 0


class StreamMonitor(_Agent):
    """Drives ``name__ready`` with random backpressure (``stall`` = probability that ready is low
    in a cycle) and collects every transferred payload integer in ``received``, with the cycle
    of the transfer in ``transfer_cycles``."""

    def __init__(self, dut, name: str, *, stall: float = 0.0, rng=None):
        super().__init__(dut, name, rng=rng)
        self.stall = float(stall)
        self.received: list[int] = []
        self.transfer_cycles: list[int] = []
        self._ready = 0
        self.ready.value = 0

    def sample(self):
        if self._ready and self.valid.value:
            self.received.append(self.payload.value.to_unsigned())
            self.transfer_cycles.append(self.cycle)

    def drive(self):
        self.cycle += 1
        ready = 0 if (self.stall > 0 and self.rng.random() < self.stall) else 1
        if ready != self._ready:
            self.ready.value = ready
            self._ready = ready


async def run_agents(clk, agents: Sequence[_Agent], *, done=None, max_cycles: int | None = None):
    """Step every agent once per rising edge of ``clk`` (all sample, then all drive) until
    ``done()`` is true; raise ``TimeoutError`` after ``max_cycles``. Returns the cycle count."""
    edge = RisingEdge(clk)
    for agent in agents:
        agent.drive()
    cycles = 0
    while done is None or not done():
        await edge
        cycles += 1
        for agent in agents:
            agent.sample()
        for agent in agents:
            agent.drive()
        if max_cycles is not None and cycles >= max_cycles:
            raise TimeoutError(f"no completion after {cycles} cycles; "
                               + ", ".join(f"{a.name}: {getattr(a, 'sent', len(getattr(a, 'received', [])))}"
                                           for a in agents))
    return cycles


class MismatchError(AssertionError):
    pass


def check_records(expected: Sequence[Mapping], actual: Sequence[Mapping], *, seed, what="record",
                  compare: Sequence[str] | None = None, context=None):
    """Fail (:class:`MismatchError`) on the first record where a compared field differs, or on a
    count mismatch; the message names the index, every expected and actual field, the seed and
    ``context(index)`` (e.g. the stimulus of that record) when given. ``None`` in an expected
    field means "don't care"."""
    for index, (want, got) in enumerate(zip(expected, actual)):
        names = compare or list(want)
        bad = [n for n in names if want.get(n) is not None and want[n] != got.get(n)]
        if bad:
            extra = f"\n  stimulus: {context(index)}" if context else ""
            raise MismatchError(
                f"{what} {index}: mismatch in {', '.join(bad)} (seed {seed})\n"
                f"  expected: {dict(want)}\n  actual:   {dict(got)}{extra}")
    if len(expected) != len(actual):
        raise MismatchError(f"{len(actual)} {what}s received, {len(expected)} expected (seed {seed})")

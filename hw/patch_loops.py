"""S1 of the patch generator (:class:`PatchLoops`): the loop counters of :data:`LEVELS` and which
loop moves at each step (``spikepack.hw.patch``'s module docstring).

A step: the loops inside the lowest one that is not at its last value start again, that one
counts down, the others hold; after the last step of the outermost loop every loop starts again.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.patch_setup import LEVELS, bounds_signature, control_signature

__all__ = ["PatchLoops", "step_signature"]


def step_signature() -> wiring.Signature:
    """One step of the loop nest, registered: ``move`` (bit i: loop i takes its next value),
    ``reset`` (bit i: loop i goes back to its first value, an outer loop moved or the
    sequence starts again)."""
    return wiring.Signature({"move": Out(len(LEVELS)), "reset": Out(len(LEVELS))})


class PatchLoops(wiring.Component):
    """S1: a down-counter per loop (``left``) with registered ``== 0`` and ``== 1`` flags, and the
    registered prefix AND of the ``== 0`` flags (``inner``), so that no AND chain sits between the
    stall and the counters' enables; the wrap (every loop at its last value) is the last prefix
    AND with the last loop's flag, one gate of two registers.

    Ports: ``control`` In(:func:`~spikepack.hw.patch_setup.control_signature`: ``init`` loads
    the bounds, ``adv1`` takes a step), ``bounds`` In(:func:`~spikepack.hw.patch_setup.
    bounds_signature`), ``step`` Out(:func:`step_signature`).

    Latency: ``init`` in cycle t loads the counters; an ``adv1`` in cycle u >= t + 1 puts the
    step of the counters' values of cycle u on ``step`` in u + 1 (the first ``adv1`` after
    ``init`` gives ``move`` = loop cg, or the lowest loop whose bound is not 0). Throughput: one
    step a cycle (every ``adv1``).
    """

    def __init__(self, *, config: HardwareConfig):
        self._config = config
        super().__init__({"control": In(control_signature()),
                          "bounds": In(bounds_signature(config)), "step": Out(step_signature())})

    def elaborate(self, platform):
        m = Module()
        n_lv = len(LEVELS)
        bd, adv1, init = self.bounds, self.control.adv1, self.control.init
        top = [getattr(bd.top, name) for name in LEVELS]
        left = [Signal(len(top[i]), name=f"left_{name}") for i, name in enumerate(LEVELS)]
        zero = [Signal(name=f"zero_{name}") for name in LEVELS]     # left == 0
        one = [Signal(name=f"one_{name}") for name in LEVELS]       # left == 1
        # inner[i]: loops 0 .. i-1 are all at their last value (loop i moves at the next step).
        # inner[i + 1] == inner[i] & zero[i] always (init and every step keep it), so "every
        # loop at its last value" is inner[-1] & zero[-1], two registers: a register of its own
        # would need the AND of all eight loops' next flags, the widest function here (it was
        # the top's critical path at two of three nextpnr seeds)
        inner = [Signal(name=f"inner_{name}") for name in LEVELS]
        move, reset = Signal(n_lv), Signal(n_lv)
        # every next value is formed from registers (as if the step happened) and taken with
        # adv1: the flags' next values are a tree of ANDs over per-loop terms
        zero_step = []
        for i in range(n_lv):
            with m.If(adv1 & inner[i]):
                m.d.sync += [left[i].eq(Mux(zero[i], top[i], left[i] - 1)),
                             one[i].eq(Mux(zero[i], bd.top_one[i], left[i] == 2))]
            zero_step.append(Mux(inner[i], Mux(zero[i], bd.top_zero[i], one[i]), zero[i]))
        with m.If(adv1):
            m.d.sync += [zero[i].eq(zero_step[i]) for i in range(n_lv)]
            m.d.sync += [move.eq(Cat(*(inner[i] & ~zero[i] for i in range(n_lv)))),
                         reset.eq(Cat(*inner[1:], inner[-1] & zero[-1]))]
        m.d.comb += inner[0].eq(1)
        with m.If(init):
            for i in range(n_lv):
                m.d.sync += [left[i].eq(top[i]), zero[i].eq(bd.top_zero[i]),
                             one[i].eq(bd.top_one[i])]
        # (init and adv1 never meet: adv1 follows init by a cycle at the earliest)
        with m.If(adv1 | init):
            m.d.sync += [inner[i + 1].eq(Mux(init, bd.top_zero[:i + 1].all(),
                                             Cat(*zero_step[:i + 1]).all()))
                         for i in range(n_lv - 1)]
        m.d.comb += [self.step.move.eq(move), self.step.reset.eq(reset)]
        return m

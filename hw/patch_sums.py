"""S2-S6 of the patch generator (:class:`PatchSums`): the terms, the registered adder tree and
the padding test (``spikepack.hw.patch``'s module docstring):

    entry = org + P_py + P_px + P_wy + P_wx + P_ky + col,   col = kx*CG + cg
    ix = ix0 + X_px + X_wx + X_kx,   iy = iy0 + Y_py + Y_wy + Y_ky
    pad = iy < 0 or iy >= H or ix < 0 or ix >= W
"""

from __future__ import annotations

from amaranth import Cat, Module, Signal, signed
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.patch_loops import step_signature
from spikepack.hw.patch_setup import LEVELS, bits, control_signature, steps_layout

__all__ = ["PatchSums", "tile_layout"]


def tile_layout(config: HardwareConfig) -> data.StructLayout:
    """One tile: its activation entry ``addr`` and ``pad`` (the word is zero)."""
    return data.StructLayout({"addr": config.act_addr_bits, "pad": 1})


class PatchSums(wiring.Component):
    """S2 (one term per loop and sum: a counter that adds its step when its loop moves and clears
    when an outer one does), S3-S4 (the adder tree: seven terms of the entry, four of each
    coordinate), S5 (the entry and the four compares of ``pad``), S6 (their OR), all registers
    moved by ``adv``.

    Ports: ``control`` In(``init`` clears the terms, ``adv`` moves S2-S6, ``restart`` empties
    them), ``steps`` In(:func:`~spikepack.hw.patch_setup.steps_layout`), ``step``
    In(:func:`~spikepack.hw.patch_loops.step_signature`); ``valid``, ``tile``
    Out(:func:`tile_layout`): S6's tile (``valid``: S6 holds one; it moves on with ``adv``).

    Latency: the tile of the step on ``step`` in a cycle with ``adv`` is on ``tile`` 5 ``adv``
    cycles later (S2, S3, S4, S5, S6); ``valid`` from the fourth ``adv`` after ``restart`` on
    (S3-S6 full).
    Throughput: one tile a cycle (every ``adv``).
    """

    def __init__(self, *, config: HardwareConfig):
        self._config = config
        super().__init__({"control": In(control_signature()), "steps": In(steps_layout(config)),
                          "step": In(step_signature()), "valid": Out(1),
                          "tile": Out(tile_layout(config))})

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        ab, st, adv = cfg.act_addr_bits, self.steps, self.control.adv
        ib = len(st.ix0)
        lv = {name: i for i, name in enumerate(LEVELS)}

        def term(width, steps_by, clear_at, name, sign=False):
            """+= step when one of the loops in ``steps_by`` moves, 0 when ``clear_at`` resets."""
            reg = Signal(signed(width) if sign else width, name=name)
            with m.If(adv):
                with m.If(self.step.reset[lv[clear_at]]):
                    m.d.sync += reg.eq(0)
                for loop, step in steps_by.items():
                    with m.Elif(self.step.move[lv[loop]]):
                        m.d.sync += reg.eq(reg + step)
            with m.If(self.control.init):
                m.d.sync += reg.eq(0)
            return reg

        def stage(values, shape, name):
            """Registers of the next stage (moved with adv), truncated to ``shape``."""
            regs = [Signal(shape, name=f"{name}{k}") for k in range(len(values))]
            with m.If(adv):
                m.d.sync += [r.eq(v) for r, v in zip(regs, values)]
            return regs

        cg_max = -(-cfg.max_channels // cfg.rows)
        col = term(bits(cfg.max_kernel * cg_max), {"cg": 1, "kx": 1}, "kx", "col")
        P = {lp: term(ab, {lp: getattr(st, f"d_{lp}")}, lp, f"P_{lp}")
             for lp in ("ky", "wx", "wy", "px", "py")}
        X = {lp: term(ib, {lp: s}, lp, f"X_{lp}", True)
             for lp, s in (("kx", 1), ("wx", st.s_w), ("px", st.sxp))}
        Y = {lp: term(ib, {lp: s}, lp, f"Y_{lp}", True)
             for lp, s in (("ky", 1), ("wy", st.s_h), ("py", st.syp))}
        a0, a1, a2, a3 = stage([st.org + P["py"], P["px"] + P["wy"], P["wx"] + P["ky"], col],
                               ab, "s3_a")
        x0, x1, y0, y1 = stage([st.ix0 + X["px"], X["wx"] + X["kx"], st.iy0 + Y["py"],
                                Y["wy"] + Y["ky"]], signed(ib), "s3_c")
        b0, b1 = stage([a0 + a1, a2 + a3], ab, "s4_a")
        xs, ys = stage([x0 + x1, y0 + y1], signed(ib), "s4_c")
        s5_addr, s6_addr = Signal(ab), Signal(ab)
        s5_out = Signal(4)                  # the four ways out of the map
        s6_pad = Signal()
        with m.If(adv):
            m.d.sync += [s5_addr.eq(b0 + b1),
                         s5_out.eq(Cat(ys < 0, ys >= st.H, xs < 0, xs >= st.W)),
                         s6_addr.eq(s5_addr), s6_pad.eq(s5_out.any())]
        # S3-S6 hold a tile once S2 has passed one on (four moves after the priming)
        filled = Signal(4)
        with m.If(adv):
            m.d.sync += filled.eq(Cat(1, filled[:-1]))
        with m.If(self.control.restart):
            m.d.sync += filled.eq(0)
        m.d.comb += [self.valid.eq(filled[3]), self.tile.addr.eq(s6_addr),
                     self.tile.pad.eq(s6_pad)]
        return m

"""The patch address generator of a conv layer: im2col without storing it (``docs/array.md``,
``docs/architecture.md``, "Convolution contract", "Engine").

A conv layer (input map C_in x H x W stored channels last, ``firmware.layout.to_storage``:
activation entry ``(y*W + x)*CG + cg`` holds channels cg*R .. cg*R + R - 1 of pixel (y, x),
CG = ceil(C_in / R)) runs on the array as the dense layer (C_out, N), N = K_h*K_w*CG*R, once per
computed output position. This block produces the activation entry of every tile, in the tile
order of the contract:

    for (py, px) in raster order of the pooled map (H_p x W_p):
      for (wy, wx) in raster order of the k_h x k_w pool window:  # oy = py*k_h + wy, ox = px*k_w + wx
        for ct in 0 .. CT-1:                                     # CT = ceil(C_out / C)
          for ky in 0 .. K_h-1:  for kx in 0 .. K_w-1:  for cg in 0 .. CG-1:
            # row tile rt = (ky*K_w + kx)*CG + cg
            iy = oy*s_h + ky - p_h;  ix = ox*s_w + kx - p_w
            entry (iy*W + ix)*CG + cg, or "padding" unless 0 <= iy < H and 0 <= ix < W

After the last tile the sequence starts again from the first (the generator runs ahead of its
consumer, which takes exactly the tiles of its layer and restarts it with ``start``).

**Incremental adds only.** The entries of one kernel row are consecutive (cg innermost, then
kx: ``(iy*W + ix + 1)*CG + 0`` follows ``(iy*W + ix)*CG + CG - 1``), so

    entry = org + py*d_py + px*d_px + wy*d_wy + wx*d_wx + ky*d_ky + col,   col = kx*CG + cg

with d_ky = W*CG, d_wx = s_w*CG, d_wy = s_h*W*CG, d_px = k_w*s_w*CG, d_py = k_h*s_h*W*CG and
org = -(p_h*W + p_w)*CG (entries are counted modulo 2**addr_bits: a padding tile's entry may be
"negative"; it is never read). Each term is a counter that adds its step when its loop moves
and clears when an outer loop does; the input coordinates ix = -p_w + px*k_w*s_w + wx*s_w + kx
and iy = -p_h + py*k_h*s_h + wy*s_h + ky, for the padding test, are formed the same way. The
products are formed in setup cycles by shift-and-add (one add per multiplier bit), so no
multiplier sits in the running datapath.

**Pipeline** (one tile a cycle, every stage a register): S1 the loop counters (a down-counter
and a registered ``== 0`` flag per loop, the innermost first), and for S2 which loop moves at
the next step (the lowest whose flag is clear) and which loops clear (those inside it; all of
them when every flag is set: the sequence starts again), registered; S2 the terms (a carry
chain each, no selection); S3 and S4 a registered adder tree (seven terms of the entry, four of
each coordinate); S5 the entry and the four compares of ``pad``, S6 their OR, registered; then a
four-entry :class:`~spikepack.hw.stream.RunAheadFifo` (``o`` is its read side). S1-S6 move
together (``adv``, a flip-flop): they hold while the FIFO held 3 or more tiles the cycle before
(it can have gained at most one since, so a tile leaving S6 always finds room), which keeps
``o.ready`` (the FIFO's read enable: its read pointer and level) away from the 140-odd enables
of S1-S6 and one tile a cycle flowing while the consumer takes one a cycle.

Ports: ``start`` In(1) (a strobe: ``geometry`` is sampled in its cycle and the generator starts
over, whatever it was doing), ``geometry`` In(:func:`geometry_layout`) (the descriptor's conv
fields and ``neurons`` = C_out), ``o`` Out(stream of ``{addr, pad}``): one tile each; ``pad``
set means the tile's activation word is zero and ``addr`` is meaningless. ``positions``
Out: the computed output positions H_out' * W_out' = (H_p*k_h) * (W_p*k_w), and ``window``
Out: k_h*k_w, both valid from the first ``o.valid`` after ``start`` until the next ``start``.

Latency and throughput. From a ``start`` in cycle t the first tile is valid on ``o`` in cycle
t + :func:`setup_latency` (config) = t + 13 + S0 + S1 + S2, where S0, S1, S2 are the steps of
the three multiply phases (:func:`phase_steps`: the bits of their widest multipliers, W and the
pooled sides in phase 0, H_out' <= max_map_side + 14 in phase 1, k_h in phase 2; 6 + 6 + 3
for max_map_side 32): the geometry register, the CG/CT cycle, a load cycle per phase, the
origin cycle, the loop counters' initial values, the priming of S1, the steps into S3, S4, S5
and S6 and the output buffer's register. Then one tile per cycle for as long as ``o.ready`` is
high (the generator never runs dry: S1-S6 advance whenever the buffer has room); with
``o.ready`` low the tile stays on ``o`` (a stream). Throughput: one tile per cycle.
"""

from __future__ import annotations

from amaranth import Module, ResetInserter
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.hw.patch_loops import PatchLoops
from spikepack.hw.patch_setup import (LEVELS, POOL_BITS, PatchSetup, geometry_layout,
                                      phase_steps, setup_latency, side_bits)
from spikepack.hw.patch_sums import PatchSums, tile_layout
from spikepack.hw.stream import RunAheadFifo


__all__ = ["PatchGenerator", "geometry_layout", "patch_sequence", "setup_latency", "LEVELS",
           "phase_steps", "side_bits", "POOL_BITS"]


def patch_sequence(*, rows: int, cols: int, in_channels: int, in_height: int, in_width: int,
                   kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int],
                   pool: tuple[int, int], out_channels: int):
    """The reference loop nest: yields (entry or None for padding) for every tile of one layer,
    in the contract's order (``rows`` = R, ``cols`` = C)."""
    R, C = rows, cols
    H, W = in_height, in_width
    (K_h, K_w), (s_h, s_w), (p_h, p_w), (k_h, k_w) = kernel, stride, padding, pool
    CG, CT = -(-in_channels // R), -(-out_channels // C)
    H_out = (H + 2 * p_h - K_h) // s_h + 1
    W_out = (W + 2 * p_w - K_w) // s_w + 1
    for py in range(H_out // k_h):
        for px in range(W_out // k_w):
            for wy in range(k_h):
                for wx in range(k_w):
                    oy, ox = py * k_h + wy, px * k_w + wx
                    for _ct in range(CT):
                        for ky in range(K_h):
                            for kx in range(K_w):
                                for cg in range(CG):
                                    iy, ix = oy * s_h + ky - p_h, ox * s_w + kx - p_w
                                    if 0 <= iy < H and 0 <= ix < W:
                                        yield (iy * W + ix) * CG + cg
                                    else:
                                        yield None


class PatchGenerator(wiring.Component):
    """Pipelined patch address generator of ``config`` (see the module docstring): a
    :class:`~spikepack.hw.patch_setup.PatchSetup` (geometry register, CG/CT, the multiply
    phases, origin, bounds, run control), :class:`~spikepack.hw.patch_loops.PatchLoops` (S1),
    :class:`~spikepack.hw.patch_sums.PatchSums` (S2-S6) and the output
    :class:`~spikepack.hw.stream.RunAheadFifo`. Latency :func:`setup_latency`, then one tile a
    cycle."""

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        if not config.conv:
            raise ValueError("a configuration with conv = False has no conv layers and no "
                             "patch generator")
        self._config = config
        self._setup = PatchSetup(config=config)
        super().__init__({
            "start": In(1),
            "geometry": In(geometry_layout()),
            "o": Out(stream.Signature(tile_layout(config))),
            "positions": Out(len(self._setup.positions)),
            "window": Out(len(self._setup.window)),
        })

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from ``start`` to the first tile on ``o`` (:func:`setup_latency`)."""
        return setup_latency(self._config)

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        m.submodules.setup = setup = self._setup
        m.submodules.loops = loops = PatchLoops(config=cfg)
        m.submodules.sums = sums = PatchSums(config=cfg)
        restart = setup.control.restart
        # the output FIFO; S1-S6 hold while it held 3 or more tiles the cycle before
        m.submodules.out_fifo = out_fifo = ResetInserter(restart)(
            RunAheadFifo(width=len(self.o.payload.as_value()), depth=4))
        wiring.connect(m, setup.control, loops.control, sums.control)
        wiring.connect(m, setup.bounds, loops.bounds)
        wiring.connect(m, loops.step, sums.step)
        m.d.comb += [
            setup.start.eq(self.start), setup.geometry.eq(self.geometry),
            setup.room.eq(out_fifo.room), sums.steps.eq(setup.steps),
            self.positions.eq(setup.positions), self.window.eq(setup.window),
            out_fifo.w_en.eq(sums.valid & setup.control.adv),
            out_fifo.w_data.eq(sums.tile),
            # (the cycle after a start the FIFO still holds the previous layer's tiles; a pop
            # then is overridden by its reset)
            self.o.valid.eq(out_fifo.r_rdy & ~restart),
            self.o.payload.eq(out_fifo.r_data), out_fifo.r_en.eq(self.o.ready),
        ]
        return m

"""The layer engine's setup: the descriptor handshake and the setup cycles that register a
layer's loop bounds (:class:`LayerSetup`), with a conv layer's patch generator, whose first
tile a conv layer's setup waits for. ``descriptor_layout`` (the engine's ``start``, re-exported
by :mod:`spikepack.hw.layer_engine`) and ``layer_layout`` (the registered bounds) are defined
here once."""

from __future__ import annotations

from amaranth import Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig
from spikepack.firmware.layout import CONV_FIELDS, DESCRIPTOR_FIELDS

from .patch import PatchGenerator, geometry_layout
from .result_buffer import bounds_layout, counter_bits

__all__ = ["LayerSetup", "LayerSignature", "descriptor_layout", "layer_layout"]


def descriptor_layout(config: HardwareConfig) -> data.StructLayout:
    """The engine's ``start`` payload: fan_in, neurons, weight_base, column_base, readout, and
    in conv configurations ``conv`` and the conv fields (``firmware.layout`` widths)."""
    mems = config.memories
    fields = {
        "fan_in": 16,
        "neurons": 16,
        "weight_base": mems["weight"].addr_bits,
        "column_base": mems["bias"].addr_bits,
        "readout": 1,
    }
    if config.conv:
        for name in ("conv",) + CONV_FIELDS:
            fields[name] = DESCRIPTOR_FIELDS[name][1]
    return data.StructLayout(fields)


def layer_layout(config: HardwareConfig, *, pos_bits: int = 1,
                 win_bits: int = 1) -> data.StructLayout:
    """A layer's registered bounds: ``wbase``, ``cbase``, ``readout``, ``rt_max`` = G - 1 (and
    == 0), ``empty`` (N or M is 0), ``is_conv``, ``positions_m1`` (conv: Q - 1), and the
    result buffer's ``results`` (:func:`spikepack.hw.result_buffer.bounds_layout`; its
    ``ct_max``, ``ct_max_zero`` and ``pos_zero`` are the controller's too)."""
    rt_bits = counter_bits(config)[0]
    mems = config.memories
    return data.StructLayout({
        "wbase": mems["weight"].addr_bits, "cbase": mems["bias"].addr_bits, "readout": 1,
        "rt_max": rt_bits, "rt_max_zero": 1, "empty": 1, "is_conv": 1,
        "positions_m1": pos_bits,
        "results": bounds_layout(config, pos_bits=pos_bits, win_bits=win_bits),
    })


class LayerSignature(wiring.Signature):
    """A layer's setup as its producer (:class:`LayerSetup`) sees it: ``setup1`` and ``setup2``
    Out(1), the setup cycles (``setup1``: the weight and column bases are valid; ``setup2``:
    all of ``layer``), and ``layer`` Out(:func:`layer_layout`), valid until the next
    ``setup1``. A consumer's member is its flip (``In(LayerSignature(...))``)."""

    def __init__(self, config: HardwareConfig, *, pos_bits: int = 1, win_bits: int = 1):
        self._args = (config, pos_bits, win_bits)
        super().__init__({"setup1": Out(1), "setup2": Out(1),
                          "layer": Out(layer_layout(config, pos_bits=pos_bits,
                                                    win_bits=win_bits))})

    def __eq__(self, other):
        return type(other) is type(self) and other._args == self._args

    def __hash__(self):
        return hash(self._args)


class LayerSetup(wiring.Component):
    """Accepts a descriptor when idle and registers the layer's bounds for the controller and
    the result buffer.

    Cycle by cycle from the handshake in cycle t: in t + 1 (``setup1``) the descriptor's
    fields and tile counts are registered; in t + 2 (``setup2``, dense) the bounds on
    ``layer`` are valid (G - 1, CT - 1, (M - 1) mod C and their flags, the conv slot
    generator's start values). A conv layer waits for the patch generator's first tile:
    ``setup2`` comes in t + 1 + L_patch (:func:`spikepack.hw.patch.setup_latency`, the cycle
    after the tile is on ``tiles``). Every descriptor starts the generator (a dense layer
    ignores it). ``busy`` (= not ``start.ready``) rises with the handshake and falls after
    ``done`` (the layer's last output handshake) or, for an empty layer (N or M = 0), after
    ``setup2``.

    Ports: ``start`` In(stream of ``descriptor_layout``), ``done`` In(1), ``busy`` Out(1),
    ``bounds`` Out(:class:`LayerSignature`: ``setup1``/``setup2``, ``layer``), ``tiles`` (conv
    configurations) Out(stream of the patch generator's tiles: addr, pad).

    Latency: bounds valid 2 cycles after the handshake (dense), L_patch + 1 (conv).
    Throughput: one descriptor per layer (none while ``busy``).
    """

    def __init__(self, *, config: HardwareConfig):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        self._config = config
        self._patch = PatchGenerator(config=config) if config.conv else None
        pos_bits = len(self._patch.positions) if config.conv else 1
        win_bits = len(self._patch.window) if config.conv else 1
        members = {
            "start": In(stream.Signature(descriptor_layout(config))), "done": In(1),
            "busy": Out(1),
            "bounds": Out(LayerSignature(config, pos_bits=pos_bits, win_bits=win_bits)),
        }
        if config.conv:
            members["tiles"] = Out(self._patch.o.signature)
        super().__init__(members)

    def elaborate(self, platform):
        m = Module()
        cfg, lay, res = self._config, self.bounds.layer, self.bounds.layer.results
        R, C, conv = cfg.rows, cfg.cols, cfg.conv
        log_r, log_c = (R - 1).bit_length(), (C - 1).bit_length()
        # tile counters sized by the configuration's limits (fan_in <= max_fan_in and
        # neurons <= max_neurons is the descriptor's contract; the loader rejects larger
        # layers): short counters, short carry chains
        fan_max = cfg.neuron_fan_in         # max_fan_in, or a conv layer's longest patch
        out_max = max(cfg.max_neurons, cfg.max_channels if conv else 0)
        rt_bits, ct_bits, idx_bits = counter_bits(cfg)
        busy, setup1, setup2 = Signal(), self.bounds.setup1, self.bounds.setup2
        neurons = Signal(16)
        row_tiles, col_tiles = Signal(rt_bits), Signal(ct_bits)
        fan_zero = Signal()                 # fan_in == 0, at the handshake
        neu_zero = Signal()                 # neurons == 0
        handshake = self.start.valid & self.start.ready
        m.d.comb += [self.busy.eq(busy), self.start.ready.eq(~busy)]
        with m.If(handshake):
            p = self.start.payload
            m.d.sync += [
                busy.eq(1), neurons.eq(p.neurons), lay.wbase.eq(p.weight_base),
                lay.cbase.eq(p.column_base), lay.readout.eq(p.readout),
                row_tiles.eq((p.fan_in + R - 1) >> log_r),
                col_tiles.eq((p.neurons + C - 1) >> log_c),
                # (the bits a descriptor within the limits can set)
                fan_zero.eq(p.fan_in[:fan_max.bit_length()] == 0),
                neu_zero.eq(p.neurons[:out_max.bit_length()] == 0),
            ]
        m.d.sync += setup1.eq(handshake)
        if conv:
            self._conv_setup(m, handshake, neurons, col_tiles)
        else:
            m.d.comb += lay.is_conv.eq(Const(0, 1))
            m.d.sync += setup2.eq(setup1)
        with m.If(setup1):
            m.d.sync += [
                lay.rt_max.eq(row_tiles - 1), res.ct_max.eq(col_tiles - 1),
                lay.rt_max_zero.eq(row_tiles == 1), res.ct_max_zero.eq(col_tiles == 1),
                res.ct_max_one.eq(col_tiles == 2),
                lay.empty.eq(fan_zero | neu_zero),
                res.last_sel.eq((neurons - 1)[:max(1, log_c)] if C > 1 else 0),
                res.last_sel_zero.eq((neurons - 1)[:max(1, log_c)] == 0 if C > 1 else 1),
            ]
        # busy falls with the handshake of the last beat; an empty layer (N or M = 0) finishes
        # at once
        with m.If(self.done):
            m.d.sync += busy.eq(0)
        with m.If(setup2 & lay.empty):
            m.d.sync += busy.eq(0)
        return m

    def _conv_setup(self, m, handshake, neurons, col_tiles):
        """A conv layer waits in setup for the patch generator's first tile (its products take
        setup cycles): setup2 comes setup_latency - 1 cycles later than a dense layer's."""
        R, lay, res = self._config.rows, self.bounds.layer, self.bounds.layer.results
        setup1, setup2 = self.bounds.setup1, self.bounds.setup2
        m.submodules.patch = patch = self._patch
        wiring.connect(m, patch.o, wiring.flipped(self.tiles))
        is_conv = lay.is_conv               # the layer is a conv layer
        wait_patch = Signal()
        # (every descriptor starts the generator: a dense layer ignores it, and the
        # handshake reaches the geometry registers' enables through no further gate)
        m.d.comb += patch.start.eq(handshake)
        for name in geometry_layout().members:
            m.d.comb += getattr(patch.geometry, name).eq(getattr(self.start.payload, name))
        with m.If(handshake):
            m.d.sync += is_conv.eq(self.start.payload.conv)
        with m.If(setup1 & is_conv):
            m.d.sync += wait_patch.eq(1)
        with m.If(wait_patch & patch.o.valid):
            m.d.sync += wait_patch.eq(0)
        m.d.sync += setup2.eq((setup1 & ~is_conv) | (wait_patch & patch.o.valid))
        with m.If(setup1):                  # CG_out*R: the stored words of a pooled pixel
            m.d.sync += res.cgr_out.eq(((neurons + R - 1) >> (R - 1).bit_length())
                                       << (R - 1).bit_length())
        # the generator's positions and pool window less one, registered (they are valid
        # long before its first tile)
        positions_one = Signal()
        m.d.sync += [lay.positions_m1.eq(patch.positions - 1),
                     positions_one.eq(patch.positions == 1),
                     res.window_m1.eq(patch.window - 1), res.window_one.eq(patch.window == 1)]
        # the values setup2 gives the position and window counters, a layer's kind folded
        # in a cycle ahead (setup2's fan-out then selects registers only; col_tiles, not
        # ct_max_zero: a dense layer's setup2 follows setup1 at once)
        m.d.sync += [res.window_two.eq(patch.window == 2),
                     res.pos_one.eq(is_conv & (patch.positions == 2)),
                     res.win_one.eq(is_conv & res.window_two)]
        m.d.sync += [res.pos_left.eq(Mux(is_conv, lay.positions_m1, 0)),
                     res.pos_zero.eq(~is_conv | positions_one),
                     res.win_left.eq(Mux(is_conv, res.window_m1, 0)),
                     res.win_zero.eq(~is_conv | res.window_one),
                     res.next_end.eq((col_tiles == 1) & (~is_conv | positions_one))]

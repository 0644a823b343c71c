"""The layer engine: one layer of any N x M on the R x C spike array and C neuron units, in
pe_mode "serial" (spike-gated adds, one bit plane a cycle) or "packed" (a weight x p(z)
multiplier per PE, one tile a cycle).

Dataflow (weight-stationary, ``docs/array.md``). The layer is cut into K = G * CT tiles,
G = ceil(N/R) row tiles for each of CT = ceil(M/C) column tiles, processed column tile by
column tile, row tile by row tile (the order of the weight memory, ``firmware/layout.py``).
Each tile occupies one *period* of P = max(T, R/g) cycles: in its first T cycles its T bit
planes (step 1 first) enter the array, read from the activation entry of its row tile; in the
same period the weight words of later tiles are read, one per cycle, into the PEs' shadow
registers (:func:`spikepack.hw.array.load_schedule`), so the array runs tile after tile without
bubbles when R/g <= T (P = T). The array delivers, R cycles after a plane enters, one step
current per column; these go to the C neuron units (SpikePackNeuron or LIFNeuron per
``config.neuron``): every neuron receives G groups of T beats, ``last`` on the final beat, with
its bias and threshold read from the bias/threshold memories (word ``column_base + ct``) so that
they arrive with the neuron's first beat and stay until its last. The C results of a column tile are sent on ``o`` one per cycle in
index order; results of neurons beyond M (in the last column tile) are dropped.

Packed pe_mode (``config.pe_mode == "packed"``, SpikePack neurons only). A tile is ONE beat:
the array receives the tile's activation entry (R spike words) whole, expands each row's word to
p(z) by wiring, and each PE adds w * p(z) to the partial sum passing down its column, so the
columns deliver, R cycles later, the tile's packed partial potentials sum_j w_ij * p(z_j), which
go to the C SpikePackNeuron units in input_mode "packed" (a neuron is G beats, ``last`` on the
final row tile; v = bias + sum of the beats). The period is P = max(1, R/g) with
g = ``config.rows_per_word`` (= R by default: one R*C*b_w-bit weight word per tile, read every
cycle), so the weight port streams a whole tile per cycle: P = 1. Same ports, same ``o``
semantics, same stall rules as the serial mode.

Conv layers (``config.conv``; ``docs/architecture.md``, "Convolution contract"; a descriptor
with ``conv`` = 1). The layer is the dense layer (C_out, N) of its patch, N = K_h*K_w*CG_in*R
(``fan_in``), run once per computed output position: Q = H_out' * W_out' = H_p*k_h * W_p*k_w
positions, pooled positions in raster order, the positions of each pool window in raster
order, at each position the K = G * CT tiles of the dense layer in the same order (column tile
by column tile, row tile rt = (ky*K_w + kx)*CG_in + cg by row tile), so Q*K tiles in all:

* weights: tile (ct, rt) reads words weight_base + (ct*G + rt)*(R/g) + q at every position (the
  tile bases run in a per-period shift register that wraps back to weight_base after a
  position's last tile). Re-reading costs no cycle: the weight port reads one word a cycle
  anyway and a tile period P = max(T, R/g) holds its R/g reads, so a position takes the dense
  layer's K*P cycles whatever the weights' reuse (keeping a column tile's G*R*C weights in the
  array across positions would need G weight registers per PE);
* bias and threshold: word column_base + ct, read once per column tile and position (a second
  down-counter wraps the address after a position's last column tile);
* activations: the entry of each tile comes from the patch address generator
  (:class:`spikepack.hw.patch.PatchGenerator`, one entry per tile a cycle, popped by the
  activation read); a padding tile is not read, its word is cleared in the entry register;
* outputs: per position and column tile the channels o = ct*C + c < C_out, ``index`` =
  ((py*W_p + px)*CG_out)*R + o (the storage index of the POOLED word, CG_out = ceil(C_out/R)),
  ``channel`` = o, ``pool_first`` on a window's first position, ``last`` on the layer's final
  beat (the sequencer pools and stores them).

A conv layer's setup waits for the patch generator's first tile (its products take setup
cycles), so its latency is the dense formula of the (C_out, N) layer with K -> Q*K tiles and
the setup 3 + Lm -> S_conv = 3 + Lm + L_patch - 1 (L_patch =
:func:`spikepack.hw.patch.setup_latency`; 28 cycles for the default configuration):

    L_conv = S_conv + W*P + (Q*K - 1)*P + B + R + D_n + 3 + C_last
        (compute-bound as a dense layer: C < G*P, packed also T < G*P; :func:`conv_expected_cycles`)

against the ideal ceil(C_in*K_h*K_w / R) * CT * Q * B (:func:`conv_ideal_cycles`): a tile holds
R patch rows of which C_in*K_h*K_w / (G*R) are useful (one input channel padded to R lanes: 1/R),
and C_out / (CT*C) of its columns. ``config.conv = False`` builds no patch generator and has no
conv fields in its descriptor.

Flow control: credits, and a controller that pauses (never the array). The controller's
decisions (one per cycle: which plane, which weight word, which activation entry) leave it
through a command register; the array runs every cycle (a cycle without a plane is a bubble)
and the neuron units never stall their input, because their output never waits: their C
results of a column tile go, all in the same cycle, into one slot of a result buffer (a LUT-RAM
of ``result_slots`` column tiles), from which a shift register and a two-register skid buffer
send them on ``o`` one per cycle. The controller pauses (before the planes of a column tile's
LAST row tile, whose beats finish C neurons) while a registered credit count says the buffer
could fill, and in packed mode also until the units' decode stages have had
``cycles_per_neuron(1)`` cycles since the previous column tile. So no combinational path runs
from ``o.ready`` or the neuron units' state to the array, the memories or the address counters
(the old design's single stall enable was its critical path). The result buffer, its credits and
a conv layer's slot sequence are :class:`spikepack.hw.result_buffer.ResultBuffer`, the
descriptor handshake and the setup cycles (with the patch generator)
:class:`spikepack.hw.layer_setup.LayerSetup`, the controller (the tile schedule, the pause,
the cooldown and the command register) :class:`spikepack.hw.tile_control.TileController`, the
bias and threshold reads
:class:`spikepack.hw.column_params.ColumnParams`, the reads
and beats from the command register to the array :class:`spikepack.hw.plane_feed.PlaneFeed`
(their docstrings have their latency and throughput). The load schedule's windows hold
across a pause (``tests/test_layer_rtl.py`` pauses before nearly every column tile with a 4-slot
buffer): a pause falls between two periods, where every weight word already read belongs to a
tile up to the next plane tile, except with one-cycle periods and advance 2, where the word read
last launches with the next decision instead of a fixed cycle after its read (the memory holds
it). Tile bookkeeping uses per-period shift registers and down-counters, not tile-number
comparisons.

Register stages for the clock (250 MHz class on ECP5): every word from a block RAM (activation,
weight, bias, threshold) is registered on entry to the engine, the reads being issued that
much earlier; the serial bit plane is the top bit of a per-row shift register (no T-way
selection); the weight port reads every cycle (no enable fan-out to its block RAMs) unless a
word must wait for a decision-time launch; the bias and threshold addresses are two counters;
the tile counters are as wide as the configuration's limits need.

Ports (``docs/architecture.md``, layer engine contract): ``start`` (descriptor stream, accepted
when idle), read ports ``weight``, ``bias``, ``threshold`` (``addr``, ``en``, ``data``:
:class:`spikepack.hw.memories.ReadPortSignature`, flipped, connected to
:class:`spikepack.hw.memories.NetworkMemories`), ``act`` (the same signature: the activation
buffer, entry e holds inputs e*R .. e*R+R-1, input e*R+i at bits i*T ..), ``o`` (index,
channel, pool_first, spikes, potential, last: ``output_layout``; channel and pool_first are
set in conv layers only), ``busy``. A dense descriptor's ``fan_in`` and ``neurons`` must not
exceed ``config.max_fan_in`` and ``config.max_neurons``, a conv descriptor's ``fan_in`` (its
patch) ``config.max_patch`` and its channels ``config.max_channels``, its maps
``max_map_side`` and ``max_map_words`` (the loader rejects other layers): the tile counters
are only as wide as those limits need.

Latency and throughput, with the output never stalled (``o.ready`` = 1), in clock edges from
the descriptor handshake to the last ``o`` handshake (setup cycles and register stages
included):

    L = (3 + Lm) + W*P + (K - 1)*P + B + R + D_n + 3 + C_last
        (compute-bound: C < G*P, packed also T < G*P)

3 + Lm: the second setup cycle, the command register, the memory read latency
Lm = ``MEMORY_READ_LATENCY``, the activation word's entry register and the plane register; W = ``load_schedule(...).warmup`` warm-up
periods (1, or 2 when P = 1; packed with g = R: W = 2, P = 1) load the first tile; K - 1 tile
periods and the B beats of the last tile (T planes, or 1 packed beat); R the array latency;
D_n the neuron unit's ``latency`` (from the handshake of a neuron's last beat to its result);
3: the result buffer write, the shift register and the output register; C_last =
M - (CT-1)*C the outputs of the last column tile (:func:`expected_cycles`,
:func:`compute_bound`).

Steady state: one tile per P cycles (R*C*T spike-gated adds per P cycles; P = T for the
auto-chosen g), i.e. the ideal K*T cycles for the whole layer plus the constant fill/drain.
Bounds: a column tile cannot take fewer than C cycles (its C outputs leave one per cycle on
``o``) while it computes for G*P cycles, so a layer is compute-bound when G*P > C (at G*P = C a
unit may lose a cycle now and then) and output-bound, about CT*C ~ M cycles, when G*P < C; the
weight port bounds the period at R/g cycles (P = max(T, R/g)). ``busy`` is high from the
handshake to the last ``o`` handshake.

Packed steady state: one tile per cycle (R*C multiply-accumulates of a T-step word, i.e. R*C*T
synaptic weight x time-step products per cycle, T times the serial rate), i.e. the ideal K
cycles plus the constant fill/drain of the formula. But a column tile then computes for only
G cycles, so two other bounds bite much sooner than in serial mode: its C outputs leave one per
cycle on ``o`` (at least C cycles per column tile) and each neuron unit decodes one neuron per T
cycles (at least T cycles per column tile). A packed layer takes about
``CT * max(G, C, T)`` cycles plus the fill: compute-bound only when G = ceil(N/R) > max(C, T),
i.e. N > R*max(C, T) inputs (64 on 8x8 at T = 4); below that, the one-output-per-cycle port (or
the decode) sets the pace, about M cycles for the layer whatever R.
"""

from __future__ import annotations

from amaranth import Cat, Module, Mux
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from .array import SpikeArray, load_schedule
from .column_params import ColumnParams
from .layer_setup import LayerSetup, descriptor_layout
from .patch import setup_latency as patch_setup_latency
from .memories import ReadPortSignature
from .neuron_common import neuron_class
from .plane_feed import MEMORY_READ_LATENCY, PlaneFeed
from .result_buffer import ResultBuffer, output_layout, result_bits
from .tile_control import TileController

__all__ = ["LayerEngine", "descriptor_layout", "output_layout", "beats_per_tile", "schedule",
           "ideal_cycles", "expected_cycles", "compute_bound", "conv_setup_cycles",
           "conv_ideal_cycles", "conv_expected_cycles", "conv_compute_bound", "conv_utilisation"]


def beats_per_tile(config: HardwareConfig) -> int:
    """Beats a tile presents to the array: T bit planes (serial) or 1 packed word (packed)."""
    return 1 if config.pe_mode == "packed" else config.timesteps


def schedule(config: HardwareConfig):
    """The weight-load schedule (:func:`spikepack.hw.array.load_schedule`) of ``config``."""
    return load_schedule(rows=config.rows, rows_per_word=config.rows_per_word,
                         beats=beats_per_tile(config))


def ideal_cycles(config: HardwareConfig, fan_in: int, neurons: int) -> int:
    """ceil(N/R) * ceil(M/C) * T (serial: one bit plane per cycle, every PE busy) or
    ceil(N/R) * ceil(M/C) (packed: one tile per cycle)."""
    return -(-fan_in // config.rows) * -(-neurons // config.cols) * beats_per_tile(config)


def compute_bound(config: HardwareConfig, fan_in: int) -> bool:
    """True when a layer of ``fan_in`` inputs is compute-bound, i.e. :func:`expected_cycles`
    is exact with ``o`` never stalled: a column tile computes for G*P cycles, which must exceed
    the C cycles its outputs take on ``o`` and (packed mode) the T cycles a neuron unit needs to
    decode one neuron."""
    G, P = -(-fan_in // config.rows), schedule(config).period
    if config.pe_mode == "packed":
        return G * P > max(config.cols, config.timesteps)
    return G * P > config.cols


def expected_cycles(config: HardwareConfig, fan_in: int, neurons: int) -> int:
    """The latency formula of the module docstring: exact for compute-bound layers
    (:func:`compute_bound`) with ``o`` never stalled, a lower bound otherwise."""
    return _latency(config, fan_in, neurons, 1, SETUP)


def _latency(config, fan_in, neurons, positions, setup):
    sched = schedule(config)
    R, C, P = config.rows, config.cols, sched.period
    B = beats_per_tile(config)
    decode = neuron_latency(config)
    G, CT = -(-fan_in // R), -(-neurons // C)
    return (setup + sched.warmup * P + (positions * G * CT - 1) * P + B + R + decode + RESULT
            + (neurons - (CT - 1) * C))


def conv_setup_cycles(config: HardwareConfig) -> int:
    """S_conv = SETUP + L_patch - 1: a conv layer's setup term of the latency formula, the dense
    layer's SETUP plus the patch generator's :func:`spikepack.hw.patch.setup_latency` L_patch
    less the one setup cycle it replaces (the controller starts the cycle after the
    generator's first tile is on its output, instead of two cycles after the handshake)."""
    if not config.conv:
        raise ValueError("a configuration with conv = False runs no conv layers")
    return SETUP + patch_setup_latency(config) - 1


def conv_ideal_cycles(config: HardwareConfig, in_channels: int, kernel, neurons: int,
                      positions: int) -> int:
    """ceil(C_in*K_h*K_w / R) * ceil(C_out / C) * H_out' * W_out' * T (serial; packed: T -> 1)
    with ``positions`` = H_out' * W_out' = H_p*k_h * W_p*k_w, the computed positions, and
    ``kernel`` = (K_h, K_w): every PE busy on a useful patch row at every beat."""
    K_h, K_w = kernel
    return (-(-in_channels * K_h * K_w // config.rows) * -(-neurons // config.cols)
            * positions * beats_per_tile(config))


def conv_compute_bound(config: HardwareConfig, fan_in: int) -> bool:
    """:func:`compute_bound` of the conv layer's patch N = ``fan_in`` (a column tile at one
    position computes for G*P cycles, G = N/R): when it holds, :func:`conv_expected_cycles` is
    exact with ``o`` never stalled."""
    return compute_bound(config, fan_in)


def conv_expected_cycles(config: HardwareConfig, fan_in: int, neurons: int,
                         positions: int) -> int:
    """The conv latency formula of the module docstring, from the descriptor handshake to the
    last ``o`` handshake: the dense formula of the (C_out, N) layer, ``fan_in`` = N =
    K_h*K_w*CG_in*R, with K = positions * G * CT tiles and the conv setup S_conv
    (:func:`conv_setup_cycles`). Exact when :func:`conv_compute_bound` and ``o`` is never
    stalled, a lower bound otherwise."""
    return _latency(config, fan_in, neurons, positions, conv_setup_cycles(config))


def conv_utilisation(config: HardwareConfig, in_channels: int, kernel, neurons: int,
                     positions: int, cycles: int) -> float:
    """SPEC utilisation of a conv layer that took ``cycles``: the useful weight x time-step
    products C_out*C_in*K_h*K_w*H_out'*W_out'*T over what the array could do, R*C*T per cycle
    (serial: R*C spike-gated adds a cycle, T per product of a T-step word; packed: R*C
    multiply-accumulates of a T-step word a cycle), i.e.
    C_out*C_in*K_h*K_w*positions*B / (R*C*cycles) with B = T serial, 1 packed."""
    K_h, K_w = kernel
    return (neurons * in_channels * K_h * K_w * positions * beats_per_tile(config)
            / (config.rows * config.cols * cycles))


#: default depth of the result buffer, in column tiles: a LUT-RAM's natural depth, and more
#: than the ~(B + R + latency + C) / P column tiles in flight on any array that fits
RESULT_SLOTS = 16

#: cycles of the engine's own pipeline stages in the latency: the second setup cycle, the
#: command register (the controller's decisions reach the memories a cycle later), the memory
#: read, the activation word's entry register and the plane register
SETUP = 3 + MEMORY_READ_LATENCY
#: the result buffer write, the shift register of the slot being sent and the output register
RESULT = 3


def neuron_latency(config: HardwareConfig) -> int:
    """The neuron unit's latency (``NeuronBase.latency``) for ``config``, from its formula."""
    return neuron_class(config.neuron).latency_of(config.timesteps)


class LayerEngine(wiring.Component):
    """Runs one layer descriptor at a time (see the module docstring for timing)."""

    def __init__(self, *, config: HardwareConfig, result_slots: int = RESULT_SLOTS):
        if not isinstance(config, HardwareConfig):
            raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
        if not isinstance(result_slots, int) or isinstance(result_slots, bool):
            raise TypeError(f"result_slots must be an integer, not {type(result_slots).__name__}")
        if not 4 <= result_slots <= 256 or result_slots & (result_slots - 1):
            raise ValueError(f"result_slots must be a power of two from 4 to 256, not {result_slots}")
        self._config = config
        self._result_slots = result_slots
        mems = config.memories
        self._schedule = schedule(config)
        super().__init__({
            "start": In(stream.Signature(descriptor_layout(config))),
            **{name: In(ReadPortSignature(mems[name].addr_bits, mems[name].word_bits))
               for name in ("weight", "bias", "threshold")},
            "act": In(ReadPortSignature(config.act_addr_bits, config.rows * config.timesteps)),
            "o": Out(stream.Signature(output_layout(config))),
            "busy": Out(1),
        })

    # --- read-only properties --------------------------------------------------------------------

    @property
    def config(self) -> HardwareConfig:
        return self._config

    @property
    def act_addr_bits(self) -> int:
        return self._config.act_addr_bits

    @property
    def pe_mode(self) -> str:
        return self._config.pe_mode

    @property
    def beats(self) -> int:
        """Beats per tile: T (serial) or 1 (packed)."""
        return beats_per_tile(self._config)

    @property
    def period(self) -> int:
        """P: cycles per tile."""
        return self._schedule.period

    @property
    def warmup(self) -> int:
        """W: periods before the first plane (loading the first tile's weights)."""
        return self._schedule.warmup

    @property
    def result_slots(self) -> int:
        """Column tiles of results the output buffer holds (a LUT-RAM of this depth); the
        engine finishes a column tile only while fewer than ``result_slots - 2`` are waiting."""
        return self._result_slots

    @property
    def result_bits(self) -> int:
        """Bits kept per neuron result: the spike word (hidden) or the potential (readout)."""
        return result_bits(self._config)

    def ideal_cycles(self, fan_in: int, neurons: int) -> int:
        return ideal_cycles(self._config, fan_in, neurons)

    def expected_cycles(self, fan_in: int, neurons: int) -> int:
        return expected_cycles(self._config, fan_in, neurons)

    # --- hardware --------------------------------------------------------------------------------

    def elaborate(self, platform):
        m = Module()
        cfg = self._config
        R, C = cfg.rows, cfg.cols
        packed = cfg.pe_mode == "packed"

        # The array runs every cycle (an invalid beat is a bubble); only the controller pauses.
        array = SpikeArray.from_config(cfg, tag_bits=2, plane_gated=True)
        m.submodules.array = array
        neuron_cls = neuron_class(cfg.neuron)
        units = [neuron_cls.from_config(cfg) for _ in range(C)]
        for c, unit in enumerate(units):
            m.submodules[f"neuron{c}"] = unit

        # --- descriptor: handshake, then the setup cycles that register the loop bounds ------
        conv = cfg.conv                     # conv layers possible (a patch generator)
        m.submodules.setup = setup = LayerSetup(config=cfg)
        wiring.connect(m, wiring.flipped(self.start), setup.start)
        m.d.comb += [self.busy.eq(setup.busy),
                     setup.done.eq(self.o.valid & self.o.ready & self.o.payload.last)]
        setup1, setup2, lay = setup.bounds.setup1, setup.bounds.setup2, setup.bounds.layer
        readout = lay.readout
        pos_bits = len(lay.results.pos_left) if conv else 1
        win_bits = len(lay.results.win_left) if conv else 1

        # --- tile controller: one decision a cycle, through the command register ------------
        # (packed: a finish waits until the units' decode stages have had cycles_per_neuron(1)
        # cycles since the previous column tile)
        m.submodules.control = control = TileController(
            config=cfg, pos_bits=pos_bits, win_bits=win_bits,
            spacing=units[0].cycles_per_neuron(1) if packed else 1)
        wiring.connect(m, setup.bounds, control.bounds)
        if conv:
            wiring.connect(m, setup.tiles, control.tiles)
        cmd, finish = control.cmd, control.finish

        # Timing from a decision in cycle t: the command register holds it in t + 1, and the
        # plane feeding (PlaneFeed: the reads, the words' entry registers, the plane register,
        # the weight launches) presents it to the array Lp = Lm + 1 cycles later, in t + 1 + Lp
        # (Lm = MEMORY_READ_LATENCY). Weight, bias and threshold words are registered on entry
        # as well (the block RAMs' output registers sit in the RAM rows, far from the array and
        # the units), so they are read Lw = Lm + 1 cycles before they are used.
        Lm = MEMORY_READ_LATENCY
        Lp = Lm + 1        # the activation word is registered once more inside the engine
        Lw = Lm + 1        # so are the weight, bias and threshold words
        m.submodules.feed = feed = PlaneFeed(config=cfg)
        m.d.comb += feed.cmd.eq(cmd)
        wiring.connect(m, wiring.flipped(self.weight), feed.weight)
        wiring.connect(m, wiring.flipped(self.act), feed.act)
        for name in ("valid", "tag", "wload", "wgroup", "wdata") + (
                ("words",) if packed else ("plane", "first")):
            m.d.comb += getattr(array, name).eq(getattr(feed, name))

        # --- array -> neuron units ------------------------------------------------------------
        # Bias and threshold of a column tile are read so that they arrive with its first beat
        # out of the array (R cycles after its plane): they stay on the units' inputs for every
        # beat of its neurons. The read enable is the command register's first-beat flag
        # delayed by R registers.
        m.submodules.params = params = ColumnParams(config=cfg, lead=R + Lp - Lw)
        wiring.connect(m, wiring.flipped(self.bias), params.bias)
        wiring.connect(m, wiring.flipped(self.threshold), params.threshold)
        m.d.comb += [params.first.eq(cmd.plane & cmd.tag[1]), params.setup1.eq(setup1),
                     params.setup2.eq(setup2), params.cbase.eq(lay.cbase),
                     params.ct_max.eq(lay.results.ct_max),
                     params.ct_max_zero.eq(lay.results.ct_max_zero)]
        b_word, t_word = params.bias_words, params.threshold_words

        bb, tb = cfg.bias_bits, cfg.threshold_bits
        for c, unit in enumerate(units):
            m.d.comb += [
                unit.i.valid.eq(array.out_valid),
                unit.i.payload.current.eq(array.out[c]),
                unit.i.payload.bias.eq(b_word[c * bb:(c + 1) * bb]),
                unit.i.payload.threshold.eq(t_word[c * tb:(c + 1) * tb]),
                unit.i.payload.readout.eq(readout),
                unit.i.payload.last.eq(array.out_tag[0]),
                # the credits guarantee a free result slot: the units never wait for o
                unit.o.ready.eq(1),
            ]

        # --- neuron units -> result buffer -> o (index order, neurons >= M dropped) ----------
        # A column tile's C results arrive together (the units run in lock-step) and take one
        # slot; hidden layers keep the spike words, readout layers the potentials.
        rbits = self.result_bits
        m.submodules.result_buffer = results = ResultBuffer(
            config=cfg, slots=self.result_slots, pos_bits=pos_bits, win_bits=win_bits)
        wiring.connect(m, results.o, wiring.flipped(self.o))
        m.d.comb += [
            results.start.eq(setup2), results.finish.eq(finish), results.bounds.eq(lay.results),
            results.i.valid.eq(units[0].o.valid),
            results.i.payload.eq(Cat(Mux(readout, u.o.payload.potential.as_unsigned()[:rbits],
                                         u.o.payload.spikes) for u in units)),
        ]
        m.d.comb += control.room_next.eq(results.room_next)

        return m

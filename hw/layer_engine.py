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
:class:`spikepack.hw.layer_setup.LayerSetup`, the bias and threshold reads
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

from amaranth import Array, Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from spikepack.config import HardwareConfig

from .array import SpikeArray, load_schedule
from .column_params import ColumnParams
from .layer_setup import LayerSetup, descriptor_layout
from .patch import setup_latency as patch_setup_latency
from .memories import ReadPortSignature
from .neuron_common import neuron_class
from .plane_feed import MEMORY_READ_LATENCY, PlaneFeed, command_layout, hold_words
from .result_buffer import ResultBuffer, counter_bits, output_layout, result_bits
from .stream import delay

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
        R, C, T, g = cfg.rows, cfg.cols, cfg.timesteps, cfg.rows_per_word
        n = R // g
        packed = cfg.pe_mode == "packed"
        B = self.beats
        sched = self._schedule
        P, W, adv = sched.period, sched.warmup, sched.advance
        span = W + sched.tail               # periods from a tile's first read to its last
        waddr_bits = len(self.weight.addr)
        D = self.result_slots

        # The array runs every cycle (an invalid beat is a bubble); only the controller pauses.
        array = SpikeArray.from_config(cfg, tag_bits=2, plane_gated=True)
        m.submodules.array = array
        neuron_cls = neuron_class(cfg.neuron)
        units = [neuron_cls.from_config(cfg) for _ in range(C)]
        for c, unit in enumerate(units):
            m.submodules[f"neuron{c}"] = unit

        # --- descriptor: handshake, then the setup cycles that register the loop bounds ------
        conv = cfg.conv                     # conv layers possible (a patch generator)
        rt_bits, ct_bits, idx_bits = counter_bits(cfg)
        m.submodules.setup = setup = LayerSetup(config=cfg)
        wiring.connect(m, wiring.flipped(self.start), setup.start)
        m.d.comb += [self.busy.eq(setup.busy),
                     setup.done.eq(self.o.valid & self.o.ready & self.o.payload.last)]
        setup1, setup2, lay = setup.setup1, setup.setup2, setup.layer
        wbase, cbase, readout, is_conv = lay.wbase, lay.cbase, lay.readout, lay.is_conv
        rt_max, rt_max_zero, empty = lay.rt_max, lay.rt_max_zero, lay.empty
        running = Signal()                  # the controller runs (from setup2 to the last tile)
        ct_max, ct_max_zero = lay.results.ct_max, lay.results.ct_max_zero
        if conv:
            patch = setup.tiles             # the patch generator's tiles
            positions_m1, init_pos_zero = lay.positions_m1, lay.results.pos_zero

        # --- controller ----------------------------------------------------------------------
        # Period pm (pm = 0, 1, ...) presents the planes of tile pm - W, reads weight group q of
        # tile pm - W + advance[q] at offset q and the activation entry of tile pm - W + 1 at
        # offset P - 1. valid[d] says tile pm - d exists (0 <= pm - d < K) and lastrt[d] that it
        # is the last row tile of its column tile: per-period shift registers, so that no
        # decision compares tile numbers. The "ahead" tile pm is tracked by down-counters.
        valid = Signal(span + 1)
        lastrt = Signal(span + 1)
        rt_left = Signal(rt_bits)           # of the ahead tile: row tiles after it
        ct_left = Signal(ct_bits)
        rt_zero = Signal()
        ct_zero = Signal()
        # conv: computed output positions after the ahead tile's (a dense layer has one)
        pos_left = Signal.like(positions_m1) if conv else None
        pos_zero = Signal()
        off = Signal(range(max(2, P)))
        # weight_base + (tile number of pm - d within its position) * n, d = 0 .. span: the
        # first word of tile pm - d (tile_base[0]: the ahead tile's; mod 2**bits)
        tile_base = [Signal(waddr_bits, name=f"tile_base{d}") for d in range(span + 1 if n > 1 else 1)]
        act_rt = Signal(self.act_addr_bits)   # row tile of the next activation read
        act_left = Signal(rt_bits)          # row tiles after it
        act_zero = Signal()                 # act_left == 0
        may_finish = Signal()               # the serializer's credit and cooldown allow it

        plane_tile = valid[W]
        plane_last = lastrt[W]
        # off == 0 and off == P - 1, kept as registers that move with off (they gate the
        # clock enables of every counter)
        off_first = Signal(init=1)
        off_end = Signal(init=int(P == 1))
        # The one pause: the planes of a column tile's last row tile (the beats that finish C
        # neurons) wait until the result buffer has a slot (and, packed, the units' decode
        # stages have had time). Registers only, so the pause is cheap to compute.
        go = Signal()
        finish = Signal()
        # at_finish = off_first & plane_tile & plane_last, kept as a register (set as the period
        # before ends), so that go is one gate from registers in front of its fan-out
        at_finish = Signal()
        # go itself is a register too: go_next is go computed from the next values of the
        # registers it depends on (running, at_finish and, below, the credit and cooldown)
        running_next = Signal()
        at_finish_next = Signal()
        may_finish_next = Signal()
        m.d.comb += [running_next.eq(running), at_finish_next.eq(at_finish)]
        # what the period's end will decide, from registers that only change at period ends:
        # with P >= 2 they can be registered a cycle ahead, which keeps go's next value to a
        # few inputs
        # rt_zero & ct_zero, kept as a register: the ahead tile is its position's last (conv)
        # or the layer's last tile (dense: with pos_zero always set)
        ahead_wrap = Signal()
        next_valid = valid[0] & ~(ahead_wrap & pos_zero)
        fin_soon = Signal()                 # the next plane tile finishes a column tile
        any_soon = Signal()                 # a tile is in flight after the period's end
        if P >= 2:
            m.d.sync += [fin_soon.eq(valid[W - 1] & lastrt[W - 1]),
                         any_soon.eq(Cat(next_valid, valid[:-1]).any())]
        else:
            m.d.comb += [fin_soon.eq(valid[W - 1] & lastrt[W - 1]),
                         any_soon.eq(Cat(next_valid, valid[:-1]).any())]
        with m.If(go):
            m.d.comb += at_finish_next.eq((off_end if P > 1 else 1) & fin_soon)
        m.d.sync += [
            running.eq(running_next), at_finish.eq(at_finish_next),
            go.eq(running_next & ~(at_finish_next & ~may_finish_next)),
        ]
        m.d.comb += finish.eq(go & at_finish)

        plane_on = Signal()
        m.d.comb += plane_on.eq(go & plane_tile & (off < B))
        w_on = Signal()
        w_addr = Signal(waddr_bits)
        # The weights of the tile after the ahead one start n words after the ahead tile's, or
        # at weight_base again when the ahead tile is its position's last (conv: the same
        # tiles at every position; dense: past the layer's end, never read).
        # (base_inc = tile_base[0] + n, kept as a register: no adder in front of the selections)
        base_next = Signal(waddr_bits)
        base_inc = Signal(waddr_bits)
        wbase_n = Signal(waddr_bits)
        with m.If(setup1):
            m.d.sync += wbase_n.eq(wbase + n)
        m.d.comb += base_next.eq(Mux(ahead_wrap, wbase, base_inc))
        with m.If(go & off_end):
            m.d.sync += [tile_base[0].eq(base_next),
                         base_inc.eq(Mux(ahead_wrap, wbase_n, base_inc + n))] + [
                tile_base[d].eq(tile_base[d - 1]) for d in range(1, len(tile_base))]
        with m.If(setup2):
            m.d.sync += [tile_base[0].eq(wbase), base_inc.eq(wbase_n)]
        if n > 1:
            w_ok = Array(valid[W - a] for a in adv)
            # word q of a period is group q of tile pm - W + advance[q]: the first word of that
            # tile (w_tile, a register selected a cycle ahead: the next offset's tile base, at a
            # period's end the next ahead tile's, advance[0] = W) plus q, added on the way
            # into the command register
            w_tile = Signal(waddr_bits)
            w_next = Array(tile_base[W - adv[q + 1]] if q + 1 < n else Const(0, waddr_bits)
                           for q in range(P))
            with m.If(go):
                m.d.sync += w_tile.eq(Mux(off_end, base_next, w_next[off]))
            with m.If(setup2):
                m.d.sync += w_tile.eq(wbase)
            m.d.comb += [w_on.eq(go & (off < n) & w_ok[off]), w_addr.eq(w_tile + off)]
        else:
            # advance[0] = W: the word of the period is the ahead tile's
            m.d.comb += [w_on.eq(go & off_first & valid[W - adv[0]]), w_addr.eq(tile_base[0])]
        # a_on = go & off_end & valid[W - 1] (an activation read: the last offset of a period
        # whose tile W - 1 exists), kept as a flip-flop set from the next values of the three
        # (below), so that the activation counters and the patch generator's FIFO are enabled
        # by a register and not through go's fan-out
        a_on = Signal()
        with m.If(a_on):
            m.d.sync += [act_rt.eq(Mux(act_zero, 0, act_rt + 1)),
                         act_left.eq(Mux(act_zero, rt_max, act_left - 1)),
                         act_zero.eq(Mux(act_zero, rt_max_zero, act_left == 1))]

        with m.If(go):
            with m.If(off_end):
                # the next ahead tile, pm + 1
                m.d.comb += running_next.eq(any_soon)
                m.d.sync += [
                    off.eq(0), off_first.eq(1), off_end.eq(P == 1),
                    valid.eq(Cat(next_valid, valid[:-1])),
                    lastrt.eq(Cat(Mux(rt_zero, rt_max_zero, rt_left == 1), lastrt[:-1])),
                    rt_left.eq(Mux(rt_zero, rt_max, rt_left - 1)),
                    rt_zero.eq(Mux(rt_zero, rt_max_zero, rt_left == 1)),
                ]
                rt_zero_next = Mux(rt_zero, rt_max_zero, rt_left == 1)
                ct_zero_next = Mux(rt_zero, Mux(ct_zero, ct_max_zero, ct_left == 1), ct_zero)
                m.d.sync += ahead_wrap.eq(rt_zero_next & ct_zero_next)
                with m.If(rt_zero):
                    m.d.sync += [ct_left.eq(Mux(ct_zero, ct_max, ct_left - 1)),
                                 ct_zero.eq(Mux(ct_zero, ct_max_zero, ct_left == 1))]
                    if conv:
                        with m.If(ct_zero):
                            m.d.sync += [pos_left.eq(pos_left - 1), pos_zero.eq(pos_left == 1)]
            with m.Else():
                m.d.sync += [off.eq(off + 1), off_first.eq(0), off_end.eq(off == P - 2)]
        with m.If(setup2):
            m.d.comb += [running_next.eq(~empty), at_finish_next.eq(0)]
            m.d.sync += [
                valid.eq(~empty), lastrt.eq(rt_max_zero),
                rt_left.eq(rt_max), rt_zero.eq(rt_max_zero),
                ct_left.eq(ct_max), ct_zero.eq(ct_max_zero),
                ahead_wrap.eq(rt_max_zero & ct_max_zero),
                off.eq(0), off_first.eq(1), off_end.eq(P == 1),
                act_rt.eq(0), act_left.eq(rt_max), act_zero.eq(rt_max_zero),
            ]
            if conv:
                m.d.sync += [pos_left.eq(positions_m1), pos_zero.eq(init_pos_zero)]
            else:
                m.d.sync += pos_zero.eq(1)

        off_end_next = Mux(setup2, P == 1, Mux(go, Mux(off_end, P == 1, off == P - 2), off_end))
        valid_w1_next = Mux(setup2, ~empty if W == 1 else 0,
                            Mux(go & off_end, next_valid if W == 1 else valid[W - 2],
                                valid[W - 1]))
        m.d.sync += a_on.eq(running_next & ~(at_finish_next & ~may_finish_next)
                            & off_end_next & valid_w1_next)

        # --- command register: every read and beat leaves the controller through a register --
        cmd = Signal(command_layout(cfg))
        rt_first = Signal()                 # the plane tile is its column tile's first row tile
        rt_first_d = Signal(span + 1)
        m.d.comb += rt_first.eq(rt_first_d[W])
        with m.If(go & off_end):
            # lastrt shifted: a tile is first when the one before it was last (or it is tile 0)
            m.d.sync += rt_first_d.eq(Cat(lastrt[0] | ~valid[0], rt_first_d[:-1]))
        with m.If(setup2):
            m.d.sync += rt_first_d.eq(1)
        m.d.sync += [
            cmd.plane.eq(plane_on), cmd.first.eq(off_first),
            cmd.tag.eq(Cat(plane_last & (off == B - 1), rt_first & off_first)),
            cmd.wren.eq(w_on), cmd.waddr.eq(w_addr), cmd.wgroup.eq(off if n > 1 else 0),
        ]
        if conv:
            # a conv layer's entries come from the patch generator, one per activation read
            # (a_on takes the tile on its o; padding tiles are not read, their word cleared)
            pad = is_conv & patch.payload.pad
            # (a dense layer's reads pop the idle generator's tiles too: harmless, and one
            # gate less on a_on's fan-out)
            m.d.comb += patch.ready.eq(a_on)
            m.d.sync += [cmd.aren.eq(a_on & ~pad), cmd.azero.eq(a_on & pad),
                         cmd.aaddr.eq(Mux(is_conv, patch.payload.addr, act_rt))]
        else:
            m.d.sync += [cmd.aren.eq(a_on), cmd.aaddr.eq(act_rt)]
        # The pause inserts cycles between two controller decisions, and the schedule's
        # windows hold across it only if a launch falls on the same side of the pause as the
        # planes its window is measured against: a word read at the end of a period (offset
        # P - 1) for a tile up to the next plane tile launches Lw cycles after its read, but
        # with P = 1 and advance 2 the word belongs two tiles ahead, must not overwrite the
        # weight of the tile still waiting, and so launches with the next decision (the memory
        # holds the word until the next read: hold_words).
        if hold_words(cfg):
            launch_pending = Signal()
            with m.If(go):
                m.d.sync += launch_pending.eq(w_on)
            m.d.sync += cmd.launch.eq(go & launch_pending)
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
                     params.setup2.eq(setup2), params.cbase.eq(cbase), params.ct_max.eq(ct_max),
                     params.ct_max_zero.eq(ct_max_zero)]
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
            config=cfg, slots=D, pos_bits=len(lay.results.pos_left) if conv else 1,
            win_bits=len(lay.results.win_left) if conv else 1)
        wiring.connect(m, results.o, wiring.flipped(self.o))
        m.d.comb += [
            results.start.eq(setup2), results.finish.eq(finish), results.bounds.eq(lay.results),
            results.i.valid.eq(units[0].o.valid),
            results.i.payload.eq(Cat(Mux(readout, u.o.payload.potential.as_unsigned()[:rbits],
                                         u.o.payload.spikes) for u in units)),
        ]
        room, room_next = results.room, results.room_next
        spacing = units[0].cycles_per_neuron(1) if packed else 1
        if spacing > 1:
            cool = Signal(range(spacing))
            cool_zero = Signal(init=1)          # cool == 0, as a register
            cool_zero_next = Signal()
            m.d.comb += cool_zero_next.eq(cool_zero)
            with m.If(finish):
                m.d.sync += cool.eq(spacing - 1)
                m.d.comb += cool_zero_next.eq(0)
            with m.Elif(~cool_zero):
                m.d.sync += cool.eq(cool - 1)
                m.d.comb += cool_zero_next.eq(cool == 1)
            m.d.sync += cool_zero.eq(cool_zero_next)
            m.d.comb += [may_finish.eq(room & cool_zero),
                         may_finish_next.eq(room_next & cool_zero_next)]
        else:
            m.d.comb += [may_finish.eq(room), may_finish_next.eq(room_next)]

        return m

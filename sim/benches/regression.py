"""Random-configuration regression: one random valid hardware configuration, generated as the
whole accelerator (``spikepack_top``) and driven end to end through its AXI ports with the
system bench's drivers (:class:`spikepack.sim.benches.system.System`).

Host side (plain Python, also used by ``tests/test_regression_rtl.py`` and ``spikepack.soak``):
:func:`draw_case` draws a network shape and a configuration from the WHOLE space of
``docs/config.md`` (:func:`spikepack.sim.configspace.random_config`) whose memories are just
large enough for it, within a simulation-cost budget. With ``conv`` in the configuration the
network is a conv network (conv layers with random channels, maps, kernels 1/3/5, strides 1-2,
padding 0-2 and max pooling 1-2, then dense layers; ``system.random_plan``) and every limit,
the conv ones included, is sized to it.

The cocotb test :func:`regression` then, bit-exact against the golden model under random stream
pauses and backpressure:

* loads the network the memories were sized for (calibrated random values; a conv network as a
  format-v2 model packed by ``bitstream.pack``, its images sent in storage order), an extreme
  network of the same shape (weights all most negative or most positive, biases and thresholds
  at their ends: theta = 1 and 2**threshold_bits - 1) and further random dense networks, and
  infers several images on each (the first two of every batch all spikes off and all spikes
  on);
* sends one bad bitstream per loader error code (1 .. 11,
  :class:`spikepack.firmware.bitstream.ErrorCode`), derived from a dense network's bitstream,
  each checked against LOAD_ERROR and the loader's counters, each followed by an inference on
  the network committed before it;
* takes a SOFT_RESET in every phase (idle, during a load, in each layer, while the output is
  sent, while it is blocked) of the network the memories were sized for, each followed by
  bit-exact inferences.

It writes its tallies (networks, images, outputs, mismatches, first mismatch, bad streams by
code, soft-reset phases hit) as JSON to the ``results`` argument, also when it fails.
"""

from __future__ import annotations

import dataclasses
import json
import traceback
from pathlib import Path

import numpy as np

from spikepack.config import HardwareConfig

__all__ = ["draw_case", "inference_cycles", "run_case", "COST_LIMITS"]

#: the simulation-cost budget of one drawn case: array PEs (R * C, build time), layer sizes
#: and layers of the network, estimated cycles of one inference (simulation time)
COST_LIMITS = {"max_pes": 64, "max_array": 16, "max_size": 48, "max_layers": 4,
               "max_cycles": 5000}


#: probability that a case turns ``conv`` off (a dense network on the dense-only accelerator)
DENSE_ONLY = 1 / 3


def inference_cycles(config: HardwareConfig, sizes) -> int:
    """An estimate of one inference's cycles (the engine's tiles and fill per layer)."""
    from spikepack.hw.layer_engine import schedule
    P = schedule(config).period
    B = 1 if config.pe_mode == "packed" else config.timesteps
    total = 0
    for n, m in zip(sizes, sizes[1:]):
        G, CT = -(-n // config.rows), -(-m // config.cols)
        per_ct = max(G * P, config.cols, config.timesteps if config.pe_mode == "packed" else 0)
        total += CT * per_ct + B + config.rows + config.timesteps + 20 + m
    return total


def draw_case(rng: np.random.Generator, *, max_pes: int = COST_LIMITS["max_pes"],
              max_array: int = COST_LIMITS["max_array"], max_size: int = COST_LIMITS["max_size"],
              max_layers: int = COST_LIMITS["max_layers"],
              max_cycles: int = COST_LIMITS["max_cycles"]):
    """(config, network): layer sizes ``[N0, N1, ..., NL]`` (1 .. ``max_layers`` layers, each
    size uniform in 1 .. ``max_size``, so rarely a multiple of the array) and a random valid
    configuration from the whole space whose memory limits are just large enough for them
    (:func:`random_config` with ``sizes``). Configurations beyond the cost budget (more than
    ``max_pes`` PEs, or an inference estimated above ``max_cycles`` cycles) are redrawn; after
    50 redraws the sizes are drawn again.

    With probability :data:`DENSE_ONLY` the configuration's ``conv`` is turned off. When it
    stays on, the network is a conv network plan instead
    (:func:`spikepack.sim.benches.system.random_plan`: conv layers with max pooling, then
    dense layers; a dict) and the configuration's limits, conv ones included, are redrawn
    just large enough for it (:func:`conv_limits`), within the same budget."""
    from spikepack.sim.configspace import random_config
    while True:
        layers = int(rng.integers(1, max_layers + 1))
        sizes = [int(rng.integers(1, max_size + 1)) for _ in range(layers + 1)]
        for _ in range(50):
            config = random_config(rng, sizes=sizes, max_array=max_array)
            if config.rows * config.cols > max_pes:
                continue
            if config.conv and rng.random() < DENSE_ONLY:
                # the dense-only accelerator (no patch addressing, no pooling) is a
                # configuration of its own: keep drawing it
                config = dataclasses.replace(config, conv=False)
            if config.conv:
                case = _conv_case(rng, config, max_layers=max_layers, max_cycles=max_cycles)
                if case is not None:
                    return case
            elif inference_cycles(config, sizes) <= max_cycles:
                return config, sizes


def conv_limits(rng: np.random.Generator, config: HardwareConfig, plan) -> HardwareConfig:
    """``config`` with every network limit (max_channels, max_map_side, max_map_words,
    max_kernel, max_fan_in, max_neurons, max_layers, weight_depth) just large enough for
    ``plan`` on its array: the exact minimum with probability ``configspace.EDGE``, else up to
    twice it (as :func:`random_config` sizes a dense network). Raises ``ConfigError`` when no
    such configuration is valid (registers wider than the golden model allows)."""
    from spikepack import limits
    from spikepack.sim.benches.system import plan_needs
    from spikepack.sim.configspace import EDGE
    need = plan_needs(plan, config)
    ranges = {"max_channels": limits.MAX_CHANNELS, "max_map_side": limits.MAP_SIDE,
              "max_map_words": limits.MAP_WORDS, "max_kernel": limits.KERNEL,
              "max_fan_in": limits.MAX_FAN_IN, "max_neurons": limits.MAX_NEURONS,
              "max_layers": limits.MAX_LAYERS, "weight_depth": limits.WEIGHT_DEPTH}
    fields = {}
    for name, (_, hi) in ranges.items():
        low = need[name]
        top = min(2 * low, hi)
        fields[name] = low if rng.random() < EDGE or top <= low else int(rng.integers(low, top + 1))
    return dataclasses.replace(config, conv=True, **fields)


def _conv_case(rng, config: HardwareConfig, *, max_layers: int, max_cycles: int):
    """(config, plan) for a conv case on ``config``'s array, or None (over the budget)."""
    from spikepack.config import ConfigError
    from spikepack.sim.benches.system import plan_cycles, plan_fits, random_plan
    for _ in range(20):
        plan = random_plan(rng, max_side=8, max_channels=6,
                           max_convs=min(2, max(1, max_layers - 1)),
                           max_dense=max(1, min(2, max_layers - 1)))
        if len(plan["convs"]) + len(plan["dense"]) > max_layers:
            continue
        try:
            sized = conv_limits(rng, config, plan)
        except ConfigError:
            continue
        if plan_fits(plan, sized) and plan_cycles(sized, plan) <= max_cycles:
            return sized, plan
    return None


def run_case(config: HardwareConfig, sizes, *, seed: int, results: Path | None = None,
             images: int = 4, networks: int = 2, label: str = "regression") -> Path:
    """Generate ``config``'s accelerator, build it under Verilator (cached in ``build/sim``) and
    run :func:`regression` on it with ``seed``; raises ``AssertionError`` (with the seed and the
    log) when a check fails. Returns the run's directory."""
    from spikepack.hw.top import TOP_NAME, SpikePackTop
    from spikepack.sim import runner
    built = runner.build(TOP_NAME, lambda: SpikePackTop(config=config),
                         build_args=("--output-split", "0"))
    network = dict(sizes) if isinstance(sizes, dict) else list(sizes)
    args = {"config": dataclasses.asdict(config), "sizes": network, "images": images,
            "networks": networks}
    if results is not None:
        args["results"] = str(Path(results).resolve())
    return runner.run(built, "spikepack.sim.benches.regression", testcase="regression",
                      name=label, seed=seed, args=args)


# --- the cocotb bench -----------------------------------------------------------------------------

try:
    import cocotb
except ImportError:                                           # pragma: no cover
    cocotb = None

if cocotb is not None:
    from spikepack.firmware import bitstream as bs
    from spikepack.sim.benches.loader import bad_streams
    from spikepack.sim.benches.system import (System, conv_model, describe, fitting_network,
                                              hardware_layers, input_shape, is_model, pack_net,
                                              random_images, random_sizes, soft_reset_in,
                                              soft_reset_phases)

    E = bs.ErrorCode

    @cocotb.test()
    async def regression(dut):
        """One random configuration end to end (see the module docstring)."""
        sy = System(dut)
        args = sy.args
        c, rng = sy.config, sy.rng
        tally = {"networks": 0, "images": 0, "outputs": 0, "mismatches": 0,
                 "first_mismatch": None, "bad_streams": {}, "soft_resets": {}, "error": None}
        sy.tally = tally
        results = Path(args["results"]) if args.get("results") else None
        try:
            await sy.start()
            await sy.write("CONTROL", 0b1001)             # RUN, clear counters
            sy.traffic()
            n_images = int(args.get("images", 4))
            sizes = args["sizes"]
            # the network the memories were sized for; an extreme one; then random dense ones
            # (a conv case: the conv plan's network, calibrated and extreme)
            if isinstance(sizes, dict):
                networks = [conv_model(rng, c, sizes), conv_model(rng, c, sizes, extreme=True)]
            else:
                networks = [fitting_network(rng, c, sizes),
                            fitting_network(rng, c, sizes, extreme=True)]
            networks += [fitting_network(rng, c, random_sizes(rng, c))
                         for _ in range(int(args.get("networks", 2)))]
            for n, net in enumerate(networks):
                what = f"network {n} {describe(net)}"
                await sy.load_network(net, what)
                tally["networks"] += 1
                await sy.infer(random_images(rng, n_images, input_shape(net), sy.T), what)

            # one bad stream per loader error code, from a dense network's bitstream (the
            # loader bench derives them field by field); the committed network keeps answering
            net = next(net for net in networks if not is_model(net))
            await sy.load_network(net, "a dense network again")
            good = bs.words_of(pack_net(net, c))
            other = HardwareConfig(**{**c.as_dict(), "max_layers": c.max_layers % 256 + 1})
            by_code = {}
            for _ in range(8):
                for bad in bad_streams(rng, good, c, other, 32):
                    code = bs.loader_outcome(bad.beats, c)
                    if code != E.NONE and (bad.expected in (None, code)):
                        by_code.setdefault(code, bad)
                if len(by_code) == len(E) - 1:
                    break
            missing = sorted(int(code) for code in set(E) - set(by_code) - {E.NONE})
            assert not missing, f"no bad stream drawn for error codes {missing}"
            for code in sorted(by_code):
                bad = by_code[code]
                await sy.load_bad(bad.beats, f"bad stream {bad.label}")
                tally["bad_streams"][code.name] = bad.label
                await sy.infer(random_images(rng, 1, input_shape(net), sy.T),
                               f"{describe(net)} after bad stream {bad.label} ({code.name})")

            # SOFT_RESET in every phase of the network the memories were sized for
            net = networks[0]
            other_net = networks[2] if len(networks) > 2 else networks[1]
            for phase in soft_reset_phases(len(hardware_layers(net, c.rows))):
                if sy.network is not net:
                    await sy.load_network(net, "network 0 again")
                landed = await soft_reset_in(sy, phase, net, other_net, images=2)
                tally["soft_resets"][phase] = landed
        except BaseException as e:
            tally["error"] = "".join(traceback.format_exception_only(type(e), e)).strip()
            raise
        finally:
            tally["images"] = sy.images_done
            if results is not None:
                tmp = results.with_name(results.name + ".tmp")
                tmp.write_text(json.dumps(tally, indent=1))
                tmp.replace(results)

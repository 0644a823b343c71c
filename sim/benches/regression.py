"""Random-configuration regression: one random valid hardware configuration, generated as the
whole accelerator (``spikepack_top``) and driven end to end through its AXI ports with the
system bench's drivers (:class:`spikepack.sim.benches.system.System`).

The case, a network shape and a configuration from the WHOLE space of ``docs/config.md`` whose
memories are just large enough for it, within a simulation-cost budget, is drawn by the benches'
stimulus generator (:func:`spikepack.sim.benches.stimulus.draw_case`; with ``conv`` in the
configuration a conv network plan, ``stimulus.random_plan``, every limit sized to it).
:func:`run_case` builds the case's accelerator and runs this bench on it (also used by
``tests/test_regression_rtl.py`` and ``spikepack.soak``).

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

from spikepack.config import HardwareConfig

__all__ = ["run_case"]


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
    from spikepack.sim.benches.stimulus import (conv_model, describe, fitting_network,
                                                hardware_layers, input_shape, is_model,
                                                pack_net, random_images, random_sizes)
    from spikepack.sim.benches.system import System, soft_reset_in, soft_reset_phases

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
                # the first layer folded where the rule allows (network 0) and unfolded
                # (network 1, packed with fold=False): docs/array.md, "The first layer"
                await sy.load_network(net, what, fold=n != 1)
                tally["folded"] = tally.get("folded", 0) + (sy.fold is not None)
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

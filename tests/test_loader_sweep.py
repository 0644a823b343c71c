"""The loader's verdict against the parser's over many (configuration, stream) pairs, in the
Amaranth simulator: random valid configurations from the whole space
(spikepack.sim.configspace.random_config, memory limits just large enough for a random network,
words of at most 16 lanes to stay cheap), and for each a dozen streams: packed random networks,
the same with random bits in the fields the hardware ignores, and corruptions of every kind
(spikepack.sim.benches.loader.bad_streams: every error code). Half the configurations are
conv ones whose conv limits (and memory limits) are drawn just large enough for a random conv
network (spikepack.sim.benches.stimulus: random_plan, conv_limits, conv_model); their streams
are conv networks, corruptions of every kind, and conv descriptor faults
(spikepack.sim.benches.loader.conv_bad_streams: fields at and beyond their edges, consistent
geometries that reach the kernel, map-size and chain checks, the conv flag toggled). Of the
dense configurations, a third are dense-only hardware (conv = false). For each stream:

* the hardware's LOAD_ERROR equals spikepack.firmware.bitstream.loader_outcome, and equals
  parse's code whenever parse refuses the stream in its stream phase; parse refuses a stream
  the loader accepts only in its model phase (code None, BadPayload: a payload that is no
  network's layout in bits the hardware uses), never one with garbage only in ignored bits;
* after an accepted stream the active bank reads back exactly the stream's payload
  (parse_stream's images), after a refused one the previous network, and no write ever leaves
  the memories.

SPIKEPACK_SWEEP sets the number of pairs (default 300, a minute or so on one core;
``SPIKEPACK_SWEEP=3000`` for a soak); SPIKEPACK_SEED reproduces a run. The seed is printed, and
the first disagreement names the seed, the configuration and the stream."""

import dataclasses
import os
import random
from collections import Counter

import numpy as np
import pytest

from spikepack.config import ConfigError
from spikepack.firmware import bitstream as bs
from spikepack.sim.benches.loader import (Harness, bad_streams, check_writes_in_bounds,
                                          conv_bad_streams, random_layers, simulate,
                                          stream_image, with_crc)
from spikepack.sim.benches.stimulus import conv_limits, conv_model, plan_fits, random_plan
from spikepack.sim.configspace import random_config
from spikepack.sim.runner import bench_seed

E = bs.ErrorCode
PAIRS = int(os.environ.get("SPIKEPACK_SWEEP", "300"))
PER_CONFIG = 12


def parse_verdict(beats, config):
    """(code, exception): NONE if parse accepts the stream, else its error's code (None for a
    model-phase refusal)."""
    try:
        bs.parse(bs.bytes_of(beats), config)
    except bs.BitstreamError as e:
        return e.code, e
    return E.NONE, None


def stream_plan(rng, config, offset, conv_plan=None):
    """The streams for one configuration: two packed networks (one with extreme values), one
    with garbage in its ignored bits, then corruptions of the first (bad_streams' kinds from
    number ``offset`` on: the sweep cycles through all of them). With ``conv_plan`` the
    networks are conv ones of that plan, and half the corruptions conv descriptor faults."""
    if conv_plan is None:
        first = bs.words_of(bs.pack_network(random_layers(rng, config), config))
        second = bs.words_of(bs.pack_network(random_layers(rng, config, extremes=True),
                                             config))
    else:
        first, second = (bs.words_of(bs.pack(conv_model(rng, config, conv_plan, extreme=x),
                                             config)) for x in (False, True))
    other = random_config(rng, max_array=8)
    kind = "conv network" if conv_plan else "network"
    plan = [(f"packed {kind}", first), (f"packed {kind}, extreme values", second)]
    ignored = bs.ignored_stream_bits(bs.bytes_of(second), config)
    plan.append(("random bits in the ignored fields",
                 with_crc([w ^ (int(rng.integers(0, 1 << 32)) & m)
                           for w, m in zip(second, ignored)])))
    left = PER_CONFIG - len(plan)
    if conv_plan is not None:
        plan += [(s.label, s.beats) for s in conv_bad_streams(rng, first, config, left // 2)]
        left -= left // 2
    plan += [(s.label, s.beats) for s in bad_streams(rng, first, config, other, left,
                                                      offset=offset)]
    return plan


def draw_configuration(rng):
    """(config, conv plan or None): a conv configuration sized for a random conv plan half the
    time, else a dense one (a third of those dense-only hardware)."""
    while True:
        sizes = [int(v) for v in rng.integers(1, 24, size=int(rng.integers(2, 6)))]
        config = random_config(rng, sizes=sizes, lanes_limit=16)
        if rng.random() < 0.5:
            if rng.random() < 1 / 3:
                config = dataclasses.replace(config, conv=False)
            return config, None
        plan = random_plan(rng, None, max_side=8, max_channels=6, max_convs=2, max_dense=2,
                           max_neurons=12)
        try:
            sized = conv_limits(rng, config, plan)
        except ConfigError:
            continue
        if plan_fits(plan, sized):
            return sized, plan


@pytest.mark.slow
def test_loader_verdicts_equal_the_parser_over_the_configuration_space():
    seed = bench_seed()
    print(f"seed {seed} (reproduce with SPIKEPACK_SEED={seed}), {PAIRS} pairs")
    rng = np.random.default_rng(seed)
    seen: Counter = Counter()
    pairs = group = conv_groups = 0
    while pairs < PAIRS:
        config, conv_plan = draw_configuration(rng)
        plan = stream_plan(rng, config, offset=group * (PER_CONFIG - 3), conv_plan=conv_plan)
        where = f"seed {seed}, configuration {group} {config}"
        verdicts = []
        for label, beats in plan:
            reference = bs.loader_outcome(beats, config)
            code, error = parse_verdict(beats, config)
            if code is None:
                assert reference == E.NONE and not label.startswith("random bits"), (
                    f"{where}: stream '{label}': parse refuses it ({error}) but the loader "
                    f"model says {reference.name}")
            else:
                assert code == reference, (f"{where}: stream '{label}': parse says "
                                           f"{code.name} ({error}), loader_outcome "
                                           f"{reference.name}")
            image = stream_image(beats, config) if reference == E.NONE else None
            verdicts.append((label, beats, reference, image))
            seen[reference] += 1

        async def scenario(ctx, dut, verdicts=verdicts, where=where):
            h = Harness(ctx, dut, config, random.Random(int(rng.integers(1 << 32))))
            for i, (label, beats, reference, image) in enumerate(verdicts):
                await h.send(beats, pause=0.2 if i % 3 == 1 else 0.0)
                if reference == E.NONE:
                    h.good += 1
                    h.committed, h.layer_count = image
                else:
                    h.bad += 1
                await h.check(f"{where}: stream {i} '{label}' ({len(beats)} words)",
                              reference)

        check_writes_in_bounds(config, simulate(config, scenario))
        pairs += len(plan)
        group += 1
        conv_groups += conv_plan is not None
    print(f"{pairs} pairs over {group} configurations:",
          ", ".join(f"{code.name} {n}" for code, n in sorted(seen.items())))
    # from 3 configurations on, every kind of corruption was sent, and each code has a kind that
    # always gives it
    assert group < 6 or conv_groups, f"seed {seed}: no conv configuration drawn"
    missing = set(E) - set(seen)
    assert group < 3 or not missing, f"seed {seed}: codes never produced: {sorted(c.name for c in missing)}"

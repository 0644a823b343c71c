# amaranth: UnusedElaboratable=no
"""The host driver's sans-IO protocol (``spikepack.protocol``): the stream formats against the
benches' independent packers, the register map against the register table, and register access
by name (:class:`Registers`) over the Amaranth simulator's AXI4-Lite master on the real
register block."""

from __future__ import annotations

import random
import struct

import numpy as np
import pytest
from amaranth.sim import Simulator
from hypothesis import given
from hypothesis import strategies as st

from amaranth_axil import AxilMaster
from spikepack.accelerator import build_manifest
from spikepack.config import HardwareConfig
from spikepack.hw.registers import ID_MAGIC as HW_MAGIC
from spikepack.protocol import (MAGIC, Protocol, RegisterMap, Registers, input_beats,
                                stream_words)
from stream_reference import input_beats as reference_beats
from stream_reference import pack_image, unpack_potentials


def _manifest(**kw):
    from spikepack.hw.top import SpikePackTop
    config = HardwareConfig(**kw)
    return build_manifest(config, SpikePackTop(config=config)), config   # only its ports


@pytest.fixture(scope="module", params=[dict(), dict(timesteps=6, weight_bits=12, bias_bits=20,
                                                     threshold_bits=12, tau_shift=3)])
def manifest(request):
    return _manifest(**request.param)


def test_magic_is_the_hardware_id():
    assert MAGIC == HW_MAGIC == int.from_bytes(b"SPK1", "big")     # the register reads "SPK1"


@given(data=st.data())
def test_image_packing_matches_the_benches(manifest, data):
    m, config = manifest
    T = config.timesteps
    words = data.draw(st.lists(st.integers(0, (1 << T) - 1), min_size=1, max_size=100))
    packed = Protocol(m).pack_image(np.array(words, dtype=np.int64))
    assert packed == pack_image(words, T)
    assert list(struct.unpack(f"<{len(packed) // 4}I", packed)) == reference_beats(words, T)


@given(T=st.sampled_from([1, 2, 3, 4, 5, 8, 16]), data=st.data())
def test_a_batch_packs_as_its_images(T, data):
    """``input_beats`` of (S, N0) images is the reference's beats of each image."""
    n = data.draw(st.integers(1, 40))
    rows = data.draw(st.lists(st.lists(st.integers(0, (1 << T) - 1), min_size=n, max_size=n),
                              min_size=1, max_size=4))
    beats = input_beats(np.array(rows), T)
    assert beats.dtype == np.uint32
    assert beats.tolist() == [reference_beats(r, T) for r in rows]


def test_a_map_needs_rows_for_its_storage_order():
    image = np.arange(2 * 2 * 3).reshape(2, 2, 3) % 4
    with pytest.raises(ValueError, match="needs rows"):
        stream_words(image)
    assert stream_words(image, 4).tolist()[:8] == [0, 2, 0, 0, 1, 3, 0, 0]   # channels last
    assert stream_words([1, 2]).tolist() == [1, 2]                      # a vector as it is


def test_a_folded_first_layer_streams_the_folded_map():
    """With the model's fold (docs/bitstream.md, "The first layer"), an image goes out as its
    folded map in storage order: pixel (y, x) channel kx*C + c = z[c, y, x + kx - 1], 0 at
    the edges."""
    from spikepack.firmware.layout import InputFold
    image = np.arange(1 * 2 * 3).reshape(1, 2, 3) + 1
    fold = InputFold(1, 2, 3, kernel_w=3, stride_w=1, pad_w=1)
    words = stream_words(image, 4, fold=fold).reshape(2, 3, 4)         # (y, x, lanes)
    assert words[0].tolist() == [[0, 1, 2, 0], [1, 2, 3, 0], [2, 3, 0, 0]]
    assert words[1].tolist() == [[0, 4, 5, 0], [4, 5, 6, 0], [5, 6, 0, 0]]


@given(data=st.data())
def test_potential_unpacking_matches_the_bench(manifest, data):
    m, config = manifest
    bits = m["derived"]["output_bits"]
    values = data.draw(st.lists(st.integers(-(1 << (config.widths.potential - 1)),
                                            (1 << (config.widths.potential - 1)) - 1),
                                min_size=1, max_size=20))
    raw = b"".join(v.to_bytes(bits // 8, "little", signed=True) for v in values)
    assert list(Protocol(m).unpack_potentials(raw)) == unpack_potentials(raw, bits) == values


def test_bad_images_are_refused(manifest):
    p = Protocol(manifest[0])
    with pytest.raises(ValueError, match="spike words must lie"):
        p.pack_image(np.array([1 << manifest[1].timesteps]))
    with pytest.raises(ValueError, match="1-D"):
        p.pack_image(np.zeros((2, 2), dtype=int))


def test_register_map_of_a_config_is_the_manifests(manifest):
    m, config = manifest
    regs = RegisterMap.of_config(config)
    assert regs.by_name == RegisterMap(m["registers"]).by_name
    assert regs.offset("status") == regs.offset("STATUS") == 0x44       # docs/registers.md
    assert regs.field("STATUS", "layers") == (16, 9)
    assert regs.decode("STATUS", 1 | 5 << 8 | 3 << 16)["layer"] == 5
    assert regs.bit("CONTROL", "clear_counters") == 0b1000
    assert regs.bit("STATUS", "layers", 0x3FF) == 0x1FF << 16          # cut to the field
    assert "CONTROL" in regs.readable() and len(regs.readable()) == len(m["registers"])
    with pytest.raises(KeyError, match="NOPE"):
        regs.offset("NOPE")
    with pytest.raises(KeyError, match="no field"):
        regs.field("STATUS", "nope")


def test_registers_by_name_over_the_register_block():
    """:class:`Registers` over the Amaranth AXI4-Lite master: reads by name, writes by name,
    decoding, a dump of every readable register, on the real register block."""
    from spikepack.hw.register_block import RegisterBlock
    config = HardwareConfig(rows=2, cols=2, timesteps=2, max_fan_in=8, max_neurons=8,
                            max_layers=2, weight_depth=16, conv=False)
    dut = RegisterBlock(config=config)
    seen = {}

    async def tb(ctx):
        regs = Registers(AxilMaster(ctx, dut.bus, prefix="", rng=random.Random(2)),
                         RegisterMap.of_config(config))
        assert await regs.read("ID") == HW_MAGIC
        assert await regs.read("signature") == config.signature
        await regs.write("SCRATCH", 0xDEADBEEF)
        assert await regs.read("SCRATCH") == 0xDEADBEEF
        ctx.set(dut.status.layers, 2)
        ctx.set(dut.status.loaded, 1)
        assert await regs.fields("STATUS") == {
            "busy": 0, "loaded": 1, "loader_busy": 0, "commit_pending": 0, "start_armed": 0,
            "load_error": 0, "images_buffered": 0, "layer": 0, "layers": 2}
        dump = await regs.dump()
        assert dump["ID"] == HW_MAGIC and dump["SCRATCH"] == 0xDEADBEEF and dump["CONTROL"] == 1
        assert dump["STATUS"] == 2 | 2 << 16
        seen["done"] = True

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(tb)
    sim.run()
    assert seen["done"]

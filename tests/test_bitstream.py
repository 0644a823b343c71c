# amaranth: UnusedElaboratable=no
"""The weight bitstream format: pack/parse round trips, directed faults with their messages, the
CLI, and hypothesis fuzzing of the parser with well over 10,000 mutated, truncated and extended
streams a run (see the STREAMS counts in each fuzz test).

Oracle for the fuzzing (independent of the parser's code paths): the stream before the first
changed word is a valid prefix, so the fault must be found at or after it; a cut stream is always
``Truncated``; anything appended is always ``ExtraData``; CRC-32 detects every error burst of up
to 32 bits, so one changed word in the weight, bias or threshold payload or in the CRC word is
always ``CrcMismatch``; one changed header or table word gives the class that field can give
(listed by hand below); and a stream that still parses re-packs to the same bytes, except in
the bits the hardware ignores."""

import json
import re
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spikepack import cli
from spikepack.accelerator import MANIFEST_FORMAT, MANIFEST_VERSION, ManifestError, load_manifest
from spikepack.config import DESCRIPTOR_LANES, HardwareConfig
from spikepack.firmware import bitstream as bs
from spikepack.firmware.layout import layout_network
from spikepack.firmware.model import Layer, SpikePackModel
from spikepack.hw.memories import MEMORY_INDEX, MEMORY_NAMES
from spikepack.sim.benches.loader import random_layers, section_span, small_config, with_crc

E = bs.ErrorCode
FIELD = {name: i for i, name in enumerate(bs.HEADER_FIELDS)}

CONFIGS = [
    small_config(),
    HardwareConfig(rows=4, cols=4, timesteps=4, max_fan_in=16, max_neurons=16, max_layers=4,
                   weight_depth=64),
    HardwareConfig(rows=8, cols=2, timesteps=3, tau_shift=2, weight_bits=5, bias_bits=20,
                   threshold_bits=9, neuron="lif", max_fan_in=20, max_neurons=10, max_layers=3,
                   weight_depth=80),
]


def model_of(layers, config):
    return SpikePackModel(timesteps=config.timesteps, tau_shift=config.tau_shift,
                          weight_bits=config.weight_bits, neuron=config.neuron,
                          layers=tuple(Layer(weights=w, bias=b, threshold=t)
                                       for w, b, t in layers))


def _streams():
    out = []
    for c, config in enumerate(CONFIGS):
        rng = np.random.default_rng(100 + c)
        for i in range(3):
            layers = random_layers(rng, config, extremes=i == 2)
            out.append((config, bs.pack_network(layers, config), layers))
    return out


STREAMS = _streams()


def expect_error(data, config, cls, code, *, match=None):
    with pytest.raises(cls, match=match) as info:
        bs.parse(data, config)
    assert info.value.code == code, (info.value.code, code)
    assert isinstance(info.value, bs.BitstreamError) and isinstance(info.value, ValueError)
    return info.value


# --- format --------------------------------------------------------------------------------------

def test_section_types_are_the_memory_write_indices():
    assert bs.SECTION_NAMES == MEMORY_NAMES
    assert all(MEMORY_INDEX[name] == k for k, name in enumerate(bs.SECTION_NAMES))


def test_byte_layout_by_hand():
    """Decode one packed stream with struct and zlib only, following docs/bitstream.md."""
    config, data, layers = STREAMS[0]
    n = len(data) // 4
    words = struct.unpack(f"<{n}I", data)
    assert data[:4] == b"SPKB"
    assert words[1] == 2 and words[2] == config.signature and words[3] == n
    assert words[4:9] == (config.timesteps, config.tau_shift, config.weight_bits, 0, len(layers))
    assert words[9:15] == (config.rows, config.cols, config.rows_per_word, config.bias_bits,
                           config.threshold_bits, 4)
    image = layout_network(layers, config)
    position = 27
    for k, name in enumerate(("descriptor", "weight", "bias", "threshold")):
        words_, lanes = image.memories[name].shape
        assert words[15 + 3 * k: 18 + 3 * k] == (k, words_, lanes)
        payload = words[position:position + words_ * lanes]
        assert payload == tuple(int(v) for v in image.memories[name].ravel())   # lane 0 first
        position += words_ * lanes
    assert position == n - 1
    assert words[-1] == zlib.crc32(data[:-4])


@pytest.mark.parametrize("index", range(len(STREAMS)))
def test_pack_parse_round_trip(index):
    config, data, layers = STREAMS[index]
    model = model_of(layers, config)
    assert bs.pack(model, config) == data
    for cfg in (config, None):
        back = bs.parse(data, cfg)
        assert back == model
        assert back.layers[-1].threshold is None
        assert bs.pack(back, config) == data
    assert bs.loader_outcome(bs.words_of(data), config) == E.NONE


def test_parse_accepts_bytearray_and_memoryview():
    config, data, layers = STREAMS[1]
    assert bs.parse(bytearray(data)) == bs.parse(memoryview(data)) == model_of(layers, config)
    with pytest.raises(TypeError, match="bytes"):
        bs.parse("SPKB")


# --- pack-side checks ---------------------------------------------------------------------------

def test_pack_refuses_a_model_for_other_hardware():
    config = CONFIGS[1]
    layers = random_layers(np.random.default_rng(5), config)
    for field, value in (("timesteps", 5), ("tau_shift", 2), ("weight_bits", 9),
                         ("neuron", "lif")):
        fields = dict(timesteps=config.timesteps, tau_shift=config.tau_shift,
                      weight_bits=config.weight_bits, neuron=config.neuron)
        fields[field] = value
        model = SpikePackModel(layers=tuple(Layer(weights=w, bias=b, threshold=t)
                                            for w, b, t in layers), **fields)
        with pytest.raises(bs.ModelMismatch, match=f"{field} = {value!r}.*{field} = ") as info:
            bs.pack(model, config)
        assert info.value.code is None
    with pytest.raises(TypeError, match="HardwareConfig"):
        bs.pack(model_of(layers, config), config.as_dict())


@pytest.mark.parametrize("change, match", [
    ("layers", "at most 4 \\(max_layers\\)"),
    ("fan_in", "max_fan_in 16"),
    ("neurons", "max_neurons 16"),
    ("depth", "weight memory holds 64"),
    ("bias", "outside the hardware's range"),
])
def test_pack_refuses_networks_that_do_not_fit(change, match):
    config = CONFIGS[1]
    rng = np.random.default_rng(0)

    def layer(m, n, last=False):
        return (rng.integers(-8, 8, (m, n)), rng.integers(-8, 8, m),
                None if last else rng.integers(1, 9, m))

    layers = {
        "layers": [layer(4, 4)] * 4 + [layer(2, 4, True)],
        "fan_in": [layer(3, 17, True)],
        "neurons": [layer(17, 4), layer(2, 17, True)],
        "depth": [layer(16, 16), layer(16, 16), layer(16, 16), layer(2, 16, True)],
        "bias": [(np.zeros((2, 3), int), np.array([1 << 15, 0]), None)],
    }[change]
    with pytest.raises(bs.LayerTooLarge, match=match):
        bs.pack_network(layers, config)
    if change != "bias":
        with pytest.raises(bs.LayerTooLarge, match=match):
            bs.pack(SpikePackModel(timesteps=4, tau_shift=1, weight_bits=8,
                                   layers=tuple(Layer(weights=w, bias=b, threshold=t)
                                                for w, b, t in layers)), config)


# --- directed faults, one per class --------------------------------------------------------------

def changed(data, index, value, *, fix_crc=True):
    words = bs.words_of(data)
    words[index] = value & 0xFFFFFFFF
    return bs.bytes_of(with_crc(words) if fix_crc else words)


def test_directed_errors_with_messages():
    config, data, layers = STREAMS[0]
    other = CONFIGS[1]
    n = len(data) // 4
    sig = config.signature
    cases = [
        (b"PK\x03\x04" + data[4:], bs.BadMagic, E.BAD_MAGIC, 0,
         r"not a SpikePack bitstream: word 0 is 0x04034b50"),
        (changed(data, 1, 7), bs.UnknownVersion, E.BAD_VERSION, 1, r"version 7.*version 2"),
        (bs.pack_network(random_layers(np.random.default_rng(1), other), other),
         bs.SignatureMismatch, E.BAD_SIGNATURE, 2,
         rf"packed for hardware signature 0x{other.signature:08x}.*0x{sig:08x}"),
        (changed(data, FIELD["tau_shift"], 3), bs.BadHeader, E.BAD_HEADER, 5,
         r"tau_shift is 3, but the hardware has 1"),
        (changed(data, FIELD["section_count"], 3), bs.BadSectionTable, E.BAD_SECTION, 14,
         r"announces 3 sections"),
        (changed(data, 15 + 3, 2), bs.BadSectionTable, E.BAD_SECTION, 18,
         r"entry 1 has type 2; entry 1 must be the weight section"),
        (changed(data, 15 + 8, 1), bs.BadSectionTable, E.BAD_SECTION, 23,
         r"bias section has 1 lanes per word; this geometry needs 2"),
        (changed(data, FIELD["total_words"], n + 1), bs.LengthOutOfRange, E.BAD_LENGTH, 26,
         rf"total length is {n + 1} words, but the section table adds up to {n}"),
        (changed(data, FIELD["layer_count"], 0), bs.LengthOutOfRange, E.BAD_LENGTH, 8,
         r"layer count is 0"),
        (changed(data, FIELD["layer_count"], 4), bs.LayerTooLarge, E.TOO_LARGE, 8,
         r"4 layers; the hardware holds at most 3"),
        (changed(data, 15 + 4, 33), bs.LayerTooLarge, E.TOO_LARGE, 19,
         r"weight section has 33 words; the hardware's weight memory holds 32"),
        # a dense layer's fan-in and neurons are checked with its flags (lane 3), where its
        # kind is known
        (changed(data, 27, 13 | (1 << 16)), bs.LayerTooLarge, E.TOO_LARGE, 30,
         r"layer 0 has fan-in 13; the hardware's max_fan_in is 12"),
        (changed(data, 27, 5), bs.BadDescriptor, E.BAD_DESCRIPTOR, 27,
         r"layer 0's descriptor has fan-in 5 and 0 neurons"),
        (changed(data, 30, 0 if len(layers) == 1 else 1), bs.BadDescriptor, E.BAD_DESCRIPTOR, 30,
         r"flags"),
        (changed(data, n - 2, bs.words_of(data)[n - 2] ^ 1, fix_crc=False), bs.CrcMismatch,
         E.CRC_MISMATCH, n - 1, r"CRC mismatch: .* is 0x[0-9a-f]{8}, but the CRC-32 of the "
         rf"{4 * (n - 1)} bytes before it is 0x[0-9a-f]{{8}}; the stream is corrupt"),
        (data[:-4], bs.Truncated, E.TRUNCATED, n - 1,
         rf"ends after {4 * (n - 1)} bytes \(word {n - 1} is missing\).*{4 * n} bytes"),
        (data[:7], bs.Truncated, E.TRUNCATED, 1, r"ends after 7 bytes"),
        (b"", bs.Truncated, E.TRUNCATED, 0, r"ends after 0 bytes"),
        (data + b"\0", bs.ExtraData, E.EXTRA_WORDS, n, r"1 bytes follow the CRC word"),
        (data + data, bs.ExtraData, E.EXTRA_WORDS, n, rf"{4 * n} bytes follow"),
        (changed(data, 1, 1), bs.UnknownVersion, E.BAD_VERSION, 1,
         r"format version 1 \(dense layers, 4-lane descriptors\) is no longer loaded.*"
         r"version 2: repack the model"),
    ]
    for stream, cls, code, word, match in cases:
        error = expect_error(stream, config, cls, code, match=match)
        assert error.word == word, (cls, error.word, word)
    # the signature is checked only against a config
    other_stream = cases[2][0]
    assert bs.parse(other_stream).neuron == other.neuron


def test_payload_faults_that_only_software_sees():
    """A stream with a correct CRC whose payload is not a layout: the loader would accept it
    (code None); parse refuses it as BadPayload."""
    config, data, layers = STREAMS[1]
    words = bs.words_of(data)
    # a hidden threshold of 0
    start, _ = section_span(words, "threshold")
    if len(layers) > 1:
        bad = changed(data, start, 0)
        assert bs.loader_outcome(bs.words_of(bad), config) == E.NONE
        error = expect_error(bad, config, bs.BadPayload, None, match="threshold of 0")
        assert error.word is None
    # a weight of an input beyond N set (the packer writes 0 there; the hardware would use it
    # if the host set an input beyond N0): the first layer of [3 -> ...] on 4 rows has one
    cfg0 = small_config()
    layers0 = [(np.ones((2, 3), np.int64), np.zeros(2, np.int64), None)]
    data0 = bs.pack_network(layers0, cfg0)
    ws, _ = section_span(bs.words_of(data0), "weight")
    # word 0 holds array rows 0, 1 (g = 2); word 1 rows 2, 3: row 3 is input n = 3 >= N
    row3 = ((1 << cfg0.weight_bits) - 1) << (cfg0.cols * cfg0.weight_bits)
    lane0 = ws + cfg0.memories["weight"].lanes              # weight word 1, lane 0 (bits 0..31)
    assert cfg0.rows_per_word == 2 and row3 < 1 << 32
    trial = changed(data0, lane0, bs.words_of(data0)[lane0] | row3)
    assert bs.loader_outcome(bs.words_of(trial), cfg0) == E.NONE
    expect_error(trial, cfg0, bs.BadPayload, None, match="not the layout")
    # descriptor weight bases out of order
    if len(layers0) > 1:
        base_lane = bs.PAYLOAD_OFFSET + DESCRIPTOR_LANES + 1
        trial = changed(data0, base_lane, 0)
        assert bs.loader_outcome(bs.words_of(trial), cfg0) == E.NONE
        expect_error(trial, cfg0, bs.BadPayload, None, match="not the layout|beyond the")


def models_equal(a, b):
    return (a.neuron, a.timesteps, a.tau_shift, len(a.layers)) == (
        b.neuron, b.timesteps, b.tau_shift, len(b.layers)) and all(
        np.array_equal(x.weights, y.weights) and np.array_equal(x.bias, y.bias)
        and (x.threshold is None) == (y.threshold is None)
        and (x.threshold is None or np.array_equal(x.threshold, y.threshold))
        for x, y in zip(a.layers, b.layers))


@pytest.mark.parametrize("which", [0, 5, 7])
def test_every_payload_bit_ignored_or_meaningful(which):
    """Every single payload bit flip (CRC fixed) is accepted by the loader; parse then gives the
    same network iff the bit is one the hardware ignores (ignored_bits), and otherwise a
    different network or BadPayload: the ignored set holds no bit that matters, and a bit
    outside it is never silently dropped."""
    config, data, _ = STREAMS[which]
    words = bs.words_of(data)
    model = bs.parse(data, config)
    ignored = bs.ignored_stream_bits(data, config)
    start, _ = section_span(words, "weight")
    counts = {"ignored": 0, "changes": 0, "refused": 0}
    for index in range(start, len(words) - 1):
        for bit in range(32):
            trial = changed(data, index, words[index] ^ (1 << bit))
            assert bs.loader_outcome(bs.words_of(trial), config) == E.NONE
            try:
                other = bs.parse(trial, config)
            except bs.BadPayload:
                assert not ignored[index] >> bit & 1, (index, bit)
                counts["refused"] += 1
                continue
            same = models_equal(model, other)
            assert same == bool(ignored[index] >> bit & 1), (index, bit, same)
            counts["ignored" if same else "changes"] += 1
    assert all(counts.values()), counts


def test_garbage_in_ignored_bits_parses_to_the_same_network():
    """Zeros in the unused threshold fields (issue 12), ones everywhere ignored, random bits:
    the loader accepts each, and parse gives the packed network."""
    rng = np.random.default_rng(5)
    for config, data, layers in STREAMS:
        words = bs.words_of(data)
        ignored = bs.ignored_stream_bits(data, config)
        start, stop = section_span(words, "threshold")
        assert any(ignored[start:stop]), "every stream has a readout with threshold fields"
        fills = [lambda w, m: w & ~m, lambda w, m: w | m,
                 lambda w, m: w ^ (int(rng.integers(0, 1 << 32)) & m)]
        for fill in fills:
            trial = with_crc([fill(w, m) & 0xFFFFFFFF for w, m in zip(words, ignored)])
            assert bs.loader_outcome(trial, config) == E.NONE
            assert models_equal(bs.parse(bs.bytes_of(trial), config), model_of(layers, config))


# --- fuzzing -------------------------------------------------------------------------------------

SINGLE_FIELD = {
    "magic": {bs.BadMagic}, "version": {bs.UnknownVersion}, "signature": {bs.SignatureMismatch},
    "total_words": {bs.LengthOutOfRange},
    "layer_count": {bs.LengthOutOfRange, bs.LayerTooLarge},
    "section_count": {bs.BadSectionTable},
    **{f: {bs.BadHeader} for f in ("timesteps", "tau_shift", "weight_bits", "neuron", "rows",
                                   "cols", "rows_per_word", "bias_bits", "threshold_bits")},
}


def allowed_for_single_word(words, index):
    """The classes one changed word at ``index`` may produce (with a config)."""
    if index < bs.HEADER_WORDS:
        return SINGLE_FIELD[bs.HEADER_FIELDS[index]]
    if index < bs.PAYLOAD_OFFSET:
        part = (index - bs.HEADER_WORDS) % bs.SECTION_ENTRY_WORDS
        if part == 1:   # a word count: inconsistent, too large, or a later total mismatch
            return {bs.LengthOutOfRange, bs.LayerTooLarge}
        return {bs.BadSectionTable}
    start, stop = section_span(words, "descriptor")
    if start <= index < stop:
        return {bs.BadDescriptor, bs.LayerTooLarge, bs.CrcMismatch}
    return {bs.CrcMismatch}


HARDWARE_CLASSES = (bs.SignatureMismatch, bs.BadHeader, bs.LayerTooLarge)


def assert_repacks(model, config, data):
    """A stream that parses re-packs to the same bytes, except in bits the hardware ignores."""
    again = bs.pack(model, config)
    assert len(again) == len(data), "a stream that parses must re-pack to the same length"
    ignored = bs.ignored_stream_bits(data, config)
    for i, (a, b) in enumerate(zip(bs.words_of(again[:-4]), bs.words_of(data[:-4]))):
        assert (a ^ b) & ~ignored[i] == 0, (f"a stream that parses must re-pack to the same "
                                            f"bytes outside ignored bits: word {i} 0x{b:08x} "
                                            f"re-packs to 0x{a:08x}")


def check_verdict(data, config, first_change, allowed=None, *, hardware=None):
    """Parse a mutated stream (against ``config``, which may be None; ``hardware`` is the config
    it was packed for): a fault found at or after the first changed word, of an allowed class;
    or, if it parses, it re-packs to the same bytes (or, parsed without a config, is refused by
    the real hardware's config only for a hardware reason)."""
    if config is None:
        try:
            bs.parse(data)
        except bs.BitstreamError as e:
            if e.word is not None:
                assert e.word >= first_change, (e.word, first_change, e)
            return type(e)
        try:
            model = bs.parse(data, hardware)
        except HARDWARE_CLASSES as e:
            assert e.word is None or e.word >= first_change
            return None
        assert_repacks(model, hardware, data)
        return None
    try:
        model = bs.parse(data, config)
    except bs.BitstreamError as e:
        if allowed is not None:
            assert type(e) in allowed, (type(e).__name__, sorted(c.__name__ for c in allowed), e)
        if e.word is not None:
            assert e.word >= first_change, (e.word, first_change, e)
        if e.code is not None:     # the loader model gives the same code
            assert bs.loader_outcome(bs.words_of(data[:4 * (len(data) // 4)]), config) in (
                e.code, E.TRUNCATED if len(data) % 4 else e.code)
        return type(e)
    assert_repacks(model, config, data)
    return None


STREAM_INDEX = st.integers(0, len(STREAMS) - 1)
COUNTS = {"single": 0, "multi": 0, "cut": 0, "extend": 0}


@settings(max_examples=125)
@given(which=STREAM_INDEX, edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                    st.integers(0, 31), st.booleans(),
                                                    st.integers(0, 2 ** 32 - 1)),
                                          min_size=40, max_size=40))
def test_fuzz_single_word_changes(which, edits):
    """125 examples x 40 streams: one word changed (a bit flipped or replaced), CRC not fixed."""
    config, data, _ = STREAMS[which]
    words = bs.words_of(data)
    for where, bit, replace, value in edits:
        index = int(where * len(words))
        mutated = list(words)
        mutated[index] = value if replace else mutated[index] ^ (1 << bit)
        COUNTS["single"] += 1
        if mutated[index] == words[index]:
            assert check_verdict(bs.bytes_of(mutated), config, index) is None
            continue
        got = check_verdict(bs.bytes_of(mutated), config, index,
                            allowed_for_single_word(words, index))
        assert got is not None, f"a changed word {index} went unnoticed"


@settings(max_examples=100)
@given(which=STREAM_INDEX, edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True),
                                                    st.integers(0, 31), st.booleans()),
                                          min_size=32, max_size=32),
       fix_crc=st.booleans(), count=st.integers(1, 4), use_config=st.booleans())
def test_fuzz_multiple_changes(which, edits, fix_crc, count, use_config):
    """100 examples x 8 streams: up to 4 words changed, with or without a recomputed CRC, parsed
    with and without a config."""
    config, data, _ = STREAMS[which]
    words = bs.words_of(data)
    for group in range(8):
        mutated = list(words)
        chosen = edits[4 * group: 4 * group + count]
        for where, bit, _ in chosen:
            mutated[int(where * len(words))] ^= 1 << bit
        if fix_crc:
            mutated = with_crc(mutated)
        COUNTS["multi"] += 1
        first = min(int(w * len(words)) for w, _, _ in chosen)
        if mutated == words:
            assert bs.parse(bs.bytes_of(mutated), config) is not None
            continue
        got = check_verdict(bs.bytes_of(mutated), config if use_config else None, first,
                            hardware=config)
        if not fix_crc and first >= section_span(words, "weight")[0]:
            assert got is bs.CrcMismatch       # payload-only changes: only the CRC can see them


@settings(max_examples=100)
@given(which=STREAM_INDEX, cuts=st.lists(st.floats(0, 1, exclude_max=True), min_size=30,
                                         max_size=30),
       extra=st.lists(st.binary(min_size=1, max_size=12), min_size=30, max_size=30))
def test_fuzz_truncated_and_extended(which, cuts, extra):
    """100 examples x 60 streams: every cut (bytes, not only words) is Truncated, every
    extension is ExtraData, with and without a config; the loader model agrees."""
    config, data, _ = STREAMS[which]
    for where, tail in zip(cuts, extra):
        cut = int(where * len(data))
        for cfg in (config, None):
            with pytest.raises(bs.Truncated) as info:
                bs.parse(data[:cut], cfg)
            assert info.value.word == cut // 4 and info.value.code == E.TRUNCATED
            with pytest.raises(bs.ExtraData) as info:
                bs.parse(data + tail, cfg)
            assert info.value.word == len(data) // 4
        if cut >= 4:
            assert bs.loader_outcome(bs.words_of(data[:cut]), config) == E.TRUNCATED
        if len(tail) >= 4:
            assert bs.loader_outcome(bs.words_of(data + tail), config) == E.EXTRA_WORDS
        COUNTS["cut"] += 1
        COUNTS["extend"] += 1


def test_fuzz_counts():
    """Documents the streams a run fuzzes: 125*40 + 100*8 + 100*30*2 = 11,800 (each parsed with
    a config, and the cut and extended ones also without); when run after the fuzz tests on the
    same worker, checks the count."""
    expected = {"single": 5000, "multi": 800, "cut": 3000, "extend": 3000}
    if all(COUNTS.values()):
        assert all(COUNTS[k] >= expected[k] for k in expected), COUNTS
    assert sum(expected.values()) >= 10_000


# --- manifests and the CLI -----------------------------------------------------------------------

def write_manifest(path, config, signature=None, **fields):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"format": MANIFEST_FORMAT, "version": MANIFEST_VERSION,
                                "config": config.as_dict(),
                                "signature": config.signature if signature is None else signature,
                                "top": "spikepack_top", **fields}))
    return path


def test_load_manifest(tmp_path):
    config = CONFIGS[2]
    assert load_manifest(write_manifest(tmp_path / "m.json", config))[1] == config
    with pytest.raises(ManifestError, match="does not match its config"):
        load_manifest(write_manifest(tmp_path / "bad.json", config, config.signature ^ 1))
    with pytest.raises(ManifestError, match="does not match its config"):
        load_manifest(write_manifest(tmp_path / "bool.json", config, True))
    with pytest.raises(ManifestError, match="no manifest"):
        load_manifest(tmp_path / "missing.json")
    (tmp_path / "junk.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not a readable JSON manifest"):
        load_manifest(tmp_path / "junk.json")
    (tmp_path / "noformat.json").write_text("{}")
    with pytest.raises(ManifestError, match="not a SpikePack manifest"):
        load_manifest(tmp_path / "noformat.json")
    with pytest.raises(ManifestError, match="manifest version 2"):
        load_manifest(write_manifest(tmp_path / "v2.json", config, version=2))
    nosig = json.loads(write_manifest(tmp_path / "nosig.json", config).read_text())
    del nosig["signature"]
    (tmp_path / "nosig.json").write_text(json.dumps(nosig))
    with pytest.raises(ManifestError, match="missing field 'signature'"):
        load_manifest(tmp_path / "nosig.json")
    unknown = json.loads(write_manifest(tmp_path / "unknown.json", config).read_text())
    unknown["config"] = {"rowz": 4}
    (tmp_path / "unknown.json").write_text(json.dumps(unknown))
    with pytest.raises(ManifestError, match="unknown field"):
        load_manifest(tmp_path / "unknown.json")


def test_cli_pack_and_inspect(tmp_path, capsys):
    config, data, layers = STREAMS[-1]                    # the LIF configuration
    model = model_of(layers, config)
    model_path = model.save(tmp_path / "model.npz")
    (tmp_path / "hw").mkdir()
    manifest = write_manifest(tmp_path / "hw" / "manifest.json", config)
    toml = tmp_path / "hw.toml"
    toml.write_text("\n".join(f"{k} = {json.dumps(v)}" for k, v in config.as_dict().items()))
    out1, out2 = tmp_path / "a.bin", tmp_path / "b" / "c.bin"
    assert cli.main(["pack", str(model_path), "--manifest", str(manifest), "-o", str(out1)]) == 0
    assert cli.main(["pack", str(model_path), "--config", str(toml), "-o", str(out2)]) == 0
    assert out1.read_bytes() == out2.read_bytes() == data
    text = capsys.readouterr().out
    assert f"signature 0x{config.signature:08x}" in text and f"{len(data)} bytes" in text

    assert cli.main(["inspect", str(out1), "--manifest", str(manifest)]) == 0
    text = capsys.readouterr().out
    for needle in ("magic           0x424b5053", "(matches the hardware)", "neuron          1 (lif)",
                   "descriptor", "threshold", ": ok", "verdict: valid for this hardware",
                   f"{len(layers)} layers"):
        assert needle in text, (needle, text)

    corrupt = tmp_path / "corrupt.bin"
    corrupt.write_bytes(data[:-8] + bytes([data[-8] ^ 0x10]) + data[-7:])
    assert cli.main(["inspect", str(corrupt)]) == 2       # bad input: exit 2, as every command
    captured = capsys.readouterr()
    text = captured.out
    assert "MISMATCH" in text and "INVALID: CrcMismatch" in text and "CRC_MISMATCH" in text
    assert captured.err.startswith(f"spikepack inspect: {corrupt}: invalid bitstream: CrcMismatch")

    assert cli.main(["inspect", str(tmp_path / "a.bin"), "--config", str(tmp_path / "x.toml")]) == 2
    assert "no such config file" in capsys.readouterr().err

    # zeros in the unused threshold fields (issue 12): the hardware accepts it, inspect too
    words = bs.words_of(data)
    ignored = bs.ignored_stream_bits(data, config)
    start, stop = section_span(words, "threshold")
    zeros = with_crc([w & ~m if start <= i < stop else w
                      for i, (w, m) in enumerate(zip(words, ignored))])
    assert zeros != words and bs.loader_outcome(zeros, config) == E.NONE
    unused = tmp_path / "zeros.bin"
    unused.write_bytes(bs.bytes_of(zeros))
    assert cli.main(["inspect", str(unused), "--manifest", str(manifest)]) == 0
    assert "verdict: valid for this hardware" in capsys.readouterr().out


def test_cli_pack_errors(tmp_path, capsys):
    config, data, layers = STREAMS[0]
    other = CONFIGS[1]                       # T = 4, weight_bits 8: the model does not match
    model_path = model_of(layers, config).save(tmp_path / "model.npz")
    manifest = write_manifest(tmp_path / "manifest.json", other)
    out = tmp_path / "out.bin"
    assert cli.main(["pack", str(model_path), "--manifest", str(manifest), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "spikepack pack: the model has timesteps = 2" in err and not out.exists()
    bad = write_manifest(tmp_path / "edited.json", config, 1)
    assert cli.main(["pack", str(model_path), "--manifest", str(bad), "-o", str(out)]) == 2
    assert "does not match its config" in capsys.readouterr().err
    assert cli.main(["pack", str(tmp_path / "nope.npz"), "--manifest", str(manifest),
                     "-o", str(out)]) == 2
    assert "no such model file" in capsys.readouterr().err
    assert cli.main(["pack", str(model_path), "-o", str(out)]) == 2  # --manifest or --config
    assert "one of the arguments --manifest --config is required" in capsys.readouterr().err
    assert not out.exists()


# --- LOAD_ERROR codes: manifest and documents -------------------------------------------------------

LOAD_ERRORS = [(0, "NONE"), (1, "BAD_MAGIC"), (2, "BAD_VERSION"), (3, "BAD_SIGNATURE"),
               (4, "BAD_HEADER"), (5, "BAD_SECTION"), (6, "BAD_LENGTH"), (7, "TOO_LARGE"),
               (8, "BAD_DESCRIPTOR"), (9, "CRC_MISMATCH"), (10, "TRUNCATED"),
               (11, "EXTRA_WORDS")]


def test_manifest_and_docs_list_every_load_error():
    from pathlib import Path

    from spikepack.accelerator import build_manifest
    from spikepack.hw.top import SpikePackTop
    config = small_config()
    top = SpikePackTop(config=config)
    manifest = json.loads(json.dumps(build_manifest(config, top)))
    table = manifest["load_errors"]
    assert [(row["value"], row["name"]) for row in table] == LOAD_ERRORS
    assert all(isinstance(row["meaning"], str) and len(row["meaning"]) > 20 for row in table)
    assert [(int(c), c.name) for c in E] == LOAD_ERRORS
    docs = Path(__file__).resolve().parent.parent / "docs"
    for name, heading in (("registers.md", "## LOAD_ERROR codes"),
                          ("bitstream.md", "## Checks and errors")):
        text = (docs / name).read_text()
        section = text.split(heading, 1)[1].split("\n## ", 1)[0]
        rows = [tuple(cell.strip() for cell in line.strip("|").split("|")[:2])
                for line in section.splitlines() if re.match(r"\| \d+ \| [A-Z_]+ \|", line)]
        assert [(int(v), n) for v, n in rows] == LOAD_ERRORS, name
    registers = (docs / "registers.md").read_text()
    for row in table:
        assert f"| {row['value']} | {row['name']} | {row['meaning']} |" in registers


def test_the_documented_example_is_what_the_packer_writes():
    """docs/bitstream.md's worked example, word for word (if HardwareConfig gains a field, the
    signature and the CRC words change: update the listing from this test's output)."""
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "docs" / "bitstream.md").read_text()
    section = text.split("## Example", 1)[1].split("\n## ", 1)[0]
    listing = [(int(i), int(w, 16)) for i, w in
               re.findall(r"^\s*(\d+)\s+0x([0-9a-f]{8})\s", section, re.M)]
    config = HardwareConfig(rows=2, cols=2, timesteps=2, tau_shift=1, weight_bits=4,
                            bias_bits=8, threshold_bits=4, max_fan_in=4, max_neurons=4,
                            max_layers=2, weight_depth=8, conv=False)
    layers = [(np.array([[1, -2, 3], [-8, 7, 0]]), np.array([5, -6]), np.array([2, 15])),
              (np.array([[4, -1]]), np.array([-128]), None)]
    words = bs.words_of(bs.pack_network(layers, config))
    assert [i for i, _ in listing] == list(range(50)) == list(range(len(words)))
    for (i, documented), packed in zip(listing, words):
        assert documented == packed, f"word {i}: the doc says 0x{documented:08x}, the packer " \
                                     f"writes 0x{packed:08x} (listing: {[hex(w) for w in words]})"
    assert zlib.crc32(b"123456789") == 0xCBF43926          # the check value the doc gives
    assert bs.loader_outcome(words, config) == E.NONE


def test_the_documented_conv_example_is_what_the_packer_writes():
    """docs/bitstream.md's conv example, word for word: the patch order of the conv weights
    (padding channel included), the conv descriptor's lanes and the readout's weights in the
    flatten permutation; the stream parses back to the model."""
    from pathlib import Path

    from spikepack.firmware.model import ConvLayer, MaxPoolLayer
    text = (Path(__file__).resolve().parent.parent / "docs" / "bitstream.md").read_text()
    section = text.split("## Conv example", 1)[1].split("\n## ", 1)[0]
    listing = [(int(i), int(w, 16)) for i, w in
               re.findall(r"^\s*(\d+)\s+0x([0-9a-f]{8})\s", section, re.M)]
    config = HardwareConfig(rows=2, cols=2, timesteps=2, tau_shift=1, weight_bits=4,
                            bias_bits=8, threshold_bits=4, max_fan_in=8, max_neurons=4,
                            max_layers=2, weight_depth=32, max_channels=4, max_map_side=8,
                            max_map_words=80, max_kernel=3)
    w = [[[[-7, -6], [-5, -4]], [[-3, -2], [-1, 0]], [[1, 2], [3, 4]]],
         [[[5, 6], [7, -7]], [[-6, -5], [-4, -3]], [[-2, -1], [0, 1]]]]
    model = SpikePackModel(timesteps=2, tau_shift=1, weight_bits=4, input_shape=(3, 4, 5),
                           layers=(ConvLayer(weights=np.array(w), bias=np.array([3, -4]),
                                             threshold=np.array([5, 9]), stride=(1, 2),
                                             padding=(0, 1)),
                                   MaxPoolLayer(window=(2, 1)),
                                   Layer(weights=np.array([[1, 2, 3, -1, -2, -3]]),
                                         bias=np.array([7]))))
    words = bs.words_of(bs.pack(model, config))
    assert [i for i, _ in listing] == list(range(66)) == list(range(len(words)))
    for (i, documented), packed in zip(listing, words):
        assert documented == packed, f"word {i}: the doc says 0x{documented:08x}, the packer " \
                                     f"writes 0x{packed:08x} (listing: {[hex(w) for w in words]})"
    # independent readings of the documented positions: descriptor 0's lanes, a patch column
    assert words[27:33] == [16 | 2 << 16, 0, 0, 2 | 1 << 8 | 3 << 16, 3 | 4 << 16 | 5 << 24,
                            2 | 2 << 4 | 1 << 8 | 2 << 10 | 0 << 12 | 1 << 15 | 2 << 18 | 1 << 21]
    n = ((1 * 2 + 0) * 2 + 1) * 2 + 0            # ky 1, kx 0, c 2 = cg 1 * R + r 0
    assert words[39 + n] == (w[0][2][1][0] & 0xF) | (w[1][2][1][0] & 0xF) << 4
    assert bs.loader_outcome(words, config) == E.NONE
    back = bs.parse(bs.bytes_of(words), config)
    assert back.layers == model.layers and back.input_shape == (3, 4, 5)


def test_cli_packs_a_conv_model(tmp_path, capsys):
    """`spikepack pack` packs a conv model for conv hardware (what bitstream.pack writes) and
    refuses it in one line, exit 2, for hardware without conv or too few channels."""
    from spikepack.sim.benches.stimulus import conv_model, random_plan
    rng = np.random.default_rng(7)
    config = HardwareConfig()
    model = conv_model(rng, config, random_plan(rng, config))
    path = model.save(tmp_path / "conv.npz")

    def toml(name, **change):
        target = tmp_path / f"{name}.toml"
        target.write_text("\n".join(f"{k} = {json.dumps(v)}"
                                    for k, v in {**config.as_dict(), **change}.items()))
        return str(target)

    out = tmp_path / "conv.bin"
    assert cli.main(["pack", str(path), "--config", toml("hw"), "-o", str(out)]) == 0
    assert out.read_bytes() == bs.pack(model, config)
    text = capsys.readouterr().out
    hardware = bs.parse_stream(out.read_bytes(), config).header["layer_count"]
    assert f"in {hardware} hardware layers" in text and bs.parse(out.read_bytes(), config)
    for change, needle in (({"conv": False}, "this hardware has no convolution (conv = false)"),
                           ({"max_channels": 1}, "max_channels is 1")):
        bad = tmp_path / "bad.bin"
        assert cli.main(["pack", str(path), "--config", toml("bad", **change), "-o",
                         str(bad)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err and "Traceback" not in err, err
        assert not bad.exists()

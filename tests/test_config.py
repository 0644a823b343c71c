"""Hardware configuration: defaults, checks with named errors, TOML files, signature."""

import pytest

from spikepack.config import ConfigError, HardwareConfig, load_config


def test_defaults_hold_the_digits_network():
    c = HardwareConfig()
    assert (c.rows, c.cols, c.timesteps, c.tau_shift, c.weight_bits) == (8, 8, 4, 1, 8)
    assert c.max_fan_in >= 64 and c.max_neurons >= 64 and c.max_layers >= 3
    # one tile's weights arrive within its T compute cycles
    assert c.words_per_tile <= c.timesteps
    assert c.rows % c.rows_per_word == 0


@pytest.mark.parametrize("field,value,match", [
    ("rows", 6, "rows must be a power of two"),
    ("cols", 0, "cols must be between"),
    ("timesteps", 17, "timesteps must be between 1 and 16"),
    ("tau_shift", 4, "tau_shift must be one of"),
    ("weight_bits", 1, "weight_bits must be between 2 and 16"),
    ("neuron", "izhikevich", "neuron must be one of"),
    ("pe_mode", "analog", "pe_mode must be one of"),
    ("weight_rows_per_word", 3, "must divide rows"),
    ("max_fan_in", "64", "max_fan_in must be an integer"),
])
def test_bad_fields_are_named(field, value, match):
    with pytest.raises(ConfigError, match=match):
        HardwareConfig(**{field: value})


def test_packed_lif_is_refused():
    with pytest.raises(ConfigError, match="LIF cannot use"):
        HardwareConfig(neuron="lif", pe_mode="packed")


def test_too_wide_configuration_is_refused():
    with pytest.raises(ConfigError, match="limit is 62"):
        HardwareConfig(timesteps=16, tau_shift=3, weight_bits=16, max_fan_in=1 << 16)


def test_rows_per_word_hides_weight_loading():
    for rows, T in ((8, 4), (16, 4), (4, 8), (8, 1), (2, 2)):
        c = HardwareConfig(rows=rows, timesteps=T)
        assert rows % c.rows_per_word == 0
        if rows <= T * T:
            assert c.words_per_tile <= T
    assert HardwareConfig(pe_mode="packed").rows_per_word == 8


def test_signature_covers_every_field_and_is_stable():
    base = HardwareConfig()
    assert base.signature == HardwareConfig().signature
    assert 0 <= base.signature < 1 << 32
    changed = [HardwareConfig(rows=4), HardwareConfig(timesteps=5), HardwareConfig(tau_shift=2),
               HardwareConfig(weight_bits=7), HardwareConfig(weight_depth=512),
               HardwareConfig(neuron="lif"), HardwareConfig(bias_bits=17)]
    assert len({c.signature for c in changed} | {base.signature}) == len(changed) + 1


def test_toml_round_trip_and_errors(tmp_path):
    good = tmp_path / "c.toml"
    good.write_text("[hardware]\nrows = 4\ncols = 16\ntimesteps = 8\n")
    c = load_config(good)
    assert (c.rows, c.cols, c.timesteps) == (4, 16, 8)
    assert HardwareConfig.from_dict(c.as_dict()) == c
    bad = tmp_path / "bad.toml"
    bad.write_text("rows = 4\ncolumns = 8\n")
    with pytest.raises(ConfigError, match="unknown field.*columns"):
        load_config(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("rows = = 4\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(broken)
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.toml")
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("rows = 5\n")
    with pytest.raises(ConfigError, match=r"wrong.toml: rows must be a power of two"):
        load_config(wrong)


def test_mixed_layouts_are_refused_not_half_read(tmp_path):
    """rows at top level and cols under [hardware]: reading only the table would drop rows
    silently, so the file is refused with both places named."""
    mixed = tmp_path / "mixed.toml"
    mixed.write_text("rows = 4\n[hardware]\ncols = 8\n")
    with pytest.raises(ConfigError, match=r"rows at top level and a \[hardware\] table"):
        load_config(mixed)
    with pytest.raises(ConfigError, match="'hardware' must be a table"):
        HardwareConfig.from_dict({"hardware": 3})
    assert HardwareConfig.from_dict({"hardware": {"rows": 4}}).rows == 4
    assert HardwareConfig.from_dict({"rows": 4}).rows == 4


@pytest.mark.parametrize("value", [1.0, True, "1", [1]])
def test_tau_shift_must_be_an_integer(value):
    # 1.0 == 1, so a bare membership test would accept a float (and hash it into the signature)
    with pytest.raises(ConfigError, match="tau_shift must be one of"):
        HardwareConfig(tau_shift=value)


def test_files_that_are_not_toml_text_are_named(tmp_path):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(256)))
    with pytest.raises(ConfigError, match=r"binary.toml: not a TOML text file \(byte 128"):
        load_config(binary)
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    with pytest.raises(ConfigError, match="folder.toml: is a directory"):
        load_config(folder)
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert load_config(empty) == HardwareConfig()          # every field has a default

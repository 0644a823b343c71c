"""Generate the accelerator: Verilog of ``spikepack_top``, a file list, and ``manifest.json``.

``manifest.json`` is what the host tools read (``spikepack pack``, ``spikepack run``): every
generator parameter, the 32-bit hardware signature, the derived widths, the memory map, the
register map, the LOAD_ERROR codes (``load_errors``: value, name, meaning) and the port list. Its ``format``/``version`` fields let readers reject a manifest
they do not understand.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from spikepack.config import ConfigError, HardwareConfig
from spikepack.fileio import write_files
from spikepack.hw.verilog import TOP_NAME

__all__ = ["MANIFEST_FORMAT", "MANIFEST_VERSION", "TOP_NAME", "ManifestError",
           "generate_accelerator", "load_manifest", "top_ports"]

MANIFEST_FORMAT = "spikepack-manifest"
MANIFEST_VERSION = 1


class ManifestError(ValueError):
    """A manifest is missing, unreadable or inconsistent with its configuration."""


def top_ports(component) -> list[dict[str, Any]]:
    """The top-level ports as they appear in the Verilog: name, direction, width."""
    from amaranth.lib.wiring import Flow
    ports = [{"name": "clk", "direction": "input", "width": 1},
             {"name": "rst", "direction": "input", "width": 1}]
    for path, member in component.signature.members.flatten():
        if not member.is_port:
            continue
        ports.append({"name": "__".join(str(p) for p in path),
                      "direction": "input" if member.flow == Flow.In else "output",
                      "width": member.shape.width if hasattr(member.shape, "width")
                      else len(getattr(component, path[0]))})
    return ports


def build_manifest(config: HardwareConfig, top) -> dict[str, Any]:
    from spikepack.firmware.bitstream import load_error_table
    from spikepack.hw.registers import register_map
    mems = config.memories
    return {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "top": TOP_NAME,
        "files": [f"{TOP_NAME}.v"],
        "config": config.as_dict(),
        "signature": config.signature,
        "signature_hex": f"0x{config.signature:08x}",
        "widths": dataclasses.asdict(config.widths),
        "derived": {
            "rows_per_word": config.rows_per_word,
            "words_per_tile": config.words_per_tile,
            "activation_depth": config.activation_depth,
            "column_tiles_max": config.column_tiles_max,
            "inputs_per_beat": config.input_words_per_beat,
            "output_bits": config.out_bits,
        },
        "memories": {name: {"lanes": s.lanes, "word_bits": s.word_bits, "depth_per_bank": s.depth,
                            "banks": 2} for name, s in mems.items()},
        "reset": "rst: active-high, synchronous to clk",
        "registers": register_map(config),
        "load_errors": load_error_table(),
        "ports": top_ports(top),
    }


def generate_accelerator(config: HardwareConfig, out_dir: str | Path) -> dict[str, Any]:
    """Write ``<out_dir>/spikepack_top.v``, ``files.f`` and ``manifest.json``; return the manifest.

    Everything is elaborated before anything is written, and the three files are written all or
    nothing (:func:`spikepack.fileio.write_files`), so a bad configuration, a full disk or Ctrl-C
    leaves ``out_dir`` as it was.
    """
    from spikepack.hw.top import SpikePackTop
    from spikepack.hw.verilog import to_verilog

    if not isinstance(config, HardwareConfig):
        raise TypeError(f"config must be a HardwareConfig, not {type(config).__name__}")
    top = SpikePackTop(config=config)
    manifest = build_manifest(config, top)
    verilog = to_verilog(top, TOP_NAME)
    # lets 'spikepack run' refuse a manifest next to the Verilog of another configuration
    manifest["verilog_sha256"] = hashlib.sha256(verilog.encode()).hexdigest()
    # all or nothing, the manifest renamed into place last: a full disk or Ctrl-C never leaves
    # a truncated Verilog file, nor a manifest describing files that are not there
    write_files(out_dir, {f"{TOP_NAME}.v": verilog,
                          "files.f": f"{TOP_NAME}.v\n",
                          "manifest.json": json.dumps(manifest, indent=2) + "\n"})
    return manifest


def load_manifest(path: str | Path) -> tuple[dict[str, Any], HardwareConfig]:
    """Read ``manifest.json`` (or a directory holding one) and its configuration, checked: format
    and version, the config's fields, and that the stored signature is the config's. The one
    manifest reader of the project (``spikepack pack``, ``inspect`` and ``run`` use it)."""
    path = Path(path)
    if path.is_dir():
        path = path / "manifest.json"
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise ManifestError(f"{path}: no manifest (run 'spikepack generate --config ... -o DIR')") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ManifestError(f"{path}: not a readable JSON manifest: {e}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{path}: not a SpikePack manifest (format field is "
                            f"{manifest.get('format') if isinstance(manifest, dict) else None!r})")
    if manifest.get("version") != MANIFEST_VERSION:
        raise ManifestError(f"{path}: manifest version {manifest.get('version')!r}; this tool "
                            f"reads version {MANIFEST_VERSION}")
    for key in ("config", "signature"):
        if key not in manifest:
            raise ManifestError(f"{path}: missing field {key!r}")
    if not isinstance(manifest["config"], dict):
        raise ManifestError(f"{path}: 'config' must be an object")
    try:
        config = HardwareConfig.from_dict(manifest["config"], source=f"{path}: config")
    except (ConfigError, TypeError) as e:
        raise ManifestError(str(e)) from None
    stored = manifest["signature"]
    if not isinstance(stored, int) or isinstance(stored, bool) or stored != config.signature:
        raise ManifestError(f"{path}: the manifest's signature {stored!r} does not match its "
                            f"config (0x{config.signature:08x}); the manifest was edited or "
                            f"written by another version of the generator")
    return manifest, config

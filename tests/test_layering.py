"""The layering rule of ``docs/architecture.md``, checked on the import graph of the package.

Every module of the package belongs to one layer; a module may import modules of its own layer
and of the layers below it, never above. Imports are read with ``ast`` from the source files
(function-level imports included), so the rule holds for lazy imports too.
"""

from __future__ import annotations

import ast
from fnmatch import fnmatch
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
#: source folder -> package, as pyproject.toml maps them
FOLDERS = {"gen": "spikepack", "hw": "spikepack.hw", "sim": "spikepack.sim",
           "firmware": "spikepack.firmware"}

#: The layers, lowest first: (name, module patterns). The first pattern that matches a module
#: (in this order) gives its layer.
LAYERS = (
    ("base", ("spikepack", "spikepack.limits", "spikepack.fileio")),
    ("golden", ("spikepack.sim.golden",)),
    ("config", ("spikepack.config",)),
    ("formats", ("spikepack.firmware", "spikepack.firmware.layout", "spikepack.firmware.bitstream",
                 "spikepack.firmware.bitstream_format",
                 "spikepack.firmware.model", "spikepack.firmware.quantize",
                 "spikepack.firmware.graph", "spikepack.firmware.convert",
                 "spikepack.firmware.onnx_import", "spikepack.firmware.datasets")),
    ("hardware", ("spikepack.hw", "spikepack.hw.*")),
    ("protocol", ("spikepack.protocol",)),     # the host driver's sans-IO core
    ("simulation", ("spikepack.sim", "spikepack.sim.*")),
    ("tools", ("spikepack.*",)),        # generators, reports, CLIs (firmware's CLIs included)
)
#: What the hardware may take from the formats: the memory layout, not the packer or converter.
HARDWARE_FORMATS = ("spikepack.firmware.layout", "spikepack.firmware.bitstream_format")

#: Known exceptions, each with the reason it is not fixed yet. An exception that no longer
#: occurs fails the test, so the list cannot go stale.
EXCEPTIONS: set[tuple[str, str]] = set()


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO)
    package = FOLDERS[rel.parts[0]]
    parts = list(rel.with_suffix("").parts[1:])
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join([package, *parts])


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for folder in FOLDERS for p in sorted((REPO / folder).rglob("*.py"))}


def layer_of(module: str) -> int:
    for rank, (_, patterns) in enumerate(LAYERS):
        if any(fnmatch(module, pattern) for pattern in patterns):
            return rank
    raise AssertionError(f"{module} is in no layer")


def imports_of(module: str, path: Path, known) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "spikepack")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "spikepack":
                continue
            for alias in node.names:           # `from spikepack import limits` imports a module
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
    found.discard(module)
    return found


def violations() -> set[tuple[str, str]]:
    known = package_modules()
    bad = set()
    for module, path in known.items():
        mine = layer_of(module)
        for target in imports_of(module, path, known):
            theirs = layer_of(target)
            if theirs > mine:
                bad.add((module, target))
            elif (LAYERS[mine][0] == "hardware" and LAYERS[theirs][0] == "formats"
                  and target not in HARDWARE_FORMATS):
                bad.add((module, target))
    return bad


def test_every_module_has_a_layer():
    for module in package_modules():
        layer_of(module)


def test_imports_follow_the_layering_rule():
    bad = violations()
    new = sorted(bad - EXCEPTIONS)
    assert not new, "imports against the layering rule (docs/architecture.md):\n" + "\n".join(
        f"  {a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})" for a, b in new)
    gone = sorted(EXCEPTIONS - bad)
    assert not gone, f"known exceptions that no longer occur (remove them): {gone}"


def test_the_checker_sees_a_violation():
    """The rule can fail: a hardware module importing the runner is caught."""
    known = package_modules()
    assert layer_of("spikepack.hw.top") > layer_of("spikepack.firmware.layout")
    assert layer_of("spikepack.sim.runner") > layer_of("spikepack.hw.top")
    assert layer_of("spikepack.report") > layer_of("spikepack.sim.runner")
    # the driver's protocol sits below the benches that run it, the driver's buses above them
    assert (layer_of("spikepack.hw.registers") < layer_of("spikepack.protocol")
            < layer_of("spikepack.sim.benches.driver_bench") < layer_of("spikepack.driver"))
    assert "spikepack.hw.array" in imports_of("spikepack.hw.layer_engine",
                                              known["spikepack.hw.layer_engine"], known)
    assert "spikepack.limits" in imports_of("spikepack.config", known["spikepack.config"], known)

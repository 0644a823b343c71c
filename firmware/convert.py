"""ANN-to-SNN conversion (SPEC section 5): train a ReLU MLP on scikit-learn's digits and turn it
into an integer SpikePack model (:class:`spikepack.firmware.model.SpikePackModel`).

SpikePack with tau = 2 is a T-bit unsigned uniform quantizer with step theta, floor and
saturation, so conversion is post-training quantization (``docs/conversion.md`` explains it):

* the float network sees ``a0 = x / 16`` (pixels 0..16); the input encoding turns a pixel into a
  spike word with ``a0 ~ p(z) / P`` (:class:`~spikepack.firmware.model.InputEncoding`);
* every hidden channel i gets a float activation scale ``s_i = percentile(a_i) / P`` from 10% of
  the training data (``a_i ~ s_i * p(z_i)``, saturating at the percentile);
* the input scales are folded into the weights, ``W'_ij = W_ij * s_j``; each output channel is
  quantized symmetrically, ``w_ij = round(W'_ij / q_i)`` with ``q_i = max_j |W'_ij| / (2**(b-1)-1)``;
  the potential is then in units of ``q_i``: bias ``round(b_i / q_i)``, threshold
  ``theta_i = round(s_i / q_i)``, and ``theta_i // 2`` is added to the bias so the flooring
  decode rounds to nearest; the scale the next layer sees is the exact ``theta_i * q_i``;
* the readout is not decoded and its argmax must not change, so it uses one scale ``q`` for all
  its channels (per-tensor): the logits are the float logits divided by ``q``;
* ``q_i`` is raised where needed so that every threshold and bias fits the hardware widths
  (default: thresholds below 2**15, biases in 16-bit two's complement).

Run ``spikepack convert`` (this module's :func:`main`) to write ``build/digits/model.npz``, or
``python -m spikepack.firmware.convert --table`` to regenerate ``docs/conversion.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import json
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from spikepack.firmware.model import (InputEncoding, Layer, SpikePackModel, write_npz)
from spikepack.sim.golden import packed_max

__all__ = ["DigitsSplit", "TEST_SIZE", "PIXEL_MAX", "CALIB_FRACTION", "DEFAULT_HIDDEN",
           "train_float_mlp", "float_activations", "convert", "evaluate", "accuracy_table",
           "write_test_inputs", "add_arguments", "main"]

#: Held-out test images (fixed split: train_test_split(test_size=360, random_state=0, stratify=y)).
TEST_SIZE = 360
SPLIT_SEED = 0
#: Largest digits pixel value; the float network sees x / PIXEL_MAX.
PIXEL_MAX = 16
#: Share of the training set used to calibrate thresholds (a fixed subset).
CALIB_FRACTION = 0.10
DEFAULT_HIDDEN = (64, 32)
DEFAULT_PERCENTILE = 99.9
DEFAULT_ALPHA = 1e-4
MAX_ITER = 500


@dataclass(frozen=True)
class DigitsSplit:
    """The fixed digits split; pixels are int64 in 0..16. ``x_calib`` is the calibration subset
    of the training set (10%, fixed)."""
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    x_calib: np.ndarray
    y_calib: np.ndarray


def load_split() -> DigitsSplit:
    """sklearn digits, 360 test images held out (stratified, random_state 0); the calibration
    subset is a fixed 10% of the training images."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    x = np.rint(digits.data).astype(np.int64)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y)
    order = np.random.RandomState(SPLIT_SEED).permutation(len(x_train))
    calib = np.sort(order[:int(round(CALIB_FRACTION * len(x_train)))])
    return DigitsSplit(x_train, y_train, x_test, y_test, x_train[calib], y_train[calib])


def _parse_hidden(hidden) -> tuple[int, ...]:
    if isinstance(hidden, str):
        try:
            hidden = tuple(int(h) for h in hidden.replace(" ", "").split(",") if h)
        except ValueError:
            raise ValueError(f"hidden must be comma-separated layer sizes like '64,32', "
                             f"not {hidden!r}") from None
    hidden = tuple(int(h) for h in hidden)
    if any(h < 1 for h in hidden):
        raise ValueError(f"hidden layer sizes must be >= 1, not {hidden}")
    return hidden


def train_float_mlp(hidden: Sequence[int] | str = DEFAULT_HIDDEN, seed: int = 0,
                    alpha: float = DEFAULT_ALPHA):
    """Train ``MLPClassifier`` (ReLU, Adam, fixed seed) on ``x / 16`` of the training images.
    Returns ``(mlp, DigitsSplit)``. Deterministic for a given ``hidden`` and ``seed``."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier
    from threadpoolctl import threadpool_limits
    hidden = _parse_hidden(hidden)
    split = load_split()
    mlp = MLPClassifier(hidden_layer_sizes=hidden, activation="relu", solver="adam",
                        alpha=alpha, max_iter=MAX_ITER, random_state=seed)
    # one BLAS thread: the matrices are tiny, so threads only thrash on a busy machine, and a
    # fixed thread count keeps the float sums (and so the trained weights) reproducible
    with warnings.catch_warnings(), threadpool_limits(limits=1):
        warnings.simplefilter("ignore", ConvergenceWarning)
        mlp.fit(split.x_train / PIXEL_MAX, split.y_train)
    return mlp, split


def _float_layers(mlp) -> list[tuple[np.ndarray, np.ndarray]]:
    if getattr(mlp, "activation", "relu") != "relu":
        raise ValueError(f"only ReLU networks convert to SpikePack, not {mlp.activation!r}")
    return [(np.asarray(w, dtype=np.float64).T, np.asarray(b, dtype=np.float64))
            for w, b in zip(mlp.coefs_, mlp.intercepts_)]


def float_activations(mlp, x) -> list[np.ndarray]:
    """The float network's ReLU activations of every hidden layer for raw pixels ``x``."""
    a = np.asarray(x, dtype=np.float64) / PIXEL_MAX
    out = []
    for w, b in _float_layers(mlp)[:-1]:
        a = np.maximum(a @ w.T + b, 0.0)
        out.append(a)
    return out


def convert(mlp, calib_x, timesteps: int = 4, tau_shift: int = 1, weight_bits: int = 8,
            neuron: str = "spikepack", *, percentile: float = DEFAULT_PERCENTILE,
            bias_bits: int = 16, threshold_bits: int = 15, metadata: dict | None = None
            ) -> SpikePackModel:
    """Convert a trained ReLU ``MLPClassifier`` (trained on ``x / 16``) to a SpikePack model.

    ``calib_x`` are raw calibration pixels (0..16), used to set each hidden channel's threshold
    at the ``percentile`` of its ReLU activation. Every bias fits ``bias_bits`` signed bits and
    every threshold ``threshold_bits`` unsigned bits (the defaults fit the default hardware,
    bias_bits = 16 and threshold_bits = 16, with a bit to spare). ``neuron="lif"`` writes the
    same integers for the LIF baseline (LIF is not a quantizer, so its accuracy is not a
    conversion target). Deterministic. The MLP becomes a FloatNetwork of dense layers and goes
    through :func:`spikepack.firmware.quantize.quantize`, which gives the integers of the
    original direct converter exactly (``tests/test_quantize.py``).
    """
    from spikepack.firmware.quantize import float_network_from_sklearn, quantize
    net = float_network_from_sklearn(mlp)
    meta = {
        "source": "sklearn MLPClassifier (ReLU) on sklearn.datasets.load_digits, input x/16",
        "converter": "spikepack.firmware.convert",
        "hidden": [int(h) for h in np.atleast_1d(getattr(mlp, "hidden_layer_sizes", ()))],
    }
    meta.update(metadata or {})
    return quantize(net, calib_x, x_max=PIXEL_MAX, timesteps=timesteps, tau_shift=tau_shift,
                    weight_bits=weight_bits, neuron=neuron, percentile=percentile,
                    bias_bits=bias_bits, threshold_bits=threshold_bits, metadata=meta)


def evaluate(mlp, model: SpikePackModel, x, y) -> dict:
    """Accuracies on raw pixels ``x`` and labels ``y``: the float MLP's, the golden SNN's, and the
    share of images where both predict the same class."""
    x = np.asarray(x)
    y = np.asarray(y)
    float_pred = mlp.predict(x / PIXEL_MAX)
    snn_pred = model.predict(x)
    return {"float_accuracy": float(np.mean(float_pred == y)),
            "snn_accuracy": float(np.mean(snn_pred == y)),
            "agreement": float(np.mean(float_pred == snn_pred)),
            "images": int(len(y))}


def write_test_inputs(model: SpikePackModel, split: DigitsSplit, path: str | Path) -> Path:
    """Write the encoded test set for an RTL run: ``z`` (360, 64) int64 spike words, ``labels``
    (360,), ``x`` raw pixels, and the golden ``logits`` and ``predictions``. Deterministic."""
    z = model.encode(split.x_test)
    logits, _ = model.forward(z)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    write_npz(buffer, {"z": z.astype(np.int64), "labels": split.y_test.astype(np.int64),
                       "x": split.x_test.astype(np.int64), "logits": logits.astype(np.int64),
                       "predictions": np.argmax(logits, axis=-1).astype(np.int64)})
    path.write_bytes(buffer.getvalue())
    return path


# --- accuracy table ----------------------------------------------------------------------------

TABLE_T = (2, 4, 6, 8)
TABLE_BITS = (4, 8)
TABLE_TAU = (1, 2)


def accuracy_table(hidden=DEFAULT_HIDDEN, seed: int = 0, progress: bool = True) -> dict:
    """Train once; convert for every T in {2, 4, 6, 8}, weight bits in {4, 8} and tau_shift in
    {1, 2}; return ``{"float_accuracy", "rows": [{T, weight_bits, tau_shift, snn_accuracy,
    agreement, bias_bits_needed, threshold_bits_needed}, ...]}``."""
    from tqdm import tqdm
    mlp, split = train_float_mlp(hidden, seed)
    grid = [(T, b, k) for k in TABLE_TAU for b in TABLE_BITS for T in TABLE_T]
    rows = []
    float_accuracy = None
    for T, bits, k in tqdm(grid, desc="convert", disable=not progress):
        model = convert(mlp, split.x_calib, T, k, bits)
        result = evaluate(mlp, model, split.x_test, split.y_test)
        float_accuracy = result["float_accuracy"]
        rows.append({"T": T, "weight_bits": bits, "tau_shift": k,
                     "snn_accuracy": result["snn_accuracy"], "agreement": result["agreement"],
                     "bias_bits_needed": model.metadata["bias_bits_needed"],
                     "threshold_bits_needed": model.metadata["threshold_bits_needed"]})
    lif = evaluate(mlp, convert(mlp, split.x_calib, 4, 1, 8, neuron="lif"), split.x_test,
                   split.y_test)
    return {"hidden": list(_parse_hidden(hidden)), "seed": seed,
            "float_accuracy": float_accuracy, "rows": rows, "lif_accuracy": lif["snn_accuracy"]}


def plot_table(table: dict, path: str | Path) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    styles = {(8, 1): ("C0", "o", "-"), (4, 1): ("C1", "s", "-"),
              (8, 2): ("C2", "o", "--"), (4, 2): ("C3", "s", "--")}
    for (bits, k), (color, marker, line) in styles.items():
        rows = [r for r in table["rows"] if r["weight_bits"] == bits and r["tau_shift"] == k]
        ax.plot([r["T"] for r in rows], [100 * r["snn_accuracy"] for r in rows], color=color,
                marker=marker, linestyle=line,
                label=f"SNN, {bits}-bit weights, tau = {1 << k}")
    ax.axhline(100 * table["float_accuracy"], color="k", linestyle=":",
               label=f"float MLP ({100 * table['float_accuracy']:.1f}%)")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("test accuracy (%), 360 digits")
    ax.set_xticks(list(TABLE_T))
    ax.set_title("SpikePack conversion of a " + "-".join(
        str(n) for n in [64, *table["hidden"], 10]) + " ReLU MLP")
    ax.grid(True, alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, metadata={"Software": None})
    plt.close(fig)
    return path


_DOC_TEMPLATE = """# Converting a ReLU MLP to SpikePack

`spikepack convert` (module `spikepack.firmware.convert`) trains a ReLU MLP on scikit-learn's
digits and converts it, by post-training quantization, into an integer SpikePack model file
(`docs/model-format.md`). This page describes the method and the accuracy it reaches; the table
and the plot are generated by `python -m spikepack.firmware.convert --table` (do not edit them
by hand).

## Data and float network

* `sklearn.datasets.load_digits`: 1797 images of 8 x 8 pixels, each an integer 0..16.
* Fixed split: `train_test_split(x, y, test_size=360, random_state=0, stratify=y)`, so 1437
  training and **360 test** images. The calibration set is a fixed 10% of the training images
  (`RandomState(0).permutation`, first 144).
* `MLPClassifier(hidden_layer_sizes={hidden}, activation="relu", solver="adam", alpha=1e-4,
  max_iter=500, random_state=seed)` trained on `x / 16`. Training is deterministic.

## Method (SPEC section 5)

With tau = 2 a SpikePack neuron is a T-bit unsigned uniform quantizer with step theta, floor and
saturation: `z = clip(floor((v - 1) / theta), 0, 2^T - 1)`. Converting is therefore
post-training quantization. Notation: `P = (tau^T - 1) / (tau - 1)` is the largest packed value.

1. **Input encoding.** A pixel x becomes a spike word by the SpikePack decode itself,
   `z = decode_serial(P*x + 8, 16, T, tau_shift)`, so `x / 16 ~ p(z) / P` (for tau = 2 this is
   `x * P / 16` rounded to nearest). The three integers (scale P, offset 8, threshold 16) are
   stored in the model file; the host encodes, the accelerator receives spike words. The input
   scale is `s_j = 1 / P` for every pixel.
2. **Calibration.** For each hidden channel i, the ReLU activation `a_i` on the calibration set
   gives the clipping level `c_i = percentile(a_i, {percentile})` (the maximum if that is 0, and 1
   if the channel never fires); the wanted output scale is `s_i = c_i / P`, so `a_i ~ s_i p(z_i)`
   and only activations above `c_i` saturate. It is frozen from then on.
3. **Folding and weight quantization.** The input scales are folded into the weights,
   `W'_ij = W_ij s_j`, so the float pre-activation is `h_i = sum_j W'_ij p(z_j) + b_i`. Each output
   channel is quantized symmetrically: `q_i = max_j |W'_ij| / (2^(b_w - 1) - 1)`,
   `w_ij = round(W'_ij / q_i)`. The integer potential `v_i` is `h_i` in units of `q_i`.
4. **Bias and threshold in potential units.** `theta_i = max(1, round(s_i / q_i))`,
   `bias_i = round(b_i / q_i) + floor(theta_i / 2)`. The half threshold turns the flooring decode
   into round-to-nearest. Because theta is rounded, the scale the next layer folds in is the
   exact `theta_i q_i`, not `s_i`, so no error accumulates from it.
5. **Readout.** The last layer is not decoded: its potentials are the logits. Its argmax must
   match the float network's, so it uses one scale `q` for all channels (per-tensor, not
   per-channel); the model's metadata records it as `readout_scale` (float logits ~ q * v).
6. **Hardware widths.** `q_i` is raised where needed so that every threshold fits
   `threshold_bits = 15` (theta < 2^15) and every bias fits `bias_bits = 16` signed; both are
   keyword arguments of `convert`. The model metadata records what the model needs
   (`bias_bits_needed`, `threshold_bits_needed`); the default hardware (`HardwareConfig()`:
   bias_bits 16, threshold_bits 16, weight_bits 8, T 4, tau_shift 1, max_fan_in 256) holds the
   digits model.

For tau = 4 (tau_shift = 2) the levels `theta p(z)` are not uniform (for T = 4: 0, 1, 4, 5, 16, 17,
20, 21, 64, ... times theta), and the greedy decode takes the largest level below the potential,
so the same recipe gives a much coarser, non-uniform quantizer (a Cantor-like set of levels with
wide gaps, for the inputs as for the hidden layers): the table shows what that costs without
retraining. Here conversion is near-lossless only for tau = 2; a good tau = 4 network would need
quantization-aware training, which this project does not do.

`neuron="lif"` writes the same integers for the LIF baseline. LIF is not a quantizer (it weighs
every step alike, leaks, and adds the bias every step), so this conversion does not suit it: at
T = 4, 8-bit weights, tau = 2 the LIF model reaches only {lif_acc:.2f}%. The LIF model exists for
hardware comparisons (bit-exactness, cycles, resources), not for accuracy.

## Accuracy on the 360 test images

Float MLP ({widths}, seed {seed}): **{float_acc:.2f}%**. SNN accuracy is the golden model's
(`spikepack.sim.golden.run_network`), which the hardware reproduces bit for bit.
"Agreement" is the share of test images on which the SNN predicts the float network's class.

| T | weight bits | tau | SNN accuracy | SNN - float | agreement | bias bits needed | threshold bits needed |
|---|---|---|---|---|---|---|---|
{rows}

![accuracy against T](conversion_accuracy.png)

Reproduce: `python -m spikepack.firmware.convert --table` (a few seconds). The default
model (`spikepack convert`: T = 4, 8-bit weights, tau = 2) is the row T = 4, 8 bits, tau = 2.
"""


def write_table_docs(table: dict, docs_dir: str | Path = "docs") -> tuple[Path, Path]:
    docs_dir = Path(docs_dir)
    png = plot_table(table, docs_dir / "conversion_accuracy.png")
    f = table["float_accuracy"]
    rows = "\n".join(
        f"| {r['T']} | {r['weight_bits']} | {1 << r['tau_shift']} | {100 * r['snn_accuracy']:.2f}% "
        f"| {100 * (r['snn_accuracy'] - f):+.2f} | {100 * r['agreement']:.2f}% "
        f"| {r['bias_bits_needed']} | {r['threshold_bits_needed']} |"
        for r in table["rows"])
    text = _DOC_TEMPLATE.format(hidden=tuple(table["hidden"]), percentile=DEFAULT_PERCENTILE,
                                widths="-".join(str(n) for n in [64, *table["hidden"], 10]),
                                seed=table["seed"], float_acc=100 * f, rows=rows,
                                lif_acc=100 * table["lif_accuracy"])
    md = docs_dir / "conversion.md"
    md.write_text(text)
    return md, png


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--timesteps", "-T", type=int, default=4, help="time steps T (default 4)")
    parser.add_argument("--tau-shift", type=int, default=1, choices=(1, 2, 3),
                        help="k, tau = 2**k (default 1)")
    parser.add_argument("--weight-bits", type=int, default=8, help="signed weight width (default 8)")
    parser.add_argument("--hidden", default=",".join(map(str, DEFAULT_HIDDEN)),
                        help="hidden layer sizes, comma-separated (default 64,32)")
    parser.add_argument("--seed", type=int, default=0, help="MLP training seed (default 0)")
    parser.add_argument("--neuron", default="spikepack", choices=("spikepack", "lif"))
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help=f"calibration percentile of each ReLU activation (default "
                             f"{DEFAULT_PERCENTILE})")
    parser.add_argument("--bias-bits", type=int, default=16,
                        help="signed bias width the model must fit (default 16)")
    parser.add_argument("--threshold-bits", type=int, default=15,
                        help="unsigned threshold width the model must fit (default 15)")
    parser.add_argument("-o", "--output", default="build/digits/model.npz",
                        help="model file to write (default build/digits/model.npz)")
    parser.add_argument("--inputs-out", default=None, metavar="PATH",
                        help="also write the 360 encoded test inputs and labels here "
                             "(e.g. build/digits/test_inputs.npz)")
    parser.add_argument("--table", action="store_true",
                        help="instead: regenerate the accuracy table and plot in --docs-dir")
    parser.add_argument("--docs-dir", default="docs", help="where --table writes (default docs)")


def main(args: argparse.Namespace) -> int:
    if args.table:
        table = accuracy_table(args.hidden, args.seed)
        md, png = write_table_docs(table, args.docs_dir)
        print(f"float accuracy {100 * table['float_accuracy']:.2f}%")
        for r in table["rows"]:
            print(f"T={r['T']} bits={r['weight_bits']} tau={1 << r['tau_shift']}: "
                  f"SNN {100 * r['snn_accuracy']:.2f}%")
        print(f"wrote {md} and {png}")
        return 0
    try:
        hidden = _parse_hidden(args.hidden)
        packed_max(args.timesteps, args.tau_shift)
    except (ValueError, TypeError) as e:
        print(f"spikepack convert: {e}", file=sys.stderr)
        return 2
    mlp, split = train_float_mlp(hidden, args.seed)
    try:
        model = convert(mlp, split.x_calib, args.timesteps, args.tau_shift, args.weight_bits,
                        args.neuron, percentile=args.percentile, bias_bits=args.bias_bits,
                        threshold_bits=args.threshold_bits)
    except ValueError as e:
        print(f"spikepack convert: {e}", file=sys.stderr)
        return 2
    result = evaluate(mlp, model, split.x_test, split.y_test)
    model = dataclasses.replace(model, metadata={
        **model.metadata, "seed": args.seed, "test_images": result["images"],
        "float_test_accuracy": result["float_accuracy"],
        "snn_test_accuracy": result["snn_accuracy"]})
    path = model.save(args.output)
    print(f"float MLP accuracy: {100 * result['float_accuracy']:.2f}% ({result['images']} test images)")
    print(f"golden SNN accuracy: {100 * result['snn_accuracy']:.2f}% "
          f"(T={args.timesteps}, tau_shift={args.tau_shift}, {args.weight_bits}-bit weights, "
          f"{args.neuron})")
    summary = {"model": str(path), "widths": model.widths, **result,
               "timesteps": args.timesteps, "tau_shift": args.tau_shift,
               "weight_bits": args.weight_bits, "neuron": args.neuron,
               "bias_bits_needed": model.metadata["bias_bits_needed"],
               "threshold_bits_needed": model.metadata["threshold_bits_needed"]}
    if args.inputs_out:
        summary["inputs"] = str(write_test_inputs(model, split, args.inputs_out))
    print(f"wrote {path}")
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m spikepack.firmware.convert",
                                      description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

"""ANN-to-SNN conversion (SPEC section 5): turn a trained ReLU network into an integer SpikePack
model (:class:`spikepack.firmware.model.SpikePackModel`), by post-training quantization with
:func:`spikepack.firmware.quantize.quantize` (``docs/conversion.md`` explains the method).

Two sources:

* by default, a ReLU MLP trained here on scikit-learn's digits (:func:`train_float_mlp`,
  :func:`convert`); the float network sees ``x / 16`` for pixels 0..16;
* ``--onnx MODEL.onnx``: a trained network imported by :mod:`spikepack.firmware.onnx_import`
  (dense, conv and max-pooling layers), calibrated on a built-in split (``--dataset digits|mnist``,
  :mod:`spikepack.firmware.datasets`) or on an ``.npz`` of images (``--calib``); its float
  accuracy comes from onnxruntime on the original file, the SNN's from the golden model.

Run ``spikepack convert`` (this module's :func:`main`) to write ``build/digits/model.npz``, or
``python -m spikepack.firmware.convert --table`` to regenerate ``docs/conversion.md`` (and
``--table --onnx models/mnist_cnn.onnx --dataset mnist`` for its MNIST section).
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
from typing import NamedTuple, Sequence

import numpy as np

from spikepack.fileio import atomic_write_bytes, atomic_write_text, write_figure
from spikepack.firmware.model import SpikePackModel, write_npz

__all__ = ["DigitsSplit", "TEST_SIZE", "PIXEL_MAX", "CALIB_FRACTION", "DEFAULT_HIDDEN",
           "train_float_mlp", "float_activations", "convert", "evaluate", "accuracy_table",
           "onnx_accuracy_table", "write_table_docs", "write_onnx_table_docs",
           "CalibrationData", "dataset_calibration", "file_calibration", "load_float_network",
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


def _write_inputs(model: SpikePackModel, x, y, path: str | Path) -> Path:
    z = model.encode(x)
    logits, _ = model.forward(z)
    buffer = io.BytesIO()
    write_npz(buffer, {"z": z.astype(np.int64), "labels": np.asarray(y).astype(np.int64),
                       "x": np.asarray(x).astype(np.int64), "logits": logits.astype(np.int64),
                       "predictions": np.argmax(logits, axis=-1).astype(np.int64)})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write_bytes(path, buffer.getvalue())


def write_test_inputs(model: SpikePackModel, split: DigitsSplit, path: str | Path) -> Path:
    """Write the encoded test set for an RTL run: ``z`` (360, 64) int64 spike words, ``labels``
    (360,), ``x`` raw pixels, and the golden ``logits`` and ``predictions``. Deterministic;
    written atomically."""
    return _write_inputs(model, split.x_test, split.y_test, path)


# --- converting an ONNX network ------------------------------------------------------------------

@dataclass(frozen=True)
class CalibrationData:
    """What ``convert --onnx`` calibrates and measures on: raw integer pixels 0..``x_max``
    (``raw_calib``; ``raw_test`` and ``y_test`` may be None) and the float network's test input
    ``x_test`` (``raw_test / x_max`` as float32, for onnxruntime)."""
    name: str
    x_max: int
    raw_calib: np.ndarray
    raw_test: np.ndarray | None = None
    y_test: np.ndarray | None = None

    @property
    def x_test(self) -> np.ndarray | None:
        if self.raw_test is None:
            return None
        return (self.raw_test.astype(np.float32) / np.float32(self.x_max)).astype(np.float32)


def dataset_calibration(name: str) -> CalibrationData:
    """The built-in split ``name`` (``digits`` or ``mnist``; :mod:`spikepack.firmware.datasets`):
    its calibration subset (10% of the training images) and its test set."""
    try:
        from spikepack.firmware.datasets import load_dataset_split
    except ImportError:
        if name != "digits":
            raise ValueError(f"the {name!r} data set needs spikepack.firmware.datasets") from None
        split = load_split()
        return CalibrationData("digits", PIXEL_MAX, split.x_calib, split.x_test, split.y_test)
    split = load_dataset_split(name)
    return CalibrationData(name, int(split.pixel_max), np.asarray(split.raw_calib),
                           np.asarray(split.raw_test), np.asarray(split.y_test))


def file_calibration(path: str | Path) -> CalibrationData:
    """Calibration data from an ``.npz``: ``x`` (raw integer inputs, one sample per row or in
    the network's input shape) and ``x_max`` (their largest possible value) are required;
    ``x_test`` and ``y_test`` (labels), both or neither, give the test set."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except FileNotFoundError:
        raise ValueError(f"{path}: no such file") from None
    except (OSError, ValueError, EOFError) as e:
        raise ValueError(f"{path}: not a readable .npz ({e})") from None
    except Exception as e:   # zipfile errors on damaged files
        raise ValueError(f"{path}: not a readable .npz ({type(e).__name__}: {e})") from None
    for name in ("x", "x_max"):
        if name not in arrays:
            raise ValueError(f"{path}: array {name!r} is missing (needed: x, x_max; optional: "
                             f"x_test with y_test)")
    unknown = sorted(set(arrays) - {"x", "x_max", "x_test", "y_test"})
    if unknown:
        raise ValueError(f"{path}: unknown array(s) {', '.join(unknown)}")
    if ("x_test" in arrays) != ("y_test" in arrays):
        raise ValueError(f"{path}: x_test and y_test come together")
    x_max = arrays["x_max"]
    if x_max.shape != () or x_max.dtype.kind not in "iu" or not 1 <= int(x_max) <= 1 << 20:
        raise ValueError(f"{path}: x_max must be one integer between 1 and {1 << 20}")
    for name in ("x", "x_test", "y_test"):
        if name in arrays and (arrays[name].dtype.kind not in "iu" or arrays[name].ndim < 1):
            raise ValueError(f"{path}: {name} must be an integer array, not {arrays[name].dtype} "
                             f"of shape {arrays[name].shape}")
    if "x_test" in arrays:
        x_test, y_test = arrays["x_test"], arrays["y_test"]
        if y_test.ndim != 1 or len(y_test) != len(x_test):
            raise ValueError(f"{path}: y_test must hold one label per x_test sample")
        if x_test.size and (x_test.min() < 0 or x_test.max() > int(x_max)):
            raise ValueError(f"{path}: x_test must hold values in 0..x_max ({int(x_max)})")
    return CalibrationData(path.stem, int(x_max), arrays["x"], arrays.get("x_test"),
                           arrays.get("y_test"))


def _default_dataset(input_shape) -> str | None:
    return {(64,): "digits", (1, 28, 28): "mnist"}.get(tuple(input_shape))


def _onnx_tools():
    try:
        from spikepack.firmware.onnx_import import load_onnx, onnx_float_predict
    except ImportError as e:
        raise ValueError(f"--onnx needs the ONNX importer (spikepack.firmware.onnx_import) "
                         f"and the onnx and onnxruntime packages: {e}") from None
    return load_onnx, onnx_float_predict


def load_float_network(path: str | Path):
    """The ONNX file as a FloatNetwork (:func:`spikepack.firmware.onnx_import.load_onnx`); any
    failure is one ValueError naming the file."""
    load_onnx, _ = _onnx_tools()
    if not Path(path).exists():
        raise ValueError(f"{path}: no such ONNX file")
    if not Path(path).is_file():     # onnxruntime reads it again for the float reference
        raise ValueError(f"{path}: not a regular file (the ONNX model is read twice)")
    try:
        return load_onnx(path)
    except Exception as e:   # the importer's and onnx's own errors: report, never a traceback
        raise ValueError(f"{path}: cannot convert this ONNX model: {e}") from None


def float_predict_onnx(path: str | Path, x) -> np.ndarray:
    """Classes predicted by onnxruntime on the original ONNX file (the float reference)."""
    _, onnx_float_predict = _onnx_tools()
    out = np.asarray(onnx_float_predict(path, x))
    return np.argmax(out, axis=-1) if out.ndim == 2 else out.astype(np.int64)


def describe_network(net) -> str:
    """A short description like ``conv 8@3x3 p1 - maxpool 2x2 - dense 10``."""
    from spikepack.firmware.graph import FloatConv, FloatMaxPool
    parts = []
    for layer in net.layers:
        if isinstance(layer, FloatConv):
            c_out, _, kh, kw = layer.weight.shape
            extra = "".join([f" s{layer.stride[0]}" if max(layer.stride) > 1 else "",
                             f" p{layer.padding[0]}" if max(layer.padding) > 0 else ""])
            parts.append(f"conv {c_out}@{kh}x{kw}{extra}")
        elif isinstance(layer, FloatMaxPool):
            parts.append(f"maxpool {layer.window[0]}x{layer.window[1]}")
        else:
            parts.append(f"dense {layer.weight.shape[0]}")
    return "input " + "x".join(map(str, net.input_shape)) + " - " + " - ".join(parts)


# --- accuracy tables -----------------------------------------------------------------------------

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


def onnx_accuracy_table(onnx_path: str | Path, dataset: str = "mnist", progress: bool = True,
                        percentile: float = DEFAULT_PERCENTILE) -> dict:
    """The :func:`accuracy_table` grid for a trained ONNX network on a built-in data set: float
    accuracy from onnxruntime, golden SNN accuracy and agreement for every T in {2, 4, 6, 8},
    weight bits in {4, 8} and tau in {2, 4}, and the LIF baseline (T = 4, 8 bits, tau = 2)."""
    from tqdm import tqdm

    from spikepack.firmware.quantize import quantize
    net = load_float_network(onnx_path)
    data = dataset_calibration(dataset)
    float_pred = float_predict_onnx(onnx_path, data.x_test.reshape((-1,) + tuple(net.input_shape)))
    float_accuracy = float(np.mean(float_pred == data.y_test))

    def row(T, bits, k, neuron="spikepack"):
        model = quantize(net, data.raw_calib, x_max=data.x_max, timesteps=T, tau_shift=k,
                         weight_bits=bits, neuron=neuron, percentile=percentile)
        pred = model.predict(data.raw_test)
        return {"T": T, "weight_bits": bits, "tau_shift": k, "neuron": neuron,
                "snn_accuracy": float(np.mean(pred == data.y_test)),
                "agreement": float(np.mean(pred == float_pred)),
                "bias_bits_needed": model.metadata["bias_bits_needed"],
                "threshold_bits_needed": model.metadata["threshold_bits_needed"]}

    grid = [(T, b, k) for k in TABLE_TAU for b in TABLE_BITS for T in TABLE_T]
    rows = [row(T, b, k) for T, b, k in tqdm(grid, desc="convert", disable=not progress)]
    return {"source": Path(onnx_path).name, "dataset": data.name, "network": describe_network(net),
            "test_images": int(len(data.y_test)), "calibration_images": int(len(data.raw_calib)),
            "float_accuracy": float_accuracy, "rows": rows, "lif": row(4, 8, 1, "lif")}


def plot_table(table: dict, path: str | Path, title: str | None = None,
               float_label: str = "float MLP", ylabel: str = "test accuracy (%), 360 digits",
               legend: str = "lower right") -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    below = legend == "below"
    fig, ax = plt.subplots(figsize=(6.4, 5.0 if below else 4.2), dpi=120)
    styles = {(8, 1): ("C0", "o", "-"), (4, 1): ("C1", "s", "-"),
              (8, 2): ("C2", "o", "--"), (4, 2): ("C3", "s", "--")}
    for (bits, k), (color, marker, line) in styles.items():
        rows = [r for r in table["rows"] if r["weight_bits"] == bits and r["tau_shift"] == k]
        ax.plot([r["T"] for r in rows], [100 * r["snn_accuracy"] for r in rows], color=color,
                marker=marker, linestyle=line,
                label=f"SNN, {bits}-bit weights, tau = {1 << k}")
    ax.axhline(100 * table["float_accuracy"], color="k", linestyle=":",
               label=f"{float_label} ({100 * table['float_accuracy']:.1f}%)")
    ax.set_xlabel("time steps T")
    ax.set_ylabel(ylabel)
    ax.set_xticks(list(TABLE_T))
    ax.set_title(title or "SpikePack conversion of a " + "-".join(
        str(n) for n in [64, *table["hidden"], 10]) + " ReLU MLP")
    ax.grid(True, alpha=0.3)
    if below:   # under the axes, where it cannot hide a point
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, fontsize=8)
    else:
        ax.legend(loc=legend, fontsize=8)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_figure(fig, path)


MNIST_BEGIN = "<!-- BEGIN onnx-table (generated by --table --onnx; do not edit) -->"
MNIST_END = "<!-- END onnx-table -->"
_MNIST_PLACEHOLDER = """Not generated yet. After training the CNN (`models/mnist_cnn.onnx`), run
`python -m spikepack.firmware.convert --table --onnx models/mnist_cnn.onnx --dataset mnist`."""

_DOC_TEMPLATE = """# Converting a ReLU network to SpikePack

`spikepack convert` (module `spikepack.firmware.convert`) converts a trained ReLU network, by
post-training quantization (`spikepack.firmware.quantize`), into an integer SpikePack model file
(`docs/model-format.md`): by default an MLP it trains on scikit-learn's digits, or, with
`--onnx MODEL.onnx`, a network imported from ONNX (dense, conv and max-pooling layers; batch
normalization and average pooling folded by the importer), calibrated on a built-in data set
(`--dataset digits|mnist`) or on your own images (`--calib FILE.npz`). This page describes the
method and the accuracy it reaches; the tables and plots are generated by
`python -m spikepack.firmware.convert --table` (digits) and `... --table --onnx MODEL.onnx
--dataset mnist` (MNIST) (do not edit them by hand).

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
post-training quantization. Notation: `P = (tau^T - 1) / (tau - 1)` is the largest packed value;
the float network sees `x / x_max` for integer pixels x in 0..x_max (16 for the digits, 255 for
MNIST). A *channel* is a dense neuron, or a conv layer's output channel over all its positions.

1. **Input encoding.** A pixel x becomes a spike word by the SpikePack decode itself,
   `z = decode_serial(P*x + x_max//2, x_max, T, tau_shift)`, so `x / x_max ~ p(z) / P` (for
   tau = 2 this is `x * P / x_max` rounded to nearest). The three integers (scale P, offset
   x_max//2, threshold x_max) are stored in the model file; the host encodes, the accelerator
   receives spike words. The input scale is `s_j = 1 / P` for every input channel.
2. **Calibration.** For each hidden channel i, the ReLU activation `a_i` on the calibration set
   (for a conv channel: at every position of every image) gives the clipping level
   `c_i = percentile(a_i, {percentile})` (the maximum if that is 0, and 1 if the channel never
   fires); the wanted output scale is `s_i = c_i / P`, so `a_i ~ s_i p(z_i)` and only activations
   above `c_i` saturate. It is frozen from then on.
3. **Folding and weight quantization.** The input scales are folded into the weights,
   `W'_ij = W_ij s_j`, so the float pre-activation is `h_i = sum_j W'_ij p(z_j) + b_i`. A feature
   map's channel scale applies to all its positions: to every kernel tap of that input channel,
   through max pooling (which commutes with a positive scale), and, after flattening in
   (c, y, x) order, to the H*W consecutive inputs of that channel. Each output channel is
   quantized symmetrically: `q_i = max_j |W'_ij| / (2^(b_w - 1) - 1)`, `w_ij = round(W'_ij / q_i)`.
   The integer potential `v_i` is `h_i` in units of `q_i`.
4. **Bias and threshold in potential units.** `theta_i = max(1, round(s_i / q_i))`,
   `bias_i = round(b_i / q_i) + floor(theta_i / 2)`. The half threshold turns the flooring decode
   into round-to-nearest. Because theta is rounded, the scale the next layer folds in is the
   exact `theta_i q_i`, not `s_i`, so no error accumulates from it.
5. **Readout.** The last layer (dense) is not decoded: its potentials are the logits. Its argmax
   must match the float network's, so it uses one scale `q` for all channels (per-tensor, not
   per-channel); the model's metadata records it as `readout_scale` (float logits ~ q * v).
6. **Hardware widths.** `q_i` is raised where needed so that every threshold fits
   `threshold_bits = 15` (theta < 2^15) and every bias fits `bias_bits = 16` signed; both are
   options (`--threshold-bits`, `--bias-bits`). The model metadata records what the model needs
   (`bias_bits_needed`, `threshold_bits_needed`); the default hardware (`HardwareConfig()`:
   bias_bits 16, threshold_bits 16, weight_bits 8, T 4, tau_shift 1, max_fan_in 256) holds the
   digits model. Today's hardware runs dense layers only; conv models run in the golden model.

The digits MLP goes through the same quantizer as a network of dense layers, and gives exactly
the integers of the original direct converter (`tests/test_quantize.py`).

For tau = 4 (tau_shift = 2) the levels `theta p(z)` are not uniform (for T = 4: 0, 1, 4, 5, 16, 17,
20, 21, 64, ... times theta), and the greedy decode takes the largest level below the potential,
so the same recipe gives a much coarser, non-uniform quantizer (a Cantor-like set of levels with
wide gaps, for the inputs as for the hidden layers): the table shows what that costs without
retraining. Here conversion is near-lossless only for tau = 2; a good tau = 4 network would need
quantization-aware training, which this project does not do.

`neuron="lif"` writes the same integers for the LIF baseline. LIF is not a quantizer (it weighs
every step alike, leaks, and adds the bias every step), so this conversion does not suit it: at
T = 4, 8-bit weights, tau = 2 the LIF model reaches only {lif_acc:.2f}% on the digits. The LIF
model exists for hardware comparisons (bit-exactness, cycles, resources), not for accuracy.

## Accuracy on the 360 digits test images

Float MLP ({widths}, seed {seed}): **{float_acc:.2f}%**. SNN accuracy is the golden model's
(`spikepack.sim.golden.run_network`), which the hardware reproduces bit for bit.
"Agreement" is the share of test images on which the SNN predicts the float network's class.

| T | weight bits | tau | SNN accuracy | SNN - float | agreement | bias bits needed | threshold bits needed |
|---|---|---|---|---|---|---|---|
{rows}

![accuracy against T](conversion_accuracy.png)

Reproduce: `python -m spikepack.firmware.convert --table` (a few seconds). The default
model (`spikepack convert`: T = 4, 8-bit weights, tau = 2) is the row T = 4, 8 bits, tau = 2.

## Accuracy of a CNN on MNIST

{mnist}
"""

_ONNX_SECTION = """{begin}
Network `{source}` ({network}), float accuracy from onnxruntime on the original ONNX file:
**{float_acc:.2f}%** on the {images} test images of the `{dataset}` split (calibration:
{calib} training images). SNN accuracy is the golden model's; "agreement" is the share of test
images on which the SNN predicts the float network's class. The last row is the LIF baseline.
{summary}

| T | weight bits | tau | SNN accuracy | SNN - float | agreement | bias bits needed | threshold bits needed |
|---|---|---|---|---|---|---|---|
{rows}

![accuracy against T, {dataset}](conversion_{dataset}.png)

Reproduce: `python -m spikepack.firmware.convert --table --onnx {path} --dataset {dataset}`.
{end}"""


def _table_rows(rows, float_accuracy) -> str:
    return "\n".join(
        f"| {r['T']} | {r['weight_bits']} | {1 << r['tau_shift']}"
        f"{' (LIF)' if r.get('neuron') == 'lif' else ''} | {100 * r['snn_accuracy']:.2f}% "
        f"| {100 * (r['snn_accuracy'] - float_accuracy):+.2f} | {100 * r['agreement']:.2f}% "
        f"| {r['bias_bits_needed']} | {r['threshold_bits_needed']} |"
        for r in rows)


def _current_onnx_section(md: Path) -> str:
    """The generated ONNX section of an existing conversion.md, or the placeholder."""
    if md.is_file():
        text = md.read_text()
        if MNIST_BEGIN in text and MNIST_END in text:
            return text[text.index(MNIST_BEGIN):text.index(MNIST_END) + len(MNIST_END)]
    return f"{MNIST_BEGIN}\n{_MNIST_PLACEHOLDER}\n{MNIST_END}"


def write_table_docs(table: dict, docs_dir: str | Path = "docs") -> tuple[Path, Path]:
    """Write ``conversion.md`` (keeping its generated ONNX section) and the digits plot."""
    docs_dir = Path(docs_dir)
    png = plot_table(table, docs_dir / "conversion_accuracy.png")
    f = table["float_accuracy"]
    md = docs_dir / "conversion.md"
    text = _DOC_TEMPLATE.format(hidden=tuple(table["hidden"]), percentile=DEFAULT_PERCENTILE,
                                widths="-".join(str(n) for n in [64, *table["hidden"], 10]),
                                seed=table["seed"], float_acc=100 * f,
                                rows=_table_rows(table["rows"], f),
                                lif_acc=100 * table["lif_accuracy"],
                                mnist=_current_onnx_section(md))
    atomic_write_text(md, text)
    return md, png


def write_onnx_table_docs(table: dict, docs_dir: str | Path = "docs",
                          onnx_path: str = "models/mnist_cnn.onnx") -> tuple[Path, Path]:
    """Replace the ONNX section of ``conversion.md`` (which must exist: run ``--table`` first)
    and write ``conversion_<dataset>.png``."""
    docs_dir = Path(docs_dir)
    md = docs_dir / "conversion.md"
    if not md.is_file() or MNIST_BEGIN not in md.read_text() or MNIST_END not in md.read_text():
        raise ValueError(f"{md} has no generated ONNX section; run --table (digits) first")
    png = plot_table(table, docs_dir / f"conversion_{table['dataset']}.png",
                     title=f"SpikePack conversion of {table['source']} on {table['dataset']}",
                     float_label="float network (onnxruntime)", legend="below",
                     ylabel=f"test accuracy (%), {table['test_images']} {table['dataset']} images")
    f = table["float_accuracy"]
    by = {(r["T"], r["weight_bits"], r["tau_shift"]): r for r in table["rows"]}
    summary = ""
    if (4, 8, 1) in by:
        d = by[(4, 8, 1)]
        tau2 = [r for r in table["rows"] if r["tau_shift"] == 1 and r["weight_bits"] == 8]
        best = max(tau2, key=lambda r: (r["snn_accuracy"], -r["T"]))
        summary = (f"\nAt the default setting (T = 4, 8-bit weights, tau = 2) the SNN reaches "
                   f"{100 * d['snn_accuracy']:.2f}% ({100 * (d['snn_accuracy'] - f):+.2f} points, "
                   f"agreement {100 * d['agreement']:.2f}%); with 8-bit weights and tau = 2 the "
                   f"best is {100 * best['snn_accuracy']:.2f}% at T = {best['T']}. LIF with the "
                   f"same integers: {100 * table['lif']['snn_accuracy']:.2f}%.")
    section = _ONNX_SECTION.format(summary=summary, 
        begin=MNIST_BEGIN, end=MNIST_END, source=table["source"], network=table["network"],
        float_acc=100 * f, images=table["test_images"], dataset=table["dataset"],
        calib=table["calibration_images"], rows=_table_rows(table["rows"] + [table["lif"]], f),
        path=onnx_path)
    text = md.read_text()
    text = text[:text.index(MNIST_BEGIN)] + section + text[text.index(MNIST_END) + len(MNIST_END):]
    atomic_write_text(md, text)
    return md, png


# --- command line ------------------------------------------------------------------------------

#: quantize() keyword -> the command-line option that sets it
OPTION_FLAGS = {"timesteps": "-T/--timesteps", "tau_shift": "--tau-shift",
                "weight_bits": "--weight-bits", "neuron": "--neuron", "percentile": "--percentile",
                "bias_bits": "--bias-bits", "threshold_bits": "--threshold-bits",
                "x_max": "x_max (of --calib)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--onnx", metavar="MODEL.onnx", default=None,
                        help="convert this trained ONNX network (dense, conv, max pooling) instead "
                             "of training the digits MLP")
    data = parser.add_mutually_exclusive_group()
    data.add_argument("--dataset", choices=("digits", "mnist"), default=None,
                      help="with --onnx: calibrate and test on this built-in split (default: "
                           "digits for a 64-input network, mnist for a 1x28x28 one)")
    data.add_argument("--calib", metavar="FILE.npz", default=None,
                      help="with --onnx: calibrate on these images instead: arrays x (integer "
                           "pixels), x_max, and optionally x_test with y_test for the accuracy")
    parser.add_argument("--timesteps", "-T", type=int, default=4, help="time steps T (default 4)")
    parser.add_argument("--tau-shift", type=int, default=1,
                        help="k, the time constant tau = 2**k: 1, 2 or 3 (default 1, tau = 2)")
    parser.add_argument("--weight-bits", type=int, default=8,
                        help="signed weight width b_w, 2..16 (default 8)")
    parser.add_argument("--neuron", default="spikepack",
                        help="neuron kind: spikepack, or lif for the LIF baseline with the same "
                             "integers (default spikepack)")
    parser.add_argument("--percentile", type=float, default=DEFAULT_PERCENTILE,
                        help=f"calibration percentile of each ReLU activation, in (0, 100] "
                             f"(default {DEFAULT_PERCENTILE})")
    parser.add_argument("--bias-bits", type=int, default=16,
                        help="signed bias width the model must fit, 2..32 (default 16)")
    parser.add_argument("--threshold-bits", type=int, default=15,
                        help="unsigned threshold width the model must fit, 1..32 (default 15)")
    parser.add_argument("--hidden", default=",".join(map(str, DEFAULT_HIDDEN)),
                        help="digits MLP (without --onnx): hidden layer sizes, comma-separated "
                             "(default 64,32)")
    parser.add_argument("--seed", type=int, default=0,
                        help="digits MLP (without --onnx): training seed (default 0)")
    parser.add_argument("-o", "--output", default=None,
                        help="model file to write (default build/digits/model.npz, or "
                             "build/<data set>/model.npz with --onnx)")
    parser.add_argument("--inputs-out", default=None, metavar="PATH",
                        help="also write the encoded test inputs, labels and golden logits here "
                             "(e.g. build/digits/test_inputs.npz)")
    parser.add_argument("--table", action="store_true",
                        help="instead: regenerate the accuracy table and plot in --docs-dir "
                             "(digits; with --onnx: the network's section on --dataset)")
    parser.add_argument("--docs-dir", default="docs", help="where --table writes (default docs)")


def _fail(message: str) -> int:
    print(f"spikepack convert: {message}", file=sys.stderr)
    return 2


def _quantize_failure(e) -> int:
    """A QuantizeError with the command line's option names."""
    if getattr(e, "options", ()):
        flags = ", ".join(OPTION_FLAGS.get(o, o) for o in e.options)
        return _fail(f"{flags}: {e.detail}")
    return _fail(str(e))


def _options(args) -> dict:
    return dict(timesteps=args.timesteps, tau_shift=args.tau_shift, weight_bits=args.weight_bits,
                neuron=args.neuron, percentile=args.percentile, bias_bits=args.bias_bits,
                threshold_bits=args.threshold_bits)


def main(args: argparse.Namespace) -> int:
    from spikepack.firmware.quantize import QuantizeError, check_options
    if not args.onnx and (args.dataset or args.calib):
        return _fail("--dataset and --calib go with --onnx (the digits MLP uses its own split)")
    try:
        check_options(**_options(args))
    except QuantizeError as e:
        return _quantize_failure(e)
    if args.table:
        return _main_table(args)
    if args.onnx:
        return _main_onnx(args)
    try:
        hidden = _parse_hidden(args.hidden)
    except ValueError as e:
        return _fail(f"--hidden: {e}")
    mlp, split = train_float_mlp(hidden, args.seed)
    try:
        model = convert(mlp, split.x_calib, **_options(args))
    except QuantizeError as e:
        return _quantize_failure(e)
    result = evaluate(mlp, model, split.x_test, split.y_test)
    model = dataclasses.replace(model, metadata={
        **model.metadata, "seed": args.seed, "test_images": result["images"],
        "float_test_accuracy": result["float_accuracy"],
        "snn_test_accuracy": result["snn_accuracy"]})
    path = model.save(args.output or "build/digits/model.npz")
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


def _main_table(args) -> int:
    if not args.onnx:
        table = accuracy_table(args.hidden, args.seed)
        md, png = write_table_docs(table, args.docs_dir)
        print(f"float accuracy {100 * table['float_accuracy']:.2f}%")
        for r in table["rows"]:
            print(f"T={r['T']} bits={r['weight_bits']} tau={1 << r['tau_shift']}: "
                  f"SNN {100 * r['snn_accuracy']:.2f}%")
        print(f"wrote {md} and {png}")
        return 0
    try:
        net = load_float_network(args.onnx)
        dataset = args.dataset or _default_dataset(net.input_shape)
        if dataset is None:
            return _fail("--table --onnx needs --dataset (digits or mnist)")
        table = onnx_accuracy_table(args.onnx, dataset, percentile=args.percentile)
        md, png = write_onnx_table_docs(table, args.docs_dir, onnx_path=str(args.onnx))
    except ValueError as e:
        return _fail(str(e))
    print(f"float accuracy (onnxruntime) {100 * table['float_accuracy']:.2f}%")
    for r in table["rows"] + [table["lif"]]:
        print(f"T={r['T']} bits={r['weight_bits']} tau={1 << r['tau_shift']} {r['neuron']}: "
              f"SNN {100 * r['snn_accuracy']:.2f}%")
    print(f"wrote {md} and {png}")
    return 0


class OnnxConversion(NamedTuple):
    """What :func:`convert_onnx` returns: the quantized model, its test-set accuracies
    (``None`` without a test set) and the raw test images shaped as the model's input."""
    model: SpikePackModel
    result: dict | None
    raw_test: np.ndarray | None
    y_test: np.ndarray | None


def convert_onnx(onnx_path: str | Path, data: "CalibrationData", **options) -> OnnxConversion:
    """Quantize the ONNX network at ``onnx_path`` on ``data`` (``options``: timesteps,
    tau_shift, weight_bits, neuron, percentile, bias_bits, threshold_bits) and, when ``data``
    has a test set, measure the float network (onnxruntime) and the golden SNN on it. Raises
    ValueError (one line) or :class:`~spikepack.firmware.quantize.QuantizeError`."""
    from spikepack.firmware.quantize import quantize
    net = load_float_network(onnx_path)
    model = quantize(net, data.raw_calib, x_max=data.x_max, **options,
                     metadata={"source": f"ONNX {Path(onnx_path).name}",
                               "network": describe_network(net),
                               "calibration": data.name})
    if data.raw_test is None:
        return OnnxConversion(model, None, None, None)
    raw_test = np.asarray(data.raw_test)
    if raw_test.ndim < 2 or int(np.prod(raw_test.shape[1:])) != model.fan_in:
        raise ValueError(f"the test inputs have shape {raw_test.shape}; the network takes "
                         f"{' x '.join(map(str, model.input_shape))} values per sample")
    raw_test = raw_test.reshape((len(raw_test),) + model.input_shape)
    try:
        float_pred = float_predict_onnx(onnx_path, data.x_test.reshape(raw_test.shape))
    except Exception as e:   # onnxruntime's own errors: one line, never a traceback
        raise ValueError(f"{onnx_path}: onnxruntime cannot run it: {e}") from None
    snn_pred = model.predict(raw_test)
    result = {"float_accuracy": float(np.mean(float_pred == data.y_test)),
              "snn_accuracy": float(np.mean(snn_pred == data.y_test)),
              "agreement": float(np.mean(snn_pred == float_pred)),
              "images": int(len(data.y_test))}
    model = dataclasses.replace(model, metadata={
        **model.metadata, "test_images": result["images"],
        "float_test_accuracy": result["float_accuracy"],
        "snn_test_accuracy": result["snn_accuracy"]})
    return OnnxConversion(model, result, raw_test, np.asarray(data.y_test))


def _main_onnx(args) -> int:
    from spikepack.firmware.quantize import QuantizeError
    try:
        net = load_float_network(args.onnx)
        if args.calib:
            data = file_calibration(args.calib)
        else:
            dataset = args.dataset or _default_dataset(net.input_shape)
            if dataset is None:
                return _fail(f"--onnx: the network's input is "
                             f"{' x '.join(map(str, net.input_shape))}; give --dataset or --calib")
            data = dataset_calibration(dataset)
        model, result, raw_test, y_test = convert_onnx(args.onnx, data, **_options(args))
    except QuantizeError as e:
        return _quantize_failure(e)
    except ValueError as e:
        return _fail(str(e))
    summary = {"timesteps": args.timesteps, "tau_shift": args.tau_shift,
               "weight_bits": args.weight_bits, "neuron": args.neuron,
               "widths": model.widths, "shapes": [list(s) for s in model.shapes],
               "bias_bits_needed": model.metadata["bias_bits_needed"],
               "threshold_bits_needed": model.metadata["threshold_bits_needed"]}
    if result is not None:
        summary.update(result)
        print(f"float accuracy (onnxruntime): {100 * result['float_accuracy']:.2f}% "
              f"({result['images']} test images, {data.name})")
        print(f"golden SNN accuracy: {100 * result['snn_accuracy']:.2f}% (T={args.timesteps}, "
              f"tau_shift={args.tau_shift}, {args.weight_bits}-bit weights, {args.neuron}; "
              f"agreement {100 * result['agreement']:.2f}%)")
    else:
        print("no test set (--calib without x_test/y_test): accuracy not measured")
    path = model.save(args.output or f"build/{data.name}/model.npz")
    summary["model"] = str(path)
    if args.inputs_out and raw_test is not None:
        summary["inputs"] = str(_write_inputs(model, raw_test, y_test, args.inputs_out))
    print(f"wrote {path}")
    print(json.dumps(summary, sort_keys=True))
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m spikepack.firmware.convert",
                                      description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

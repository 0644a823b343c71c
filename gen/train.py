"""Train the demo CNN on MNIST and export it to ONNX (``spikepack train``).

The network is shaped for a modest accelerator (SPEC section 6):

    conv 3x3, 16 channels, padding 1, ReLU   1 x 28 x 28 -> 16 x 28 x 28
    max pool 2x2                                          -> 16 x 14 x 14
    conv 3x3, 32 channels, padding 1, ReLU                -> 32 x 14 x 14
    max pool 2x2                                          -> 32 x 7 x 7
    dense 1568 -> 10 (readout, logits)

trained with JAX + Flax NNX + Optax (AdamW, cosine learning-rate decay, cross entropy) on the
4,000 training images of :func:`spikepack.firmware.datasets.load_mnist_split`, each epoch on
copies shifted at random by up to ``--shift`` pixels, and exported with ``jax2onnx`` (input
``(B, 1, 28, 28)`` NCHW float in [0, 1], output ``(B, 10)`` logits).

Deterministic: parameters come from ``nnx.Rngs(seed)``, batch order and shifts from
``numpy.random.RandomState(seed)``, and XLA runs single-threaded on the CPU so the float sums
are taken in a fixed order. The accuracy printed is onnxruntime's, on the exported file.

Needs the ``train`` extra (``pip install -e '.[train]'``); nothing else in the project does.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["DEFAULTS", "train_mnist_cnn", "export_onnx", "add_arguments", "main"]

#: The committed models/mnist_cnn.onnx is ``spikepack train --dataset mnist`` with these.
DEFAULTS = dict(seed=0, epochs=30, batch_size=64, lr=2e-3, weight_decay=1e-4, shift=2)

_TRAIN_MODULES = ("jax", "flax", "optax", "jax2onnx")


def _missing_train_extra() -> str | None:
    import importlib.util
    missing = [m for m in _TRAIN_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        return (f"needs the training extra ({', '.join(missing)} not installed): "
                f"pip install -e '.[train]'")
    return None


def _single_threaded_xla() -> None:
    # must be set before jax initializes its CPU backend; one thread fixes the order of the
    # float sums, so the same seed gives the same network
    flags = os.environ.get("XLA_FLAGS", "")
    if "xla_cpu_multi_thread_eigen" not in flags:
        os.environ["XLA_FLAGS"] = (flags + " --xla_cpu_multi_thread_eigen=false "
                                   "intra_op_parallelism_threads=1").strip()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")


def _model_class():
    import jax.numpy as jnp
    from flax import nnx

    class MnistCNN(nnx.Module):
        """NCHW in, logits out; Flax convolutions are NHWC, so the input is transposed once and
        the last map transposed back before the flatten, so the dense layer reads (c, y, x)."""

        def __init__(self, rngs: nnx.Rngs):
            self.conv1 = nnx.Conv(1, 16, (3, 3), padding=1, rngs=rngs)
            self.conv2 = nnx.Conv(16, 32, (3, 3), padding=1, rngs=rngs)
            self.readout = nnx.Linear(32 * 7 * 7, 10, rngs=rngs)

        def __call__(self, x):
            x = jnp.transpose(x, (0, 2, 3, 1))
            x = nnx.max_pool(nnx.relu(self.conv1(x)), window_shape=(2, 2), strides=(2, 2))
            x = nnx.max_pool(nnx.relu(self.conv2(x)), window_shape=(2, 2), strides=(2, 2))
            x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)
            return self.readout(x)

    return MnistCNN


def _shifted(x: np.ndarray, shift: int, rng: np.random.RandomState) -> np.ndarray:
    """Every image moved by its own random (dy, dx) in [-shift, shift], zero filled."""
    if shift == 0:
        return x
    n, _, h, w = x.shape
    pad = np.pad(x, ((0, 0), (0, 0), (shift, shift), (shift, shift)))
    dy = rng.randint(0, 2 * shift + 1, n)
    dx = rng.randint(0, 2 * shift + 1, n)
    rows = (dy[:, None] + np.arange(h))[:, :, None]
    cols = (dx[:, None] + np.arange(w))[:, None, :]
    return pad[np.arange(n)[:, None, None], 0, rows, cols][:, None]


def train_mnist_cnn(split=None, *, seed: int = DEFAULTS["seed"], epochs: int = DEFAULTS["epochs"],
                    batch_size: int = DEFAULTS["batch_size"], lr: float = DEFAULTS["lr"],
                    weight_decay: float = DEFAULTS["weight_decay"], shift: int = DEFAULTS["shift"],
                    log=None):
    """Train the demo CNN; returns the Flax module. ``log(epoch, seconds, loss)`` per epoch."""
    _single_threaded_xla()
    import jax.numpy as jnp
    import optax
    from flax import nnx
    if split is None:
        from spikepack.firmware.datasets import load_mnist_split
        split = load_mnist_split()
    model = _model_class()(nnx.Rngs(seed))
    steps_per_epoch = len(split.x_train) // batch_size
    schedule = optax.cosine_decay_schedule(lr, max(1, epochs * steps_per_epoch))
    optimizer = nnx.Optimizer(model, optax.adamw(schedule, weight_decay=weight_decay),
                              wrt=nnx.Param)

    @nnx.jit
    def step(model, optimizer, x, y):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    rng = np.random.RandomState(seed)
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(split.x_train))
        x = _shifted(split.x_train, shift, rng)
        losses = []
        for i in range(steps_per_epoch):
            batch = order[i * batch_size:(i + 1) * batch_size]
            losses.append(step(model, optimizer, jnp.asarray(x[batch]),
                               jnp.asarray(split.y_train[batch])))
        if log is not None:
            log(epoch, time.perf_counter() - t0, float(np.mean([float(v) for v in losses])))
    return model


def export_onnx(model, metadata: dict | None = None):
    """The trained module as an ONNX ModelProto: input ``image`` (B, 1, 28, 28), output
    ``logits`` (B, 10)."""
    import logging
    import onnx
    from jax2onnx import to_onnx
    # onnx_ir warns about the untyped shape constants of the flatten; the checker below is the
    # judge of the exported graph
    logging.getLogger("onnx_ir").setLevel(logging.ERROR)
    proto = to_onnx(model, [("B", 1, 28, 28)], model_name="mnist_cnn",
                    input_names=["image"], output_names=["logits"])
    for key, value in (metadata or {}).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = str(key), str(value)
    onnx.checker.check_model(proto)
    return proto


# --- command line ------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", default="mnist", choices=("mnist",),
                        help="training data (default mnist: the 4,000 training images of the "
                             "fixed split)")
    parser.add_argument("-o", "--output", default="build/mnist/model.onnx",
                        help="ONNX file to write (default build/mnist/model.onnx)")
    parser.add_argument("--seed", type=int, default=DEFAULTS["seed"],
                        help=f"parameter, batch-order and shift seed (default {DEFAULTS['seed']})")
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                        help=f"passes over the training images (default {DEFAULTS['epochs']})")
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"],
                        help=f"(default {DEFAULTS['batch_size']})")
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                        help=f"peak AdamW learning rate, cosine decay to 0 (default {DEFAULTS['lr']})")
    parser.add_argument("--weight-decay", type=float, default=DEFAULTS["weight_decay"],
                        help=f"AdamW weight decay (default {DEFAULTS['weight_decay']})")
    parser.add_argument("--shift", type=int, default=DEFAULTS["shift"],
                        help=f"largest random shift of the training copies in pixels "
                             f"(default {DEFAULTS['shift']}; 0 = none)")
    parser.add_argument("--quiet", "-q", action="store_true", help="no per-epoch lines")


def main(args: argparse.Namespace) -> int:
    prog = "spikepack train"
    problem = _missing_train_extra()
    if problem is None:
        for name, low in (("epochs", 1), ("batch_size", 1), ("shift", 0)):
            if getattr(args, name) < low:
                problem = f"--{name.replace('_', '-')} must be >= {low}, not {getattr(args, name)}"
        if not (args.lr > 0) or not (args.weight_decay >= 0):
            problem = "--lr must be > 0 and --weight-decay >= 0"
        if args.batch_size > 4000:
            problem = f"--batch-size must be at most 4000 (the training images), not {args.batch_size}"
    out = Path(args.output)
    if problem is None and not out.parent.is_dir():
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            problem = f"cannot create {out.parent}: {e.strerror}"
    if problem is not None:
        print(f"{prog}: {problem}", file=sys.stderr)
        return 2

    from spikepack.fileio import atomic_write_bytes
    from spikepack.firmware.datasets import load_mnist_split
    from spikepack.firmware.onnx_import import onnx_float_predict
    split = load_mnist_split()

    def log(epoch, seconds, loss):
        if not args.quiet:
            print(f"epoch {epoch + 1}/{args.epochs}: loss {loss:.4f} ({seconds:.0f} s)", flush=True)

    t0 = time.perf_counter()
    model = train_mnist_cnn(split, seed=args.seed, epochs=args.epochs, batch_size=args.batch_size,
                            lr=args.lr, weight_decay=args.weight_decay, shift=args.shift, log=log)
    seconds = time.perf_counter() - t0
    settings = dict(dataset=args.dataset, seed=args.seed, epochs=args.epochs,
                    batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
                    shift=args.shift)
    proto = export_onnx(model, {f"spikepack.train.{k}": v for k, v in settings.items()})
    data = proto.SerializeToString()
    # the accuracy is onnxruntime's on the exported bytes, not the training framework's
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        probe = Path(tmp) / "model.onnx"
        probe.write_bytes(data)
        logits = onnx_float_predict(probe, split.x_test)
    accuracy = float(np.mean(logits.argmax(axis=1) == split.y_test))
    atomic_write_bytes(out, data)
    print(f"float accuracy (onnxruntime): {100 * accuracy:.2f}% on {len(split.y_test)} "
          f"held-out MNIST images")
    print(f"trained in {seconds:.0f} s; wrote {out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    _parser = argparse.ArgumentParser(prog="python -m spikepack.train",
                                      description=__doc__.splitlines()[0])
    add_arguments(_parser)
    sys.exit(main(_parser.parse_args()))

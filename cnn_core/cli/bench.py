"""`cnn-core bench MODEL_FILE`: batch-1 latency and throughput of a saved network, as cnn_core.predict runs
it (a compiled plan where the model's layers allow one, the layers otherwise)."""
from __future__ import annotations

import json
import statistics
import time

import numpy as np

import cnn_core
from cnn_core.cli.data import layout_for, leaf_layers
from cnn_core.cli.errors import EXIT_OK, UsageError
from cnn_core.cli.use import load_model


def _sample_shape(model, text: str | None) -> tuple[int, ...]:
    """--input-shape "C,H,W" (or "F"), else what the first layer reads: Linear its features, anything
    else a 28x28 image with the first convolution's channels (1 without one)."""
    if text:
        try:
            shape = tuple(int(v) for v in text.split(","))
        except ValueError:
            shape = ()
        if not shape or min(shape) < 1:
            raise UsageError(f"--input-shape: expected positive ints separated by commas like 1,28,28, got {text!r}")
        return shape
    first = leaf_layers(model)[0]
    layout = layout_for(model)
    if layout == "flat":
        return (first.in_features,)
    if layout == "rows":
        return (28, 28)
    return (getattr(first, "in_channels", 1), 28, 28)


def _median_time(fn, min_time: float = 0.2, repeats: int = 7) -> float:
    """Median seconds per call over `repeats` blocks of calls lasting about min_time / repeats each."""
    fn()
    number = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        if time.perf_counter() - t0 >= min_time / repeats:
            break
        number *= 2
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        times.append((time.perf_counter() - t0) / number)
    return statistics.median(times)


def run_bench(args) -> int:
    model, is_estimator = load_model(args.model_file)
    if is_estimator:
        raise UsageError("MODEL_FILE: bench times networks (cnn_core.nn models); this file holds a linear "
                         "estimator")
    shape = _sample_shape(model, args.input_shape)
    rng = np.random.default_rng(0)
    x1 = rng.random((1,) + shape).astype(model.dtype)
    xb = rng.random((args.batch,) + shape).astype(model.dtype)
    try:
        cnn_core.predict(model, x1)
    except (ValueError, TypeError) as e:
        raise UsageError(f"--input-shape: inputs of shape {shape} do not fit this model ({e})") from None
    try:
        plan = cnn_core.compile(model, (1,) + shape)
        how = f"compiled plan ({len(plan.ops)} ops)"
        run = plan
    except TypeError as e:
        how = f"layer by layer ({e})"
        run = None
    predict_latency = _median_time(lambda: cnn_core.predict(model, x1))
    # the plan's own call: what predict adds (argument checks, the check that the weights are unchanged)
    # is per call, not per sample
    latency = predict_latency if run is None else _median_time(lambda: run(x1))
    batch_time = _median_time(lambda: cnn_core.predict(model, xb), min_time=1.0, repeats=5)
    info = {"model_file": args.model_file, "input_shape": list(shape), "dtype": model.dtype.name,
            "runs_as": how, "threads": cnn_core.get_num_threads(), "simd": cnn_core.get_simd(),
            "latency_us": latency * 1e6, "predict_latency_us": predict_latency * 1e6, "batch": args.batch,
            "throughput_per_s": args.batch / batch_time}
    if args.json:
        print(json.dumps(info))
        return EXIT_OK
    print(f"{args.model_file}: input (N, {', '.join(map(str, shape))}) {info['dtype']}, runs as {how}")
    print(f"  threads {info['threads']}, SIMD {info['simd']}")
    print(f"  batch-1 latency: {info['latency_us']:.1f} us ({info['predict_latency_us']:.1f} us through "
          "cnn_core.predict)")
    print(f"  throughput:      {info['throughput_per_s']:,.0f} samples/s (cnn_core.predict, batches of "
          f"{args.batch})")
    return EXIT_OK

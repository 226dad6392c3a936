"""`cnn-core export MODEL_FILE OUT`: a saved network as an ONNX file (cnn_core.onnx.export)."""
from __future__ import annotations

from cnn_core.cli.data import layout_for, leaf_layers
from cnn_core.cli.errors import EXIT_OK, UsageError
from cnn_core.cli.use import load_model

DIGIT_SIDE = 28  # the CLI's models read MNIST-format digits


def parse_dims(text: str) -> tuple[int, ...]:
    """'1,28,28' -> (1, 28, 28): the shape of one sample, batch dimension excluded."""
    try:
        dims = tuple(int(t) for t in text.split(","))
    except ValueError:
        raise UsageError(f"--input-shape: expected comma-separated positive integers such as 1,28,28, "
                         f"got {text!r}") from None
    if not dims or min(dims) < 1:
        raise UsageError(f"--input-shape: expected comma-separated positive integers such as 1,28,28, got {text!r}")
    return dims


def default_sample_shape(model) -> tuple[int, ...]:
    """One 28x28 digit in the layout the model reads: (features,), (rows, width) or (channels, 28, 28)."""
    layout = layout_for(model)
    first = leaf_layers(model)[0]
    if layout == "flat":
        return (first.in_features,)
    if layout == "rows":
        return (DIGIT_SIDE, first.input_size)
    return (getattr(first, "in_channels", 1), DIGIT_SIDE, DIGIT_SIDE)


def run_export(args) -> int:
    from cnn_core.onnx import export

    model, is_est = load_model(args.model_file)
    if is_est:
        raise UsageError(f"MODEL_FILE: {args.model_file} holds a {type(model).__name__}; export writes networks "
                         f"only")
    sample = parse_dims(args.input_shape) if args.input_shape is not None else default_sample_shape(model)
    try:
        export(model, args.output, (1, *sample), opset=args.opset)
    except ImportError as e:
        raise UsageError(str(e)) from None
    except (TypeError, ValueError) as e:
        if str(e).startswith("opset:"):  # above the installed onnx's newest
            raise UsageError(f"--{e}") from None
        raise UsageError(f"MODEL_FILE: cannot export {args.model_file} with input shape (N, "
                         f"{', '.join(map(str, sample))}): {e}") from None
    except OSError as e:
        raise UsageError(f"OUT: cannot write {args.output}: {e.strerror or e}") from None
    if not args.quiet:
        print(f"wrote {args.output}: ONNX opset {args.opset}, input (N, {', '.join(map(str, sample))}) "
              f"{model.dtype}")
    return EXIT_OK

"""``mixnet eval``: top-1/top-5, loss and images/s of a model on a validation set.

A thin layer over :func:`mixnet.eval.evaluate.evaluate`: the model comes from ``--weights`` (any model file,
:func:`mixnet.io.load_model`, or an exported .onnx / int8 .onnx / OpenVINO .xml file, run in its own runtime
with the class names and preprocessing it records), the eval transform from the model's own preprocessing
unless options override it.
"""

from __future__ import annotations

import argparse
import json
import sys

from torch import nn

from mixnet.cli import options
from mixnet.io.spec import ModelSpec
from mixnet.models.preprocess import Preprocess

EXPORTED_WEIGHTS_HELP = "; or an exported .onnx / OpenVINO .xml file; none: random initialisation"


def load_for_inference(args: argparse.Namespace) -> tuple[nn.Module, ModelSpec, str]:
    """The model, its spec and the runtime that runs it (``torch``, ``onnxruntime`` or ``openvino``).

    An exported file (.onnx, .xml) runs in its runtime on the CPU with ``--threads`` threads; any other
    ``--weights`` is a PyTorch model file (:func:`mixnet.cli.options.load_model_from_args`).

    Raises:
        ValueError: options that do not apply to an exported file (``--model``, a GPU ``--device``).
        ExportedFileError: an exported file that cannot be read or records no spec.
    """
    from mixnet.deploy.exported import ExportedModel, is_exported_file

    if not (args.weights and is_exported_file(args.weights)):
        model, spec = options.load_model_from_args(args)
        return model, spec, "torch"
    if args.model:
        raise ValueError(f"--model does not apply to the exported file {args.weights!r}: it records its model")
    if args.device not in ("auto", "cpu"):
        raise ValueError(f"an exported file runs on the CPU in its own runtime; --device {args.device} does not apply")
    model = ExportedModel(args.weights, args.threads)
    return model, model.spec, model.runtime


def exported_preprocess(pre: Preprocess, spec: ModelSpec) -> Preprocess:
    """Checks that the preprocessing keeps the input size an exported graph is fixed at.

    Raises:
        ValueError: another ``--img-size``.
    """
    if pre.img_size != spec.preprocess.img_size:
        raise ValueError(
            f"the exported file takes {spec.preprocess.img_size}px inputs (its graph is fixed at that size); "
            f"--img-size {pre.img_size} does not apply"
        )
    return pre


def run(args: argparse.Namespace) -> int:
    """Evaluates and prints top-1, top-k, loss and images/s."""
    import torch

    from mixnet.data import BUILTIN, build_eval_dataset, transform_for
    from mixnet.eval.evaluate import evaluate
    from mixnet.io.load import imagenet_or_own_class_names
    from mixnet.measure.threads import threads
    from mixnet.progress import show_progress
    from mixnet.runtime import amp_dtype, resolve_device

    model, spec, runtime = load_for_inference(args)
    exported = runtime != "torch"
    device = resolve_device("cpu" if exported else args.device)
    pre = options.preprocess_from_args(args, spec)
    if exported:
        pre = exported_preprocess(pre, spec)
    names, source = imagenet_or_own_class_names(spec)
    # Folder names are mapped onto the model's class names; ImageNet weights without names expect the 1000
    # synset folders, whose sorted order is the class index order.
    dataset, classes = build_eval_dataset(
        args.data,
        val_tf=transform_for(pre),
        strict=args.strict_data,
        class_names=names if source == "checkpoint" else None,
    )
    if len(classes) != spec.num_classes:
        raise ValueError(
            f"the data has {len(classes)} classes but the model has {spec.num_classes} outputs; evaluate on the "
            "classes the model was trained on (a model file with class names maps them by name)"
        )
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=False, num_workers=args.workers, pin_memory=device.type == "cuda"
    )
    with threads(args.threads):
        metrics = evaluate(
            model,
            loader,
            device=device,
            amp_dtype=None if exported else amp_dtype(args.amp, device),
            channels_last=args.channels_last and not exported,
            progress=show_progress(args.progress) and not args.json,
        )
    k = metrics["k"]
    report = {
        "model": spec.architecture,
        "weights": args.weights or "random",
        "data": str(args.data or BUILTIN),
        **pre.to_dict(),
        "config": dict(spec.config),
        "num_classes": spec.num_classes,
        "runtime": runtime,
        "device": str(device),
        "amp": "none" if exported else args.amp,
        **metrics,
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{spec.architecture} ({report['weights']}) on {report['data']}: {metrics['n']} images at "
            f"{pre.img_size}px\ntop-1 {metrics['top1']:.2f}%  top-{k} {metrics[f'top{k}']:.2f}%  loss "
            f"{metrics['loss']:.4f}  {metrics['images_per_s']:.1f} images/s ({metrics['model_images_per_s']:.1f} "
            f"in the model) on {device}" + (f" in {runtime}" if exported else ""),
            file=sys.stdout,
        )
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Registers ``mixnet eval``."""
    p = sub.add_parser(
        "eval",
        help="top-1/top-5, loss and images/s on a validation set",
        description="Evaluate a model on an ImageFolder val/ set, a folder of class subfolders or the built-in "
        "digits val split, with the model's own eval preprocessing unless overridden. --weights may be an "
        "exported .onnx (fp32 or int8) or OpenVINO .xml file from `mixnet export` / `mixnet quantize`: it runs "
        "in ONNX Runtime / OpenVINO on the CPU with the class names and preprocessing it records.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    options.add_model(p, weights_help=EXPORTED_WEIGHTS_HELP)
    options.add_data(
        p,
        "folder with val/<class>/ images, a folder of class subfolders, or a built-in set ('digits', "
        "'cluttered-digits'); when omitted, the built-in digits val split",
    )
    options.add_preprocess(p)
    options.add_runtime(p, batch_size=64, workers=2)
    options.add_strict_data(p)
    options.add_threads(p, None)
    options.add_progress(p)
    options.add_json(p)
    p.set_defaults(func=run)

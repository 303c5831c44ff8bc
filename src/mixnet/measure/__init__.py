"""Measuring speed on this machine: machine info, runners (PyTorch, ONNX Runtime, OpenVINO), a threads
context, interleaved medians and MAC counting. ``mixnet bench``, the study, the search and the scripts
under ``benchmarks/`` measure through it, so their figures come from one harness."""

"""Deployment: the exact inference rewrite (``optimize``, ``fuse``), ONNX/TorchScript/torch.export, int8."""

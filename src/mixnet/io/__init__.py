"""Model files: the spec that describes a model, safe reading, strict loading, timm conversion, the hub.

One owner for "what a model file is": :class:`ModelSpec` says how to rebuild and use a model,
:func:`save_model` writes it with the weights, :func:`load_model` reads any file this project or timm
writes.
"""

from mixnet.io.convert import from_timm, to_timm
from mixnet.io.files import CheckpointError, read_checkpoint, read_state_dict
from mixnet.io.load import load_model, read_spec
from mixnet.io.save import save_model
from mixnet.io.spec import ModelSpec

__all__ = [
    "CheckpointError",
    "ModelSpec",
    "from_timm",
    "load_model",
    "read_checkpoint",
    "read_spec",
    "read_state_dict",
    "save_model",
    "to_timm",
]

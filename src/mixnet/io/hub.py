"""timm's ImageNet weights from the Hugging Face hub, with an offline path that says what to do."""

from __future__ import annotations

from mixnet.errors import HubError, require
from mixnet.models.registry import ModelEntry


def download(entry: ModelEntry) -> str:
    """The local path of ``entry``'s ``model.safetensors`` (downloaded, or from the hub cache).

    Raises:
        MissingExtraError: huggingface_hub is not installed.
        HubError: the file could not be fetched; the message names the URL to fetch elsewhere and how to
            pass the file instead.
    """
    hub = require("huggingface_hub", "hub", f"pretrained=True ({entry.hf_hub_id})")
    try:
        return hub.hf_hub_download(entry.hf_hub_id, "model.safetensors")
    except Exception as e:  # noqa: BLE001 - network, auth and cache errors all end here
        raise HubError(
            f"could not fetch {entry.hf_hub_id} from the Hugging Face hub ({type(e).__name__}: {e}). "
            f"Offline? On a machine with network, download "
            f"https://huggingface.co/{entry.hf_hub_id}/resolve/main/model.safetensors, copy it here and "
            f"pass pretrained='path/to/model.safetensors' (--weights path on the command line). "
            "A file already in the hub cache is used with HF_HUB_OFFLINE=1"
        ) from e

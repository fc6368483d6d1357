"""The embedding cache's size cap (oldest rows evicted), encoding without saving, and lone surrogates."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Sequence

import numpy as np

from router_core.embed import CachedEncoder, EmbeddingCache, text_key


class HashEncoder:
    """A stand-in encoder: a deterministic unit vector per text, and a count of texts embedded."""

    name = "hash-encoder"
    dim = 8
    batch_size = 4

    def __init__(self) -> None:
        self.embedded = 0

    def encode(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        self.embedded += len(texts)
        rows = [np.frombuffer(hashlib.sha256(text_key(t)).digest()[:32], dtype=np.uint8)[: self.dim]
                for t in texts]
        out = np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim) + 1.0
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM vectors").fetchone()[0])


def test_cap_keeps_the_newest_rows(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    enc = CachedEncoder(HashEncoder(), EmbeddingCache(path, HashEncoder.name, HashEncoder.dim, max_rows=5))
    texts = [f"prompt {i}" for i in range(12)]
    for t in texts:
        enc.encode([t])
    assert rows(path) == 5
    base = enc.encoder
    assert isinstance(base, HashEncoder)
    before = base.embedded
    enc.encode(texts[-5:])  # the newest five are still cached
    assert base.embedded == before
    enc.encode(texts[:1])  # the oldest was evicted: embedded again
    assert base.embedded == before + 1
    assert rows(path) == 5


def test_unbounded_by_default(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    enc = CachedEncoder(HashEncoder(), EmbeddingCache(path, HashEncoder.name, HashEncoder.dim))
    enc.encode([f"p{i}" for i in range(30)])
    assert rows(path) == 30


def test_encode_unsaved_reads_but_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "cache.sqlite"
    enc = CachedEncoder(HashEncoder(), EmbeddingCache(path, HashEncoder.name, HashEncoder.dim))
    saved = enc.encode(["known"])
    out = enc.encode_unsaved(["known", "new one"])
    assert rows(path) == 1
    np.testing.assert_array_equal(out[0], saved[0])
    np.testing.assert_allclose(out[1], HashEncoder().encode(["new one"])[0])


def test_lone_surrogates_have_a_cache_key(tmp_path: Path) -> None:
    assert text_key("a\ud800b") != text_key("ab")
    enc = CachedEncoder(HashEncoder(), EmbeddingCache(tmp_path / "c.sqlite", HashEncoder.name, HashEncoder.dim))
    assert enc.encode(["a\ud800b"]).shape == (1, HashEncoder.dim)

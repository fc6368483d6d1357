"""The fast tier (``make test-fast``): pure unit tests. No subprocess, no Redis, no encoder model."""

from __future__ import annotations

import pytest

from doubles import MODELS, HashEncoder, MemoryTaskStore, tiny_router


@pytest.fixture(scope="session")
def encoder() -> HashEncoder:
    return HashEncoder()


@pytest.fixture(scope="session")
def learned(encoder):
    return tiny_router(encoder)


@pytest.fixture()
def store() -> MemoryTaskStore:
    return MemoryTaskStore(len(MODELS))

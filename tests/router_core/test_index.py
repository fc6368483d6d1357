"""hnswlib agrees with exact search; the LOTO search never returns a prompt's own task."""

import numpy as np

from router_core.index import ExactIndex, HnswIndex, grouped_neighbours


def unit(rng, n, d=32):
    x = rng.standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_hnsw_matches_exact_on_random_vectors():
    rng = np.random.default_rng(0)
    pool, q = unit(rng, 3000), unit(rng, 200)
    e_ids, e_d = ExactIndex(pool).query(q, 5)
    h_ids, h_d = HnswIndex.build(pool, ef=100).query(q, 5)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(e_ids, h_ids)])
    assert recall >= 0.97
    assert np.allclose(np.sort(e_d, 1)[:, 0], np.sort(h_d, 1)[:, 0], atol=1e-4)
    assert np.allclose(e_d[:, 0], 1 - np.sum(q * pool[e_ids[:, 0]], 1), atol=1e-5)


def test_hnsw_save_load(tmp_path):
    rng = np.random.default_rng(1)
    pool = unit(rng, 500)
    idx = HnswIndex.build(pool)
    idx.save(tmp_path / "i.bin")
    back = HnswIndex.load(tmp_path / "i.bin", dim=32, size=500)
    assert np.array_equal(idx.query(pool[:10], 3)[0], back.query(pool[:10], 3)[0])


def test_grouped_neighbours_excludes_own_group_exactly():
    rng = np.random.default_rng(2)
    pool = unit(rng, 400)
    groups = np.repeat(np.arange(4), 100)
    ids, d = grouped_neighbours(pool, groups, 7, block=64)
    assert np.all(groups[ids] != groups[:, None])
    # brute force for a few rows
    for i in (0, 150, 399):
        sims = pool @ pool[i]
        sims[groups == groups[i]] = -np.inf
        assert list(ids[i]) == list(np.argsort(-sims)[:7])
    assert np.all(np.diff(d, axis=1) >= -1e-6)

"""The feature directory format: writer, reader, validation, resume."""

from __future__ import annotations

import json

import pytest
import torch

from grait_engine.artifacts import read_manifest
from grait_engine.features_format import FeatureStoreError, shard_name
from grait_engine.features_store import FeatureStore
from grait_engine.features_writer import FeatureWriter


def rows(n: int, d: int, seed: int) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    ans = torch.nn.functional.normalize(torch.randn(n, d, generator=generator), dim=1)
    idk = torch.nn.functional.normalize(torch.randn(n, d, generator=generator), dim=1)
    return [f"item-{i}" for i in range(n)], ans, idk


def write(directory, n=23, d=6, shard_rows=5, chunk=4, dtype=torch.float32, seed=0):
    ids, ans, idk = rows(n, d, seed)
    with FeatureWriter(directory, d, shard_rows=shard_rows, dtype=dtype) as writer:
        for lo in range(0, n, chunk):
            writer.append(ids[lo : lo + chunk], ans[lo : lo + chunk], idk[lo : lo + chunk])
    return ids, ans, idk


def test_roundtrip_shards_and_manifest(tmp_path):
    ids, ans, idk = write(tmp_path)
    manifest = read_manifest(tmp_path)
    assert manifest["d"] == 6 and manifest["n"] == 23
    assert [s["rows"] for s in manifest["shards"]] == [5, 5, 5, 5, 3]
    assert [s["start"] for s in manifest["shards"]] == [0, 5, 10, 15, 20]
    assert set(manifest["files"]) == {"ids.json", *(shard_name(i) for i in range(5))}
    store = FeatureStore.open(tmp_path, verify=True)
    assert store.ids == tuple(ids) and store.n == 23 and store.d == 6
    for name, full in (("ans", ans), ("idk", idk)):
        blocks = list(store.iter_blocks(name, block_rows=2))
        assert all(len(b.rows) <= 2 for b in blocks)
        got = torch.cat([b.values for b in blocks])
        assert torch.equal(got, full)
        assert torch.equal(torch.cat([b.rows for b in blocks]), torch.arange(23))


@pytest.mark.parametrize(
    "subset", [[0, 1, 2, 3, 4, 5, 9, 22], [3], [2, 7, 8, 9, 16, 21], list(range(23))]
)
def test_subset_blocks_and_gather(tmp_path, subset):
    _, _, idk = write(tmp_path)
    store = FeatureStore.open(tmp_path)
    wanted = torch.tensor(subset)
    blocks = list(store.iter_blocks("idk", wanted, block_rows=3, dtype=torch.float64))
    got = torch.cat([b.values for b in blocks])
    assert got.dtype == torch.float64
    assert torch.equal(got, idk[wanted].double())
    assert [b.offset for b in blocks] == sorted(b.offset for b in blocks)
    shuffled = wanted.flip(0).repeat(2)
    assert torch.equal(store.gather("idk", shuffled), idk[shuffled])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_storage_reads_as_float32(tmp_path, dtype):
    _, ans, _ = write(tmp_path, dtype=dtype)
    store = FeatureStore.open(tmp_path)
    got = store.gather("ans", torch.arange(23))
    assert got.dtype == torch.float32
    assert torch.equal(got, ans.to(dtype).float())
    assert read_manifest(tmp_path)["dtype"] == str(dtype).removeprefix("torch.")


def test_bad_requests(tmp_path):
    write(tmp_path)
    store = FeatureStore.open(tmp_path)
    with pytest.raises(FeatureStoreError, match="unknown feature"):
        next(store.iter_blocks("grad"))
    with pytest.raises(FeatureStoreError, match="strictly increasing"):
        next(store.iter_blocks("idk", torch.tensor([3, 1])))
    with pytest.raises(FeatureStoreError, match="strictly increasing"):
        next(store.iter_blocks("idk", torch.tensor([0, 23])))
    with pytest.raises(KeyError):
        store.rows_of(["item-0", "nope"])
    assert store.rows_of(["item-7", "item-2"]).tolist() == [7, 2]


def test_incomplete_or_inconsistent_directories_are_refused(tmp_path):
    ids, ans, idk = rows(8, 4, 0)
    writer = FeatureWriter(tmp_path, 4, shard_rows=3)
    writer.append(ids, ans, idk)
    with pytest.raises(FeatureStoreError, match="no complete manifest"):
        FeatureStore.open(tmp_path)  # shards written, no manifest yet
    writer.close()
    FeatureStore.open(tmp_path)
    (tmp_path / "ids.json").write_text(json.dumps(ids[:-1]))
    with pytest.raises(FeatureStoreError):
        FeatureStore.open(tmp_path, verify=True)  # hash mismatch
    with pytest.raises(FeatureStoreError, match="ids.json"):
        FeatureStore.open(tmp_path)  # without hashing: count mismatch
    (tmp_path / "ids.json").write_text(json.dumps(ids))
    (tmp_path / shard_name(1)).unlink()
    with pytest.raises(FeatureStoreError):
        FeatureStore.open(tmp_path)


def test_writer_validates_rows(tmp_path):
    ids, ans, idk = rows(4, 3, 0)
    writer = FeatureWriter(tmp_path, 3)
    with pytest.raises(FeatureStoreError, match="shape"):
        writer.append(ids, ans[:, :2], idk)
    bad = idk.clone()
    bad[1, 1] = float("nan")
    with pytest.raises(FeatureStoreError, match="non-finite"):
        writer.append(ids, ans, bad)
    writer.append(ids[:2], ans[:2], idk[:2])
    with pytest.raises(FeatureStoreError, match="new string id"):
        writer.append(ids[1:3], ans[1:3], idk[1:3])
    writer.close()
    with pytest.raises(FeatureStoreError, match="already complete"):
        FeatureWriter(tmp_path, 3)


def test_resume_keeps_full_shards_and_rewrites_the_rest(tmp_path):
    ids, ans, idk = rows(11, 4, 1)
    with pytest.raises(RuntimeError):
        with FeatureWriter(tmp_path, 4, shard_rows=3) as writer:
            writer.append(ids[:7], ans[:7], idk[:7])  # two full shards on disk, 1 row buffered
            raise RuntimeError("killed")
    resumed = FeatureWriter(tmp_path, 4, shard_rows=3, resume=True)
    assert resumed.rows_written == 6
    resumed.append(ids[6:], ans[6:], idk[6:])
    resumed.close()
    store = FeatureStore.open(tmp_path, verify=True)
    assert store.ids == tuple(ids)
    assert torch.equal(store.gather("idk", torch.arange(11)), idk)
    # Without resume, stale shards are removed and the writer starts from row 0.
    fresh_dir = tmp_path / "fresh"
    FeatureWriter(fresh_dir, 4, shard_rows=3).append(ids[:6], ans[:6], idk[:6])
    assert FeatureWriter(fresh_dir, 4, shard_rows=3).rows_written == 0
    assert not list(fresh_dir.glob("shard-*"))


def test_span_blocks_cover_the_requested_rows(tmp_path):
    _, _, idk = write(tmp_path, n=40, shard_rows=20)
    store = FeatureStore.open(tmp_path)
    wanted = torch.tensor([0, 1, 3, 4, 5, 7, 20, 21, 22, 23, 30, 39])
    got = torch.empty(len(wanted), 6)
    for block in store.iter_blocks("idk", wanted, block_rows=4, spans=True):
        values = block.values if block.index is None else block.values[block.index]
        got[block.offset : block.offset + len(block.rows)] = values
        if block.index is not None:
            assert len(block.values) < 2 * len(block.rows)
    assert torch.equal(got, idk[wanted])


def test_shards_are_byte_identical_across_processes(tmp_path):
    """Two interpreters (different hash seeds) writing the same rows give the same bytes."""
    import subprocess
    import sys
    from pathlib import Path

    code = (
        "import sys; from tests.engine.test_features_store import write; "
        "write(sys.argv[1], n=12, d=4, shard_rows=5)"
    )
    root = Path(__file__).resolve().parents[2]
    hashes = []
    for run, hash_seed in (("a", "1"), ("b", "2")):
        env = {"PYTHONHASHSEED": hash_seed, "PATH": "/usr/bin:/bin"}
        subprocess.run(
            [sys.executable, "-c", code, str(tmp_path / run)], cwd=root, env=env, check=True
        )
        hashes.append(read_manifest(tmp_path / run)["files"])
    assert hashes[0] == hashes[1]

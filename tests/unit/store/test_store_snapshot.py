"""Tests of snapshots: files that are not campaign stores, and what plain HDF5 readers see."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from store_helpers import (
    FORK,
    INPUTS,
    OUTPUTS,
    add_points,
    assert_one_line,
    journal_lines,
    run_ok,
    sidecars,
)

from surrogate_al.errors import NotACampaignStoreError, StoreError
from surrogate_al.store import FORMAT, SCHEMA_VERSION, CampaignStore


@pytest.fixture(scope="module")
def good_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    good = tmp_path_factory.mktemp("good") / "good.h5"
    with CampaignStore.create(good, spec={}, input_names=INPUTS, output_names=OUTPUTS) as s:
        for pid in add_points(s, 50):
            run_ok(s, pid, stderr_tail="x" * 200)
    return good

def _plain_h5(p: Path, **attrs: Any) -> None:
    with h5py.File(p, "w") as f:
        f["data"] = np.arange(3)
        f.attrs.update(attrs)

@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p, good: None, "file not found"),
        (lambda p, good: p.write_bytes(b""), "empty file"),
        (lambda p, good: p.write_bytes(os.urandom(4096)), "not an HDF5 file"),
        (lambda p, good: p.write_bytes(good.read_bytes()[: good.stat().st_size // 2]), "truncated or damaged"),
        (lambda p, good: _plain_h5(p), "not a surrogate_al campaign store"),
        (lambda p, good: _set_schema(good, p, 999), "schema_version 999, newer than"),
        (lambda p, good: _set_schema(good, p, 0), "unknown store schema_version 0"),
        (lambda p, good: _drop_dataset(good, p, "runs/Y"), "dataset /runs/Y is missing"),
    ],
    ids=["missing", "empty", "random", "truncated", "plain-hdf5", "schema-999", "schema-0", "damaged"],
)
@pytest.mark.parametrize("mode", ["r", "a"])
def test_not_a_campaign_store(
    tmp_path: Path, good_store: Path, make: Callable[[Path, Path], None], expected: str, mode: str
) -> None:
    good = tmp_path / "good.h5"
    shutil.copy(good_store, good)
    target = tmp_path / "target.h5"
    make(target, good)
    with pytest.raises(NotACampaignStoreError) as info:
        CampaignStore.open(target, mode)  # type: ignore[arg-type]
    assert_one_line(info.value, str(target), expected)
    assert not Path(str(target) + ".lock").exists()

def _set_schema(good: Path, p: Path, version: int) -> None:
    shutil.copy(good, p)
    with h5py.File(p, "a") as f:
        f.attrs["schema_version"] = version

def _drop_dataset(good: Path, p: Path, name: str) -> None:
    shutil.copy(good, p)
    with h5py.File(p, "a") as f:
        del f[name]

def test_another_program_writing_the_h5_is_reported(path: Path, store: CampaignStore) -> None:
    store.close()
    ready, release = FORK.Event(), FORK.Event()

    def hold() -> None:
        with h5py.File(path, "a"):  # a plain HDF5 writer holds HDF5's own file lock
            ready.set()
            release.wait(30)

    child = FORK.Process(target=hold)
    child.start()
    try:
        assert ready.wait(20)
        with pytest.raises(StoreError) as info:
            CampaignStore.open(path)
        assert_one_line(info.value, "another program has the file open for writing")
    finally:
        release.set()
        child.join(20)

def test_snapshot_interval_zero_keeps_the_h5_current(tmp_path: Path) -> None:
    path = tmp_path / "c.h5"
    store = CampaignStore.create(path, spec={}, input_names=INPUTS, output_names=OUTPUTS, snapshot_interval=0)
    for pid in add_points(store, 3):
        run_ok(store, pid)
        with h5py.File(path, "r") as f:  # a plain reader sees every record at once
            assert f["runs/run_id"].shape == (pid + 1,)
            assert int(f.attrs["journal_seq"]) == pid + 2
    assert len(journal_lines(path)) == 1  # only the header: everything is in the snapshot
    store.close()

def test_records_live_in_the_journal_until_a_snapshot(store: CampaignStore, path: Path) -> None:
    for pid in add_points(store, 2):
        run_ok(store, pid)
    with h5py.File(path, "r") as f:
        assert f["runs/run_id"].shape == (0,)  # last snapshot is from create()
    reader = CampaignStore.open(path)
    assert len(reader.runs()) == 2 and reader.summary()["journal_records"] == 3
    store.snapshot()
    with h5py.File(path, "r") as f:
        assert f["runs/run_id"][()].tolist() == [0, 1]

def test_leftover_temporary_files_are_removed_on_resume(store: CampaignStore, path: Path) -> None:
    store.close()
    for suffix in (".tmp", ".journal.tmp"):
        Path(str(path) + suffix).write_bytes(b"half a snapshot")
    CampaignStore.open(path, "a").close()
    assert sidecars(path) == ["campaign.h5"]

def test_file_is_self_describing_for_plain_h5py(store: CampaignStore, path: Path) -> None:
    add_points(store, 1)
    store.close()
    with h5py.File(path, "r") as f:
        assert f.attrs["format"] == FORMAT and f.attrs["schema_version"] == SCHEMA_VERSION
        assert json.loads(f["spec"].asstr()[()]) == {"campaign": {"budget": 7}, "name": "t"}
        assert f["proposals/X"].maxshape == (None, 2)
        assert f["runs/final"].dtype == np.bool_

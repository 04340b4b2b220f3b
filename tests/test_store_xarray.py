"""The run store read by other tools: xarray opens it (dimension names, CF units and
descriptions), and its root holds the rig and campaign snapshots (docs/run_store.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from cryodaq.acquisition.campaign.runner import CampaignRunner
from cryodaq.acquisition.campaign.validate import LoadedCampaign, load_campaign
from cryodaq.acquisition.events import TriggerKind
from cryodaq.acquisition.store.format import SUMMARY_FIELDS
from cryodaq.acquisition.store.reader import RunReader
from cryodaq.acquisition.store.writer import RunStore

ROOT = Path(__file__).resolve().parents[1]
CAMPAIGN = """\
name: xarray-check
rig: RIGS/maxs30_sim.yaml
steps:
  - set: {adc1.channels.3-16.enabled: false}
  - acquire: {name: pulses, source: adc1, duration: 2 s,
              trigger: {all: {edge_threshold: 3 mV}}}
"""
CH = 1


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[LoadedCampaign, Path]:
    """A finished two-channel simulated run, made by the campaign runner."""
    tmp = tmp_path_factory.mktemp("xarray")
    path = tmp / "campaign.yaml"
    path.write_text(CAMPAIGN.replace("RIGS", str(ROOT / "config" / "rigs")))
    loaded = load_campaign(path)
    run_dir = tmp / "run"
    assert CampaignRunner(loaded.campaign, loaded.rig, loaded.raw, run_dir).run() == 0
    return loaded, run_dir / "store"


def open_channel(store: Path, group: str, **kw: bool) -> xr.Dataset:
    return xr.open_zarr(store, group=f"acquisitions/pulses/{group}", consolidated=False, **kw)


def test_xarray_reads_a_channels_records_with_units(run: tuple[LoadedCampaign, Path]) -> None:
    _, store = run
    reader = RunReader(store)
    raw = reader.read("pulses", CH)
    assert raw["records"].shape[0] > 5
    scale = reader.info("pulses")["metadata"]["units_per_value"]
    ds = open_channel(store, f"ch{CH:03d}")
    assert ds.records.dims == ("record", "sample")
    assert ds.records.attrs["units"] == "V" and ds.records.attrs["long_name"] == "record"
    assert ds.records.encoding["scale_factor"] == scale
    np.testing.assert_allclose(ds.records.values, raw["records"] * scale, rtol=1e-12)
    assert (
        ds.attrs["channel"] == CH and ds.attrs["pretrigger"] == reader.info("pulses")["pretrigger"]
    )
    # CF time: decoded to datetime64, exactly the stored nanoseconds
    assert ds.timestamp_ns.dtype == np.dtype("datetime64[ns]")
    np.testing.assert_array_equal(ds.timestamp_ns.values.astype("int64"), raw["timestamp_ns"])
    assert ds.sample_index.attrs["units"] == "samples"
    np.testing.assert_array_equal(ds.sample_index.values, raw["sample_index"])
    assert ds.trigger_kind.attrs["flag_meanings"].split()[0] == TriggerKind(1).name.lower()
    # undecoded: the stored values, bit for bit
    plain = open_channel(store, f"ch{CH:03d}", mask_and_scale=False, decode_times=False)
    np.testing.assert_array_equal(plain.records.values, raw["records"])
    assert plain.records.dtype == raw["records"].dtype

    summaries = open_channel(store, f"ch{CH:03d}/summaries")
    assert set(summaries.data_vars) == set(SUMMARY_FIELDS)
    assert summaries.sizes == {"record": raw["records"].shape[0]}
    assert summaries.peak_value.attrs["units"] == "V"
    assert summaries.rise_time_s.attrs["units"] == "s"
    assert summaries.peak_index.attrs["units"] == "samples"
    np.testing.assert_allclose(
        summaries.peak_value.values, raw["summaries"]["peak_value"] * scale, rtol=1e-6
    )
    gaps = xr.open_zarr(store, group="acquisitions/pulses", consolidated=False)
    assert gaps.gaps.dims == ("gap", "gap_bound") and gaps.gaps.attrs["units"] == "samples"


def test_every_array_has_dimension_names_and_the_tree_opens(
    run: tuple[LoadedCampaign, Path],
) -> None:
    _, store = run
    arrays = 0
    for meta_path in store.rglob("zarr.json"):
        meta = json.loads(meta_path.read_text())
        if meta["node_type"] == "array":
            arrays += 1
            assert len(meta["dimension_names"]) == len(meta["shape"]), meta_path
            assert {"units", "long_name", "description"} <= set(meta["attributes"]), meta_path
    assert arrays == 1 + 2 * (1 + 4 + len(SUMMARY_FIELDS))  # gaps; per channel
    tree = xr.open_datatree(store, engine="zarr", consolidated=False)
    assert tree["acquisitions/pulses/ch002/records"].dims == ("record", "sample")


def test_root_holds_the_rig_and_campaign_snapshots(run: tuple[LoadedCampaign, Path]) -> None:
    loaded, store = run
    meta = RunReader(store).metadata["metadata"]
    assert meta["rig"] == loaded.rig_raw and meta["rig"]["name"] == loaded.rig.name
    assert meta["campaign"] == loaded.raw and meta["campaign"]["name"] == "xarray-check"
    assert xr.open_datatree(store, engine="zarr", consolidated=False).attrs["metadata"] == meta


def test_analysis_columns_carry_their_attributes(
    run: tuple[LoadedCampaign, Path], tmp_path: Path
) -> None:
    store = tmp_path / "store"
    shutil.copytree(run[1], store)
    reader = RunReader(store)
    n = reader.committed("pulses", CH)
    reader.add_column(
        "pulses", CH, "energy", np.arange(n, dtype="f8"), attrs={"units": "eV", "long_name": "E"}
    )
    reader.add_column("pulses", CH, "pair", np.zeros((n, 2), "i4"))
    ds = open_channel(store, f"ch{CH:03d}/columns")
    assert ds.energy.dims == ("record",) and ds.energy.attrs["units"] == "eV"
    assert ds.energy.attrs["source"] == "analysis"
    assert ds.pair.dims == ("record", "pair_dim1")


def test_stores_without_dimension_names_still_read(
    run: tuple[LoadedCampaign, Path], tmp_path: Path
) -> None:
    """A store written before arrays had dimension names and attributes reads as before, and
    resuming it adds the snapshots it lacks (keeping what it has)."""
    store = tmp_path / "store"
    shutil.copytree(run[1], store)
    for meta_path in store.rglob("zarr.json"):
        meta = json.loads(meta_path.read_text())
        if meta["node_type"] == "array":
            meta.pop("dimension_names")
            meta["attributes"] = {}
            meta_path.write_text(json.dumps(meta))
    root = json.loads((store / "zarr.json").read_text())
    root["attributes"]["metadata"] = {"rig": {"name": "old"}}
    (store / "zarr.json").write_text(json.dumps(root))
    old, new = RunReader(store).read("pulses", CH), RunReader(run[1]).read("pulses", CH)
    for name, values in new.items():
        np.testing.assert_array_equal(old[name], values)
    with RunStore.resume(store, {"rig": {"name": "new"}, "campaign": {"name": "c"}}):
        pass
    assert RunReader(store).metadata["metadata"] == {
        "rig": {"name": "old"},
        "campaign": {"name": "c"},
    }


def test_records_without_a_known_unit_are_dimensionless(tmp_path: Path) -> None:
    with RunStore.create(tmp_path / "run", background_flush=False) as w:
        w.acquisition("a", [0], 16, "int16", 1e3, 4)
    meta = json.loads((tmp_path / "run/acquisitions/a/ch000/records/zarr.json").read_text())
    assert meta["attributes"]["units"] == "1" and "scale_factor" not in meta["attributes"]
    assert meta["dimension_names"] == ["record", "sample"]

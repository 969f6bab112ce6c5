"""Registering existing files against a real server: Container.register, the directory walker,
external data sources through new(), data_sources()/item, container export and raw export."""

from __future__ import annotations

import asyncio
import uuid

import h5py
import numpy as np
import pandas as pd
import pytest
import tifffile
import zarr

from tiled_core.client.register import register, strip_suffixes
from tiled_core.structures import ArrayStructure, Asset, DataSource, Management, Spec
from tiled_core.transport import ClientError, Conflict

from _checks import sends_no_request


@pytest.fixture(scope="module")
def files(tiled_server):
    """A directory of files inside the server's storage (so the server may read them)."""
    d = tiled_server.directory / "data" / f"external-{uuid.uuid4().hex[:8]}"
    d.mkdir(parents=True)
    tifffile.imwrite(str(d / "single.tiff"), np.arange(12, dtype="uint16").reshape(3, 4))
    for i in range(4):
        tifffile.imwrite(str(d / f"frame_{i:03d}.tiff"), np.full((3, 4), i, dtype="uint16"))
    pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]}).to_csv(d / "table.csv", index=False)
    pd.DataFrame({"a": [7, 8], "b": [9.0, 10.0]}).to_csv(d / "table_2.csv", index=False)
    pd.DataFrame({"a": [1, 2], "b": [3.0, 4.0]}).to_csv(d / "semi.csv", index=False, sep=";")
    pd.DataFrame({"a": [1.0, 2.0, 3.0], "b": [4.0, 5.0, 6.0]}).to_csv(d / "floats.csv", index=False)
    np.save(d / "ones.npy", np.ones((2, 5)))
    with h5py.File(d / "data.h5", "w") as f:
        f.attrs["title"] = "run 7"
        f["x"] = np.arange(10)
        f.create_group("grp")["y"] = np.arange(6).reshape(2, 3)
    store = zarr.open(str(d / "grid.zarr"), mode="w", shape=(4, 6), chunks=(2, 3), dtype="i4")
    store[:] = np.arange(24).reshape(4, 6)
    return d


@pytest.fixture
def place(scratch):
    return scratch.include_data_sources()


@pytest.mark.parametrize("name, family, expected", [
    ("single.tiff", "array", np.arange(12, dtype="uint16").reshape(3, 4)),
    ("ones.npy", "array", np.ones((2, 5))),
    ("grid.zarr", "array", np.arange(24).reshape(4, 6)),
    ("table.csv", "table", pd.DataFrame({"a": [1, 2, 3], "b": [4.0, 5.0, 6.0]})),
])
def test_register_one_file(place, ref_scratch, files, name, family, expected):
    node = place.register(files / name, metadata={"beamline": "X"}, specs=["mine"])
    assert node.structure_family == family
    (source,) = node.data_sources()
    assert isinstance(source, DataSource) and source.management == Management.external
    assert all(isinstance(a, Asset) and a.data_uri.endswith(name) for a in source.assets)
    assert source.assets[0].is_directory == name.endswith(".zarr")
    assert node.metadata["beamline"] == "X" and Spec("mine") in node.specs
    key = node.item["id"]
    assert node.item["links"]["self"].endswith(f"/metadata/{place.path}/{key}")
    # The server reads the file in place; the reference client sees the same data.
    for read in (place[key].read(), ref_scratch[key].read()):
        if family == "table":
            pd.testing.assert_frame_equal(read.reset_index(drop=True), expected)
        else:
            np.testing.assert_array_equal(read, expected)


def test_register_several_files_make_one_node(place, files):
    stack = place.register(*sorted(files.glob("frame_*.tiff")), key="stack")
    assert stack.read().shape == (4, 3, 4) and [int(f[0, 0]) for f in stack.read()] == [0, 1, 2, 3]
    assert [a.num for a in stack.data_sources()[0].assets] == [0, 1, 2, 3]
    table = place.register(files / "table.csv", files / "table_2.csv", key="parts")
    assert table.read()["a"].tolist() == [1, 2, 3, 7, 8]


def test_register_parameters_and_mimetype(place, files):
    semi = place.register(files / "semi.csv", key="semi", parameters={"sep": ";"})
    assert list(semi.read().columns) == ["a", "b"]
    assert semi.data_sources()[0].parameters == {"sep": ";"}
    grid = place.register(files / "floats.csv", key="grid", mimetype="text/csv;header=absent",
                          parameters={"skiprows": 1})
    np.testing.assert_array_equal(grid.read(), [[1, 4], [2, 5], [3, 6]])


def test_register_hdf5_file_and_dataset(place, files):
    whole = place.register(files / "data.h5", key="h5")
    assert whole.structure_family == "container" and set(whole) == {"x", "grp"}
    assert whole.metadata["title"] == "run 7"
    np.testing.assert_array_equal(whole["grp"]["y"].read(), np.arange(6).reshape(2, 3))
    one = place.register(files / "data.h5", key="y", parameters={"dataset": "grp/y"})
    assert one.structure_family == "array" and one.read().shape == (2, 3)


def test_register_structure_override(place, files):
    base = place.register(files / "single.tiff", key="base").structure()
    flat = ArrayStructure(data_type=base.data_type, chunks=((12,),), shape=(12,))
    node = place.register(files / "single.tiff", key="flat", structure=flat)
    np.testing.assert_array_equal(node.read(), np.arange(12))
    assert node.data_sources()[0].properties["chunks"] == [[3], [4]]
    wrong = ArrayStructure(data_type=base.data_type, chunks=((13,),), shape=(13,))
    with sends_no_request(place), pytest.raises(ValueError, match="not compatible"):
        place.register(files / "single.tiff", key="wrong", structure=wrong)


def test_register_bad_input_fails_before_any_request(place, files, tmp_path):
    (tmp_path / "mystery.unknownext").write_bytes(b"\0")
    with sends_no_request(place):
        for call in (lambda: place.register(),
                     lambda: place.register(tmp_path / "mystery.unknownext"),
                     lambda: place.register(files / "missing.tiff"),
                     lambda: place.register(files / "single.tiff", on_conflict="maybe"),
                     lambda: place.register(files / "table.csv", files / "single.tiff")):
            with pytest.raises(ValueError):
                call()


def test_register_on_conflict(place, files):
    first = place.register(files / "single.tiff", key="k")
    with pytest.raises(Conflict):
        place.register(files / "single.tiff", key="k")
    assert place.register(files / "single.tiff", key="k", on_conflict="skip").item["id"] == "k"
    with pytest.raises(Conflict, match="different structure"):
        place.register(files / "ones.npy", key="k", on_conflict="skip")
    replaced = place.register(files / "ones.npy", key="k", on_conflict="replace")
    assert replaced.read().shape == (2, 5) and first.item["id"] == "k"


def test_new_with_external_data_source(place, files):
    source = DataSource(
        structure_family="array", mimetype="image/tiff", management=Management.external,
        structure=ArrayStructure.from_array(np.zeros((3, 4), dtype="uint16")),
        assets=[Asset(data_uri=(files / "single.tiff").as_uri(), is_directory=False, parameter="data_uri")],
    )
    node = place.new("array", [source], key="by-hand")
    np.testing.assert_array_equal(node.read(), np.arange(12).reshape(3, 4))
    assert node.include_data_sources() is node and place["by-hand"].data_sources()[0].mimetype == "image/tiff"


def test_walk_directory(scratch, files):
    asyncio.run(register(scratch, files, prefix="/walked"))
    walked = scratch["walked"]
    # Numbered frames become one sequence; data.h5 a container.
    assert {"frame_", "single", "semi", "ones", "floats", "grid"} <= set(walked)
    assert walked["frame_"].read().shape == (4, 3, 4)
    assert walked["data"]["x"].read().tolist() == list(range(10))
    assert strip_suffixes("a.tar.gz") == "a"


def test_container_export_and_raw_export(place, files, tmp_path):
    node = place.register(files / "table.csv", key="t")
    grid = place.register(files / "grid.zarr", key="g")
    assert [p.name for p in node.raw_export(tmp_path / "t")] == ["table.csv"]
    assert (tmp_path / "t" / "table.csv").read_bytes() == (files / "table.csv").read_bytes()
    copied = grid.raw_export(tmp_path / "g")
    assert np.array_equal(zarr.open(str(tmp_path / "g"), mode="r")[:], np.arange(24).reshape(4, 6)) and copied
    in_memory = {}
    assert node.raw_export(in_memory) == ["table.csv"] and in_memory["table.csv"].read().startswith(b"a,b")
    written = place.create_container("tree")
    written.write_array(np.arange(5), key="x")
    written.export(tmp_path / "tree.h5")
    with h5py.File(tmp_path / "tree.h5") as f:
        assert f["x"][:].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="cannot be exported"):
        written.export(tmp_path / "tree.xyz")


def test_bytes_node(place, files):
    (files / "blob.bin").write_bytes(b"\x00\x01" * 600)
    asset = Asset(data_uri=(files / "blob.bin").as_uri(), is_directory=False, parameter="data_uris", num=0, size=1200)
    place.new("bytes", [DataSource(structure_family="bytes", structure={}, mimetype="application/octet-stream",
                                   assets=[asset], management=Management.external)], key="blob")
    from tiled_core.client.bytes import BytesClient

    node = place["blob"]
    assert isinstance(node, BytesClient) and repr(node) == "<BytesClient 1.2 KB across 1 asset>"
    buffers = {}
    assert node.raw_export(buffers) == ["blob.bin"] and buffers["blob.bin"].read() == b"\x00\x01" * 600


def test_listing_a_container_behind_a_broken_link_is_a_key_error(place, ref_scratch, files):
    path = files / "links.h5"
    with h5py.File(path, "w") as f:
        f.create_group("g")["x"] = np.arange(3)
        f["g"]["gone"] = h5py.SoftLink("/nowhere")  # a link whose target does not exist
    asset = Asset(data_uri=f"file://localhost{path}", is_directory=False, parameter="data_uris", num=0)

    def source(dataset):
        return DataSource(structure_family="container", structure=None, mimetype="application/x-hdf5", assets=[asset],
                          management=Management.external, parameters={"dataset": dataset})

    place.new("container", [source("g/gone")], key="broken")
    place.new("container", [source("g")], key="fine")
    broken = place["broken"]
    with pytest.raises(KeyError, match="broken link"):
        list(broken.keys())
    with pytest.raises(KeyError, match="broken link"):
        list(broken.items())
    with pytest.raises(KeyError):
        list(ref_scratch["broken"].keys())  # as the reference client says it
    # The container holding the link lists it; only opening it fails.
    assert sorted(place["fine"]) == ["gone", "x"]
    with pytest.raises(KeyError, match="broken link"):
        place["fine"]["gone"]


def test_tree_and_broken_lookup(place, files, capsys):
    from tiled_core.client import tree

    place.register(files / "data.h5", key="h5tree")
    tree(place["h5tree"])
    assert capsys.readouterr().out.splitlines() == ["├── grp", "│   └── y", "└── x"]
    tree(place["h5tree"], max_lines=1)
    assert "truncated at 1 lines" in capsys.readouterr().out


def test_raw_export_compression_and_progress(place, files, tmp_path, monkeypatch):
    """raw_export streams compressed, but never blosc2 (``STREAMING_ACCEPT_ENCODING``); with
    compression=False the file comes as is; each file's progress total is its recorded size."""
    from rich.progress import Progress

    from tiled_core.client import record_history
    from tiled_core.client.download import STREAMING_ACCEPT_ENCODING

    payload = b"the quick brown fox " * 9000
    (files / "fox.bin").write_bytes(payload)
    (files / "fox2.bin").write_bytes(payload)
    for key, name, size in (("fox", "fox.bin", len(payload)), ("fox_unsized", "fox2.bin", None)):
        asset = Asset(data_uri=(files / name).as_uri(), is_directory=False, parameter="data_uris", num=0, size=size)
        place.new("bytes", [DataSource(structure_family="bytes", structure={}, mimetype="application/octet-stream",
                                       assets=[asset], management=Management.external)], key=key)
    totals = []
    original = Progress.add_task
    monkeypatch.setattr(Progress, "add_task", lambda self, *a, total=None, **k: totals.append(total) or original(
        self, *a, total=total, **k))
    # Even when the script's own headers ask for blosc2.
    place.context.http_client.headers["Accept-Encoding"] = "blosc2, zstd, gzip"
    for compression, expected_encoding in ((True, STREAMING_ACCEPT_ENCODING), (False, "identity")):
        with record_history() as history:
            (path,) = place["fox"].raw_export(tmp_path / str(compression), compression=compression)
        assert path.read_bytes() == payload
        ((request, response),) = [(q, r) for q, r in zip(history.requests, history.responses)
                                  if "/asset/bytes/" in str(q.url)]
        assert request.headers["accept-encoding"] == expected_encoding and "blosc2" not in expected_encoding
        if compression:
            assert response.headers["content-encoding"] != "blosc2" and "content-length" not in response.headers
        else:
            assert int(response.headers["content-length"]) == len(payload)
    buffers = {}
    assert place["fox_unsized"].raw_export(buffers) == ["fox2.bin"] and buffers["fox2.bin"].read() == payload
    assert totals == [len(payload), len(payload), None]
    del place.context.http_client.headers["Accept-Encoding"]


def test_download_checks_its_arguments_and_writes_whole_files(place, files, tmp_path):
    from tiled_core.client.download import ATTACHMENT_FILENAME_PLACEHOLDER, download

    (files / "small.bin").write_bytes(b"abc" * 1000)
    asset = Asset(data_uri=(files / "small.bin").as_uri(), is_directory=False, parameter="data_uris", num=0, size=3000)
    place.new("bytes", [DataSource(structure_family="bytes", structure={}, mimetype="application/octet-stream",
                                   assets=[asset], management=Management.external)], key="small")
    http = place.context.http_client
    with pytest.raises(ValueError, match="as many totals as URLs"):
        download(http, ["u1", "u2"], ["t1", "t2"], totals=[1])
    with pytest.raises(ValueError, match="as many paths as URLs"):
        download(http, ["u1", "u2"], ["t1"])
    (asset_id,) = [a.id for a in place["small"].data_sources()[0].assets]
    url = f"{place.context.api_uri}asset/bytes/{place['small'].path.lstrip('/')}?id={asset_id}"
    (written,) = download(http, [url], [tmp_path / ATTACHMENT_FILENAME_PLACEHOLDER], totals=[3000],
                          accept_encoding="identity")
    assert written == tmp_path / "small.bin" and written.read_bytes() == b"abc" * 1000
    buffers = {}
    assert download(http, [url], ["k"], mapping=buffers) == ["k"] and buffers["k"].read() == b"abc" * 1000
    with pytest.raises(ClientError):
        download(http, [url.replace("?id=", "?id=9")], [tmp_path / "missing.bin"])
    assert not list(tmp_path.glob("missing.bin*"))  # nothing half written

"""Array clients against the real server: dtypes, slicing, blocks, export, dask, big reads, interop.

Arrays are written by the reference client and read with tiled_core (and the
other way round for interop); every result is compared with numpy on the
same data.
"""

from __future__ import annotations

import io
import uuid

import dask.array as da
import numpy as np
import pytest

from tiled_core.client import from_uri
from tiled_core.client.array import ArrayClient, DaskArrayClient
from tiled_core.structures import ArrayStructure

RNG = np.random.default_rng(1234)
F8 = RNG.random((7, 9))
CHUNKED = RNG.standard_normal((20, 30))
CHUNKS = (7, 11)  # -> ((7, 7, 6), (11, 11, 8)): uneven last blocks
LARGE_SHAPE = (3072, 2048)  # 48 MiB of float64
LARGE_CHUNKS = (512, 2048)

# Every dtype the server (tiled 0.2.20) stores; checked live on first writing.
DTYPE_ARRAYS = {
    "f8": F8,
    "i2be": np.arange(-10, 10, dtype=">i2").reshape(4, 5),
    "u1": np.arange(250, 256, dtype="uint8"),
    "bool": np.array([[True, False, True], [False, False, True]]),
    "c16": np.arange(5) * (1.5 - 2j),
    "u5": np.array(["ab", "cde", "fghij", "", "zz"], dtype="<U5"),
    "dt64": np.array(["2024-01-01T00:00:00.000000001", "1970-01-01", "2262-04-11"], dtype="datetime64[ns]"),
    "td64": np.array([1, -2, 3], dtype="timedelta64[s]"),
    "f4": np.linspace(-1, 1, 12, dtype="float32").reshape(3, 2, 2),
    "zerod": np.array(3.5),
    "empty": np.zeros((0, 3)),
    "i8_1": np.array([42], dtype="int64"),
    "image": np.arange(0, 240, 20, dtype="uint8").reshape(3, 4),
}


@pytest.fixture(scope="module")
def arrays(ref_root):
    """A container of arrays written by the reference client (numpy and dask)."""
    key = f"arrays-{uuid.uuid4().hex[:8]}"
    node = ref_root.create_container(key)
    for name, value in DTYPE_ARRAYS.items():
        node.write_array(value, key=name, metadata={"dtype": str(value.dtype)})
    node.write_array(da.from_array(CHUNKED, chunks=CHUNKS), key="chunked", dims=["y", "x"])
    large = np.arange(np.prod(LARGE_SHAPE), dtype="float64").reshape(LARGE_SHAPE)
    large[::7] *= -1.5  # not just a ramp
    node.write_array(da.from_array(large, chunks=LARGE_CHUNKS), key="large")
    return key


@pytest.fixture(scope="module")
def node(tiled_server, arrays):
    """The test arrays' container through one tiled_core connection shared by the module."""
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    yield client[arrays]
    client.context.close()


@pytest.fixture(scope="module")
def ref_node(ref_root, arrays):
    return ref_root[arrays]


def _count(client) -> int:
    return client.context.session.request_count


def _same(result, expected) -> None:
    result = np.asarray(result)
    assert result.shape == np.shape(expected)
    assert result.dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(result, expected)


# ================================================================ dtypes and shapes


@pytest.mark.parametrize("name", list(DTYPE_ARRAYS))
def test_read_every_dtype(node, name):
    expected = DTYPE_ARRAYS[name]
    client = node[name]
    assert type(client) is ArrayClient
    assert client.dtype == expected.dtype  # byte order included ('>i2' stays big-endian)
    result = client.read()
    assert isinstance(result, np.ndarray)
    _same(result, expected)
    _same(np.asarray(client), expected)


def test_big_endian_stays_big_endian(node):
    result = node["i2be"].read()
    assert result.dtype.byteorder == ">"
    assert result.dtype.str == ">i2"


def test_properties_match_reference(node, ref_node):
    for name in [*DTYPE_ARRAYS, "chunked", "large"]:
        ours, theirs = node[name], ref_node[name]
        assert ours.shape == tuple(theirs.shape), name
        assert ours.dtype == theirs.dtype, name
        assert ours.chunks == tuple(tuple(c) for c in theirs.chunks), name
        assert ours.ndim == theirs.ndim and ours.size == theirs.size and ours.nbytes == theirs.nbytes, name
    chunked = node["chunked"]
    assert chunked.shape == (20, 30)
    assert chunked.chunks == ((7, 7, 6), (11, 11, 8))
    assert chunked.dims == ("y", "x")
    assert chunked.ndim == 2 and chunked.size == 600 and chunked.nbytes == 4800
    assert len(chunked) == 20
    assert node["f8"].dims is None
    structure = chunked.structure()
    assert isinstance(structure, ArrayStructure)
    assert structure.shape == (20, 30) and structure.chunks == ((7, 7, 6), (11, 11, 8))
    assert structure.dtype == np.dtype("float64")


def test_zero_d(node):
    zerod = node["zerod"]
    assert zerod.shape == () and zerod.ndim == 0 and zerod.size == 1 and zerod.chunks == ()
    _same(zerod.read(), np.array(3.5))
    _same(zerod[()], np.array(3.5))
    _same(zerod[...], np.array(3.5))
    assert float(np.asarray(zerod)) == 3.5
    with pytest.raises(IndexError):
        zerod[0]
    with pytest.raises(TypeError):
        len(zerod)


def test_zero_size(node):
    empty = node["empty"]
    assert empty.shape == (0, 3) and empty.size == 0 and empty.nbytes == 0
    before = _count(node)
    _same(empty.read(), np.zeros((0, 3)))
    _same(empty[:, 1], np.zeros((0, 3))[:, 1])
    _same(empty[::-1, 1:], np.zeros((0, 3))[::-1, 1:])
    assert _count(node) == before  # nothing to fetch
    with pytest.raises(IndexError):
        empty[0]


# ================================================================ slicing


SELECTIONS = [
    (),
    Ellipsis,
    3,
    -1,
    -7,
    np.int64(2),
    slice(None),
    slice(None, None, -1),
    slice(5, 2),
    slice(2, 2),
    slice(100, 200),
    slice(-100, 100),
    slice(-3, None),
    slice(None, -3),
    slice(None, None, 3),
    slice(6, 0, -2),
    slice(-1, -8, -3),
    slice(1, None, -1),
    (2, 4),
    (-1, -1),
    (3, slice(None, None, -1)),
    (slice(None, None, -2), slice(1, 8, 3)),
    (slice(None, None, -1), slice(None, None, -1)),
    (slice(5, 2), slice(None)),
    (slice(None), slice(4, 4)),
    (Ellipsis, -1),
    (Ellipsis, slice(None, None, -3)),
    (1, Ellipsis),
    (1, Ellipsis, 2),
    (slice(-2, None), Ellipsis, slice(-100, None, -4)),
    (np.int32(-2), slice(None, 3)),
    (slice(1, 6, 2), 0),
]


@pytest.mark.parametrize("selection", SELECTIONS, ids=[repr(s) for s in SELECTIONS])
def test_slicing_like_numpy_single_block(node, selection):
    _same(node["f8"][selection], F8[selection])
    _same(node["f8"].read(selection), F8[selection])


@pytest.mark.parametrize("selection", SELECTIONS, ids=[repr(s) for s in SELECTIONS])
def test_slicing_like_numpy_across_blocks(node, selection):
    _same(node["chunked"][selection], CHUNKED[selection])


@pytest.mark.parametrize("selection", [slice(None, None, -1), slice(3, 0, -1), 2, -1, slice(1, 4), slice(4, 1)])
def test_slicing_strings_and_datetimes(node, selection):
    for name in ("u5", "dt64", "c16", "u1"):
        source = DTYPE_ARRAYS[name]
        # numpy gives a scalar for an integer index (np.str_ of the value's own length): compare as 0-d
        _same(node[name][selection], np.asarray(source[selection], dtype=source.dtype))


@pytest.mark.parametrize(
    "selection, error",
    [
        (7, IndexError),
        (-8, IndexError),
        ((0, 9), IndexError),
        ((0, -10), IndexError),
        ((0, 0, 0), IndexError),
        ((Ellipsis, Ellipsis), IndexError),
        ("a", TypeError),
        (1.5, TypeError),
        ((0, 1.0), TypeError),
        ((0, "x"), TypeError),
        ([0, 1], TypeError),
        # (0, None) is numpy's newaxis: supported, see tests/test_bad_input.py
        (slice(None, None, 0), ValueError),
        ((slice(None), slice(1, 5, 0)), ValueError),
        (slice("a", None), TypeError),
        (slice(None, None, 1.5), TypeError),
    ],
)
def test_bad_selections_fail_before_any_request(node, selection, error):
    client = node["f8"]
    before = _count(node)
    with pytest.raises(error):
        client[selection]
    with pytest.raises(error):
        client.read(selection)
    assert _count(node) == before


# ================================================================ blocks


def _block_region(index, chunks):
    starts = [np.cumsum((0,) + c[:-1]) for c in chunks]
    return tuple(slice(int(starts[a][i]), int(starts[a][i]) + chunks[a][i]) for a, i in enumerate(index))


def test_read_every_block(node):
    client = node["chunked"]
    chunks = client.chunks
    for i in range(len(chunks[0])):
        for j in range(len(chunks[1])):
            _same(client.read_block((i, j)), CHUNKED[_block_region((i, j), chunks)])
    _same(client.read_block([2, 2]), CHUNKED[14:20, 22:30])


@pytest.mark.parametrize(
    "slice_", [(slice(1, 4), slice(None, None, -1)), 0, (slice(None, None, -2), -1), (Ellipsis, 3), slice(10, 20)]
)
def test_read_block_with_slice(node, slice_):
    block = CHUNKED[7:14, 11:22]
    _same(node["chunked"].read_block((1, 1), slice=slice_), block[slice_])


@pytest.mark.parametrize("block", [(3, 0), (0, 3), (-1, 0), (0,), (0, 0, 0), 0])
def test_bad_block_is_index_error(node, block):
    client = node["chunked"]
    before = _count(node)
    with pytest.raises(IndexError):
        client.read_block(block)
    assert _count(node) == before


def test_bad_block_slice(node):
    with pytest.raises(IndexError):
        node["chunked"].read_block((2, 2), slice=(6, 0))  # the last block has only 6 rows
    with pytest.raises(TypeError):
        node["chunked"].read_block(("a", 0))


# ================================================================ export


def test_export_csv_file(node, tmp_path):
    target = tmp_path / "f8.csv"
    node["f8"].export(target)
    np.testing.assert_array_equal(np.loadtxt(target, delimiter=","), F8)
    assert not (tmp_path / "f8.csv.partial").exists()


def test_export_csv_slice_and_buffer(node):
    buffer = io.BytesIO()
    node["chunked"].export(buffer, format="text/csv", slice=(slice(2, 9), slice(5, 25, 3)))
    parsed = np.loadtxt(io.StringIO(buffer.getvalue().decode()), delimiter=",")
    np.testing.assert_array_equal(parsed, CHUNKED[2:9, 5:25:3])


def test_export_tiff_and_png(node, tmp_path):
    import tifffile
    from PIL import Image

    target = tmp_path / "f8.tiff"
    node["f8"].export(target)
    np.testing.assert_array_equal(tifffile.imread(target), F8)
    buffer = io.BytesIO()
    node["image"].export(buffer, format="tif")
    np.testing.assert_array_equal(tifffile.imread(io.BytesIO(buffer.getvalue())), DTYPE_ARRAYS["image"])
    node["image"].export(tmp_path / "image.png")
    png = np.asarray(Image.open(tmp_path / "image.png"))
    # the server rescales PNGs to the full 0..255 range: same picture, same ordering of values
    assert png.shape == (3, 4) and png.dtype == np.uint8
    assert png.min() == 0 and png.max() == 255
    np.testing.assert_array_equal(np.argsort(png, axis=None), np.argsort(DTYPE_ARRAYS["image"], axis=None))
    assert (np.diff(png.reshape(-1).astype(int)) > 0).all()


def test_export_json_and_octet_stream(node):
    import json

    buffer = io.BytesIO()
    node["image"].export(buffer, format="json")  # (the server fails to JSON-encode big-endian data: 500)
    assert json.loads(buffer.getvalue()) == DTYPE_ARRAYS["image"].tolist()
    buffer = io.BytesIO()
    node["chunked"].export(buffer, format="application/octet-stream")
    np.testing.assert_array_equal(np.frombuffer(buffer.getvalue(), dtype="float64").reshape(20, 30), CHUNKED)


@pytest.mark.parametrize("fmt", ["npy", "h5", "application/x-hdf5", "parquet", "xyz", "image/jpeg"])
def test_unsupported_export_format_is_value_error(node, tmp_path, fmt):
    with pytest.raises(ValueError):
        node["f8"].export(tmp_path / "out.bin", format=fmt)
    assert list(tmp_path.iterdir()) == []


def test_export_format_from_extension(node, tmp_path):
    with pytest.raises(ValueError):
        node["f8"].export(tmp_path / "out.npy")  # not offered by the server
    with pytest.raises(ValueError):
        node["f8"].export(tmp_path / "no_extension")
    node["f8"].export(tmp_path / "out.txt")
    np.testing.assert_array_equal(np.loadtxt(tmp_path / "out.txt", delimiter=","), F8)


# ================================================================ dask


def test_dask_client(tiled_server, arrays):
    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    try:
        chunked = client[arrays]["chunked"]
        assert type(chunked) is DaskArrayClient
        lazy = chunked.read()
        assert isinstance(lazy, da.Array)
        assert lazy.chunks == ((7, 7, 6), (11, 11, 8))
        np.testing.assert_array_equal(lazy.compute(), CHUNKED)
        np.testing.assert_array_equal(chunked.read((slice(None, None, -1), 3)).compute(), CHUNKED[::-1, 3])
        np.testing.assert_array_equal(chunked[2:5, ::-4].compute(), CHUNKED[2:5, ::-4])
        block = chunked.read_block((1, 2))
        assert isinstance(block, da.Array) and block.shape == (7, 8)
        np.testing.assert_array_equal(block.compute(), CHUNKED[7:14, 22:30])
        np.testing.assert_array_equal(chunked.read_block((0, 0), slice=(slice(None, None, -1), 0)).compute(),
                                      CHUNKED[0:7, 0][::-1])
        np.testing.assert_array_equal(np.asarray(chunked), CHUNKED)
        with pytest.raises(IndexError):
            chunked.read_block((3, 0))
        with pytest.raises(IndexError):
            chunked.read((20,))
        with pytest.raises(ValueError):
            chunked.read(slice(None, None, 0))
        zerod = client[arrays]["zerod"]
        assert float(zerod.read().compute()) == 3.5
    finally:
        client.context.close()


# ================================================================ large reads


def test_large_read_matches_reference(node, ref_node):
    ours_client = node["large"]
    assert ours_client.nbytes == 48 * 2**20
    before = _count(node)
    ours = ours_client.read()
    requests = _count(node) - before
    theirs = ref_node["large"].read()
    assert ours.shape == LARGE_SHAPE and ours.dtype == np.float64
    np.testing.assert_array_equal(ours, theirs)
    assert requests > 1  # split into concurrent parts
    # a large strided, reversed selection through the same path
    selection = (slice(None, None, -1), slice(3, None, 2))
    np.testing.assert_array_equal(ours_client[selection], theirs[selection])
    np.testing.assert_array_equal(ours_client.read_block((5, 0)), theirs[2560:3072])


# ================================================================ interop: written by tiled_core


INTEROP = {
    "f8": np.linspace(0, 1, 35).reshape(5, 7),
    "i2be": np.arange(-6, 6, dtype=">i2").reshape(3, 4),
    "u1": np.arange(7, dtype="uint8"),
    "bool": np.array([True, False, False]),
    "c16": np.array([1 + 2j, -3j]),
    "u5": np.array(["x", "hello", ""], dtype="<U5"),
    "dt64": np.array(["2020-02-02T02:02:02", "1999-12-31"], dtype="datetime64[ns]"),
    "zerod": np.array(-2, dtype="int32"),
    "empty": np.zeros((3, 0), dtype="float32"),
}


@pytest.mark.parametrize("name", list(INTEROP))
def test_written_by_tiled_core_read_by_reference(scratch, ref_scratch, name):
    value = INTEROP[name]
    written = scratch.write_array(value, key=name)
    assert written.shape == value.shape and written.dtype == value.dtype
    theirs = ref_scratch[name].read()
    assert theirs.dtype == value.dtype
    np.testing.assert_array_equal(theirs, value)
    _same(scratch[name].read(), value)


def test_multi_block_dask_upload_read_by_reference(scratch, ref_scratch, root):
    data = RNG.random((23, 17))
    irregular = da.from_array(data, chunks=((5, 10, 8), (9, 8)))
    written = scratch.write_array(irregular, key="irregular", metadata={"kind": "dask"})
    assert written.chunks[0][0] == 5  # made regular for the zarr store
    theirs = ref_scratch["irregular"]
    np.testing.assert_array_equal(theirs.read(), data)
    assert tuple(tuple(c) for c in theirs.structure().chunks) == written.chunks
    assert len(written.chunks[0]) * len(written.chunks[1]) > 1
    regular = da.from_array(data, chunks=(6, 5))
    before = _count(root)
    written = scratch.write_array(regular, key="regular")
    assert _count(root) - before == 1 + 4 * 4 + 1  # one POST, one PUT per block, one to clear the mark
    assert ref_scratch["regular"].structure().chunks == ((6, 6, 6, 5), (5, 5, 5, 2))
    np.testing.assert_array_equal(ref_scratch["regular"].read(), data)
    np.testing.assert_array_equal(ref_scratch["regular"].read_block((3, 3)), data[18:, 15:])


def test_write_and_write_block_read_by_reference(scratch, ref_scratch):
    client = scratch.write_array(da.zeros((6, 4), chunks=(3, 4)), key="w")
    client.write_block(np.full((3, 4), 7.0), (1, 0))
    expected = np.zeros((6, 4))
    expected[3:] = 7.0
    np.testing.assert_array_equal(ref_scratch["w"].read(), expected)
    client.write(np.arange(24.0).reshape(6, 4))
    np.testing.assert_array_equal(ref_scratch["w"].read(), np.arange(24.0).reshape(6, 4))
    with pytest.raises(ValueError):
        client.write(np.zeros((5, 4)))
    with pytest.raises(ValueError):
        client.write_block(np.zeros((2, 4)), (0, 0))
    with pytest.raises(IndexError):
        client.write_block(np.zeros((3, 4)), (2, 0))


def test_object_arrays_are_refused(scratch, root):
    before = _count(root)
    with pytest.raises(TypeError):
        scratch.write_array(np.array([{"a": 1}, None], dtype=object), key="obj")
    assert _count(root) == before


# ================================================================ expected shapes, request counts, compute


def test_every_read_names_the_shape_it_expects(node):
    from tiled_core.client import record_history

    chunked, zerod, big_endian = node["chunked"], node["zerod"], node["i2be"]
    with record_history() as history:
        chunked.read()
        chunked[...]
        chunked[2:5, ::-4]
        chunked[3]
        chunked.read_block((1, 2))
        chunked.read_block((0, 0), slice=(slice(None, None, -1), 0))
        big_endian.read_block((0, 0))  # sent as an /array/full slice (the declared byte order)
        zerod.read()
    params = [request.url.params for request in history.requests]
    assert [p["expected_shape"] for p in params] == ["20,30", "20,30", "3,8", "30", "7,8", "7", "4,5", "scalar"]
    assert "slice" not in params[0] and "slice" not in params[1]  # whole reads send no slice


def test_a_read_of_an_array_grown_elsewhere_is_refused_not_misread(scratch, ref_scratch):
    from tiled_core.transport import ServerError

    stale = scratch.write_array(np.arange(3.0), key="grows")
    ref_scratch["grows"].patch(np.array([3.0]), offset=3, extend=True)
    with pytest.raises(ServerError, match="expected"):
        stale.read()  # its structure still says (3,): the server refuses to send 4 items
    assert stale.refresh().shape == ref_scratch["grows"].shape
    np.testing.assert_array_equal(stale.read(), ref_scratch["grows"].read())


def test_fetch_count_is_the_number_of_requests_a_read_sends(tiled_server, arrays):
    client = from_uri(tiled_server.uri, api_key=tiled_server.api_key)
    try:
        chunked = client[arrays]["chunked"]
        assert chunked.fetch_count() == 1 and client[arrays]["empty"].fetch_count() == 0
        chunked.RESPONSE_BYTESIZE_LIMIT = 1000  # 4800 bytes in responses of at most 1000
        for selection in [None, (slice(2, 19), slice(None, None, -1)), (3,), (slice(0, 0),)]:
            before = _count(client)
            np.testing.assert_array_equal(chunked.read(selection), CHUNKED[selection if selection else ...])
            assert _count(client) - before == chunked.fetch_count(selection)
        assert chunked.fetch_count() > 1
    finally:
        client.context.close()


def test_dask_compute_and_its_fetch_count(tiled_server, arrays):
    from tiled_core.client import record_history

    client = from_uri(tiled_server.uri, "dask", api_key=tiled_server.api_key)
    try:
        chunked = client[arrays]["chunked"]
        with record_history() as history:
            result = chunked.compute()
        assert type(result) is np.ndarray
        np.testing.assert_array_equal(result, CHUNKED)
        assert len(history.requests) == chunked.fetch_count() == 1  # 4.8 kB in 9 chunks: read whole
        with record_history() as history:
            np.testing.assert_array_equal(chunked[3:9, 2].compute(), CHUNKED[3:9, 2])
        assert len(history.requests) == chunked.fetch_count((slice(3, 9), 2)) == 1
        assert history.requests[0].url.params["slice"] == "0:14,0:11"  # only the blocks the selection touches
    finally:
        client.context.close()


def test_dims_equal_the_names_as_a_list(node, ref_node):
    chunked = node["chunked"]
    assert chunked.dims == ("y", "x") and chunked.dims == ["y", "x"] == list(ref_node["chunked"].dims)
    assert chunked.dims != ["x", "y"] and node["f8"].dims is None
    assert chunked.structure() == ArrayStructure.from_json(chunked.structure().to_json())

"""Codec fuzzing (hypothesis): random values round-trip byte-exactly; hostile bytes are refused.

Every codec in ``tiled_core.codecs`` (octet-stream arrays, Arrow tables and
schemas, sparse COO, awkward buffer zips) and the transport's document decoder
are driven with generated inputs:

* round trips: encode, decode, and compare the *bytes* (NaN payloads, NaT,
  signed zeros and byte orders included), not just the values;
* hostile input: valid bodies truncated, bit-flipped, spliced or extended,
  and plain random bytes. A decoder must either raise ``MalformedResponse``
  or return an object of the declared shape/length that is internally valid;
  any other exception, a crash or a hang fails the test.

No server and no network. Runs are reproducible (``derandomize=True``) and
bounded (``max_examples``), with no per-example deadline (the CI box is small
and shared).
"""

from __future__ import annotations

import math

import awkward as ak
import msgpack
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, currently_in_test_context, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as nps

from tiled_core.codecs.array import decode_octet_stream, encode_octet_stream, expected_nbytes
from tiled_core.codecs.awkward import decode_awkward_zip, encode_buffers_zip, pack_awkward
from tiled_core.codecs.sparse import decode_coo_arrow, encode_coo_arrow
from tiled_core.codecs.table import decode_arrow, decode_dataframe, decode_schema, encode_arrow, encode_schema
from tiled_core.structures._array import _dtype_from_json, _dtype_from_numpy
from tiled_core.transport import MalformedResponse
from tiled_core.transport._decode import decode_document

FUZZ = settings(
    max_examples=50, deadline=None, derandomize=True, database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
HOSTILE = settings(FUZZ, max_examples=80)

pytestmark = pytest.mark.timeout(180)  # a hanging decoder fails instead of stalling CI


# -- shared helpers ------------------------------------------------------------------------------

def _rng(draw) -> np.random.Generator:
    """A numpy generator seeded by hypothesis: bulk random bytes without hypothesis' size limits."""
    return np.random.default_rng(draw(st.integers(0, 2**32 - 1)))


def _float_specials(size: int) -> list[int]:
    """Bit patterns of IEEE floats of ``size`` bytes that value comparisons hide or conversions alter."""
    exponent = {2: 5, 4: 8, 8: 11}[size]
    mantissa = size * 8 - 1 - exponent
    sign, ones, quiet = 1 << (size * 8 - 1), ((1 << exponent) - 1) << mantissa, 1 << (mantissa - 1)
    return [ones | 1, ones | quiet | 0x2A, sign | ones | quiet, sign, ones, sign | ones, 1]  # sNaN, NaN+payload, ...


def _raw_values(draw, dtype: np.dtype, count: int) -> bytes:
    """``count`` items of ``dtype`` as random bytes, with float specials (and NaT) mixed in."""
    rng = _rng(draw)
    if dtype.kind == "b":  # only 0 and 1 are booleans (Arrow keeps one bit of each)
        return rng.integers(0, 2, count, dtype="u1").tobytes()
    raw = bytearray(rng.bytes(dtype.itemsize * count))
    if dtype.kind in "fcmM" and count:
        unit = dtype.itemsize // 2 if dtype.kind == "c" else dtype.itemsize
        order = "big" if dtype.byteorder == ">" else "little"
        specials = [1 << (unit * 8 - 1)] if dtype.kind in "mM" else _float_specials(unit)  # NaT is int64 min
        for position in rng.choice(len(raw) // unit, size=rng.integers(0, len(raw) // unit + 1), replace=False):
            raw[position * unit:(position + 1) * unit] = int(rng.choice(specials)).to_bytes(unit, order)
    return bytes(raw)


@st.composite
def mangled(draw, body: bytes) -> bytes:
    """``body`` truncated, bit-flipped, spliced or extended; or unrelated random bytes."""
    how = draw(st.sampled_from(["truncate", "flip", "splice", "extend", "random"] if body else ["random"]))
    if how == "truncate":
        return body[:draw(st.integers(0, len(body) - 1))]
    if how == "flip":
        flipped = bytearray(body)
        for bit in draw(st.lists(st.integers(0, len(body) * 8 - 1), min_size=1, max_size=8)):
            flipped[bit // 8] ^= 1 << (bit % 8)
        return bytes(flipped)
    if how == "splice":
        start = draw(st.integers(0, len(body)))
        stop = draw(st.integers(start, min(len(body), start + 64)))
        return body[:start] + draw(st.binary(max_size=64)) + body[stop:]
    if how == "extend":
        return body + draw(st.binary(min_size=1, max_size=64))
    return draw(st.binary(max_size=2 * len(body) + 64))


def _decoded_or_refused(decode, body):
    """``decode(body)``, or None when it raises MalformedResponse (anything else fails the test)."""
    try:
        decoded = decode(body)
    except MalformedResponse as error:
        assert str(error)  # a message a person can act on
        decoded = None
    if currently_in_test_context():  # counted in --hypothesis-show-statistics
        event("decoded" if decoded is not None else "refused")
    return decoded


def _wire_dtype(dtype: np.dtype) -> np.dtype:
    """``dtype`` as a client rebuilds it from the structure JSON (what decoding uses)."""
    return _dtype_from_json(orjson.loads(orjson.dumps(_dtype_from_numpy(dtype).to_json()))).to_numpy_dtype()


# -- arrays: application/octet-stream ------------------------------------------------------------

SCALAR_DTYPES = st.one_of(
    nps.boolean_dtypes(),
    nps.integer_dtypes(endianness="?"),
    nps.unsigned_integer_dtypes(endianness="?"),
    nps.floating_dtypes(endianness="?", sizes=(16, 32, 64)),
    nps.complex_number_dtypes(endianness="?"),
    nps.datetime64_dtypes(endianness="?"),
    nps.timedelta64_dtypes(endianness="?"),
    nps.byte_string_dtypes(min_len=1, max_len=8),
    nps.unicode_string_dtypes(endianness="?", min_len=1, max_len=4),
)


@st.composite
def record_dtypes(draw) -> np.dtype:
    """Structured dtypes of 1-3 named fields, some of them sub-arrays (no titles: Tiled has none)."""
    names = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=3, unique=True))
    shapes = st.none() | nps.array_shapes(max_dims=2, max_side=2)
    fields = [(name, draw(SCALAR_DTYPES), draw(shapes)) for name in names]
    return np.dtype([(n, d, s) if s else (n, d) for n, d, s in fields])


ARRAY_DTYPES = st.one_of(SCALAR_DTYPES, record_dtypes())
SHAPES = nps.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=4)


@FUZZ
@given(dtype=ARRAY_DTYPES, shape=SHAPES, data=st.data())
def test_array_bit_patterns_round_trip(dtype, shape, data):
    wire = _wire_dtype(dtype)
    assert wire == dtype
    raw = _raw_values(data.draw, dtype, math.prod(shape))
    array = np.frombuffer(raw, dtype=dtype).reshape(shape)

    body = encode_octet_stream(array, wire)
    assert bytes(body) == raw
    decoded = decode_octet_stream(body, wire, shape)
    assert decoded.shape == shape and decoded.dtype == dtype
    assert decoded.tobytes() == raw


@FUZZ
@given(dtype=SCALAR_DTYPES, shape=nps.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=5), data=st.data())
def test_array_non_contiguous_and_swapped_round_trip(dtype, shape, data):
    array = np.frombuffer(_raw_values(data.draw, dtype, math.prod(shape)), dtype=dtype).reshape(shape)
    steps = data.draw(st.tuples(*[st.sampled_from([1, 2, -1, -2])] * len(shape)))
    view = array[tuple(slice(None, None, s) for s in steps)]
    if data.draw(st.booleans()):
        view = view.T
    expected = np.ascontiguousarray(view)

    body = encode_octet_stream(view)
    assert bytes(body) == expected.tobytes()
    assert decode_octet_stream(body, dtype, view.shape).tobytes() == expected.tobytes()

    # Sent in the other byte order (what a write to a node of that dtype does): a pure byte swap.
    swapped = dtype.newbyteorder()
    body = encode_octet_stream(view, swapped)
    assert bytes(body) == expected.byteswap().tobytes()
    decoded = decode_octet_stream(body, swapped, view.shape)
    assert decoded.astype(dtype).tobytes() == expected.tobytes()


@HOSTILE
@given(dtype=ARRAY_DTYPES, shape=SHAPES, data=st.data())
def test_array_decoder_refuses_wrong_sizes(dtype, shape, data):
    valid = _raw_values(data.draw, dtype, math.prod(shape))
    body = data.draw(mangled(valid))
    decoded = _decoded_or_refused(lambda b: decode_octet_stream(b, dtype, shape), body)
    assert (decoded is None) == (len(body) != expected_nbytes(dtype, shape))
    if decoded is not None:
        assert decoded.shape == shape and decoded.dtype == dtype and decoded.tobytes() == body


# -- tables: Arrow IPC ---------------------------------------------------------------------------

_TEXT = st.text(max_size=12)  # any code point but surrogates, which UTF-8 (and Arrow) cannot carry
_COLUMN_TYPES = {
    "int8": (pa.int8(), st.integers(-(2**7), 2**7 - 1)),
    "int64": (pa.int64(), st.integers(-(2**63), 2**63 - 1)),
    "uint16": (pa.uint16(), st.integers(0, 2**16 - 1)),
    "uint64": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float32": (pa.float32(), st.floats(width=32)),
    "float64": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.string(), _TEXT),
    "large_string": (pa.large_string(), _TEXT),
    "binary": (pa.binary(), st.binary(max_size=12)),
    "timestamp": (pa.timestamp("us"), st.integers(-(2**62), 2**62)),
    "timestamp_tz": (pa.timestamp("ns", tz="Europe/Paris"), st.integers(-(2**62), 2**62)),
    "date32": (pa.date32(), st.integers(-(2**20), 2**20)),
    "duration": (pa.duration("ms"), st.integers(-(2**62), 2**62)),
    "list": (pa.list_(pa.int32()), st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=4)),
    "struct": (pa.struct([("a", pa.float64()), ("b", pa.string())]),
               st.fixed_dictionaries({"a": st.none() | st.floats(), "b": st.none() | _TEXT})),
    "dictionary": (pa.dictionary(pa.int8(), pa.string()), st.sampled_from(["x", "yy", "été", ""])),
}


def _column(kind: str, values: list) -> pa.Array:
    arrow_type, _ = _COLUMN_TYPES[kind]
    if pa.types.is_timestamp(arrow_type) or pa.types.is_date(arrow_type) or pa.types.is_duration(arrow_type):
        storage = pa.int32() if pa.types.is_date32(arrow_type) else pa.int64()
        return pa.array(values, type=storage).cast(arrow_type)
    if pa.types.is_dictionary(arrow_type):
        return pa.array(values, type=pa.string()).dictionary_encode().cast(arrow_type)
    return pa.array(values, type=arrow_type)


@st.composite
def arrow_tables(draw, max_rows: int = 12) -> pa.Table:
    """Tables of 0-6 columns of mixed types (nulls in any of them), 0-``max_rows`` rows, unicode names."""
    names = draw(st.lists(st.text(max_size=6), max_size=6, unique=True))
    rows = draw(st.integers(0, max_rows))
    columns = []
    for _ in names:
        kind = draw(st.sampled_from(sorted(_COLUMN_TYPES)))
        element = _COLUMN_TYPES[kind][1]
        columns.append(_column(kind, draw(st.lists(st.none() | element, min_size=rows, max_size=rows))))
    metadata = draw(st.none() | st.dictionaries(_TEXT, _TEXT, max_size=2))
    return pa.table(columns, names=names, metadata=metadata) if names else pa.table({}, metadata=metadata)


def _stream_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _same_table(decoded: pa.Table, table: pa.Table) -> None:
    assert decoded.schema.equals(table.schema, check_metadata=True)
    assert decoded.num_rows == table.num_rows
    for name, ours in zip(table.column_names, decoded.columns):
        # Buffer by buffer: NaN payloads and the bytes behind nulls must survive too.
        original = table.column(name).combine_chunks() if table.num_rows else table.column(name)
        ours = ours.combine_chunks() if decoded.num_rows else ours
        assert ours.equals(original) or _buffers(ours) == _buffers(original)


def _buffers(column) -> list[bytes | None]:
    chunks = column.chunks if isinstance(column, pa.ChunkedArray) else [column]
    return [b.to_pybytes() if b is not None else None for chunk in chunks for b in chunk.buffers()]


@FUZZ
@given(table=arrow_tables(), stream=st.booleans())
def test_arrow_tables_round_trip(table, stream):
    body = _stream_bytes(table) if stream else bytes(encode_arrow(table))
    decoded = decode_arrow(body)
    _same_table(decoded, table)
    # Decoded and encoded again, the file is the same to the byte.
    assert bytes(encode_arrow(decoded)) == bytes(encode_arrow(table))


_FRAME_DTYPES = ["int64", "uint8", "float32", "float64", "bool", "datetime64[ns]", "timedelta64[us]"]


@st.composite
def frames(draw):
    """DataFrames of 0-5 columns (numbers with any bit pattern, times with NaT, text with None), 0-10 rows."""
    rows = draw(st.integers(0, 10))
    columns = {}
    for name in draw(st.lists(st.text(max_size=5), max_size=5, unique=True)):
        kind = draw(st.sampled_from(_FRAME_DTYPES + ["text"]))
        if kind == "text":
            columns[name] = pd.Series(draw(st.lists(st.none() | _TEXT, min_size=rows, max_size=rows)), dtype="str")
        else:
            columns[name] = np.frombuffer(_raw_values(draw, np.dtype(kind), rows), dtype=kind)
    index = draw(st.sampled_from(["range", "text", "int64"]))
    if index == "text":
        index = pd.Index(draw(st.lists(_TEXT, min_size=rows, max_size=rows, unique=True)), dtype="str")
    elif index == "int64":
        index = pd.Index(_rng(draw).choice(2**62, rows, replace=False), dtype="int64")
    else:
        index = pd.RangeIndex(rows)
    return pd.DataFrame({name: pd.Series(np.asarray(c), index=index) for name, c in columns.items()}, index=index)


@FUZZ
@given(frame=frames())
def test_dataframes_round_trip(frame):
    decoded = decode_dataframe(encode_arrow(frame))
    # A RangeIndex travels as a column (what the server wants) and comes back as int64 ("equiv").
    pd.testing.assert_frame_equal(decoded, frame, check_exact=True, check_index_type="equiv")
    for name, column in frame.items():
        if column.dtype.kind in "iufmM":  # every value bit for bit (-0.0, NaT), ...
            sent, got = column.to_numpy(), decoded[name].to_numpy()
            if sent.dtype.kind == "f":  # ... but NaN: pandas calls it missing, so NaN payloads go as null
                assert (np.isnan(sent) == np.isnan(got)).all()
                sent, got = sent[~np.isnan(sent)], got[~np.isnan(got)]
            assert got.tobytes() == sent.tobytes()


@FUZZ
@given(table=arrow_tables(max_rows=0))
def test_arrow_schemas_round_trip(table):
    assert decode_schema(encode_schema(table.schema)).equals(table.schema, check_metadata=True)


@HOSTILE
@given(table=arrow_tables(), stream=st.booleans(), data=st.data())
def test_arrow_decoder_refuses_garbled_bodies(table, stream, data):
    valid = _stream_bytes(table) if stream else bytes(encode_arrow(table))
    decoded = _decoded_or_refused(decode_arrow, data.draw(mangled(valid)))
    if decoded is not None:
        decoded.validate(full=True)
        frame = _decoded_or_refused(decode_dataframe, encode_arrow(decoded))
        assert frame is None or len(frame) == decoded.num_rows


@pytest.mark.parametrize("form", ["file", "stream", "schema"])
def test_arrow_decoders_refuse_field_names_that_are_not_utf8(form):
    table = pa.table({"é": [1]})
    if form == "schema":
        body = bytearray(table.schema.serialize().to_pybytes())
    else:
        body = bytearray(_stream_bytes(table) if form == "stream" else bytes(encode_arrow(table)))
    for at in _find_all(body, "é".encode()):
        body[at + 1] = ord("A")  # a lead byte without its continuation
    if form == "schema":
        import base64

        body = encode_schema(pa.schema([])).split(",")[0] + "," + base64.b64encode(body).decode()
    with pytest.raises(MalformedResponse, match="utf-8"):
        (decode_schema if form == "schema" else decode_arrow)(body if form == "schema" else bytes(body))


@HOSTILE
@given(table=arrow_tables(max_rows=0), data=st.data())
def test_arrow_schema_decoder_refuses_garbled_uris(table, data):
    uri = encode_schema(table.schema)
    prefix = uri.index(",") + 1
    raw = data.draw(mangled(uri[prefix:].encode("ascii")))
    uri = uri[:prefix] + raw.decode("latin-1")
    schema = _decoded_or_refused(decode_schema, uri)
    assert schema is None or len(schema.names) == len(schema)


# -- sparse: COO as an Arrow table ---------------------------------------------------------------

SPARSE_DTYPES = st.one_of(
    nps.boolean_dtypes(), nps.integer_dtypes(endianness="?"), nps.unsigned_integer_dtypes(),
    nps.floating_dtypes(endianness="?", sizes=(16, 32, 64)),
    # The time units Arrow has (others are refused before upload: see the test below).
    st.sampled_from([f"{o}{t}" for o in "<>" for t in ("M8[D]", "M8[s]", "M8[ms]", "m8[us]", "m8[ns]")]).map(np.dtype),
)


@st.composite
def coo_parts(draw):
    """(coords, data, shape): unique random coordinates (sorted or not) and random values."""
    shape = draw(nps.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6))
    dtype = draw(SPARSE_DTYPES)
    size = math.prod(shape)
    rng = _rng(draw)
    nnz = int(rng.integers(0, size + 1))
    linear = rng.permutation(size)[:nnz]
    if draw(st.booleans()):
        linear.sort()
    coords = np.array(np.unravel_index(linear, shape) if shape else np.zeros((0, nnz)),
                      dtype=draw(st.sampled_from(["int64", ">i4", "uint16"])))
    data = np.frombuffer(_raw_values(draw, dtype, nnz), dtype=dtype)
    if dtype.kind == "M" and np.datetime_data(dtype)[0] == "D":  # within Arrow's date32 (see below)
        days = data.astype("M8[D]").view("i8")
        data = np.where(np.isnat(data), days, days % 2**31 - 2**30).view("M8[D]").astype(dtype)
    return coords, data, shape


@FUZZ
@given(parts=coo_parts())
def test_sparse_round_trip(parts):
    coords, data, shape = parts
    decoded = decode_coo_arrow(encode_coo_arrow(coords, data), shape)
    native = data.dtype.newbyteorder("=")  # Arrow holds native byte order only
    assert decoded.shape == shape and decoded.dtype == native and decoded.nnz == len(data)
    order = np.lexsort(coords[::-1]) if len(shape) else np.arange(len(data))  # canonical: row-major order
    np.testing.assert_array_equal(decoded.coords, coords[:, order])
    assert decoded.data.tobytes() == data[order].astype(native).tobytes()


@pytest.mark.parametrize("dtype", ["complex128", "M8[h]", "m8[D]", "M8[2s]", "V8"])
def test_sparse_data_arrow_cannot_hold_is_refused_before_encoding(dtype):
    with pytest.raises(TypeError, match="cannot be sent"):
        encode_coo_arrow(np.array([[0]]), np.zeros(1, dtype))


@pytest.mark.parametrize("days", [2**31, -(2**31) - 1])
def test_sparse_dates_beyond_date32_are_refused_before_encoding(days):
    dates = np.array(["NaT", days, 0], dtype="M8[D]")
    with pytest.raises(ValueError, match="date32"):
        encode_coo_arrow(np.array([[0, 1, 2]]), dates)
    assert decode_coo_arrow(encode_coo_arrow(np.array([[0, 2]]), dates[[0, 2]]), (3,)).data.tobytes() == \
        dates[[0, 2]].tobytes()


@HOSTILE
@given(parts=coo_parts(), data=st.data())
def test_sparse_decoder_refuses_garbled_bodies(parts, data):
    coords, values, shape = parts
    body = data.draw(mangled(bytes(encode_coo_arrow(coords, values))))
    decoded = _decoded_or_refused(lambda b: decode_coo_arrow(b, shape), body)
    if decoded is not None:
        assert decoded.shape == shape
        assert ((decoded.coords >= 0) & (decoded.coords < np.array(shape).reshape(-1, 1))).all()


_SPARSE_COLUMNS = {
    "int": (pa.int64(), st.integers(-3, 9)),
    "uint": (pa.uint64(), st.integers(0, 2**64 - 1)),
    "float": (pa.float64(), st.floats()),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.string(), _TEXT),
}


@HOSTILE
@given(
    shape=nps.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=6),
    names=st.lists(st.sampled_from(["dim0", "dim1", "dim2", "data", "other"]), max_size=5, unique=True),
    data=st.data(),
)
def test_sparse_decoder_refuses_inconsistent_tables(shape, names, data):
    """Well-formed Arrow, wrong content: missing columns, bad coordinate types or ranges, nulls."""
    rows = data.draw(st.integers(0, 6))
    columns = {}
    for name in names:
        arrow_type, element = _SPARSE_COLUMNS[data.draw(st.sampled_from(sorted(_SPARSE_COLUMNS)))]
        columns[name] = pa.array(data.draw(st.lists(st.none() | element, min_size=rows, max_size=rows)), arrow_type)
    decoded = _decoded_or_refused(lambda b: decode_coo_arrow(b, shape), encode_arrow(pa.table(columns)))
    if decoded is not None:
        assert decoded.shape == shape
        assert ((decoded.coords >= 0) & (decoded.coords < np.array(shape).reshape(-1, 1))).all()


# -- awkward: buffers in a zip ---------------------------------------------------------------------

_AWKWARD_LEAVES = [st.integers(-(2**63), 2**63 - 1), st.floats(), st.booleans(), _TEXT]


@st.composite
def awkward_values(draw, depth: int = 0):
    """A strategy for one element of a randomly drawn awkward type (lists, options, records, unions)."""
    kinds = ["leaf", "union"] + (["list", "option", "record", "regular"] if depth < 3 else [])
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        return draw(st.sampled_from(_AWKWARD_LEAVES))
    if kind == "union":
        return st.one_of(*draw(st.lists(st.sampled_from(_AWKWARD_LEAVES), min_size=2, max_size=3, unique_by=id)))
    inner = draw(awkward_values(depth + 1))
    if kind == "list":
        return st.lists(inner, max_size=4)
    if kind == "regular":
        size = draw(st.integers(0, 3))
        return st.lists(inner, min_size=size, max_size=size)
    if kind == "option":
        return st.none() | inner
    names = draw(st.lists(st.text(min_size=1, max_size=4), min_size=1, max_size=3, unique=True))  # "" confuses from_iter
    return st.fixed_dictionaries({name: draw(awkward_values(depth + 1)) if i else inner for i, name in enumerate(names)})


@st.composite
def awkward_arrays(draw):
    element = draw(awkward_values())
    values = draw(st.lists(element, max_size=8))
    array = ak.Array(values) if values else ak.Array([])
    if draw(st.booleans()) and array.ndim > 1 and values:
        try:  # a RegularArray where every row has the same length
            array = ak.to_regular(array, axis=1)
        except ValueError:
            pass
    if draw(st.booleans()) and len(array) > 1:
        array = array[::-2]  # unpacked: only what the view shows may be sent
    return array


def _packed(array):
    form, length, buffers = pack_awkward(array)
    return form, length, {key: bytes(memoryview(np.ascontiguousarray(b)).cast("B")) for key, b in buffers.items()}


@FUZZ
@given(array=awkward_arrays())
def test_awkward_round_trip(array):
    form, length, buffers = _packed(array)
    decoded = decode_awkward_zip(encode_buffers_zip(buffers), form, length)
    assert len(decoded) == length == len(array)
    assert decoded.type == array.type
    assert _packed(decoded) == (form, length, buffers)  # same form, same bytes in every buffer


def _deflated(buffers: dict[str, bytes]) -> bytes:
    import io
    import zipfile

    file = io.BytesIO()
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for key, raw in buffers.items():
            archive.writestr(key, raw)
    return file.getvalue()


def _valid_awkward(decoded, length: int) -> None:
    assert len(decoded) == length
    assert ak.validity_error(decoded) == ""
    if length < 10_000:  # (a regular array of empty lists may rightly be 2**40 long)
        ak.to_list(decoded)  # every value reachable without an error


@HOSTILE
@given(array=awkward_arrays(), deflate=st.booleans(), data=st.data())
def test_awkward_decoder_refuses_garbled_zips(array, deflate, data):
    form, length, buffers = _packed(array)
    body = data.draw(mangled(_deflated(buffers) if deflate else encode_buffers_zip(buffers)))
    decoded = _decoded_or_refused(lambda b: decode_awkward_zip(b, form, length), body)
    if decoded is not None:
        _valid_awkward(decoded, length)


#: Zip header fields by signature: (offset from the signature, width in bytes).
_ZIP_FIELDS = {
    b"PK\x03\x04": [(4, 2), (6, 2), (8, 2), (14, 4), (18, 4), (22, 4), (26, 2), (28, 2)],  # local header
    b"PK\x01\x02": [(4, 2), (6, 2), (8, 2), (10, 2), (16, 4), (20, 4), (24, 4), (28, 2), (30, 2), (32, 2),
                     (34, 2), (42, 4)],  # central directory entry
    b"PK\x05\x06": [(4, 2), (6, 2), (8, 2), (10, 2), (12, 4), (16, 4), (20, 2)],  # end of central directory
}


@HOSTILE
@given(array=awkward_arrays(), deflate=st.booleans(), data=st.data())
def test_awkward_decoder_refuses_forged_zip_headers(array, deflate, data):
    """One header field (version, flags, method, CRC, sizes, lengths, offsets) set to another value."""
    form, length, buffers = _packed(array)
    body = bytearray(_deflated(buffers) if deflate else encode_buffers_zip(buffers))
    places = [(at, field) for signature, fields in _ZIP_FIELDS.items()
              for at in _find_all(body, signature) for field in fields]
    at, (offset, width) = data.draw(st.sampled_from(places))
    value = data.draw(st.sampled_from([0, 1, 2**(8 * width) - 1]) | st.integers(0, 2**(8 * width) - 1))
    body[at + offset:at + offset + width] = value.to_bytes(width, "little")
    decoded = _decoded_or_refused(lambda b: decode_awkward_zip(b, form, length), bytes(body))
    if decoded is not None:
        _valid_awkward(decoded, length)


@pytest.mark.parametrize("deflate", [False, True])
@pytest.mark.parametrize("flags", [0x1, 0x8, 0x40, 0x800, 0xFFFF])
def test_awkward_decoder_checks_entry_flags(flags, deflate):
    """Encrypted, data-descriptor, strong-encryption, UTF-8 and all flags set in the central directory."""
    form, length, buffers = _packed(ak.Array([[1.5, 2.5], [], [3.5]]))
    body = bytearray(_deflated(buffers) if deflate else encode_buffers_zip(buffers))
    for at in _find_all(body, b"PK\x01\x02"):
        body[at + 8:at + 10] = flags.to_bytes(2, "little")
    decoded = _decoded_or_refused(lambda b: decode_awkward_zip(b, form, length), bytes(body))
    assert decoded is None if flags & 0x41 else decoded.tolist() == [[1.5, 2.5], [], [3.5]]


def _find_all(body: bytes, signature: bytes) -> list[int]:
    found, at = [], body.find(signature)
    while at >= 0:
        found.append(at)
        at = body.find(signature, at + 1)
    return found


@HOSTILE
@given(size=st.integers(1, 400), data=st.data())
def test_awkward_decoder_refuses_corrupt_deflate_streams(size, data):
    """Bits flipped inside a compressed entry (not just its headers)."""
    form, length, buffers = _packed(ak.Array(_rng(data.draw).integers(0, 50, size)))
    body = bytearray(_deflated(buffers))
    start, stop = 30 + len("node0-data"), max(41, len(body) - 78)  # past the local header, before the directory
    for bit in data.draw(st.lists(st.integers(start * 8, stop * 8 - 1), min_size=1, max_size=4)):
        body[bit // 8] ^= 1 << (bit % 8)
    decoded = _decoded_or_refused(lambda b: decode_awkward_zip(b, form, length), bytes(body))
    if decoded is not None:
        _valid_awkward(decoded, length)


@HOSTILE
@given(array=awkward_arrays(), data=st.data())
def test_awkward_decoder_refuses_inconsistent_buffers(array, data):
    """A sound zip whose buffers contradict the form: bad offsets/indices, short buffers, wrong length."""
    form, length, buffers = _packed(array)
    if buffers:
        key = data.draw(st.sampled_from(sorted(buffers)))
        buffers[key] = data.draw(mangled(buffers[key]))
    length = data.draw(st.sampled_from([length, length + 1, max(length - 1, 0), 2**40]))
    decoded = _decoded_or_refused(lambda b: decode_awkward_zip(b, form, length), encode_buffers_zip(buffers))
    if decoded is not None:
        _valid_awkward(decoded, length)


# -- documents: msgpack and JSON (the transport's one decoder) -------------------------------------

_DOCUMENTS = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats() | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=20,
)


def _comparable(value) -> bool:
    """No NaN or infinity inside (JSON writes them as null; NaN never equals itself)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(_comparable(v) for v in value)
    if isinstance(value, dict):
        return all(_comparable(v) for v in value.values())
    return True


@HOSTILE
@given(document=_DOCUMENTS, media=st.sampled_from(["application/x-msgpack", "application/json"]), data=st.data())
def test_document_decoder_refuses_garbled_bodies(document, media, data):
    valid = orjson.dumps(document) if media == "application/json" else msgpack.packb(document)
    decoded = decode_document(valid, media, url="fuzz")
    assert decoded == document or not _comparable(document)
    _decoded_or_refused(lambda b: decode_document(b, media, url="fuzz"), data.draw(mangled(valid)))

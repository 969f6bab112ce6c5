"""Composite containers (the ``composite`` spec): arrays and table columns in one namespace.

A composite node is a container whose children ("parts") are arrays,
sparse, awkward or ragged arrays, bytes and tables, with no nested
containers. Its client shows the arrays and *the columns of its tables*
side by side, under one set of names that the server and this client keep
free of collisions: ``composite["temperature"]`` is an array part or a
table's column, whichever holds that name. The parts themselves (tables
included) are reached through ``composite.base`` (also ``.parts``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from .base import BaseClient
from .container import ITEM_FIELDS, Container

__all__ = ["CompositeClient"]

#: Listing fields without metadata (the parts' metadata is not needed to name them).
_CONTENT_FIELDS = tuple(f for f in ITEM_FIELDS if f != "metadata")


def _source_columns(data_source) -> list[str]:
    """The column names a table data source declares (a JSON dict or a tiled DataSource object)."""
    structure = data_source.get("structure") if isinstance(data_source, dict) else getattr(data_source, "structure", None)
    if structure is None:
        return []
    columns = structure.get("columns") if isinstance(structure, dict) else getattr(structure, "columns", None)
    return list(columns or [])


class CompositeClient(Container):
    """A composite container: its arrays and its tables' columns as one flat Mapping.

    - ``keys()`` are the array parts' keys and the tables' column names, in
      the parts' order (each table's columns in place); ``c[name]`` gives
      that array's client, or the column as an array client. A table's own
      key is not a key here (KeyError): use ``c.base[table_key]``.
    - ``base`` (alias ``parts``): the same node as a plain :class:`Container`
      of its parts, for tables, listing parts, and per-part metadata.
    - ``read(variables=None, dim0=None)``: the contents as an
      ``xarray.Dataset``.
    - Writes (``write_array``, ``write_table``, ``create_appendable_table``,
      ``new``) refuse, with ValueError before any request that creates
      anything, a key or a table column that is already a name here; nested
      containers are refused (NotImplementedError).
    """

    def __repr__(self) -> str:
        return f"<CompositeClient {self.path or '/'}>"

    # -- the parts ---------------------------------------------------------
    @property
    def base(self) -> Container:
        """This node as a plain Container of its parts (tables as tables)."""
        return Container(self._context, item=self._item, structure_clients=self._structure_clients,
                         queries=self._queries, sorting=self._sorting, include_data_sources=self._include_data_sources)

    @property
    def parts(self) -> Container:
        """The same as ``base``: this node as a Container of its parts."""
        return self.base

    def get_contents(self, maxlen: int | None = None, include_metadata: bool = False) -> dict[str, dict]:
        """The parts' node resources, ``{part key: item}``, in the server's order.

        ``maxlen`` stops after that many parts; ``include_metadata`` adds each
        part's metadata (left out by default, as the reference client does).
        """
        if maxlen is not None and (isinstance(maxlen, bool) or not isinstance(maxlen, int) or maxlen < 0):
            raise ValueError(f"maxlen is a non-negative integer or None, not {maxlen!r}")
        fields = ITEM_FIELDS if include_metadata else _CONTENT_FIELDS
        return {key: client._item for key, client in self._iterate(0, maxlen, 1, None, fields=fields, flat=False)}

    def _names(self) -> dict[str, tuple[str, dict]]:
        """``{flat name: (part key, part item)}``: array parts by key, table columns by name."""
        names: dict[str, tuple[str, dict]] = {}
        for key, item in self.get_contents().items():
            attributes = item["attributes"]
            if attributes.get("structure_family") == "table":
                for column in (attributes.get("structure") or {}).get("columns") or []:
                    names[column] = (key, item)
            else:
                names[key] = (key, item)
        return names

    # -- Mapping over the flat names ---------------------------------------
    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._names()))

    def __contains__(self, key) -> bool:
        return isinstance(key, str) and key in self._names()

    def __getitem__(self, key) -> BaseClient:
        if isinstance(key, tuple):
            key = "/".join(key)
        if not isinstance(key, str):
            raise TypeError(f"keys are strings, not {type(key).__name__}")
        return self._lookup(key, self._names())

    def _lookup(self, name: str, names: dict) -> BaseClient:
        if name not in names:
            raise KeyError(f"{name!r} is not an array or a table column of the composite node {self.path or '/'}; "
                           f"a table itself is reached as .base[{name!r}]")
        part, item = names[name]
        if item["attributes"].get("structure_family") != "table":
            return self._client(item)  # from the listing: no further request
        return self.base[f"{part}/{name}"]  # the server serves a column as an array

    def _iterate(self, start, stop, direction, page_size, *, keys_only: bool = False, fields=None, flat: bool = True,
                 inlined: bool = True):
        if not flat:
            yield from super()._iterate(start, stop, direction, page_size, keys_only=keys_only, fields=fields,
                                        inlined=inlined)
            return
        names = self._names()
        ordered = list(names) if direction > 0 else list(reversed(names))
        for name in ordered[start:stop]:
            yield name if keys_only else (name, self._lookup(name, names))

    # -- reading -----------------------------------------------------------
    def read(self, variables: Iterable[str] | None = None, dim0: str | None = None):
        """The contents as an ``xarray.Dataset``: every array and table column, or only ``variables``.

        Arrays keep their declared ``dims``; otherwise, when the arrays (and
        columns) share one length, their first dimension is ``dim0``
        (default ``"dim0"``) and further ones ``"<name>_dim<i>"``; when they
        do not, every dimension is ``"<name>_dim<i>"`` and giving ``dim0``
        is a ValueError. Awkward parts are converted to numpy (ValueError when
        they are not regular); a jagged ragged part is padded with NaN (with a
        warning); bytes parts are left out, and naming one is a ValueError.
        In Dask mode arrays stay lazy; tables are read (they must be, to know
        their columns' lengths).
        """
        from .reading._composite_read import read_dataset

        if variables is not None:
            if isinstance(variables, str):
                raise TypeError("variables is a list of names, not a string")
            variables = list(variables)
        return read_dataset(self.base, self.get_contents(), variables, dim0)

    # -- writing -----------------------------------------------------------
    def _check_new_names(self, key: str | None, columns: Iterable[str] = ()) -> None:
        names = self._names()
        if key is not None and key in names:
            raise ValueError(f"key {key!r} already exists in the composite node {self.path or '/'}")
        clashes = sorted(set(columns).intersection(names))
        if clashes:
            raise ValueError(f"table columns {clashes} are already names in the composite node {self.path or '/'}; "
                             "a composite node's arrays and columns share one namespace")

    def new(self, structure_family, data_sources, *, key=None, metadata=None, specs=None, access_tags=None):
        """Create a part (low level; see ``Container.new``), refusing names already used here."""
        family = getattr(structure_family, "value", structure_family)
        if family == "container":
            raise NotImplementedError("a composite node cannot contain containers")
        columns = [c for source in data_sources or [] for c in _source_columns(source)] if family == "table" else []
        self._check_new_names(key, columns)
        return super().new(structure_family, data_sources, key=key, metadata=metadata, specs=specs,
                           access_tags=access_tags)

    def create_appendable_table(self, schema, npartitions: int = 1, **kwargs):
        """As ``Container.create_appendable_table``, refusing column names already used here."""
        self._check_new_names(None, list(getattr(schema, "names", []) or []))
        return super().create_appendable_table(schema, npartitions, **kwargs)

    def create_container(self, key=None, **kwargs):
        """Refused: composite nodes contain no containers, by design."""
        raise NotImplementedError("a composite node cannot contain containers")

    def delete_contents(self, keys=None, recursive: bool = False, external_only: bool = True) -> "CompositeClient":
        """Delete parts (arrays or whole tables; not single columns) by key, or every part.

        A key that is not a part (a column, say) raises KeyError before anything is deleted.
        """
        parts = list(self.base.keys())
        if keys is None:
            keys = parts
        elif isinstance(keys, str):
            keys = [keys]
        else:
            keys = list(keys)
        unknown = [k for k in keys if k not in parts]
        if unknown:
            raise KeyError(f"{unknown} are not parts of the composite node {self.path or '/'}; columns cannot be "
                           "deleted one by one (delete their table, or use .base)")
        self.base.delete_contents(keys, recursive=recursive, external_only=external_only)
        return self


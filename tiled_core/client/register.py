"""Register a directory of existing files (or one file) into a catalog, as ``tiled.client.register`` does.

    from tiled_core.client.register import register
    await register(client, "/data/beamline", prefix="/raw")

The files are inspected here (structure, mimetype, metadata) and registered
as external data: the server reads them in place, so it must be allowed to
read that directory (``readable_storage``). Walking follows the reference
client: each directory becomes a container; ``walkers`` (default: group
numbered image files into sequences, then one node per file) decide what each
file becomes; files no walker handles are skipped with a log message. Keys
come from file names (``key_from_filename``, default :func:`strip_suffixes`);
when two files give the same key, neither is registered (a warning is logged)
until the collision is resolved.

``Container.register(*uris)`` registers exactly the given file(s) as one node.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import logging
from collections.abc import Callable, Mapping
from functools import partial
from pathlib import Path
from typing import Any

import anyio

from ..structures import Asset, DataSource, Management
from ..transport import Conflict
from .registering._files import mimetype_for_uris, structure_json
from .registering._inspectors import DEFAULT_INSPECTORS_BY_MIMETYPE
from .registering._mimetypes import (
    DEFAULT_MIMETYPES_BY_FILE_EXT,
    IMG_SEQUENCE_EMPTY_NAME_ROOT,
    IMG_SEQUENCE_MIMETYPES,
    IMG_SEQUENCE_STEM_PATTERNS,
    mimetype_from_extension,
)
from .registering._uris import ensure_uri

__all__ = [
    "DEFAULT_MIMETYPES_BY_FILE_EXT", "DEFAULT_REGISTRATION_ADAPTERS_BY_MIMETYPE", "DEFAULT_WALKERS",
    "IMG_SEQUENCE_EMPTY_NAME_ROOT", "IMG_SEQUENCE_MIMETYPES", "IMG_SEQUENCE_STEM_PATTERNS", "Settings",
    "create_node_or_drop_collision", "default_filter", "dict_or_none", "group_image_sequences", "identity",
    "one_node_per_item", "register", "register_image_sequence", "register_single_item", "resolve_mimetype",
    "resolve_mimetype_for_uris", "skip_all", "strip_suffixes",
]

logger = logging.getLogger(__name__)

# The readers used to describe files, by mimetype (the reference names them "adapters").
DEFAULT_REGISTRATION_ADAPTERS_BY_MIMETYPE = DEFAULT_INSPECTORS_BY_MIMETYPE


def strip_suffixes(filename: str) -> str:
    """A key from a file name without its suffixes: ``"a.tar.gz"`` -> ``"a"`` (for ``key_from_filename``)."""
    path = Path(filename)
    total = sum(len(s) for s in path.suffixes)
    return str(path)[:-total] if total else filename


def identity(filename: str) -> str:
    """The file name itself as the key (for ``key_from_filename``)."""
    return filename


def default_filter(path: Path) -> bool:
    """Skip hidden files (names starting with ``.``)."""
    return not Path(path).name.startswith(".")


def resolve_mimetype(path, mimetypes_by_file_ext: Mapping[str, str],
                     mimetype_detection_hook: Callable | None = None) -> str | None:
    """The mimetype of ``path`` from its extension (longest compound suffix first, then the system's
    table), passed through ``mimetype_detection_hook(path, mimetype)`` if given; ``None`` when unknown."""
    return mimetype_from_extension(Path(path), mimetypes_by_file_ext, mimetype_detection_hook)


def resolve_mimetype_for_uris(uris, mimetypes_by_file_ext: Mapping[str, str] | None = None) -> str:
    """One mimetype for several URIs (several images: their sequence mimetype); ValueError if none or several."""
    return mimetype_for_uris([ensure_uri(u) for u in uris], mimetypes_by_file_ext)


def _import_object(spec: str) -> Any:
    """``"package.module:name"`` (or ``"package.module.name"``) -> the object."""
    if not isinstance(spec, str):
        return spec
    module, colon, name = spec.partition(":")
    if not colon:
        module, _, name = spec.rpartition(".")
    if not module or not name:
        raise ValueError(f"expected 'package.module:name', not {spec!r}")
    target = importlib.import_module(module)
    for part in name.split("."):
        target = getattr(target, part)
    return target


@dataclasses.dataclass(frozen=True)
class Settings:
    """How a walk turns files into nodes: readers by mimetype, extensions, the hook, keys, the filter."""

    adapters_by_mimetype: Mapping[str, Any]
    mimetypes_by_file_ext: Mapping[str, str]
    mimetype_detection_hook: Callable | None
    key_from_filename: Callable[[str], str]
    filter: Callable[[Path], bool]

    @classmethod
    def init(cls, adapters_by_mimetype=None, mimetypes_by_file_ext=None, mimetype_detection_hook=None,
             key_from_filename=None, filter=None) -> "Settings":
        """Settings with defaults filled in; callables may be given as ``"package.module:name"`` strings."""
        readers = {mimetype: _import_object(reader) for mimetype, reader in dict(adapters_by_mimetype or {}).items()}
        return cls(
            adapters_by_mimetype=collections.ChainMap(readers, DEFAULT_INSPECTORS_BY_MIMETYPE),
            mimetypes_by_file_ext=collections.ChainMap(dict(mimetypes_by_file_ext or {}), DEFAULT_MIMETYPES_BY_FILE_EXT),
            mimetype_detection_hook=_import_object(mimetype_detection_hook) if mimetype_detection_hook else None,
            key_from_filename=_import_object(key_from_filename) if key_from_filename else strip_suffixes,
            filter=_import_object(filter) if filter else default_filter,
        )


def dict_or_none(structure) -> dict | None:
    """A structure's JSON form (``None`` stays ``None``)."""
    return None if structure is None else structure_json(structure)


async def _call(function, *args, **kwargs):
    # The node clients are synchronous: run their requests off the event loop.
    return await anyio.to_thread.run_sync(partial(function, *args, **kwargs))


async def create_node_or_drop_collision(node, *args, key: str, **kwargs):
    """``node.new(..., key=key)``; if ``key`` is taken, delete the existing node too and log a collision.

    Neither of two files that give the same key is kept, so the result does
    not depend on the order they were met in; once the collision is resolved,
    registering again creates the node.
    """
    try:
        return await _call(node.new, *args, key=key, **kwargs)
    except Conflict:
        offender = await _call(node.get, key)
        if offender is not None:
            await _call(node.delete, key, recursive=True)
        logger.warning("   COLLISION: several files would make the node %r; skipping all of them", key)
        return None


async def _child(node, key: str):
    child = await _call(node.get, key)
    if child is None:
        await create_node_or_drop_collision(node, structure_family="container", data_sources=[], metadata={},
                                            specs=[], key=key)
        child = await _call(node.get, key)
    return child


async def register(node, path, prefix: str = "/", walkers=None, adapters_by_mimetype=None,
                   mimetypes_by_file_ext=None, mimetype_detection_hook=None, key_from_filename=None,
                   filter=None, overwrite: bool = True) -> None:
    """Register the file or directory ``path`` (recursively) under ``node``, below ``prefix``.

    Arguments:
        node: a container client with write access.
        path: a file or a directory the server can read.
        prefix: containers (created if missing) to register under, e.g. ``"/raw/2024"``.
        walkers: extra walkers (functions or ``"package.module:name"``) tried
            before the default ones at each directory.
        adapters_by_mimetype: readers describing files, by mimetype, over the defaults.
        mimetypes_by_file_ext: ``{".ext": mimetype}`` over the defaults.
        mimetype_detection_hook: ``hook(path, mimetype) -> mimetype`` for files
            the extension does not settle.
        key_from_filename: file name -> key (default :func:`strip_suffixes`).
        filter: ``filter(path) -> bool``; default skips hidden files.
        overwrite: empty the target container before walking a directory (default, as the reference).
    """
    settings = Settings.init(adapters_by_mimetype=adapters_by_mimetype, mimetypes_by_file_ext=mimetypes_by_file_ext,
                             mimetype_detection_hook=mimetype_detection_hook, key_from_filename=key_from_filename,
                             filter=filter)
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"nothing to register at {path}")
    chosen = [_import_object(w) for w in walkers or []] + list(DEFAULT_WALKERS)
    for segment in [s for s in str(prefix).split("/") if s]:
        node = await _child(node, segment)
        if node is None:
            raise ValueError(f"could not create the prefix container {segment!r}")
    if path.is_dir():
        # A directory may be one dataset itself (a Zarr store).
        if await register_single_item(node, path, is_directory=True, settings=settings):
            return
        if overwrite:
            logger.info("  Overwriting %r", prefix)
            await _call(node.delete_contents, recursive=True)
        await _walk(node, path, chosen, settings)
    else:
        await register_single_item(node, path, is_directory=False, settings=settings)


async def _walk(node, path: Path, walkers, settings: Settings) -> None:
    files, directories = [], []
    logger.info("  Walking %r", str(path))
    for item in sorted(path.iterdir()):
        if not settings.filter(item):
            continue
        (directories if item.is_dir() else files).append(item)
    for walker in walkers:
        files, directories = await walker(node, path, files, directories, settings)
    for directory in directories:
        key = settings.key_from_filename(directory.name)
        child = await _child(node, key)
        if child is not None:
            await _walk(child, directory, walkers, settings)


async def one_node_per_item(node, path, files, directories, settings):
    """Walker: each file (or directory a reader takes, e.g. a Zarr store) becomes one node."""
    unhandled_files = [f for f in files
                       if await register_single_item(node, f, is_directory=False, settings=settings) is None]
    unhandled_directories = [d for d in directories
                             if await register_single_item(node, d, is_directory=True, settings=settings) is None]
    return unhandled_files, unhandled_directories


def _source_from_reader(reader, mimetype: str, uris: list[str], paths: list[Path], is_directory: bool) -> list:
    family = getattr(reader.structure_family, "value", reader.structure_family)
    if len(uris) == 1 and hasattr(reader, "generate_data_sources"):
        size = paths[0].stat().st_size if not is_directory else None
        try:
            return list(reader.generate_data_sources(mimetype, uris[0], is_directory, size=size))
        except TypeError:  # readers whose generate_data_sources takes a path
            return list(reader.generate_data_sources(mimetype, paths[0], is_directory, size=size))
    if len(uris) == 1:
        assets = [Asset(data_uri=uris[0], is_directory=is_directory, parameter="data_uri",
                        size=None if is_directory else paths[0].stat().st_size)]
    else:
        assets = [Asset(data_uri=u, is_directory=False, parameter="data_uris", num=i, size=p.stat().st_size)
                  for i, (u, p) in enumerate(zip(uris, paths))]
    return [DataSource(structure_family=family, structure=dict_or_none(reader.structure()), mimetype=mimetype,
                       parameters={}, management=Management.external, assets=assets)]


async def _register_reader(node, key: str, reader, mimetype: str, uris, paths, is_directory: bool):
    family = getattr(reader.structure_family, "value", reader.structure_family)
    sources = _source_from_reader(reader, mimetype, uris, paths, is_directory)
    from .registering._inspectors import jsonable_metadata

    return await create_node_or_drop_collision(
        node, key=key, structure_family=family, metadata=jsonable_metadata(dict(reader.metadata() or {})),
        specs=list(getattr(reader, "specs", None) or []), data_sources=sources)


async def register_single_item(node, item, is_directory: bool, settings: Settings):
    """Register one file or directory as a node; ``None`` (logged) when no reader takes it."""
    item = Path(item)
    mimetype = resolve_mimetype(item, settings.mimetypes_by_file_ext, settings.mimetype_detection_hook)
    if mimetype is None:
        if not is_directory:
            logger.info("    SKIPPED: no known mimetype for %r", str(item))
        return None
    reader_class = settings.adapters_by_mimetype.get(mimetype)
    if reader_class is None:
        logger.info("    SKIPPED: no reader for mimetype %r of %r", mimetype, str(item))
        return None
    uri = ensure_uri(item)
    try:
        reader = await _call(reader_class.from_uris, uri)
    except Exception:
        logger.exception("    SKIPPED: could not read %r as %s", str(item), mimetype)
        return None
    key = settings.key_from_filename(item.name)
    return await _register_reader(node, key, reader, mimetype, [uri], [item], is_directory)


async def group_image_sequences(node, path, files, directories, settings):
    """Walker: numbered image files (``scan_001.tif``, ``scan_002.tif``...) become one node per sequence."""
    unhandled = []
    sequences: dict[str, list[Path]] = collections.defaultdict(list)
    for file in files:
        suffixes = Path(file).suffixes
        pattern = IMG_SEQUENCE_STEM_PATTERNS.get(suffixes[-1]) if suffixes else None
        match = pattern.match(Path(file).name) if pattern is not None and Path(file).is_file() else None
        if match:
            sequences[match.group(1) or IMG_SEQUENCE_EMPTY_NAME_ROOT].append(Path(file))
        else:
            unhandled.append(file)
    for name, members in sequences.items():
        await register_image_sequence(node, name, sorted(members), settings)
    return unhandled, directories


async def register_image_sequence(node, name: str, sequence, settings: Settings):
    """Register the image files ``sequence`` (in this order) as one stacked array node keyed from ``name``."""
    sequence = [Path(p) for p in sequence]
    suffixes = sequence[0].suffixes
    mimetype = IMG_SEQUENCE_MIMETYPES.get(suffixes[-1]) if suffixes else None
    if mimetype is None:
        raise ValueError(f"cannot register {name!r} as an image sequence: unknown extension")
    logger.info("    Grouped %d %s images into a sequence %r", len(sequence), mimetype.split("/")[-1], name)
    uris = [ensure_uri(p) for p in sequence]
    try:
        reader = await _call(settings.adapters_by_mimetype[mimetype].from_uris, *uris)
    except Exception:
        logger.exception("    SKIPPED: could not read the sequence %r", name)
        return None
    return await _register_reader(node, settings.key_from_filename(name), reader, mimetype, uris, sequence, False)


async def skip_all(node, path, files, directories, settings):
    """Walker: leave every remaining file unregistered (directories are still walked)."""
    for item in files:
        logger.info("    SKIP ALL: not registering %r", str(item))
    return [], directories


DEFAULT_WALKERS = [group_image_sequences, one_node_per_item]

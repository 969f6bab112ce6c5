"""The ``tiled-core`` command: copy between servers, list and search nodes.

    tiled-core copy SRC_URI DEST_URI [--create] [--workers N | --scheduler ADDR] [--on-conflict error|warn|skip]
    tiled-core ls URI [--long]
    tiled-core search URI KEY=VALUE [KEY=VALUE ...] [--long]

URIs name any node (``http://host:8000/api/v1/metadata/a/b`` or
``http://host:8000/a/b``). API keys come only from the environment, never
from the command line (where ``ps`` and shell history would show them):
``TILED_SOURCE_API_KEY`` / ``TILED_DEST_API_KEY`` for ``copy``, falling back
to ``TILED_API_KEY``, which ``ls`` and ``search`` use.

Errors are one line on stderr that says what to do, in this command's terms
(``--on-conflict skip``, ``TILED_API_KEY``), never a traceback.

Exit status: 0 on success, 1 when the server or the copy failed, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from urllib.parse import parse_qsl, urlsplit

__all__ = ["main"]

SOURCE_KEY = "TILED_SOURCE_API_KEY"
DEST_KEY = "TILED_DEST_API_KEY"
DEFAULT_KEY = "TILED_API_KEY"


class UsageError(Exception):
    """Bad arguments: reported on stderr with exit status 2."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiled-core", description="Copy, list and search nodes on Tiled servers.",
        epilog=f"API keys: {SOURCE_KEY} / {DEST_KEY} (copy) or {DEFAULT_KEY}; never on the command line.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    copy = commands.add_parser("copy", help="copy the children of SRC_URI under DEST_URI (resumable)",
                               description="Copy the children of SRC_URI (a container) under DEST_URI, an existing "
                               "container (or a new one, with --create); rerun with --on-conflict skip to finish an "
                               "interrupted copy. On a terminal a progress bar shows nodes and bytes copied.")
    copy.add_argument("source", metavar="SRC_URI")
    copy.add_argument("dest", metavar="DEST_URI")
    copy.add_argument("--create", action="store_true",
                      help="create DEST_URI (and any missing parents) as containers if it does not exist")
    where = copy.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, metavar="N", help="run the transfers on N local Dask worker processes")
    where.add_argument("--scheduler", metavar="ADDR", help="run the transfers on the Dask cluster at ADDR")
    copy.add_argument("--on-conflict", choices=("error", "warn", "skip"), default="error",
                      help="for keys that exist at the destination (default: error)")
    copy.add_argument("--concurrency", type=int, metavar="N", help="parallel data transfers (default 8)")
    copy.add_argument("--external", choices=("register", "data"), default="register",
                      help="externally managed data: register the same files (default) or copy the bytes")
    copy.add_argument("--no-progress", action="store_true", help="no progress bar")

    ls = commands.add_parser("ls", help="list the children of URI")
    ls.add_argument("uri", metavar="URI")
    ls.add_argument("-l", "--long", action="store_true", help="also show each child's family and shape")

    search = commands.add_parser("search", help="list the children of URI whose metadata match KEY=VALUE")
    search.add_argument("uri", metavar="URI")
    search.add_argument("conditions", metavar="KEY=VALUE", nargs="+",
                        help="metadata key (dotted for nested keys) equal to VALUE (JSON, else a string)")
    search.add_argument("-l", "--long", action="store_true", help="also show each child's family and shape")
    return parser


def _check_uri(uri: str) -> None:
    if any(name == "api_key" for name, _ in parse_qsl(urlsplit(uri).query)):
        raise UsageError(f"do not put API keys in URIs on the command line; set {DEFAULT_KEY} (or "
                         f"{SOURCE_KEY} / {DEST_KEY}) instead")


class NoCredentials(Exception):
    """The server wants credentials and none were sent: reported on stderr with exit status 1."""


#: Python spellings in the library's messages, and what a shell user types instead.
_SHELL_SPELLING = (
    ("on_conflict='skip'", "--on-conflict skip"),
    ("on_conflict='replace'", "--on-conflict replace"),
    ("pass api_key=, set TILED_API_KEY, or log in", f"set {DEFAULT_KEY} (or {SOURCE_KEY} / {DEST_KEY} for copy)"),
    ("(api_key= or TILED_API_KEY)", f"({DEFAULT_KEY})"),
    ("pass api_key=", f"set {DEFAULT_KEY}"),
)


def _for_the_shell(message: str) -> str:
    """``message`` with the library's Python spellings replaced by this command's flags and variables."""
    for python, shell in _SHELL_SPELLING:
        message = message.replace(python, shell)
    return message


def _connect(uri: str, *variables: str, create: bool = False):
    """A client on ``uri`` with the key from the first variable set; and that variable's name.

    ``create``: make ``uri`` (and missing parents) a container first if it does not exist.
    """
    from .client import from_uri
    from .transport import AuthenticationError

    _check_uri(uri)
    name = next((n for n in variables if os.environ.get(n)), None)
    api_key = os.environ[name] if name else None
    try:
        try:
            return from_uri(uri, api_key=api_key), name
        except KeyError:
            if not create:
                raise
        return _create_containers(uri, api_key), name
    except AuthenticationError as error:
        if name is not None:
            raise
        server = uri.split("/api/")[0]
        raise NoCredentials(f"{server} wants credentials and none were sent: set {' or '.join(variables)} "
                            "to an API key for it (in the environment, never on the command line)") from error


def _create_containers(uri: str, api_key: str | None):
    """The container at ``uri``, created with any missing parents."""
    from .client import from_context
    from .client.context import Context

    context, parts = Context.from_any_uri(uri, api_key=api_key)
    try:
        node = from_context(context)
        for part in parts:
            node = node.create_container(part, on_conflict="skip")
    except BaseException:
        context.close()
        raise
    return node


def _describe(client) -> str:
    family = client.structure_family
    if family in ("array", "sparse"):
        structure = client.structure()
        shape = getattr(structure, "shape", None) or (structure.get("shape") if isinstance(structure, dict) else None)
        return f"{family}\t{tuple(shape) if shape is not None else ''}"
    return family


def _print_listing(items, long: bool) -> int:
    count = 0
    for key, client in items:
        print(f"{key}\t{_describe(client)}" if long else key)
        count += 1
    return count


def _parse_condition(text: str):
    from .queries import Eq

    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise UsageError(f"conditions are KEY=VALUE, not {text!r}")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return Eq(key, value)


def _run_copy(args) -> int:
    from .copy import CopyError, copy
    from .distributed import EnvVarCredential, use_credential_source
    from .transport import AuthenticationError

    for option, value in (("--workers", args.workers), ("--concurrency", args.concurrency)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be at least 1")
    source, source_var = _connect(args.source, SOURCE_KEY, DEFAULT_KEY)
    try:
        dest, dest_var = _connect(args.dest, DEST_KEY, DEFAULT_KEY, create=args.create)
    except KeyError:
        source.context.close()
        raise UsageError(f"{args.dest} does not exist: create it, or pass --create to make it (and its parents) "
                         "a container") from None
    except BaseException:
        source.context.close()
        raise
    cluster = dask_client = None
    try:
        if args.workers is not None:
            from distributed import Client, LocalCluster

            # Local workers inherit this environment: they read the keys from the same variables.
            for node, variable in ((source, source_var), (dest, dest_var)):
                if variable is not None:
                    use_credential_source(node, EnvVarCredential(variable))
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=2, processes=True,
                                   host="127.0.0.1", dashboard_address=None)
            dask_client = Client(cluster)
        elif args.scheduler is not None:
            from distributed import Client

            dask_client = Client(args.scheduler)  # keys given to copy() are shipped out of band, once
        try:
            summary = copy(source, dest, on_conflict=args.on_conflict, concurrency=args.concurrency,
                           progress=False if args.no_progress else None, dask_client=dask_client,
                           external=args.external)
        except CopyError as error:
            message = _for_the_shell(str(error))
            if isinstance(error.__cause__, AuthenticationError):
                unsent = [f"to the {side} (set {var} or {DEFAULT_KEY})"
                          for side, var, sent in (("source", SOURCE_KEY, source_var), ("destination", DEST_KEY, dest_var))
                          if sent is None]
                if unsent:
                    message += f"\nno credentials were sent {' or '.join(unsent)}"
            print(f"tiled-core copy: {message}", file=sys.stderr)
            return 1
        print(summary)
        return 0
    finally:
        if dask_client is not None:
            dask_client.close()
        if cluster is not None:
            cluster.close()
        source.context.close()
        dest.context.close()


def _run_listing(args) -> int:
    queries = [_parse_condition(c) for c in args.conditions] if args.command == "search" else []
    node, _ = _connect(args.uri, DEFAULT_KEY)
    try:
        if node.structure_family != "container":
            raise UsageError(f"{args.uri} is a {node.structure_family}, not a container")
        for query in queries:
            node = node.search(query)
        _print_listing(node.items(), args.long)
        return 0
    finally:
        node.context.close()


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; unknown arguments are an error that does not repeat them.

    argparse would echo them, and one may be an API key typed out of habit
    (``--api-key KEY``, as the reference CLI takes it) that should not land in logs.
    """
    parser = _parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        options = sorted({arg.split("=", 1)[0] for arg in unknown if arg.startswith("-")})
        named = f" ({', '.join(options)})" if options else ""
        parser.error(f"{len(unknown)} unrecognized argument(s){named}, values not shown; API keys are read "
                     f"only from {DEFAULT_KEY} (or {SOURCE_KEY} / {DEST_KEY}), never from the command line")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    args = _parse(argv)
    from .transport import TiledError

    try:
        if args.command == "copy":
            return _run_copy(args)
        return _run_listing(args)
    except UsageError as error:
        print(f"tiled-core {args.command}: {error}", file=sys.stderr)
        return 2
    except NoCredentials as error:
        print(f"tiled-core {args.command}: {error}", file=sys.stderr)
        return 1
    except (TiledError, KeyError, ValueError) as error:
        message = f"not found: {error}" if isinstance(error, KeyError) else str(error)
        print(f"tiled-core {args.command}: {_for_the_shell(message)}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

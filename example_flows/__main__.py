"""The main job: run the example pipeline against a Tiled server.

With no server configured (no ``--tiled-uri`` and no ``TILED_URI``), an
embedded real Tiled server is started on a free loopback port for the run and
stopped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m example_flows", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiled-uri", default=os.environ.get("TILED_URI"),
                        help="server to use (default: $TILED_URI, else an embedded server)")
    parser.add_argument("--api-key", default=None,
                        help="API key (default: $TILED_API_KEY); prefer the environment variable")
    parser.add_argument("--scans", type=int, default=6, help="how many scans to write (default 6)")
    args = parser.parse_args(argv)

    from example_flows import scans

    started = time.perf_counter()
    if args.tiled_uri:
        print(f"using Tiled server {args.tiled_uri}")
        summary = scans.run(args.tiled_uri, args.api_key or os.environ.get("TILED_API_KEY"), n_scans=args.scans)
    else:
        from tiled_core.server import LocalTiledServer

        print("TILED_URI is not set: starting an embedded Tiled server on 127.0.0.1 ...")
        with LocalTiledServer() as server:
            print(f"embedded server ready at {server.uri}")
            summary = scans.run(server.uri, server.api_key, n_scans=args.scans)
        print("embedded server stopped")
    summary["seconds"] = round(time.perf_counter() - started, 2)
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

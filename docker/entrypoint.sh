#!/bin/sh
# Turn mounted secret files into the environment variables the programs read,
# so no secret is ever baked into the image or written in compose.yaml.
set -eu
if [ -z "${TILED_API_KEY:-}" ] && [ -r /run/secrets/tiled_api_key ]; then
    TILED_API_KEY="$(cat /run/secrets/tiled_api_key)"
    export TILED_API_KEY
fi
# The server reads its single-user key from TILED_SINGLE_USER_API_KEY.
if [ -z "${TILED_SINGLE_USER_API_KEY:-}" ] && [ -n "${TILED_API_KEY:-}" ]; then
    TILED_SINGLE_USER_API_KEY="$TILED_API_KEY"
    export TILED_SINGLE_USER_API_KEY
fi
exec "$@"

"""What the session's shared servers (tests/conftest.py) are started with, for tests that need to know it."""

from __future__ import annotations

import secrets

#: The main server's single-user key: recognisable, so tests/test_secrets.py can hunt for it
#: (tiled wants alphanumeric keys). One per process, as the session's servers are.
MAIN_API_KEY = "SECRETKEY" + secrets.token_hex(16)

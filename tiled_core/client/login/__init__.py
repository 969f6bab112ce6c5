"""Logging in (internal): password logins, external-provider logins, and what is shown of secrets.

- ``_credentials``: what ``Context`` takes from ``CredentialRequests`` (``whoami``, tokens,
  API keys) and ``Admin`` (principals and their keys).
- ``_password``: choosing a provider, prompting (only at a terminal), the login exchange.
- ``_device``: tokens on a plain httpx client: ``password_grant``, the device-code flow, and
  ``prompt_for_credentials``.
- ``_external``: what ``Context`` takes from ``ExternalLogins`` (external providers' sessions).
- ``_tiled_auth``: ``TiledAuth``, a session kept as token files in a directory.
- ``_secrets``: API key information and token views whose reprs mask secrets; durations.
"""

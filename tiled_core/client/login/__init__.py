"""Logging in (internal): password logins and what is shown of secrets.

- ``_credentials``: what ``Context`` takes from ``CredentialRequests`` (``whoami``, tokens,
  API keys) and ``Admin`` (principals and their keys).
- ``_password``: choosing a provider, prompting (only at a terminal), the login exchange.
- ``_secrets``: API key information and token views whose reprs mask secrets; durations.
"""

"""What crosses a process boundary: picklable references to sessions and nodes."""

from ._handles import CredentialSource, EnvVarCredential, SessionHandle, TokenFileCredential

__all__ = ["CredentialSource", "EnvVarCredential", "SessionHandle", "TokenFileCredential"]

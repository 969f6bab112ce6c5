"""The exception and warning types of ``tiled_core.profiles``."""

__all__ = ["ProfileError", "ProfileExists", "ProfileNotFound", "ProfileWarning"]


class ProfileError(ValueError):
    """A profile (or a profile file) is invalid or cannot be used."""


class ProfileNotFound(ProfileError, KeyError):
    """No profile with the requested name exists (also a ``KeyError``)."""

    def __str__(self) -> str:
        # KeyError would repr() the message; show it as written.
        return str(self.args[0]) if self.args else ""


class ProfileExists(ProfileError):
    """``create_profile`` would overwrite or shadow an existing profile."""


class ProfileWarning(UserWarning):
    """A profile file or profile was skipped, or a profile key is ignored."""

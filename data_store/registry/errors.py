"""What the registry raises. The serving layer maps these to HTTP statuses (404, 409, 422)."""

from __future__ import annotations


class RegistryError(Exception):
    """A request the registry cannot honour; the message is the reason, for a person to read."""


class NotFound(RegistryError):
    pass


class Conflict(RegistryError):
    pass


class Invalid(RegistryError):
    pass

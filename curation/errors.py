"""The one exception family of the project.

Every package derives its errors from :class:`ScaleVQAError`; the CLI prints
``error: <message>`` for these and exits non-zero, without a traceback.
Messages say what was wrong (file, line, record, field) and what to do.
"""

from __future__ import annotations


class ScaleVQAError(Exception):
    """Root of every error this project raises on purpose."""


class ValidationError(ScaleVQAError, ValueError):
    """A record, annotation, organ file or config does not satisfy its schema."""


class RecordError(ValidationError):
    """One record cannot be used (no question, repeated options, answer outside the options...).

    ``reason`` is a short stable code (e.g. ``identical_options``) that reports count by;
    loaders that skip unusable records (the lenient policy) catch this class only, so a
    malformed *file* still stops them.
    """

    def __init__(self, message: str, reason: str = "invalid_record") -> None:
        super().__init__(message)
        self.reason = reason


class InputError(ScaleVQAError):
    """An input file or folder is missing, unreadable or malformed."""


class ConfigError(ScaleVQAError, ValueError):
    """A parameter or configuration value is out of range or inconsistent."""


class SlideError(ScaleVQAError):
    """A slide cannot be opened or read as asked (metadata, magnification, tissue)."""


class LLMError(ScaleVQAError):
    """An LLM endpoint failed in a way retries could not fix."""


class HubError(ScaleVQAError):
    """Publishing to or reading from the Hugging Face Hub failed."""

"""Log output on stderr: human text, or one JSON object per line for log collectors.

Events that matter to an operator (a member joins, leaves, is suspected or declared dead, a repair,
a hinted handoff) are logged once each with `extra={"event": ..., "node": ...}`; in JSON those extras
become fields. Both formats mask secrets: the configured token and cluster keys wherever they appear,
and anything that follows "Bearer " (defence in depth: no code logs them on purpose).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
from collections.abc import Iterable

REDACTED = "<redacted>"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# The attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}
_BEARER = re.compile(r"(?i)(\bbearer\s+)[^\s\"',;]+")
# Provider API keys have recognisable prefixes (sk-..., sk-ant-...).
_API_KEY = re.compile(r"\bsk-[A-Za-z0-9_-]{16,}")
_SECRET_ENV = ("_API_KEY", "_TOKEN", "_SECRET", "_CLUSTER_KEY")


class Redactor:
    """Masks known secret values and bearer credentials in a text."""

    def __init__(self, secrets: Iterable[str] = ()):
        # Longest first, so a secret that contains another is masked whole. Short values would mask
        # ordinary words, and no real secret is that short.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        if "earer" in text or "EARER" in text:
            text = _BEARER.sub(r"\1" + REDACTED, text)
        if "sk-" in text:
            text = _API_KEY.sub(REDACTED, text)
        return text


def env_secrets(env: dict[str, str] | None = None) -> list[str]:
    """Values of variables named like credentials (ANTHROPIC_API_KEY, TASKMASTER_TOKEN, ...)."""
    env = os.environ if env is None else env
    found: list[str] = []
    for name, value in env.items():
        if name.upper().endswith(_SECRET_ENV):
            found += [part.strip() for part in value.split(",")]  # a list of keys is comma separated
    return found


def _utc_ms(created: float) -> str:
    """ISO-8601 UTC with milliseconds: 2024-05-01T12:00:00.123Z."""
    ms = int(created * 1000) % 1000
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created)) + f".{ms:03d}Z"


class TextFormatter(logging.Formatter):
    def __init__(self, redact: Redactor):
        super().__init__(TEXT_FORMAT)
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        return self.redact(super().format(record))


class JSONFormatter(logging.Formatter):
    """{"ts", "level", "logger", "event", "msg", ...extra fields, "exc" for a traceback}; `event` is
    null for a record that is not a named event. One line per record: newlines are escaped."""

    def __init__(self, redact: Redactor):
        super().__init__()
        self.redact = redact

    def format(self, record: logging.LogRecord) -> str:
        redact = self.redact
        line = {"ts": _utc_ms(record.created), "level": record.levelname.lower(), "logger": record.name,
                "event": getattr(record, "event", None), "msg": redact(record.getMessage())}
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in line:
                line[key] = redact(value) if isinstance(value, str) else value
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        elif record.stack_info:
            line["stack"] = redact(record.stack_info)
        # Strings are masked before encoding (escaping could hide a secret from a later pass); the
        # whole line once more after, for a secret inside a non-string extra.
        return redact(json.dumps(line, ensure_ascii=False, default=str))


def formatter(log_format: str, secrets: Iterable[str] = ()) -> logging.Formatter:
    redact = Redactor([*secrets, *env_secrets()])
    return JSONFormatter(redact) if log_format == "json" else TextFormatter(redact)


def setup(level: str, log_format: str = "text", secrets: Iterable[str] = ()) -> None:
    """Send every record at `level` and above to stderr in `log_format` ("text" or "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format, secrets))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())

"""What the ``embedmap`` command prints: its own lines, the steps' messages, text made safe for a terminal."""

from __future__ import annotations

import logging
import sys

from .errors import _terminal_safe


def _log(message: str) -> None:
    print(_terminal_safe(message), flush=True)


def _warn(message: str) -> None:
    print(_terminal_safe(f"warning: {message}"), file=sys.stderr, flush=True)


class _CliLog:
    """What the core's steps write to (``info`` / ``warning``) when the CLI calls them directly."""

    def info(self, message: str) -> None:
        _log(message)

    def warning(self, message: str) -> None:
        _warn(message)


class _StepMessages(logging.Handler):
    """The runs' log records as CLI lines: a step's own messages, one line each (warnings to stderr);
    Dagster's event records (step started, failed with a stack trace, ...) are left to the run history
    in ``<home>/dagster``: the CLI says what failed itself, in one paragraph."""

    def emit(self, record: logging.LogRecord) -> None:
        meta = getattr(record, "dagster_meta", None) or {}
        if meta.get("dagster_event") is not None:
            return
        message = meta.get("orig_message") or record.getMessage()
        (_warn if record.levelno >= logging.WARNING else _log)(message)


def _cli_logger():
    import dagster as dg

    @dg.logger(dg.Field({"log_level": dg.Field(str, is_required=False, default_value="INFO")}),
               description="The embedmap CLI's console: the steps' own messages, one line each.")
    def cli_console(init_context) -> logging.Logger:
        logger = logging.Logger("embedmap", level=init_context.logger_config["log_level"])
        logger.addHandler(_StepMessages())
        return logger

    return cli_console


def _one_line(text: object, limit: int) -> str:
    """Record text made safe for a terminal: no control characters (escape sequences), one line."""
    cleaned = " ".join(_terminal_safe("" if text is None else text).split())
    return cleaned if len(cleaned) <= limit else cleaned[: limit - 1] + "…"

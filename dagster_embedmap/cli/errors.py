"""How the ``embedmap`` command reports a failure: one paragraph on stderr (what went wrong, naming the
partition, column or records, and the fix in terms of the command's options), where the failed run's
full log is, and exit status 2. No stack trace unless ``--debug`` is given; the run history in
``<home>/dagster`` keeps Dagster's own record of the failure, stack trace included."""

from __future__ import annotations

import re
import sys
from pathlib import Path

__all__ = ["USER_ERROR", "report_failure", "say"]

USER_ERROR = 2


def _terminal_safe(message: object) -> str:
    """Text for a terminal: every control character (escape sequences, bells, ...) but newlines
    becomes a space, so record ids, partition keys and labels cannot drive the terminal."""
    return "".join(ch if ch.isprintable() or ch == "\n" else " " for ch in str(message))


def say(message: object) -> None:
    """One paragraph on stderr: control characters and line breaks become spaces."""
    text = re.sub(r"\s*\n\s*", " ", _terminal_safe(message)).strip()
    print(text, file=sys.stderr, flush=True)


def _user_cause(exc: BaseException) -> tuple[BaseException | None, bool]:
    """The error a user can act on inside Dagster's wrappers (``DagsterExecutionStepExecutionError`` and
    the like hold it as ``user_exception`` or ``__cause__``), and whether it is a full device; the
    outermost such error wins. (None, False) when there is none."""
    from ..core.errors import EmbedMapFileError, EmbedMapInputError, EmbedMapStoreError
    from ..core.paths import is_out_of_space

    wanted = (EmbedMapInputError, EmbedMapStoreError, EmbedMapFileError, FileNotFoundError, ValueError)
    cause: BaseException | None = exc
    seen: set[int] = set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, wanted):
            return cause, False
        if is_out_of_space(cause):
            return cause, True
        cause = cause.__cause__ or getattr(cause, "user_exception", None)
    return None, False


def _innermost(exc: BaseException) -> BaseException:
    """The deepest error inside Dagster's wrappers: the one that really happened."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or getattr(exc, "user_exception", None)) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return exc


def failed_run(home: Path, since: float) -> str | None:
    """The id of the newest run recorded in ``<home>/dagster`` when it failed and began at ``since`` or
    later (a run of this command), else None."""
    folder = home / "dagster"
    if not folder.is_dir():
        return None
    try:
        import dagster as dg

        instance = dg.DagsterInstance.from_config(str(folder))
        try:
            records = instance.get_run_records(limit=1)
        finally:
            instance.dispose()
    except Exception:  # the history cannot be read: the message goes without the run id
        return None
    if not records or records[0].dagster_run.status != dg.DagsterRunStatus.FAILURE:
        return None
    record = records[0]
    return record.dagster_run.run_id if record.create_timestamp.timestamp() >= since - 1 else None


def run_log(home: Path | None, since: float) -> str:
    """`` (full log: run <id> in <home>/dagster ...)`` for a run of this command that failed, else ``""``."""
    run_id = failed_run(home, since) if home is not None else None
    if run_id is None:
        return ""
    dagster_home = home / "dagster"
    return (f" (full log: run {run_id} in {dagster_home}; `DAGSTER_HOME={dagster_home} dagster dev` shows it, "
            "stack trace included)")


def report_failure(exc: Exception, command: str, home: Path | None, since: float) -> int:
    """Say what failed, in one paragraph with where its run's log is, and return the exit status."""
    from ..core.errors import for_cli

    log = run_log(home, since) if command in ("build", "demo") else ""
    cause, full = _user_cause(exc)
    if full:
        say(f"embedmap: no space left on the device ({cause}); free some space or use another --home, then rerun{log}")
        return USER_ERROR
    if cause is not None:
        say(f"embedmap: {for_cli(cause)}{log}")
        return USER_ERROR
    inner = _innermost(exc)
    say(f"embedmap: {command} failed with an unexpected error, {type(inner).__name__}: {inner}{log}. Rerun "
        "with --debug for the stack trace, and please report it")
    return USER_ERROR

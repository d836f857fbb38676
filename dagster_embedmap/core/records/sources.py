"""Records from files: parquet, CSV or JSON lines, one file or a glob of them."""

from __future__ import annotations

import glob as globlib
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from ..errors import EmbedMapInputError

__all__ = ["read_records", "FileSource", "detect_format", "file_sha256", "SINGLE_PARTITION", "output_format",
           "write_table"]

SINGLE_PARTITION = "all"
# What Dagster refuses inside a partition key ("..." marks a range in its UI; the rest do not display).
FORBIDDEN_IN_KEYS = ("...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0")


def file_sha256(path: str | os.PathLike) -> str:
    """The sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _refuse_unusable_keys(keys: list[str], where: str) -> None:
    bad = [k for k in keys if any(f in k for f in FORBIDDEN_IN_KEYS)]
    if bad:
        shown = ", ".join(repr(k) for k in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise EmbedMapInputError(
            f"{where} would give partition key(s) Dagster cannot use: {shown}; a key may not contain '...', "
            "tabs, newlines or other control characters"
        )

_FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}


def detect_format(path: str | os.PathLike) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in _FORMATS:
        raise EmbedMapInputError(
            f"{path}: unknown file type {suffix!r}; use one of {sorted(set(_FORMATS))} or pass format="
        )
    return _FORMATS[suffix]


_WRITTEN = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: str | os.PathLike) -> str:
    """The format :func:`write_table` writes ``path`` in, from its extension; any other extension is
    refused (before any work is done)."""
    suffix = Path(path).suffix.lower()
    if suffix not in _WRITTEN:
        given = f"{suffix!r} files" if suffix else "a file without an extension"
        raise EmbedMapInputError(
            f"{path}: the points can be written as .parquet (or .pq), .csv or .jsonl (or .ndjson) files, not as "
            f"{given}; name the file with one of those extensions")
    return _WRITTEN[suffix]


def write_table(frame: pl.DataFrame, path: str | os.PathLike) -> list[str]:
    """Write ``frame`` to ``path`` in the format its extension names (:func:`output_format`), whole or not
    at all (a temporary file renamed into place). CSV has no lists or structs: those columns are written
    as JSON text; their names are returned."""
    import json

    fmt = output_format(path)
    nested = [name for name, dtype in frame.schema.items() if dtype.is_nested()] if fmt == "csv" else []
    if nested:
        frame = frame.with_columns(
            pl.Series(name, [None if v is None else json.dumps(v, ensure_ascii=False, default=str)
                             for v in frame.get_column(name).to_list()], dtype=pl.String)
            for name in nested)
    target = Path(path)
    tmp = target.with_name(f".{target.name}.tmp")
    writer = {"parquet": frame.write_parquet, "csv": frame.write_csv, "jsonl": frame.write_ndjson}[fmt]
    try:
        writer(tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return nested


def read_records(path: str | os.PathLike, format: str | None = None) -> pl.DataFrame:
    """Read one file into a polars DataFrame; a file that is not what its name says fails naming the file."""
    fmt = format or detect_format(path)
    _sniff(path, fmt)
    try:
        if fmt == "parquet":
            return pl.read_parquet(path)
        if fmt == "csv":
            return pl.read_csv(path, infer_schema_length=10_000)
        if fmt == "jsonl":
            return pl.read_ndjson(path, infer_schema_length=10_000)
        if fmt == "json":
            return pl.read_json(path, infer_schema_length=10_000)
    except FileNotFoundError:
        raise
    except Exception as exc:  # polars raises several types for unreadable content
        if fmt != "parquet" and "utf-8" in str(exc).lower().replace("utf8", "utf-8"):
            where = _first_invalid_utf8(path)
            if where is not None:
                line, offset = where
                raise EmbedMapInputError(
                    f"{path}: line {line} is not valid UTF-8 (byte {offset} of the file); save the file as UTF-8, "
                    "e.g. iconv -f latin1 -t utf-8"
                ) from exc
        if fmt == "jsonl":
            bad = _first_bad_json_line(path)
            if bad is not None:
                line, text, reason = bad
                raise EmbedMapInputError(
                    f"{path}: could not be read as jsonl: line {line} is not a JSON object ({reason}): {text!r}; every "
                    "line of a JSON-lines file must be one complete object, e.g. {\"id\": 1, \"text\": \"...\"}. Fix or remove that line"
                ) from exc
        raise EmbedMapInputError(f"{path}: could not be read as {fmt}: {type(exc).__name__}: {exc}") from exc
    raise EmbedMapInputError(f"{path}: unsupported format {fmt!r}")


def _first_bad_json_line(path: str | os.PathLike) -> tuple[int, str, str] | None:
    """(1-based line, its start, why) of the first non-blank line that is not a JSON object, or None."""
    import json

    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                value = json.loads(line)
            except ValueError as err:
                where = f" column {err.colno}" if getattr(err, "colno", None) else ""
                return number, line.strip()[:80], f"{getattr(err, 'msg', str(err))}{where}"
            if not isinstance(value, dict):
                return number, line.strip()[:80], f"a JSON {type(value).__name__}, not an object"
    return None


_MAGIC = {b"PAR1": "parquet", b"PK\x03\x04": "zip", b"\x1f\x8b": "gzip", b"\x28\xb5\x2f\xfd": "zstd",
          b"%PDF": "PDF", b"\x89PNG": "PNG", b"\xff\xd8\xff": "JPEG"}


def _sniff(path: str | os.PathLike, fmt: str) -> None:
    """Refuse a file whose first bytes say it is something else than ``fmt`` (naming what it looks like)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise EmbedMapInputError(f"{path}: could not be opened: {exc}") from exc
    if not head:
        raise EmbedMapInputError(
            f"{path}: the file is empty (0 bytes), so it has no columns to read as {fmt}; if it is still being "
            "written, materialize this partition once it is complete (an empty partition is a file with a header "
            "and no rows)"
        )
    seen = next((kind for magic, kind in _MAGIC.items() if head.startswith(magic)), None)
    if fmt == "parquet":
        if seen != "parquet":
            looks = f"a {seen} file" if seen else "text" if b"\x00" not in head else "binary data"
            raise EmbedMapInputError(
                f"{path}: could not be read as parquet: it does not start with parquet's PAR1 marker and looks like "
                f"{looks}; name it for what it is (.csv, .jsonl, .json) or pass format="
            )
        return
    if head[:2] in (b"\xff\xfe", b"\xfe\xff"):
        raise EmbedMapInputError(
            f"{path}: is UTF-16 text; save it as UTF-8 (e.g. iconv -f utf-16 -t utf-8) to read it as {fmt}"
        )
    if seen is not None or b"\x00" in head:
        raise EmbedMapInputError(
            f"{path}: could not be read as {fmt}: the file is {f'a {seen} file' if seen else 'binary data'}, "
            "not text; name it for what it is or pass format="
        )


def _first_invalid_utf8(path: str | os.PathLike) -> tuple[int, int] | None:
    """(1-based line, byte offset) of the first byte that is not UTF-8, or None."""
    offset = 0
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, offset + err.start
            offset += len(line)
    return None


@dataclass(frozen=True)
class FileSource:
    """Records kept in files.

    - ``partition_column`` set: every file is read and a partition is the rows with that value.
    - else, a glob matching several files: a partition is one file, keyed by its name without suffix.
    - else one file, one partition (``"all"``).
    """

    path: str
    format: str | None = None
    partition_column: str | None = None

    def files(self) -> list[Path]:
        pattern = os.path.expanduser(self.path)
        matches = sorted(Path(p) for p in globlib.glob(pattern)) if globlib.has_magic(pattern) else [Path(pattern)]
        return [m for m in matches if m.is_file()] if globlib.has_magic(pattern) else matches

    @property
    def per_file(self) -> bool:
        return self.partition_column is None and globlib.has_magic(os.path.expanduser(self.path))

    def _read_all(self) -> pl.DataFrame:
        files = self.files()
        if not files:
            raise EmbedMapInputError(f"no file matches {self.path!r}")
        frames = [read_records(f, self.format) for f in files]
        return pl.concat(frames, how="diagonal_relaxed") if len(frames) > 1 else frames[0]

    def partition_keys(self) -> list[str]:
        """The partitions these files hold now."""
        if self.partition_column:
            return self._column_keys(self._read_all())
        if self.per_file:
            stems = [f.stem for f in self.files()]
            clashes = sorted({s for s in stems if stems.count(s) > 1})
            if clashes:
                raise EmbedMapInputError(
                    f"{self.path!r}: several files share the partition key(s) {clashes}; "
                    "give each file a distinct name"
                )
            _refuse_unusable_keys(stems, f"the file names matching {self.path!r}")
            return stems
        return [SINGLE_PARTITION]

    def _column_keys(self, df: pl.DataFrame) -> list[str]:
        """The partition keys ``df`` holds in ``partition_column``, refused when missing, null or unusable."""
        if self.partition_column not in df.columns:
            raise EmbedMapInputError(
                f"partition column {self.partition_column!r} not found in {self.path}; columns: {df.columns}"
            )
        values = df.get_column(self.partition_column)
        if values.null_count():
            raise EmbedMapInputError(
                f"partition column {self.partition_column!r} is null in {values.null_count()} row(s) of {self.path}"
            )
        keys = sorted(str(v) for v in values.cast(pl.String).unique().to_list())
        _refuse_unusable_keys(keys, f"partition column {self.partition_column!r} of {self.path}")
        return keys

    def fingerprints(self) -> dict[str, str]:
        """Per partition key, a digest of its input as the files hold it now: the file's sha256 for a
        file per partition (or one file, one partition); with ``partition_column``, a digest of the
        partition's rows (in any order) and the files' columns. An unchanged digest means the partition's
        records are the ones read last time."""
        if not self.partition_column:
            files = self.files()
            if not self.per_file:
                return {SINGLE_PARTITION: "+".join(file_sha256(f) for f in files)}
            return {f.stem: file_sha256(f) for f in files}
        df = self._read_all()
        keys = set(self._column_keys(df))  # the same refusals as the partitions themselves
        hashed = df.select(pl.col(self.partition_column).cast(pl.String).alias("__key"),
                           df.hash_rows(seed=0).alias("__row"))
        columns = ",".join(f"{name}:{dtype}" for name, dtype in df.schema.items())
        out: dict[str, str] = {}
        for (key,), rows in hashed.group_by("__key"):
            digest = hashlib.sha256(f"{pl.__version__}|{columns}|".encode())
            digest.update(rows["__row"].sort().to_numpy().tobytes())
            out[str(key)] = digest.hexdigest()
        return {k: out[k] for k in sorted(keys)}

    def read_partition(self, partition_key: str) -> pl.DataFrame:
        if self.partition_column:
            df = self._read_all()
            part = df.filter(pl.col(self.partition_column).cast(pl.String) == partition_key)
            if part.is_empty():
                raise EmbedMapInputError(
                    f"partition {partition_key!r}: no row of {self.path} has {self.partition_column} == {partition_key!r}"
                )
            return part
        if self.per_file:
            matches = [f for f in self.files() if f.stem == partition_key]
            if len(matches) > 1:
                raise EmbedMapInputError(
                    f"partition {partition_key!r}: several files match ({[str(m) for m in matches]}); rename one"
                )
            if not matches:
                raise EmbedMapInputError(f"partition {partition_key!r}: no file named {partition_key}.* matches {self.path!r}")
            return read_records(matches[0], self.format)
        return self._read_all()

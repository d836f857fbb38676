"""Validate a frame of records into the map's document shape.

The prepared frame has the columns ``id`` (string), ``text``, ``content_hash`` and, when the user
brings vectors, ``vector``; every other kept column is metadata that travels to the Qdrant payload.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field, replace
from typing import Literal, Sequence

import polars as pl

from ..errors import EmbedMapInputError
from .images import ImageSettings, load_images

__all__ = ["RecordSchema", "PreparedDocuments", "prepare_documents", "attach_images", "content_hash",
           "RESERVED_COLUMNS", "CONTROL_CHARACTERS"]

# Names the pipeline uses itself; a metadata column with one of them is kept as ``meta_<name>``.
# So are the topic levels' fields, ``topic_<level>_id`` and ``topic_<level>_label``.
RESERVED_COLUMNS = ("id", "text", "content_hash", "vector", "record_id", "partition", "x", "y", "topic_id",
                    "topic_label", "layout_version", "vector_hash", "xy_hash", "topic_hash")
IMAGE_COLUMNS = ("image_hash", "image", "thumbnail")
"""What a map with an image column keeps per image record: reserved there too (a map of texts keeps
metadata columns of these names as they are)."""
_RESERVED_PATTERN = re.compile(r"^topic_\d+_(id|label)$")


# C0 controls but tab, newline and carriage return; DEL; C1 controls. Replaced by a space in texts:
# they carry no meaning for the model and can steer a terminal (ANSI escapes) or break a parser.
CONTROL_CHARACTERS = r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]"


def _reserved(column: str) -> bool:
    return column in RESERVED_COLUMNS or _RESERVED_PATTERN.match(column) is not None


def content_hash(text: str) -> str:
    """A stable fingerprint of one record's text (sha256, 32 hex digits)."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True)
class RecordSchema:
    """Which columns of the source hold what."""

    id_column: str = "id"
    text_column: str | None = "text"
    """The text to embed; with an image column the captions, and None when there are none."""
    vector_column: str | None = None
    metadata_columns: Sequence[str] | None = None
    """Columns copied to the payload; ``None`` keeps every column but id, text and vector."""
    empty_text: Literal["skip", "fail"] = "skip"
    """What to do with a null, empty or whitespace-only text: drop it (counted) or fail. A record with
    an image needs no text (its text, when there is one, is its caption)."""
    image_column: str | None = None
    """A column of images: file paths (relative to the source's folder, or absolute) or the images' bytes.
    Those records are embedded from their image, by a CLIP-family model's image tower."""
    images: ImageSettings = field(default_factory=ImageSettings)
    """How images are read: a bad one skipped or failing, the folder of relative paths, the sizes kept."""


@dataclass
class PreparedDocuments:
    frame: pl.DataFrame
    metadata_columns: list[str]
    skipped_empty_text: int = 0
    skipped_ids: list[str] = field(default_factory=list)
    control_characters: int = 0
    """Texts in which control characters were replaced by spaces."""
    control_ids: list[str] = field(default_factory=list)
    skipped_bad_images: list[tuple[str, str]] = field(default_factory=list)
    """``(record id, why)`` of the records dropped for a missing or unreadable image."""
    renamed_columns: dict[str, str] = field(default_factory=dict)
    """Metadata columns whose names the map uses itself, and the names they are kept under
    (``{"x": "meta_x"}``)."""


def _ids_preview(ids: Sequence[object], limit: int = 5) -> str:
    shown = ", ".join(repr(i) for i in list(ids)[:limit])
    more = len(ids) - limit
    return shown + (f" (and {more} more)" if more > 0 else "")


def prepare_documents(df: pl.DataFrame, schema: RecordSchema, partition_key: str = "all") -> PreparedDocuments:
    """Check ``df`` against ``schema`` and return it in the map's document shape.

    Raises :class:`EmbedMapInputError` naming the partition, the column and the offending record ids
    for: a missing column, a null id, ids that are floats or of mixed types, duplicate ids, a text column
    that is not text, empty texts under the ``fail`` policy, and vectors of the wrong length or with
    NaN / inf values. Control characters in texts (ANSI escapes, NUL, ...) become spaces, counted.
    """
    where = f"partition {partition_key!r}"
    if not isinstance(df, pl.DataFrame):
        raise EmbedMapInputError(f"{where}: the source must produce a polars DataFrame, got {type(df).__name__}")
    if schema.text_column is None and not schema.image_column:
        raise EmbedMapInputError(f"{where}: name the text column (text_column=), or an image column (image_column=)")
    wanted = [schema.id_column] + ([schema.text_column] if schema.text_column else []) \
        + ([schema.vector_column] if schema.vector_column else []) \
        + ([schema.image_column] if schema.image_column else [])
    if schema.metadata_columns is not None:
        wanted += list(schema.metadata_columns)
    missing = [c for c in wanted if c not in df.columns]
    if missing and df.height == 0 and not df.columns:  # e.g. a JSON file holding []: an empty partition
        return _empty(schema)
    if missing:
        raise _missing_columns(where, missing, df.columns, schema)

    ids = _checked_ids(df, schema.id_column, where)

    text = df.get_column(schema.text_column) if schema.text_column else pl.Series("text", [""] * df.height, dtype=pl.String)
    if text.dtype == pl.Null:  # every value null: no text at all, handled by the empty-text policy below
        text = text.cast(pl.String)
    if text.dtype != pl.String:
        raise EmbedMapInputError(
            f"{where}: text column {schema.text_column!r} must hold strings, found {text.dtype}"
        )

    if schema.metadata_columns is None:
        own = (schema.id_column, schema.text_column, schema.vector_column)
        meta_cols = [c for c in df.columns if c not in own
                     and (c != schema.image_column or df.schema[c] == pl.String)]  # paths travel, bytes do not
    else:
        meta_cols = list(schema.metadata_columns)
    meta_series, renamed, reserved_renames = _metadata_series(df, meta_cols, where,
                                                              IMAGE_COLUMNS if schema.image_column else ())
    frame = pl.DataFrame([ids.alias("id"), text.alias("text"), *meta_series])

    if schema.vector_column:
        frame = frame.with_columns(_validated_vectors(df, schema, ids, where).alias("vector"))
    has_image = pl.Series([False] * df.height)
    if schema.image_column:
        source = df.get_column(schema.image_column)
        if source.dtype == pl.Null:
            source = source.cast(pl.String)
        if source.dtype not in (pl.String, pl.Binary):
            raise EmbedMapInputError(f"{where}: image column {schema.image_column!r} must hold file paths (strings) "
                                     f"or the images' bytes, found {source.dtype}")
        has_image = source.is_not_null() & (source.str.strip_chars().str.len_chars() > 0
                                            if source.dtype == pl.String else source.bin.size() > 0)
        frame = frame.with_columns(source.alias(IMAGE_SOURCE), pl.col("text").fill_null(""))

    controlled = frame.get_column("text").str.contains(CONTROL_CHARACTERS).fill_null(False)
    control_ids = frame.filter(controlled).get_column("id").to_list()
    if control_ids:
        frame = frame.with_columns(pl.col("text").str.replace_all(CONTROL_CHARACTERS, " "))
    blank = frame.get_column("text").is_null() | (frame.get_column("text").str.strip_chars().str.len_chars() == 0)
    blank = blank & ~has_image.fill_null(False)  # an image needs no caption
    blank_ids = frame.filter(blank).get_column("id").to_list()
    if blank_ids and schema.empty_text == "fail":
        raise EmbedMapInputError(
            f"{where}: text column {schema.text_column!r} is null, empty or blank for id(s) {_ids_preview(blank_ids)}"
        )
    frame = frame.filter(~blank)
    hashes = [content_hash(t) for t in frame.get_column("text").to_list()]
    if schema.vector_column and frame.height:  # the content is the text and the vector: a new vector is a change
        from ..store.payload import vector_hashes

        vectors = frame.get_column("vector")
        matrix = vectors.list.to_array(vectors.list.len().max()).to_numpy()
        hashes = [content_hash(f"{h}\x1f{v}") for h, v in zip(hashes, vector_hashes(matrix))]
    frame = frame.with_columns(pl.Series("content_hash", hashes, dtype=pl.String))
    order = ["id", "text", "content_hash"] + (["vector"] if schema.vector_column else []) \
        + ([IMAGE_SOURCE] if schema.image_column else []) + renamed
    return PreparedDocuments(
        frame=frame.select(order),
        metadata_columns=renamed,
        skipped_empty_text=len(blank_ids),
        skipped_ids=[str(i) for i in blank_ids],
        control_characters=len(control_ids),
        control_ids=[str(i) for i in control_ids],
        renamed_columns=reserved_renames,
    )


IMAGE_SOURCE = "_image_source"
"""The prepared frame's column of each record's image as the source gave it (:func:`attach_images`
replaces it with what the later steps keep)."""


def attach_images(prepared: PreparedDocuments, schema: RecordSchema, partition_key: str) -> PreparedDocuments:
    """Read the images of ``prepared`` (:func:`~.images.load_images`, as ``schema.images`` says) and
    give each image record ``image_hash``, ``image`` (the model's copy) and ``thumbnail``; its content
    hash then covers the image's bytes too. A missing or unreadable image fails the partition naming
    every such record and why (``images.bad="fail"``), or drops the records, kept in
    ``skipped_bad_images``."""
    frame = prepared.frame
    if IMAGE_SOURCE not in frame.columns:
        return prepared
    loaded = load_images(frame[IMAGE_SOURCE].to_list(), frame["id"].to_list(), schema.images.root, schema.images)
    if loaded.bad and schema.images.bad == "fail":
        shown = "; ".join(f"id {rid!r}: {why}" for rid, why in loaded.bad[:5])
        more = f" (and {len(loaded.bad) - 5} more)" if len(loaded.bad) > 5 else ""
        raise EmbedMapInputError(
            f"partition {partition_key!r}: {len(loaded.bad)} image(s) of column {schema.image_column!r} cannot be "
            f"read: {shown}{more}",
            fix="fix or remove those records' images (relative paths are read from the source's folder), or set "
                "ImageSettings(bad='skip') to leave those records out",
            cli_fix="fix or remove those records' images (relative paths are read from the source's folder), or "
                    "pass --bad-image skip to leave those records out")
    hashes = [h if ih is None else content_hash(f"{h}\x1fimage:{ih}")
              for h, ih in zip(frame["content_hash"].to_list(), loaded.hashes)]
    frame = frame.with_columns(pl.Series("content_hash", hashes, dtype=pl.String),
                               pl.Series("image_hash", loaded.hashes, dtype=pl.String),
                               pl.Series("image", loaded.images, dtype=pl.Binary),
                               pl.Series("thumbnail", loaded.thumbnails, dtype=pl.Binary))
    bad_ids = {rid for rid, _ in loaded.bad}
    if bad_ids:
        frame = frame.filter(~pl.col("id").is_in(list(bad_ids)))
    head = [c for c in ("id", "text", "content_hash", "vector") if c in frame.columns]
    frame = frame.select(*head, "image_hash", "image", "thumbnail", *prepared.metadata_columns)
    return replace(prepared, frame=frame, skipped_bad_images=list(loaded.bad))


def _checked_ids(df: pl.DataFrame, column: str, where: str) -> pl.Series:
    """The id column as strings, or an error naming the rows whose ids are null, floats, of mixed
    types, blank or repeated."""
    ids = df.get_column(column)
    if ids.null_count():
        rows = df.with_row_index("_row").filter(pl.col(column).is_null()).get_column("_row").to_list()
        raise EmbedMapInputError(f"{where}: id column {column!r} is null in row(s) {_ids_preview(rows)}")
    if ids.dtype != pl.String:
        if ids.dtype.is_float():
            raise EmbedMapInputError(
                f"{where}: id column {column!r} holds floats ({ids.dtype}); use integer or string ids"
            )
        if ids.dtype == pl.Object:
            kinds = sorted({type(v).__name__ for v in ids.to_list()})
            raise EmbedMapInputError(
                f"{where}: id column {column!r} mixes value types ({', '.join(kinds)}); "
                "give every id one type, integer or string"
            )
        if not (ids.dtype.is_integer() or isinstance(ids.dtype, (pl.Categorical, pl.Enum))):
            raise EmbedMapInputError(
                f"{where}: id column {column!r} holds {ids.dtype}; ids must be integers or strings"
            )
        ids = ids.cast(pl.String)
    empty = ids.str.strip_chars().str.len_chars() == 0
    if empty.any():
        rows = df.with_row_index("_row").filter(empty).get_column("_row").to_list()
        raise EmbedMapInputError(f"{where}: id column {column!r} is empty or blank in row(s) {_ids_preview(rows)}")
    dup = ids.filter(ids.is_duplicated()).unique(maintain_order=True).to_list()
    if dup:
        raise EmbedMapInputError(
            f"{where}: {len(dup)} id(s) appear more than once in column {column!r}: {_ids_preview(dup)}",
            fix="give each record its own id, or name a column of unique ids with id_column=",
            cli_fix="give each record its own id, or name a column of unique ids with --id-column",
        )
    return ids


def _metadata_series(df: pl.DataFrame, meta_cols: list[str], where: str, also_reserved: Sequence[str] = ()
                     ) -> tuple[list[pl.Series], list[str], dict[str, str]]:
    """The metadata columns as kept (dates as text, reserved names as ``meta_<name>``), their kept
    names, and the renames."""
    out_cols: list[pl.Series] = []
    renamed: list[str] = []
    reserved_renames: dict[str, str] = {}
    for col in meta_cols:
        series = df.get_column(col)
        if series.dtype.is_temporal():
            series = series.cast(pl.String)
        name = f"meta_{col}" if _reserved(col) or col in also_reserved else col
        if name in renamed or (name != col and name in meta_cols):
            raise EmbedMapInputError(
                f"{where}: metadata column {col!r} is a reserved name and is kept as {name!r}, "
                f"but column {name!r} exists too; rename one of them"
            )
        out_cols.append(series.alias(name))
        renamed.append(name)
        if name != col:
            reserved_renames[col] = name
    return out_cols, renamed, reserved_renames


def _missing_columns(where: str, missing: list[str], columns: list[str], schema: RecordSchema) -> EmbedMapInputError:
    """The error for columns the source lacks; its fix names the setting (``text_column=``, ...) or the CLI
    option (``--text-column``) that named each."""
    roles = {schema.id_column: "id_column", schema.text_column: "text_column", schema.vector_column: "vector_column"}
    settings = sorted({roles.get(c, "metadata_columns") for c in missing})
    options = [f"--{s.replace('_', '-')}" for s in settings if s != "metadata_columns"]
    return EmbedMapInputError(
        f"{where}: column(s) {missing} not found; the source has columns {columns}",
        fix=f"name one of those with {' / '.join(s + '=' for s in settings)}",
        cli_fix=f"name one of those with {' / '.join(options)}" if options else None,
    )


def _empty(schema: RecordSchema) -> PreparedDocuments:
    columns: dict[str, pl.DataType] = {"id": pl.String, "text": pl.String, "content_hash": pl.String}
    if schema.vector_column:
        columns["vector"] = pl.List(pl.Float32)
    if schema.image_column:
        columns.update(image_hash=pl.String, image=pl.Binary, thumbnail=pl.Binary)
    return PreparedDocuments(frame=pl.DataFrame(schema=columns), metadata_columns=[])


def _validated_vectors(df: pl.DataFrame, schema: RecordSchema, ids: pl.Series, where: str) -> pl.Series:
    col = schema.vector_column
    series = df.get_column(col)
    if not isinstance(series.dtype, (pl.List, pl.Array)) or not series.dtype.inner.is_numeric():
        raise EmbedMapInputError(f"{where}: vector column {col!r} must hold lists of numbers, found {series.dtype}")
    if series.null_count():
        bad = ids.filter(series.is_null()).to_list()
        raise EmbedMapInputError(f"{where}: vector column {col!r} is null for id(s) {_ids_preview(bad)}")
    lengths = series.list.len() if isinstance(series.dtype, pl.List) else pl.Series([series.dtype.size] * len(series))
    if len(series):
        dim = int(lengths.mode().sort()[-1])
        wrong = ids.filter(lengths != dim).to_list()
        if wrong or dim == 0:
            raise EmbedMapInputError(
                f"{where}: vector column {col!r} must have one length; most vectors have {dim} values, "
                f"but id(s) {_ids_preview(wrong)} differ",
                fix="give every record a vector of the same length, or leave vector_column unset to embed the "
                    "texts with the model",
                cli_fix="give every record a vector of the same length, or leave out --vector-column to embed "
                        "the texts with the model",
            )
    vectors = series.cast(pl.List(pl.Float32))
    finite = vectors.list.eval((pl.element().is_not_null() & pl.element().is_finite()).all()).list.first()
    bad = ids.filter(~finite.fill_null(True)).to_list()
    if bad:
        raise EmbedMapInputError(
            f"{where}: vector column {col!r} holds null, NaN or infinite values for id(s) {_ids_preview(bad)}"
        )
    return vectors


"""Finding and reading cartwheel's inputs, with errors that name the path or file at fault."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.runtime import layout
from jobs.runtime.storage import FileInfo, Storage, join
from pipelines import schemas as S
from pipelines.errors import InputError

# Root causes worth surfacing from a Spark/Hadoop read failure, and what they mean.
_CAUSES: tuple[tuple[str, str], ...] = (
    (
        r"ChecksumException|Checksum error",
        "checksum mismatch (the file changed after it was written)",
    ),
    (
        r"Not in GZIP format|not a gzip file|incorrect header check|invalid (?:block type|distance|stored block)",
        "corrupt gzip data",
    ),
    (r"Unexpected end of (?:ZLIB )?input stream|EOFException", "truncated compressed file"),
    (
        r"is not a Parquet file|Could not read footer|expected magic number|CorruptedFooter",
        "not a valid Parquet file",
    ),
    (r"FileNotFoundException|does not exist", "file disappeared while reading"),
)
# Causes of a failure to write (or to create folders) that a user can act on.
_IO_CAUSES: tuple[tuple[str, str], ...] = (
    (r"No space left on device|ENOSPC|Disk quota exceeded", "no space left on the device"),
    (r"Read-only file system|EROFS", "read-only file system"),
    (r"Permission denied|AccessDeniedException|EACCES", "permission denied"),
    (r"Not a directory|Parent path is not a directory|ENOTDIR", "a file is in the way of a folder"),
    (r"Mkdirs failed to create", "cannot create the folder"),
)
_PATH = re.compile(
    r"((?:file|s3a?|abfss?|gs|hdfs|dbfs|wasbs?):/+[^\s,'\"\]\)]+|/[^\s,'\"\]\)]+?\.(?:gz|json|jsonl|csv|parquet))"
)


def _where(text: str) -> str | None:
    match = re.search(
        r"(?:reading file|footer for file:?|file|path=?)\s*((?:\w+:)?/[^\s,;'\"\]\}]+)", text
    ) or _PATH.search(text)
    return match.group(1).rstrip(".") if match else None


def explain_failure(exc: BaseException, fallback: str | None = None) -> str | None:
    """One line naming the path and the cause of a failure a user can act on (a bad input file,
    a full or read-only disk, a file where a folder should be), or None for anything else.

    Spark's Java errors bury both in pages of stack trace; Python's ``OSError`` carries them.
    """
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename or fallback or "a file"
        return f"{where}: {exc.strerror}"
    # Only errors from Spark's JVM: a Python bug whose message says "does not exist" is a bug,
    # and its trace must not be replaced by a guess about files.
    if not type(exc).__module__.startswith(("py4j", "pyspark")):
        return None
    text = str(exc)
    meaning = _cause(text, _CAUSES + _IO_CAUSES)
    return None if meaning is None else f"{_where(text) or fallback or 'a file'}: {meaning}"


def _cause(text: str, table: tuple[tuple[str, str], ...]) -> str | None:
    """The meaning of the first pattern of ``table`` found in ``text``."""
    return next((meaning for pattern, meaning in table if re.search(pattern, text)), None)


@contextlib.contextmanager
def naming_bad_files(what: str, probe: Callable[[], str | None] | None = None) -> Iterator[None]:
    """Re-raise a Spark read failure caused by a bad file as an InputError naming that file.

    Spark names the file for most failures; when it does not (a truncated gzip stream fails
    below Spark's file reader), ``probe`` is asked to find the culprit.
    """
    try:
        yield
    except InputError:
        raise
    except Exception as exc:
        text = str(exc)
        cause = _cause(text, _CAUSES)
        if cause is None:
            raise
        where = _where(text) or (probe() if probe else None)
        raise InputError(f"cannot read {what}: {where or 'an input file'}: {cause}") from exc


def first_unreadable_gzip(storage: Storage, files: Sequence[FileInfo]) -> str | None:
    """The first ``.gz`` file that does not decompress to its end (a diagnostic for failures)."""
    for f in files:
        if f.path.endswith(".gz") and not storage.gzip_readable(f.path):
            return f.path
    return None


# -- raw events ---------------------------------------------------------------------------------


@dataclass
class RawInput:
    """The raw event files for a date window: files per present day, and the days with none."""

    files: dict[dt.date, list[FileInfo]] = field(default_factory=dict)
    missing_days: list[dt.date] = field(default_factory=list)

    @property
    def all_files(self) -> list[FileInfo]:
        return [f for day in sorted(self.files) for f in self.files[day]]

    @property
    def bytes(self) -> int:
        return sum(f.size for f in self.all_files)


def date_window(run_date: dt.date, days: int) -> list[dt.date]:
    """The ``days`` dates ending at ``run_date``, oldest first."""
    return [run_date - dt.timedelta(days=days - 1 - i) for i in range(days)]


partition_name = layout.partition  # one convention, in the layout


def discover_raw_events(
    storage: Storage, data_root: str, days: Sequence[dt.date], *, allow_missing_days: bool
) -> RawInput:
    """List raw event files for ``days``; InputError for a missing/empty folder or unknown file type."""
    root = layout.raw_events(data_root)
    if not storage.is_dir(root):
        raise InputError(
            f"no raw events folder at {root}: run `cartwheel generate` or `cartwheel ingest` for this data root first"
        )
    found = RawInput()
    suffixes = S.JSON_SUFFIXES + S.CSV_SUFFIXES
    present = {name for name, is_dir in storage.list_dir(root) if is_dir}
    for day in days:
        folder = join(root, partition_name(day))
        if partition_name(day) not in present:
            found.missing_days.append(day)
            continue
        files = storage.list_files(folder)
        if not files or sum(f.size for f in files) == 0:
            raise InputError(f"raw events folder {folder} is empty (no data files with any bytes)")
        for f in files:
            if not f.path.lower().endswith(suffixes):
                raise InputError(
                    f"unsupported raw file {f.path}: expected one of {', '.join(suffixes)} "
                    "(JSON lines or header-less CSV, optionally gzip)"
                )
        found.files[day] = files
    if found.missing_days and not allow_missing_days:
        listed = ", ".join(d.isoformat() for d in found.missing_days[:10])
        more = f" and {len(found.missing_days) - 10} more" if len(found.missing_days) > 10 else ""
        raise InputError(
            f"no raw data for {listed}{more} under {root} "
            "(pass --allow-missing-days to clean the days that exist)"
        )
    if not found.files:
        raise InputError(f"no raw data under {root} for {days[0]} .. {days[-1]}")
    return found


def read_raw_lines(spark: SparkSession, raw: RawInput) -> DataFrame:
    """(value, source_file, dt) for every line of the given raw files; gzip read transparently."""
    paths = [f.path for f in raw.all_files]
    lines = spark.read.text(paths)
    source = F.col("_metadata.file_path")
    return lines.select(
        F.col("value"),
        source.alias("source_file"),
        F.to_date(F.regexp_extract(source, r"dt=(\d{4}-\d{2}-\d{2})", 1)).alias("dt"),
    )


def _clean_event_paths(storage: Storage, data_root: str, days: Sequence[dt.date]) -> list[str]:
    """The clean-events partitions of the days in ``days`` that exist."""
    root = layout.clean_events(data_root)
    present = {name for name, is_dir in storage.list_dir(root) if is_dir}
    return [join(root, partition_name(d)) for d in days if partition_name(d) in present]


def clean_events_bytes(storage: Storage, data_root: str, days: Sequence[dt.date]) -> int:
    """Bytes of clean-event files of the days in ``days`` (what a step reading them sizes by)."""
    return sum(
        f.size
        for path in _clean_event_paths(storage, data_root, days)
        for f in storage.list_files(path)
    )


def read_clean_events(
    spark: SparkSession, storage: Storage, data_root: str, days: Sequence[dt.date]
) -> DataFrame:
    """Clean events of the days present in ``days`` (contract schema, with ``dt``);
    InputError naming the window when none of its days has clean events."""
    root = layout.clean_events(data_root)
    paths = _clean_event_paths(storage, data_root, days)
    if not paths:
        raise InputError(
            f"no clean events under {root} for {days[0]} .. {days[-1]}: run `cartwheel clean` for those days first"
        )
    with naming_bad_files("clean events"):
        return spark.read.schema(S.CLEAN_EVENTS.schema).option("basePath", root).parquet(*paths)


# -- parquet tables -------------------------------------------------------------------------------


def _type_name(t: T.DataType) -> str:
    return t.simpleString()


def read_parquet_table(
    spark: SparkSession, storage: Storage, path: str, schema: T.StructType, what: str
) -> DataFrame:
    """A Parquet table checked against its contract: InputError naming ``path`` if it is missing,
    empty, unreadable, or lacks a contract column (or has it with another type)."""
    if not storage.exists(path):
        raise InputError(f"no {what} at {path}")
    files = storage.list_files(path)
    if not files:
        raise InputError(f"{what} at {path} holds no data files")
    with naming_bad_files(what):
        found = spark.read.parquet(path).schema
    have = {f.name: f.dataType for f in found.fields}
    missing = [f.name for f in schema.fields if f.name not in have]
    if missing:
        raise InputError(
            f"{what} at {path} has the wrong columns: missing {', '.join(missing)} "
            f"(found {', '.join(have) or 'none'})"
        )
    mismatched = [
        f"{f.name} is {_type_name(have[f.name])}, expected {_type_name(f.dataType)}"
        for f in schema.fields
        # by type name: Parquet files record every nested field as nullable
        if _type_name(have[f.name]) != _type_name(f.dataType)
    ]
    if mismatched:
        raise InputError(f"{what} at {path} has the wrong column types: {'; '.join(mismatched)}")
    return spark.read.schema(schema).parquet(path)


def read_catalog(spark: SparkSession, storage: Storage, data_root: str) -> DataFrame:
    """The item catalog (``raw/catalog/``) in its contract schema."""
    return read_parquet_table(
        spark, storage, layout.raw_catalog(data_root), S.CATALOG.schema, "item catalog"
    )

"""Driver-side file operations for local folders and cluster URIs alike.

Only metadata and small JSON documents go through here (listings, manifests, reports, renames
that publish staged outputs); table data is always read and written by Spark.

Paths with a cluster scheme (s3a://, abfss://, dbfs:/, hdfs://, gs://) go through Hadoop's
FileSystem in the session's JVM, exactly as Spark sees them. Local paths (no scheme, or
``file:``) take a native Python path by default: the same semantics without a py4j round trip
per file, which matters when a dataset spans thousands of day partitions.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import posixpath
import shutil
import uuid
from dataclasses import dataclass
from typing import Any

from pyspark.sql import SparkSession


@dataclass(frozen=True)
class FileInfo:
    """One file: its path (as given, or a URI), size in bytes and modification time (epoch ms)."""

    path: str
    size: int
    mtime_ms: int = 0


def join(root: str, *parts: str) -> str:
    """``root/part/...`` for a local path or a URI."""
    return posixpath.join(root.rstrip("/"), *[p.strip("/") for p in parts])


def is_hidden(name: str) -> bool:
    """Hadoop's convention: names starting with '_' or '.' are metadata, not data."""
    return name.startswith(("_", "."))


def local_path(path: str) -> str | None:
    """The OS path for a local path or ``file:`` URI; None for any other scheme."""
    if path.startswith("file://"):
        return path[len("file://") :] or "/"
    if path.startswith("file:"):
        return path[len("file:") :]
    if "://" in path or path.startswith("dbfs:"):
        return None
    return path


def uri(path: str) -> str:
    """A path as a URI: ``file://`` before a bare local path (Petastorm wants a scheme)."""
    return f"file://{path}" if path.startswith("/") else path


def _local_info(path: str, os_path: str) -> FileInfo:
    st = os.stat(os_path)
    return FileInfo(path, st.st_size, st.st_mtime_ns // 1_000_000)


class Storage:
    """File-system operations on local paths and Hadoop URIs."""

    def __init__(self, spark: SparkSession | None, *, native_local: bool = True) -> None:
        """``spark`` None: local paths only (no JVM), e.g. for tools that run without Spark."""
        self._jvm: Any = None
        self._conf: Any = None
        if spark is not None:
            jvm, jsc = spark.sparkContext._jvm, spark.sparkContext._jsc
            if jvm is None or jsc is None:
                raise RuntimeError("the SparkSession has no JVM gateway (stopped session?)")
            self._jvm, self._conf = jvm, jsc.hadoopConfiguration()
        self._native_local = native_local or spark is None

    # -- dispatch -----------------------------------------------------------------------------

    def _os(self, path: str) -> str | None:
        return local_path(path) if self._native_local else None

    def _path(self, path: str) -> Any:
        return self._jvm.org.apache.hadoop.fs.Path(path)

    def _fs(self, path: str) -> Any:
        if self._jvm is None:
            raise ValueError(f"{path} is not a local path, and this Storage has no Spark session")
        return self._path(path).getFileSystem(self._conf)

    # -- queries ------------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        p = self._os(path)
        if p is not None:
            return os.path.exists(p)
        return bool(self._fs(path).exists(self._path(path)))

    def is_dir(self, path: str) -> bool:
        p = self._os(path)
        if p is not None:
            return os.path.isdir(p)
        fs, jp = self._fs(path), self._path(path)
        return bool(fs.exists(jp) and fs.getFileStatus(jp).isDirectory())

    def list_dir(self, path: str) -> list[tuple[str, bool]]:
        """(name, is_directory) for each entry directly under ``path``, sorted by name."""
        p = self._os(path)
        if p is not None:
            if not os.path.isdir(p):
                return []
            with os.scandir(p) as it:
                return sorted((e.name, e.is_dir()) for e in it)
        fs, jp = self._fs(path), self._path(path)
        if not fs.exists(jp):
            return []
        return sorted((s.getPath().getName(), bool(s.isDirectory())) for s in fs.listStatus(jp))

    def list_files(self, path: str) -> list[FileInfo]:
        """Visible data files under ``path``, recursively (``_x``/``.x`` names skipped), sorted."""
        p = self._os(path)
        if p is not None:
            found: list[FileInfo] = []
            if os.path.isfile(p):
                return [_local_info(path, p)]
            for folder, dirs, files in os.walk(p):
                dirs[:] = [d for d in dirs if not is_hidden(d)]
                found.extend(
                    _local_info(os.path.join(folder, f), os.path.join(folder, f))
                    for f in files
                    if not is_hidden(f)
                )
            return sorted(found, key=lambda f: f.path)
        fs, jp = self._fs(path), self._path(path)
        if not fs.exists(jp):
            return []
        root = str(jp.toUri().getPath())
        out: list[FileInfo] = []
        it = fs.listFiles(jp, True)
        while it.hasNext():
            status = it.next()
            full = status.getPath()
            rel = str(full.toUri().getPath())[len(root) :]
            if not any(is_hidden(part) for part in rel.split("/") if part):
                out.append(
                    FileInfo(str(full), int(status.getLen()), int(status.getModificationTime()))
                )
        return sorted(out, key=lambda f: f.path)

    # -- changes ------------------------------------------------------------------------------

    def mkdirs(self, path: str) -> None:
        p = self._os(path)
        if p is not None:
            os.makedirs(p, exist_ok=True)
        else:
            self._fs(path).mkdirs(self._path(path))

    def delete(self, path: str) -> None:
        p = self._os(path)
        if p is not None:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p)
            elif os.path.lexists(p):
                os.remove(p)
            return
        fs, jp = self._fs(path), self._path(path)
        if fs.exists(jp):
            fs.delete(jp, True)

    def rename(self, src: str, dst: str) -> None:
        """Move ``src`` to ``dst`` (which must not exist), creating ``dst``'s parent."""
        s, d = self._os(src), self._os(dst)
        if s is not None and d is not None:
            os.makedirs(os.path.dirname(d) or ".", exist_ok=True)
            if os.path.exists(d):
                raise OSError(f"could not rename {src} to {dst}: target exists")
            os.rename(s, d)
            return
        fs, jdst = self._fs(src), self._path(dst)
        parent = jdst.getParent()
        if parent is not None and not fs.exists(parent):
            fs.mkdirs(parent)
        if not fs.rename(self._path(src), jdst):
            raise OSError(f"could not rename {src} to {dst}")

    def write_text(self, path: str, text: str) -> None:
        """Write a small text file; readers see the old or the new content, never a mix."""
        tmp = f"{path}.{uuid.uuid4().hex}.tmp"
        p = self._os(path)
        if p is not None:
            os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
            t = self._os(tmp)
            assert t is not None
            try:
                with open(t, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.replace(t, p)
            except BaseException:  # a full disk: no half-written temp file is left behind
                with contextlib.suppress(OSError):
                    os.remove(t)
                raise
            return
        fs = self._fs(path)
        try:
            out = fs.create(self._path(tmp), True)
            try:
                out.write(bytearray(text.encode("utf-8")))
            finally:
                out.close()
        except BaseException:
            with contextlib.suppress(Exception):
                fs.delete(self._path(tmp), False)
            raise
        if fs.exists(self._path(path)):
            fs.delete(self._path(path), False)
        self.rename(tmp, path)

    def read_text(self, path: str) -> str:
        p = self._os(path)
        if p is not None:
            with open(p, encoding="utf-8") as fh:
                return fh.read()
        stream = self._fs(path).open(self._path(path))
        try:
            return str(self._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
        finally:
            stream.close()

    def gzip_readable(self, path: str) -> bool:
        """Whether a gzip file decompresses to its end (reads the whole file; diagnostics only)."""
        p = self._os(path)
        try:
            if p is not None:
                with gzip.open(p, "rb") as fh:
                    while fh.read(1 << 20):
                        pass
                return True
            stream = self._jvm.java.util.zip.GZIPInputStream(self._fs(path).open(self._path(path)))
            try:
                self._jvm.org.apache.commons.io.IOUtils.consume(stream)
            finally:
                stream.close()
            return True
        except Exception:
            return False

    def create_exclusive(self, path: str, text: str) -> bool:
        """Create ``path`` holding ``text`` unless it exists; False if it did (atomic on local
        file systems and HDFS; object stores give no such guarantee)."""
        p = self._os(path)
        if p is not None:
            os.makedirs(os.path.dirname(p) or ".", exist_ok=True)
            try:
                fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                return False
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
            except BaseException:  # never leave a half-written (unreadable) file behind
                with contextlib.suppress(OSError):
                    os.remove(p)
                raise
            return True
        fs, jp = self._fs(path), self._path(path)
        if fs.exists(jp):
            return False
        try:
            out = fs.create(jp, False)
        except Exception as exc:  # FileAlreadyExistsException from a racing creator
            if "AlreadyExists" in str(exc):
                return False
            raise
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()
        return True

    def write_json(self, path: str, doc: Any) -> None:
        self.write_text(path, json.dumps(doc, indent=2, default=str) + "\n")

    def read_json(self, path: str) -> Any:
        return json.loads(self.read_text(path))

    def publish_partitions(
        self, staging_root: str, target_root: str, partitions: list[str]
    ) -> None:
        """Replace ``target_root/<p>`` by ``staging_root/<p>`` for each partition folder name.

        Only the named partitions change; every other partition of the target stays as it was.
        A partition missing from staging (no rows) is removed from the target, so a re-run that
        yields nothing for a date does not leave that date's stale rows behind.
        """
        self.mkdirs(target_root)
        existing = {name for name, _ in self.list_dir(target_root)}
        staged = {name for name, _ in self.list_dir(staging_root)}
        for part in partitions:
            if part in existing:
                self.delete(join(target_root, part))
            if part in staged:
                self.rename(join(staging_root, part), join(target_root, part))

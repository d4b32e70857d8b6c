"""Find, fetch, verify and extract the BSTLD zip archives.

BSTLD ships each split as one zip file. The train and test zips are cut
into byte-split volumes (`dataset_train_rgb.zip.001` ... `.004`), so joining
them means concatenating the volumes in order. `JoinedVolumes` does that
lazily, without writing a second multi-gigabyte copy to disk.
"""

from __future__ import annotations

import errno
import hashlib
import http.client
import io
import logging
import os
import re
import shutil
import stat
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterable, Mapping

from tqdm import tqdm

from blindspots.data.bstld import DatasetError
from blindspots.runinfo import atomic_path

logger = logging.getLogger(__name__)

# `NAME.zip.001`: one byte-split volume of NAME.zip, numbered from 001.
VOLUME_NAME = re.compile(r"^(?P<archive>.+\.zip)\.(?P<number>\d{3})$")
FETCH_SCHEMES = ("http", "https", "file")
CHUNK_BYTES = 1 << 20
DOWNLOAD_TIMEOUT_S = 60.0


class ArchiveError(DatasetError):
    """An archive is missing, incomplete, corrupt, unsafe or fails its checksum."""


@dataclass(frozen=True)
class Archive:
    """One zip archive, stored whole or as byte-split volumes in order."""

    name: str
    parts: tuple[Path, ...]

    @property
    def size(self) -> int:
        """Total size of all parts in bytes."""
        return sum(part.stat().st_size for part in self.parts)

    def open(self) -> BinaryIO:
        """Open the archive's bytes for reading, joining the volumes if split."""
        if len(self.parts) == 1:
            return open(self.parts[0], "rb")
        return io.BufferedReader(JoinedVolumes(self.parts), buffer_size=CHUNK_BYTES)


class JoinedVolumes(io.RawIOBase):
    """A read-only, seekable view of several files as one byte stream."""

    def __init__(self, parts: Iterable[Path]) -> None:
        super().__init__()
        self._parts = [Path(part) for part in parts]
        self._sizes = [part.stat().st_size for part in self._parts]
        self._starts = [sum(self._sizes[:index]) for index in range(len(self._sizes))]
        self._total = sum(self._sizes)
        self._position = 0
        self._handles: dict[int, BinaryIO] = {}

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence == io.SEEK_SET:
            position = offset
        elif whence == io.SEEK_CUR:
            position = self._position + offset
        elif whence == io.SEEK_END:
            position = self._total + offset
        else:
            raise ValueError(f"invalid whence {whence}. Use io.SEEK_SET, io.SEEK_CUR or io.SEEK_END.")
        if position < 0:
            # OSError, as a real file raises, because zipfile catches it when
            # it probes a file shorter than the end-of-archive record.
            raise OSError(errno.EINVAL, f"negative seek position {position}")
        self._position = position
        return position

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        written = 0
        while written < len(view) and self._position < self._total:
            index = self._part_index(self._position)
            offset_in_part = self._position - self._starts[index]
            requested = min(len(view) - written, self._sizes[index] - offset_in_part)
            handle = self._handle(index)
            handle.seek(offset_in_part)
            count = handle.readinto(view[written : written + requested])
            if not count:
                raise ArchiveError(f"volume {self._parts[index]} ended early because it changed size while being read. Rerun when no other program writes to it.")
            written += count
            self._position += count
        return written

    def close(self) -> None:
        for handle in self._handles.values():
            handle.close()
        self._handles.clear()
        super().close()

    def _part_index(self, position: int) -> int:
        """Return the index of the volume that contains byte `position` (< total size)."""
        for index, (start, size) in enumerate(zip(self._starts, self._sizes)):
            if start <= position < start + size:
                return index
        raise ValueError(f"position {position} is past the end ({self._total} bytes)")

    def _handle(self, index: int) -> BinaryIO:
        if index not in self._handles:
            self._handles[index] = open(self._parts[index], "rb")
        return self._handles[index]


def find_archives(folder: Path | str) -> list[Archive]:
    """Group the zip files and numbered zip volumes in `folder` into archives.

    Volumes must be numbered contiguously from 001. Raises ArchiveError for
    a gap in the numbering, or when a whole `NAME.zip` and volumes of the
    same NAME both exist, because it is unclear which one to use.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ArchiveError(f"archive folder not found: {folder}. Create it and put the BSTLD archives there (data.archives_dir).")

    whole: dict[str, Path] = {}
    volumes: dict[str, dict[int, Path]] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        match = VOLUME_NAME.match(path.name)
        if match:
            volumes.setdefault(match["archive"], {})[int(match["number"])] = path
        elif path.name.endswith(".zip"):
            whole[path.name] = path

    archives = [Archive(name, (path,)) for name, path in whole.items()]
    for name, numbered in volumes.items():
        if name in whole:
            raise ArchiveError(
                f"{folder} contains both {name} and its volumes {name}.001... Remove one of them so the archive is unambiguous."
            )
        expected = list(range(1, max(numbered) + 1))
        missing = [f"{name}.{number:03d}" for number in expected if number not in numbered]
        if missing:
            raise ArchiveError(f"{folder}: volume(s) missing from the split archive {name}: {', '.join(missing)}. Download them too.")
        archives.append(Archive(name, tuple(numbered[number] for number in expected)))
    return sorted(archives, key=lambda archive: archive.name)


def sha256_of(path: Path | str) -> str:
    """Return the SHA-256 hex digest of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path | str, expected: str) -> None:
    """Raise ArchiveError naming the file and both digests unless they match."""
    actual = sha256_of(path)
    if actual.lower() != expected.lower():
        raise ArchiveError(
            f"SHA-256 mismatch for {path}: expected {expected.lower()}, got {actual}. "
            "The file is incomplete or corrupt: delete it and download it again, or correct data.sha256."
        )
    logger.info("SHA-256 verified: %s", path)


def verify_checksums(folder: Path | str, checksums: Mapping[str, str]) -> int:
    """Verify every file in `folder` named in `checksums` (file name -> hex digest).

    Keys name single files, e.g. a volume `dataset_train_rgb.zip.001`.
    Returns the number of files verified. Raises ArchiveError for a
    mismatch or for a key that names no file in `folder`.
    """
    folder = Path(folder)
    for name, expected in checksums.items():
        path = folder / _plain_file_name(name, "data.sha256")
        if not path.is_file():
            raise ArchiveError(f"data.sha256 lists '{name}' but {path} does not exist. Put the file there or remove the key.")
        verify_sha256(path, expected)
    return len(checksums)


def fetch(url: str, destination: Path | str, expected_sha256: str | None = None, timeout_s: float = DOWNLOAD_TIMEOUT_S) -> Path:
    """Download `url` to `destination`, resuming a partial `<destination>.part`.

    A partial download is resumed with an HTTP Range request. A server that
    ignores the range (status 200) or a `file://` URL restarts the download
    from the beginning. The `.part` file is renamed to `destination` only
    after the whole body, and the checksum if given, are verified. On a
    checksum mismatch the `.part` file is deleted. An existing `destination`
    is not downloaded again, but it is still verified.
    """
    destination = Path(destination)
    scheme = urllib.parse.urlparse(url).scheme
    if scheme not in FETCH_SCHEMES:
        raise ArchiveError(f"cannot fetch {url}: unsupported URL scheme '{scheme}'. Use one of: {', '.join(FETCH_SCHEMES)}.")

    if destination.is_file():
        logger.info("already downloaded, not fetching again: %s", destination)
        if expected_sha256:
            verify_sha256(destination, expected_sha256)
        return destination

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_name(destination.name + ".part")
    _download_to(url, partial, timeout_s)
    if expected_sha256:
        try:
            verify_sha256(partial, expected_sha256)
        except ArchiveError:
            partial.unlink()
            raise
    os.replace(partial, destination)
    logger.info("downloaded %s -> %s (%d bytes)", url, destination, destination.stat().st_size)
    return destination


def _download_to(url: str, partial: Path, timeout_s: float) -> None:
    """Append the rest of `url` to `partial`, or rewrite it if the server cannot resume."""
    offset = partial.stat().st_size if partial.is_file() else 0
    request = urllib.request.Request(url)
    if offset:
        request.add_header("Range", f"bytes={offset}-")
        logger.info("resuming %s from byte %d", url, offset)
    try:
        response = urllib.request.urlopen(request, timeout=timeout_s)  # noqa: S310 - scheme checked by the caller
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset and _range_is_complete(error, offset):
            logger.info("%s: the partial file already contains all %d bytes", url, offset)
            return
        raise ArchiveError(f"download failed: {url} returned HTTP {error.code} {error.reason}. Check the URL in data.urls.") from error
    except (urllib.error.URLError, OSError) as error:
        raise ArchiveError(f"download failed: {url}: {error}. The partial file {partial} is kept, so a rerun resumes it.") from error

    with response:
        status = getattr(response, "status", None)
        resumed = offset > 0 and status == 206
        if offset and not resumed:
            logger.info("%s does not support resuming (status %s), so the download restarts from byte 0", url, status)
            offset = 0
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length is not None else None
        mode = "ab" if resumed else "wb"
        try:
            with open(partial, mode) as handle, tqdm(
                total=total, initial=offset, unit="B", unit_scale=True, desc=partial.name, disable=None
            ) as progress:
                for chunk in iter(lambda: response.read(CHUNK_BYTES), b""):
                    handle.write(chunk)
                    progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise ArchiveError(f"download failed: {url}: {error!r}. The partial file {partial} is kept, so a rerun resumes it.") from error

    if total is not None and partial.stat().st_size != total:
        raise ArchiveError(
            f"download incomplete: {url} sent {partial.stat().st_size} of {total} bytes. "
            f"The partial file {partial} is kept, so a rerun resumes it."
        )


def _range_is_complete(error: urllib.error.HTTPError, offset: int) -> bool:
    """Return True when a 416 response reports that the resource has exactly `offset` bytes."""
    content_range = error.headers.get("Content-Range", "") if error.headers else ""
    match = re.fullmatch(r"bytes \*/(\d+)", content_range.strip())
    return bool(match) and int(match.group(1)) == offset


def fetch_all(urls: Mapping[str, str], folder: Path | str, checksums: Mapping[str, str]) -> list[Path]:
    """Fetch each `name -> URL` of `data.urls` into `folder/name`."""
    folder = Path(folder)
    fetched = []
    for name, url in urls.items():
        destination = folder / _plain_file_name(name, "data.urls")
        fetched.append(fetch(url, destination, checksums.get(name)))
    return fetched


def _plain_file_name(name: str, key: str) -> str:
    """Reject names that are not a single file name, so no key can write outside the folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise ArchiveError(f"invalid file name '{name}' in {key}. Use a plain file name such as dataset_train_rgb.zip.001.")
    return name


def check_members(archive: zipfile.ZipFile, archive_name: str) -> list[zipfile.ZipInfo]:
    """Return the archive's entries, or raise if any would land outside the target folder.

    Rejects absolute paths, drive letters, `..` components and symbolic
    links. The check runs over every entry before anything is written.
    """
    members = archive.infolist()
    for info in members:
        name = info.filename
        parts = re.split(r"[\\/]", name)
        if all(part in ("", ".") for part in parts) and not info.is_dir():
            raise ArchiveError(f"{archive_name}: entry '{name}' has an empty path, so the archive is rejected as unsafe.")
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name):
            raise ArchiveError(f"{archive_name}: entry '{name}' has an absolute path, so the archive is rejected as unsafe.")
        if ".." in parts:
            raise ArchiveError(f"{archive_name}: entry '{name}' would be extracted outside the target folder, so the archive is rejected as unsafe.")
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise ArchiveError(f"{archive_name}: entry '{name}' is a symbolic link, so the archive is rejected as unsafe.")
    return members


def extract_archive(archive: Archive, target: Path | str) -> int:
    """Extract every entry of `archive` into the existing folder `target`.

    Returns the number of files written. Raises ArchiveError for a
    truncated or corrupt zip, an unsafe entry, or too little disk space.
    Files already in `target` are overwritten with a logged warning.
    This function is not atomic by itself; `extract_archives` makes it so.
    """
    target = Path(target)
    try:
        with archive.open() as stream, zipfile.ZipFile(stream) as zipped:
            members = check_members(zipped, archive.name)
            _check_free_space(members, target, archive.name)
            return _extract_members(zipped, members, target, archive.name)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as error:
        raise ArchiveError(
            f"{archive.name} ({', '.join(str(part) for part in archive.parts)}) is truncated or corrupt: {error}. "
            "Download it again, and check data.sha256."
        ) from error


def _check_free_space(members: list[zipfile.ZipInfo], target: Path, archive_name: str) -> None:
    needed = sum(info.file_size for info in members)
    free = shutil.disk_usage(target).free
    if needed > free:
        raise ArchiveError(
            f"{archive_name} needs {needed / 1e9:.1f} GB to extract but only {free / 1e9:.1f} GB are free under {target}. "
            "Free some space or move data.root."
        )


def _extract_members(zipped: zipfile.ZipFile, members: list[zipfile.ZipInfo], target: Path, archive_name: str) -> int:
    total_bytes = sum(info.file_size for info in members)
    overwritten = 0
    written = 0
    with tqdm(total=total_bytes, unit="B", unit_scale=True, desc=f"extract {archive_name}", disable=None) as progress:
        for info in members:
            destination = target.joinpath(*PurePosixPath(info.filename).parts)
            if info.is_dir():
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.exists():
                overwritten += 1
            with zipped.open(info) as source, open(destination, "wb") as sink:
                for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                    sink.write(chunk)
                    progress.update(len(chunk))
            written += 1
    if overwritten:
        logger.warning("%s: %d entries overwrote files extracted from an earlier archive", archive_name, overwritten)
    return written


def extract_archives(archives: Iterable[Archive], target: Path | str) -> dict[str, int]:
    """Extract all archives into `target` atomically, returning files written per archive.

    Everything is extracted into a temporary sibling folder that replaces
    `target` only when every archive succeeded, so a failure leaves
    `target` as it was and no partial extraction behind.
    """
    counts: dict[str, int] = {}
    with atomic_path(target) as staging:
        staging.mkdir()
        for archive in archives:
            logger.info("extracting %s (%d part(s), %.1f MB)", archive.name, len(archive.parts), archive.size / 1e6)
            counts[archive.name] = extract_archive(archive, staging)
    return counts

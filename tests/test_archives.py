"""Finding, fetching, verifying, joining and extracting BSTLD archives."""

from __future__ import annotations

import hashlib
import io
import stat
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from blindspots.data import archives
from blindspots.data.archives import Archive, ArchiveError, JoinedVolumes
from data_fixtures import leftovers, make_zip, split_volumes, write_bstld_archives, write_default_dataset

PAYLOAD = bytes(range(256)) * 40  # 10240 bytes


def tree(root: Path) -> dict[str, bytes]:
    return {path.relative_to(root).as_posix(): path.read_bytes() for path in sorted(root.rglob("*")) if path.is_file()}


# ------------------------------------------------------------ finding and joining


def test_find_archives_groups_volumes(tmp_path):
    for name in ("b.zip.002", "b.zip.001", "b.zip.003", "a.zip", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    found = archives.find_archives(tmp_path)
    assert [archive.name for archive in found] == ["a.zip", "b.zip"]
    assert [part.name for part in found[1].parts] == ["b.zip.001", "b.zip.002", "b.zip.003"]


def test_find_archives_missing_volume(tmp_path):
    for name in ("b.zip.001", "b.zip.003"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ArchiveError) as error:
        archives.find_archives(tmp_path)
    assert "b.zip.002" in str(error.value)


def test_find_archives_whole_and_volumes(tmp_path):
    for name in ("b.zip", "b.zip.001"):
        (tmp_path / name).write_bytes(b"x")
    with pytest.raises(ArchiveError) as error:
        archives.find_archives(tmp_path)
    assert "contains both b.zip and its volumes" in str(error.value)


def test_find_archives_missing_folder(tmp_path):
    with pytest.raises(ArchiveError) as error:
        archives.find_archives(tmp_path / "absent")
    assert f"archive folder not found: {tmp_path / 'absent'}" in str(error.value)


def test_joined_volumes_read_and_seek(tmp_path):
    data = bytes(range(100))
    parts = []
    for index, (start, stop) in enumerate([(0, 30), (30, 30), (30, 75), (75, 100)]):
        part = tmp_path / f"v.{index}"
        part.write_bytes(data[start:stop])
        parts.append(part)
    with io.BufferedReader(JoinedVolumes(parts), buffer_size=8) as joined:
        # Reads cross the empty second volume and two volume boundaries.
        assert joined.read() == data
        joined.seek(28)
        assert joined.read(50) == data[28:78]
        joined.seek(-3, io.SEEK_END)
        assert joined.read() == data[97:]


def test_extract_split_volumes(tmp_path):
    source = write_default_dataset(tmp_path / "source")
    write_bstld_archives(source, tmp_path / "archives")
    found = archives.find_archives(tmp_path / "archives")
    counts = archives.extract_archives(found, tmp_path / "root")
    assert tree(tmp_path / "root") == tree(source)
    # train: train.yaml + 5 PNGs; test: test.yaml + 2; additional: yaml + 2.
    assert counts == {"dataset_additional_rgb.zip": 3, "dataset_test_rgb.zip": 3, "dataset_train_rgb.zip": 6}


# ------------------------------------------------------------------ bad archives


def test_truncated_archive(tmp_path):
    source = write_default_dataset(tmp_path / "source")
    volumes = write_bstld_archives(source, tmp_path / "archives")["dataset_train_rgb.zip"]
    last = volumes[-1]
    last.write_bytes(last.read_bytes()[:-200])
    with pytest.raises(ArchiveError) as error:
        archives.extract_archives(archives.find_archives(tmp_path / "archives"), tmp_path / "out" / "root")
    assert "dataset_train_rgb.zip" in str(error.value)
    assert "is truncated or corrupt" in str(error.value)
    assert not (tmp_path / "out" / "root").exists()
    assert leftovers(tmp_path / "out") == []


def test_corrupt_member(tmp_path):
    zip_path = make_zip(tmp_path / "a.zip", {"data.bin": PAYLOAD})
    raw = bytearray(zip_path.read_bytes())
    raw[100] ^= 0xFF  # inside the stored data of the only entry
    zip_path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError) as error:
        archives.extract_archives([Archive("a.zip", (zip_path,))], tmp_path / "out" / "root")
    assert "a.zip" in str(error.value)
    assert "is truncated or corrupt" in str(error.value)
    assert not (tmp_path / "out" / "root").exists()
    assert leftovers(tmp_path / "out") == []


def test_tiny_split_archive(tmp_path):
    # 5 bytes in all: shorter than a zip's 22-byte end-of-archive record.
    (tmp_path / "a.zip.001").write_bytes(b"PK")
    (tmp_path / "a.zip.002").write_bytes(b"abc")
    with pytest.raises(ArchiveError) as error:
        archives.extract_archives(archives.find_archives(tmp_path), tmp_path / "out" / "root")
    assert "a.zip (" in str(error.value)
    assert "is truncated or corrupt" in str(error.value)
    assert not (tmp_path / "out" / "root").exists()


def test_failed_extraction_keeps_old_root(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "old.txt").write_text("old")
    zip_path = make_zip(tmp_path / "a.zip", {"good.txt": b"1", "../evil.txt": b"2"})
    with pytest.raises(ArchiveError):
        archives.extract_archives([Archive("a.zip", (zip_path,))], tmp_path / "root")
    assert tree(tmp_path / "root") == {"old.txt": b"old"}


@pytest.mark.parametrize(
    ("entry", "reason"),
    [
        ("../evil.txt", "would be extracted outside the target folder"),
        ("rgb/../../evil.txt", "would be extracted outside the target folder"),
        ("/etc/evil.txt", "has an absolute path"),
        ("C:/evil.txt", "has an absolute path"),
    ],
)
def test_unsafe_entry_rejected(tmp_path, entry, reason):
    zip_path = make_zip(tmp_path / "a.zip", {"good.txt": b"written first", entry: b"evil"})
    with pytest.raises(ArchiveError) as error:
        archives.extract_archives([Archive("a.zip", (zip_path,))], tmp_path / "out" / "root")
    assert f"entry '{entry}' {reason}" in str(error.value)
    assert not (tmp_path / "out" / "root").exists()
    assert not (tmp_path / "evil.txt").exists()
    assert leftovers(tmp_path / "out") == []


def test_symlink_entry_rejected(tmp_path):
    zip_path = tmp_path / "a.zip"
    link = zipfile.ZipInfo("link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16
    with zipfile.ZipFile(zip_path, "w") as archive:
        archive.writestr(link, "/etc/passwd")
    with pytest.raises(ArchiveError) as error:
        archives.extract_archives([Archive("a.zip", (zip_path,))], tmp_path / "out" / "root")
    assert "entry 'link' is a symbolic link" in str(error.value)
    assert not (tmp_path / "out" / "root").exists()


# ---------------------------------------------------------------------- checksums


def test_sha256_mismatch(tmp_path):
    path = tmp_path / "a.zip.001"
    path.write_bytes(PAYLOAD)
    expected = "0" * 64
    actual = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(ArchiveError) as error:
        archives.verify_checksums(tmp_path, {"a.zip.001": expected})
    message = str(error.value)
    assert str(path) in message
    assert f"expected {expected}" in message
    assert f"got {actual}" in message


def test_sha256_match(tmp_path):
    (tmp_path / "a.zip").write_bytes(PAYLOAD)
    assert archives.verify_checksums(tmp_path, {"a.zip": hashlib.sha256(PAYLOAD).hexdigest().upper()}) == 1


def test_sha256_for_absent_file(tmp_path):
    with pytest.raises(ArchiveError) as error:
        archives.verify_checksums(tmp_path, {"a.zip": "0" * 64})
    assert "data.sha256 lists 'a.zip'" in str(error.value)


# ----------------------------------------------------------------------- fetching


class RangeServer:
    """A local HTTP server for PAYLOAD that can honour Range, ignore it, or cut the body short."""

    def __init__(self) -> None:
        self.honour_range = True
        self.cut_after: int | None = None
        self.range_headers: list[str | None] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's method name
                header = self.headers.get("Range")
                server.range_headers.append(header)
                start = int(header.split("=")[1].rstrip("-")) if header and server.honour_range else 0
                if start >= len(PAYLOAD):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = PAYLOAD[start:]
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body if server.cut_after is None else body[: server.cut_after])

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/a.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture()
def server():
    running = RangeServer()
    yield running
    running.close()


def test_fetch_resumes_partial(tmp_path, server):
    (tmp_path / "a.zip.part").write_bytes(PAYLOAD[:4000])
    path = archives.fetch(server.url, tmp_path / "a.zip", hashlib.sha256(PAYLOAD).hexdigest())
    assert server.range_headers == ["bytes=4000-"]
    assert path.read_bytes() == PAYLOAD
    assert not (tmp_path / "a.zip.part").exists()


def test_fetch_complete_partial(tmp_path, server):
    # The server responds 416 with the full length when nothing is left to send.
    (tmp_path / "a.zip.part").write_bytes(PAYLOAD)
    path = archives.fetch(server.url, tmp_path / "a.zip")
    assert server.range_headers == [f"bytes={len(PAYLOAD)}-"]
    assert path.read_bytes() == PAYLOAD


def test_fetch_restarts_without_range(tmp_path, server):
    server.honour_range = False
    (tmp_path / "a.zip.part").write_bytes(b"stale bytes")
    path = archives.fetch(server.url, tmp_path / "a.zip")
    assert path.read_bytes() == PAYLOAD


def test_fetch_interrupted_then_resumed(tmp_path, server):
    server.cut_after = 3000
    with pytest.raises(ArchiveError) as error:
        archives.fetch(server.url, tmp_path / "a.zip")
    assert "is kept, so a rerun resumes it" in str(error.value)
    assert (tmp_path / "a.zip.part").stat().st_size == 3000
    assert not (tmp_path / "a.zip").exists()

    server.cut_after = None
    archives.fetch(server.url, tmp_path / "a.zip")
    assert server.range_headers == [None, "bytes=3000-"]
    assert (tmp_path / "a.zip").read_bytes() == PAYLOAD


def test_fetch_checksum_mismatch(tmp_path, server):
    with pytest.raises(ArchiveError) as error:
        archives.fetch(server.url, tmp_path / "a.zip", "f" * 64)
    assert f"SHA-256 mismatch for {tmp_path / 'a.zip.part'}" in str(error.value)
    assert sorted(path.name for path in tmp_path.iterdir()) == []


def test_fetch_skips_existing(tmp_path, server):
    (tmp_path / "a.zip").write_bytes(PAYLOAD)
    archives.fetch(server.url, tmp_path / "a.zip", hashlib.sha256(PAYLOAD).hexdigest())
    assert server.range_headers == []


def test_fetch_file_url(tmp_path):
    source = tmp_path / "source.zip"
    source.write_bytes(PAYLOAD)
    path = archives.fetch(source.as_uri(), tmp_path / "archives" / "a.zip")
    assert path.read_bytes() == PAYLOAD


def test_fetch_rejects_scheme(tmp_path):
    with pytest.raises(ArchiveError) as error:
        archives.fetch("ftp://127.0.0.1/a.zip", tmp_path / "a.zip")
    assert "unsupported URL scheme 'ftp'" in str(error.value)


def test_fetch_all_rejects_path_name(tmp_path):
    with pytest.raises(ArchiveError) as error:
        archives.fetch_all({"../a.zip": "file:///dev/null"}, tmp_path, {})
    assert "invalid file name '../a.zip' in data.urls" in str(error.value)


def test_fetch_all_then_extract(tmp_path):
    # Split volumes fetched from file:// URLs join into the original archive.
    source = make_zip(tmp_path / "served" / "x.zip", {"train.yaml": b"[]\n", "rgb/train/s/1.png": PAYLOAD})
    volumes = split_volumes(source, 2)
    urls = {volume.name: volume.as_uri() for volume in volumes}
    archives.fetch_all(urls, tmp_path / "archives", {})
    archives.extract_archives(archives.find_archives(tmp_path / "archives"), tmp_path / "root")
    assert tree(tmp_path / "root") == {"rgb/train/s/1.png": PAYLOAD, "train.yaml": b"[]\n"}

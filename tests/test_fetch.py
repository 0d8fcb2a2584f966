"""Dataset sources: folders, safe zip extraction, cached downloads, layout detection."""

from __future__ import annotations

import functools
import hashlib
import http.server
import socket
import stat
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from unetseg.data.datasets import read_samples
from unetseg.data.fetch import resolve_source
from unetseg.errors import InputError

DATASETS = Path(__file__).resolve().parents[1] / ".." / "shared" / "datasets"
needs_shared = pytest.mark.skipif(not DATASETS.is_dir(),
                                  reason=f"the shared example data is not at {DATASETS}")


def _ctc_folder(root: Path) -> Path:
    rng = np.random.default_rng(0)
    (root / "01").mkdir(parents=True)
    (root / "01_GT" / "SEG").mkdir(parents=True)
    for n in range(3):
        tifffile.imwrite(root / "01" / f"t{n:03d}.tif", rng.integers(0, 255, (8, 9), np.uint8),
                         compression="lzw")
    mask = np.zeros((8, 9), np.uint16)
    mask[2:5, 2:6] = 4
    tifffile.imwrite(root / "01_GT" / "SEG" / "man_seg001.tif", mask)
    return root


def _zip_folder(folder: Path, target: Path, prefix: str) -> Path:
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, prefix + path.relative_to(folder).as_posix())
    return target


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _error(match: str, source: str, **kwargs) -> str:
    with pytest.raises(InputError, match=match) as info:
        resolve_source(source, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.fixture
def dataset_zip(tmp_path: Path) -> Path:
    folder = _ctc_folder(tmp_path / "src")
    return _zip_folder(folder, tmp_path / "DIC-C2DH-HeLa.zip", "DIC-C2DH-HeLa/")


def test_folder_is_returned_as_is(tmp_path: Path) -> None:
    folder = _ctc_folder(tmp_path / "ds")
    assert resolve_source(str(folder), sha256="", cache_dir=tmp_path / "cache") == folder
    assert not (tmp_path / "cache").exists()
    _error("sha256 applies to zip/URL sources", str(folder), sha256="0" * 64,
           cache_dir=tmp_path / "cache")


def test_missing_path_and_unsupported_sources(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope")
    assert _error("no such file or folder", missing, sha256="", cache_dir=tmp_path) \
        == f"{missing}: no such file or folder"
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    _error("not a folder, .zip file", str(text), sha256="", cache_dir=tmp_path)
    _error("unsupported URL scheme", "ftp://example.org/x.zip", sha256="", cache_dir=tmp_path)


def test_zip_is_verified_extracted_and_reused(tmp_path: Path, dataset_zip: Path) -> None:
    cache = tmp_path / "cache"
    digest = _sha(dataset_zip)
    folder = resolve_source(str(dataset_zip), sha256=digest.upper(), cache_dir=cache)
    assert folder == cache / digest[:16] / "DIC-C2DH-HeLa"
    samples = read_samples(folder)
    assert [s.name for s in samples] == ["01_t001"]
    marker = folder / "01" / "t000.tif"
    before = marker.stat().st_mtime_ns
    assert resolve_source(str(dataset_zip), sha256="", cache_dir=cache) == folder
    assert marker.stat().st_mtime_ns == before
    assert sorted(p.name for p in cache.iterdir()) == [digest[:16]]


def test_zip_without_top_folder(tmp_path: Path) -> None:
    archive = _zip_folder(_ctc_folder(tmp_path / "src"), tmp_path / "flat.zip", "")
    folder = resolve_source(str(archive), sha256="", cache_dir=tmp_path / "cache")
    assert folder == tmp_path / "cache" / _sha(archive)[:16]
    assert len(read_samples(folder)) == 1


def test_checksum_mismatch_names_file_expected_and_got(tmp_path: Path, dataset_zip: Path) -> None:
    wrong = "ab" * 32
    message = _error("sha256 mismatch", str(dataset_zip), sha256=wrong, cache_dir=tmp_path / "c")
    assert str(dataset_zip) in message and wrong in message and _sha(dataset_zip) in message
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("entry", ["../evil.txt", "/abs/evil.txt", "ok/../../evil.txt",
                                   "..\\evil.txt", "C:/evil.txt"])
def test_zip_slip_is_refused(tmp_path: Path, entry: str) -> None:
    archive = tmp_path / "slip.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("data/readme.txt", "fine")
        z.writestr(entry, "evil")
    cache = tmp_path / "deep" / "cache"
    message = _error("unsafe zip entry", str(archive), sha256="", cache_dir=cache)
    assert str(archive) in message
    assert not list(tmp_path.rglob("evil.txt"))
    assert not cache.exists() or not any(cache.iterdir())


def test_zip_symlink_entry_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as z:
        info = zipfile.ZipInfo("data/passwd")
        info.external_attr = (stat.S_IFLNK | 0o777) << 16
        z.writestr(info, "/etc/passwd")
    _error("unsafe zip entry", str(archive), sha256="", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / _sha(archive)[:16]).exists()


def test_bad_and_damaged_zips(tmp_path: Path, dataset_zip: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"PK\x03\x04 definitely not a zip")
    assert str(junk) in _error("not a valid zip file", str(junk), sha256="", cache_dir=tmp_path)
    data = bytearray(dataset_zip.read_bytes())
    start = data.index(b"01/t000.tif") + 40
    data[start:start + 64] = bytes(64)
    damaged = tmp_path / "damaged.zip"
    damaged.write_bytes(bytes(data))
    _error("not a valid zip file", str(damaged), sha256="", cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / _sha(damaged)[:16]).exists()


class _Server:
    """A local http.server in a thread that counts the requests it answers."""

    def __init__(self, root: Path) -> None:
        self.hits: list[str] = []
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.hits.append(self.path)
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(dataset_zip: Path) -> Iterator[_Server]:
    srv = _Server(dataset_zip.parent)
    yield srv
    srv.close()


def test_download_once_verify_and_extract(tmp_path: Path, dataset_zip: Path,
                                          server: _Server) -> None:
    url = f"{server.url}/{dataset_zip.name}"
    cache = tmp_path / "cache"
    digest = _sha(dataset_zip)
    first = resolve_source(url, sha256=digest, cache_dir=cache)
    second = resolve_source(url, sha256=digest, cache_dir=cache)
    assert first == second == cache / digest[:16] / "DIC-C2DH-HeLa"
    assert server.hits == [f"/{dataset_zip.name}"]
    downloads = list((cache / "downloads").iterdir())
    assert len(downloads) == 1 and downloads[0].name.endswith("-DIC-C2DH-HeLa.zip")
    assert downloads[0].read_bytes() == dataset_zip.read_bytes()
    assert [s.name for s in read_samples(first)] == ["01_t001"]


def test_download_checksum_mismatch(tmp_path: Path, dataset_zip: Path, server: _Server) -> None:
    url = f"{server.url}/{dataset_zip.name}"
    message = _error("sha256 mismatch", url, sha256="cd" * 32, cache_dir=tmp_path / "cache")
    assert url in message and _sha(dataset_zip) in message
    assert not list((tmp_path / "cache" / "downloads").iterdir())


def test_download_that_is_not_a_zip_is_not_cached(tmp_path: Path, server: _Server) -> None:
    (tmp_path / "portal.zip").write_text("<html>please log in</html>")
    url = f"{server.url}/portal.zip"
    _error("not a zip file", url, sha256="", cache_dir=tmp_path / "cache")
    assert not list((tmp_path / "cache" / "downloads").iterdir())


def test_http_error(tmp_path: Path, server: _Server) -> None:
    _error("HTTP 404", f"{server.url}/missing.zip", sha256="", cache_dir=tmp_path / "cache")


def test_unreachable_url(tmp_path: Path) -> None:
    url = "https://127.0.0.1:9/x.zip"
    assert url in _error("cannot download", url, sha256="", cache_dir=tmp_path / "cache")


def test_silent_server_times_out(tmp_path: Path) -> None:
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.zip"
        _error("timed out after 0.3 s", url, sha256="", cache_dir=tmp_path / "cache",
               timeout=0.3)


def test_read_samples_rejects_empty_and_unknown(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty folder; expected a Cell Tracking"):
        read_samples(tmp_path / "empty")
    (tmp_path / "other" / "stuff").mkdir(parents=True)
    (tmp_path / "other" / "a.png").write_bytes(b"")
    with pytest.raises(InputError, match="unknown dataset layout") as info:
        read_samples(tmp_path / "other")
    assert str(tmp_path / "other") in str(info.value)
    with pytest.raises(InputError, match="not a folder"):
        read_samples(tmp_path / "missing")


@needs_shared
def test_real_phc_u373() -> None:
    folder = resolve_source(str(DATASETS / "PhC-C2DH-U373"), sha256="", cache_dir=Path("unused"))
    samples = read_samples(folder)
    assert [s.name for s in samples] == (
        [f"01_t{n:03d}" for n in (1, 5, 6, 7, 21, 49, 59, 67, 72, 75, 92, 96, 100, 102, 112)]
        + [f"02_t{n:03d}" for n in (10, 17, 20, 22, 35, 36, 49, 51, 59, 74, 85, 92, 112)])
    for s in samples:
        assert s.image.shape == s.mask.shape == (520, 696)
        assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint16
        assert s.mask.max() >= 1


@needs_shared
def test_real_dic_hela() -> None:
    samples = read_samples(DATASETS / "DIC-C2DH-HeLa")
    assert [s.name for s in samples] == [f"01_t{n:03d}" for n in
                                         (2, 5, 21, 31, 33, 34, 39, 54, 67)]
    st = read_samples(DATASETS / "DIC-C2DH-HeLa", "st")
    assert [s.frame for s in st] == list(range(84))
    for s in samples + st[::20]:
        assert s.image.shape == s.mask.shape == (512, 512)
        assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint16
        assert s.mask.max() >= 1


@needs_shared
def test_real_isbi2012_em() -> None:
    samples = read_samples(DATASETS / "isbi2012-em")
    assert [s.name for s in samples] == [f"em_{k}" for k in range(24)]
    for s in samples:
        assert s.image.shape == s.mask.shape == (512, 512)
        assert s.image.dtype == np.uint8 and s.mask.dtype == np.uint16
        assert s.mask.max() > 50


def test_silver_truth_is_asked_of_ctc_datasets_only(tmp_path: Path) -> None:
    folder = _ctc_folder(tmp_path / "ctc")
    with pytest.raises(InputError, match="no silver-truth masks"):
        read_samples(folder, "st")
    em = tmp_path / "em" / "train"
    for sub in ("image", "label"):
        (em / sub).mkdir(parents=True)
        stripes = np.arange(64).reshape(8, 8) % 2 * 255
        tifffile.imwrite(em / sub / "0.tif", stripes.astype(np.uint8))
    assert len(read_samples(em.parent)) == 1
    with pytest.raises(InputError, match="EM dataset has no silver-truth masks") as info:
        read_samples(em.parent, "st")
    assert str(em.parent) in str(info.value) and "\n" not in str(info.value)

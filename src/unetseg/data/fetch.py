"""Bring a dataset source to a local folder: a folder, a ``.zip`` or an http(s) URL of a zip.

Zips are checked against an optional SHA-256, extracted safely (no absolute paths,
``..`` or symlinks) into ``cache_dir/<sha256[:16]>/`` and reused on later runs;
downloads (pooch: hash-checked, cached, with a progress bar) land in ``cache_dir/downloads/``
once. :mod:`unetseg.data.datasets` then reads the folder's layout.
"""

from __future__ import annotations

import hashlib
import lzma
import re
import shutil
import stat
import sys
import urllib.parse
import zipfile
import zlib
from pathlib import Path

from unetseg import __version__
from unetseg.errors import InputError
from unetseg.files import atomic_path

LAYOUTS = ("a Cell Tracking Challenge 2D dataset (NN/tTTT.tif + NN_GT/SEG/man_segTTT.tif, "
           "optionally NN_ST/SEG) "
           "or an ISBI-2012 EM dataset (train/image/K.png + train/label/K.png)")
IGNORED_NAMES = ("__MACOSX", ".DS_Store")
"""Entries of a dataset folder or zip that are not part of the dataset."""


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_source(source: str, *, sha256: str, cache_dir: Path, timeout: float = 30.0) -> Path:
    """Turn an ``ingest.source`` value into a local folder to read.

    Parameters
    ----------
    source : an existing folder, a ``.zip`` file, or an ``https://`` (or ``http://``)
        URL of a zip, e.g. the challenge's
        ``https://data.celltrackingchallenge.net/training-datasets/DIC-C2DH-HeLa.zip``.
    sha256 : expected hex SHA-256 of the zip; ``""`` skips the check. Must be ``""``
        for folders.
    cache_dir : where downloads (``downloads/``) and extracted zips
        (``<sha256-of-zip[:16]>/``) are kept and reused.
    timeout : seconds to wait for a connection or for each read of a download.

    Returns
    -------
    Path
        The folder itself, or the extracted zip's folder (its single top folder when
        the zip has one).

    Raises
    ------
    InputError
        Missing path, checksum mismatch, bad or unsafe zip, unreachable URL, HTTP error
        or timeout; always one line naming the source.
    """
    cache_dir = Path(cache_dir)
    scheme = urllib.parse.urlsplit(source).scheme.lower()
    if scheme in ("http", "https"):
        return _extract(_download(source, sha256, cache_dir, timeout), sha256, cache_dir, source)
    if re.match(r"^[a-z][a-z0-9+.-]+://", source, re.IGNORECASE):
        raise InputError(f"{source}: unsupported URL scheme {scheme!r} (use https://)")
    path = Path(source).expanduser()
    if path.is_dir():
        if sha256:
            raise InputError(f"{source}: sha256 applies to zip/URL sources, not to folders")
        return path
    if not path.exists():
        raise InputError(f"{source}: no such file or folder")
    if path.is_file() and (path.suffix.lower() == ".zip" or zipfile.is_zipfile(path)):
        return _extract(path, sha256, cache_dir, source)
    raise InputError(f"{source}: not a folder, .zip file or https URL; expected {LAYOUTS}")


def _verify(path: Path, sha256: str, label: str) -> str:
    got = file_sha256(path)
    if sha256 and got != sha256.lower():
        raise InputError(f"{label}: sha256 mismatch (expected {sha256.lower()}, got {got})")
    return got


def _download(url: str, sha256: str, cache_dir: Path, timeout: float) -> Path:
    """Fetch ``url`` into ``cache_dir/downloads/`` once with pooch, verified against ``sha256``.

    pooch downloads to a temporary file, checks the hash and only then moves it into the
    cache, with a progress bar on a terminal; a cached file with the right hash (or any
    cached file when no hash is given) is not fetched again. A download that is not a zip
    (a login page, say) is removed again, so it is not reused.
    """
    import pooch
    import requests

    base = Path(urllib.parse.unquote(urllib.parse.urlsplit(url).path)).name
    base = re.sub(r"[^A-Za-z0-9._-]", "_", base).lstrip(".") or "download.zip"
    name = f"{hashlib.sha256(url.encode()).hexdigest()[:12]}-{base}"
    downloader = pooch.HTTPDownloader(progressbar=sys.stderr.isatty(), timeout=timeout,
                                      headers={"User-Agent": f"unetseg/{__version__}"})
    pooch.get_logger().setLevel("WARNING")
    try:
        path = Path(pooch.retrieve(url, f"sha256:{sha256.lower()}" if sha256 else None,
                                   fname=name, path=cache_dir / "downloads",
                                   downloader=downloader))
    except requests.HTTPError as err:
        response = err.response
        raise InputError(f"{url}: download failed: HTTP {response.status_code} "
                         f"{response.reason}") from None
    except requests.Timeout:
        raise InputError(f"{url}: cannot download: timed out after {timeout:g} s") from None
    except requests.RequestException as err:
        raise InputError(f"{url}: cannot download: {describe(err)}") from None
    except ValueError as err:
        if "hash" not in str(err).lower():
            raise
        got = re.search(r"but got ([0-9a-f]{64})", str(err))
        raise InputError(f"{url}: sha256 mismatch (expected {sha256.lower()}, got "
                         f"{got.group(1) if got else 'another hash'})") from None
    except OSError as err:
        raise InputError(f"{url}: cannot download: {describe(err)}") from None
    if not zipfile.is_zipfile(path):
        size = path.stat().st_size
        path.unlink()
        raise InputError(f"{url}: downloaded {size} bytes that are not a zip file")
    return path


def describe(err: BaseException, timeout: float | None = None) -> str:
    """A short one-line reason for an OS or network error."""
    if isinstance(err, TimeoutError) and timeout is not None:
        return f"timed out after {timeout:g} s"
    text = getattr(err, "strerror", None) or str(err)
    return " ".join(text.split()) or type(err).__name__


def _member_parts(info: zipfile.ZipInfo) -> list[str] | None:
    """Safe relative path parts of a zip member, or None for an unsafe one."""
    name = info.filename
    parts = [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]
    mode = info.external_attr >> 16
    if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts \
            or stat.S_ISLNK(mode) or "\0" in name:
        return None
    return parts


def _extract(path: Path, sha256: str, cache_dir: Path, label: str) -> Path:
    """Verify and safely extract the zip at ``path`` into ``cache_dir/<sha[:16]>/``."""
    digest = _verify(path, sha256, label)
    dest = cache_dir / digest[:16]
    if not dest.is_dir():
        try:
            with zipfile.ZipFile(path) as archive, atomic_path(dest) as tmp:
                tmp.mkdir()
                _safe_extract(archive, tmp, path)
        except InputError:
            raise
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError,
                ValueError, zlib.error, lzma.LZMAError) as err:
            raise InputError(f"{path}: not a valid zip file ({describe(err)})") from None
        except OSError as err:
            raise InputError(f"{path}: cannot extract: {describe(err)}") from None
    entries = [p for p in dest.iterdir()
               if p.name not in IGNORED_NAMES and not p.name.startswith(".")]
    return entries[0] if len(entries) == 1 and entries[0].is_dir() else dest


def _safe_extract(archive: zipfile.ZipFile, into: Path, path: Path) -> None:
    members = archive.infolist()
    for info in members:
        if _member_parts(info) is None:
            raise InputError(f"{path}: unsafe zip entry {info.filename!r} (absolute path, '..' "
                             "or symlink); refusing to extract")
    needed = sum(info.file_size for info in members)
    free = shutil.disk_usage(into).free
    if needed > free:
        raise InputError(f"{path}: extracting needs {needed / 1e9:.1f} GB, only "
                         f"{free / 1e9:.1f} GB free under {into.parent}")
    for info in members:
        parts = _member_parts(info)
        if not parts:
            continue
        target = into.joinpath(*parts)
        if info.is_dir():
            target.mkdir(parents=True, exist_ok=True)
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        with archive.open(info) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst, 1 << 20)

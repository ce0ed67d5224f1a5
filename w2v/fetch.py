"""Download a file over HTTP(S) into a cache folder, resumably, and verify its size and sha256.

    path = fetch("http://host/file.zip", Path(".cache/downloads"), size=6372817, sha256="3f52...")

The file streams into `<cache>/<name>.part`; only a verified file is renamed to `<cache>/<name>`,
so a verified cached file is never downloaded again. Transient failures are retried: failed
connections and 429/5xx responses by urllib3's `Retry` (exponential backoff, few connection
attempts so an unreachable host fails within about a minute), a connection dropped mid-body by
resuming from the `.part` file with an HTTP Range request (or from the start when the server
ignores ranges).
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from tqdm import tqdm
from urllib3.util.retry import Retry

from w2v.archive import sha256_of, write_naming_file

RETRY_STATUS = (429, 500, 502, 503, 504)
STREAM_BLOCK = 1 << 16


class FetchError(Exception):
    """A download that failed; the message says what happened."""


class HostUnreachableError(FetchError):
    """No connection to the server (DNS failure, refused, timed out) after the retries."""


class HTTPStatusError(FetchError):
    """The server answered with an error status (after retries for the transient ones)."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


class IntegrityError(FetchError):
    """The downloaded bytes do not have the expected size or sha256."""


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. Defaults: at most 3 connection attempts of 10 s each with 0 + 2 s of
    backoff (about 30 s for a host that does not answer, seconds for one that refuses), 5 retries
    of a 429/5xx answer and 5 resumptions of a body that breaks off."""

    connect_retries: int = 2
    status_retries: int = 5
    body_retries: int = 5
    backoff_factor: float = 1.0
    connect_timeout: float = 10.0
    read_timeout: float = 30.0

    def urllib3_retry(self) -> Retry:
        return Retry(
            total=self.connect_retries + self.status_retries,
            connect=self.connect_retries,
            read=self.connect_retries,
            status=self.status_retries,
            other=0,
            status_forcelist=RETRY_STATUS,
            backoff_factor=self.backoff_factor,
            backoff_max=30,
            raise_on_status=False,
            respect_retry_after_header=True,
        )

    def backoff(self, attempt: int) -> float:
        """Seconds to wait before resumption number `attempt` (1-based) of a broken body."""
        return 0.0 if attempt <= 1 else min(30.0, self.backoff_factor * 2 ** (attempt - 1))


def cache_name(url: str, sha256: str | None) -> str:
    """The cache file name: the URL's file name, prefixed by the expected sha256 (or the URL's)."""
    name = Path(urlsplit(url).path).name or "download"
    key = sha256 or hashlib.sha256(url.encode()).hexdigest()
    return f"{key[:16]}-{name}"


def verify(path: Path, size: int | None, sha256: str | None, label: str | None = None) -> None:
    """Raise IntegrityError unless the file has `size` bytes and the hex `sha256` (None: unchecked).

    `label` names the file in the message (default: its path).
    """
    label = label or str(path)
    actual_size = path.stat().st_size
    if size is not None and actual_size != size:
        raise IntegrityError(f"{label} has {actual_size:,} bytes, expected {size:,}")
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256.lower():
            raise IntegrityError(f"{label} has sha256 {actual}, expected {sha256}")


def fetch(
    url: str,
    cache_dir: Path,
    size: int | None = None,
    sha256: str | None = None,
    progress: bool = False,
    policy: RetryPolicy = RetryPolicy(),
) -> Path:
    """The verified cached copy of `url`, downloading (or resuming) it first if needed.

    Raises HostUnreachableError, HTTPStatusError, IntegrityError (a file that fails the check is
    deleted from the cache), FetchError for other transfer failures, OSError for local write errors.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    final = cache_dir / cache_name(url, sha256)
    if final.is_file():
        try:
            verify(final, size, sha256)
            return final
        except IntegrityError:
            final.unlink()
    part = final.with_name(final.name + ".part")
    if not (part.is_file() and size is not None and part.stat().st_size == size):
        _download_with_resumption(url, part, size, progress, policy)
    try:
        verify(part, size, sha256, label=f"the download of {url}")
    except IntegrityError as error:
        part.unlink()
        raise IntegrityError(f"{error} (deleted from the cache)") from None
    part.replace(final)
    return final


def _download_with_resumption(url: str, part: Path, size: int | None, progress: bool, policy: RetryPolicy) -> None:
    """Complete `part` from `url`, resuming up to policy.body_retries times when the body breaks off."""
    with requests.Session() as session:
        adapter = HTTPAdapter(max_retries=policy.urllib3_retry())
        session.mount("http://", adapter)
        session.mount("https://", adapter)
        for attempt in range(policy.body_retries + 1):
            time.sleep(policy.backoff(attempt))
            try:
                return _download_to(session, url, part, size, progress, policy)
            except (requests.exceptions.ChunkedEncodingError, requests.exceptions.ConnectionError,
                    _BodyEndedEarly) as error:
                last_error = error
    kept = part.stat().st_size if part.exists() else 0
    raise FetchError(f"the download of {url} kept breaking off after {policy.body_retries} resumptions "
                     f"({_reason(last_error)}); {kept:,} bytes are kept in {part} for the next try")


class _BodyEndedEarly(Exception):
    pass


def _download_to(session: requests.Session, url: str, part: Path, size: int | None, progress: bool,
                 policy: RetryPolicy) -> None:
    """One request: append to `part` from its current length (Range) or rewrite it (no Range support)."""
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    headers = {"Range": f"bytes={have}-", "Accept-Encoding": "identity"} if have else {"Accept-Encoding": "identity"}
    try:
        response = session.get(url, headers=headers, stream=True,
                               timeout=(policy.connect_timeout, policy.read_timeout))
    except (requests.exceptions.ConnectionError, requests.exceptions.ConnectTimeout) as error:
        raise HostUnreachableError(f"cannot connect to {urlsplit(url).netloc} for {url}: {_reason(error)}") from None
    except requests.exceptions.RequestException as error:
        raise FetchError(f"the request for {url} failed: {_reason(error)}") from None
    with response:
        if response.status_code == 416 and have:
            part.unlink()  # our partial file is longer than the server's: start over
            raise _BodyEndedEarly("the server refused the range of the partial file")
        if response.status_code not in (200, 206):
            retried = " (after retries)" if response.status_code in RETRY_STATUS else ""
            raise HTTPStatusError(f"HTTP {response.status_code} {response.reason} from {url}{retried}",
                                  response.status_code)
        if response.status_code == 206 and _range_start(response) != have:
            part.unlink()  # a range we did not ask for: start over
            raise _BodyEndedEarly(f"the server answered a different range ({response.headers.get('Content-Range')})")
        # 206: the server continues our partial file; 200: it sends the whole file again
        start = have if response.status_code == 206 else 0
        announced = _total_length(response, start)
        if size is not None and announced is not None and announced != size:
            raise IntegrityError(f"the download of {url} has {announced:,} bytes (by its Content-Length), "
                                 f"expected {size:,}")
        mode = "ab" if start else "wb"
        total = size if size is not None else _total_length(response, start)
        with open(part, mode) as out, tqdm(total=total, initial=start, unit="B", unit_scale=True,
                                           unit_divisor=1024, desc=part.name.removesuffix(".part"),
                                           disable=not progress, leave=False) as bar:
            written = start
            # small blocks: a connection that breaks off loses at most the block being read
            for block in response.iter_content(STREAM_BLOCK):
                write_naming_file(out, block)
                written += len(block)
                bar.update(len(block))
                if size is not None and written > size:
                    break  # not the file we expect; verify() reports it
    expected = _total_length(response, start)
    if expected is not None and written < expected:
        raise _BodyEndedEarly(f"{written:,} of {expected:,} bytes received")


def _range_start(response: requests.Response) -> int | None:
    """The first byte of a 206 answer's Content-Range ("bytes 100-199/200"), None if absent."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _total_length(response: requests.Response, start: int) -> int | None:
    """Bytes of the whole file by the response headers (None when the server does not say)."""
    length = response.headers.get("Content-Length")
    return start + int(length) if length and length.isdigit() else None


def _reason(error: Exception) -> str:
    """The innermost message of a requests/urllib3 error, without the nested reprs."""
    inner = error
    while True:
        nested = getattr(inner, "reason", None) or (inner.args[0] if inner.args and isinstance(inner.args[0], Exception) else None)
        if not isinstance(nested, Exception) or nested is inner:
            break
        inner = nested
    text = str(inner)
    if "Connection refused" in text:
        return "connection refused"
    if "Name or service not known" in text or "Temporary failure in name resolution" in text or "NameResolution" in type(inner).__name__:
        return "the host name does not resolve"
    if "timed out" in text.lower():
        return "the connection timed out"
    return text

"""The download stage against a real HTTP server on 127.0.0.1 (no internet): download, retries,
resumption, checksums, refused archives, disk full, local sources and the no-op rerun."""
import hashlib
import io
import json
import os
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from pipeline.download import corpus_source, download
from w2v.archive import ArchiveError, extract_files
from w2v.fetch import HTTPStatusError, HostUnreachableError, RetryPolicy, fetch

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SST_FILES = ("datasetSentences.txt", "datasetSplit.txt")
QUICK = RetryPolicy(backoff_factor=0.01, connect_timeout=5, read_timeout=5)
HYDRA_QUIET = ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=stdout", "hydra/hydra_logging=none"]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def sst_zip(sst_dir) -> bytes:
    """A zip laid out like the official archive (a top folder, a __MACOSX entry) of the real files."""
    members = {f"stanfordSentimentTreebank/{name}": (sst_dir / name).read_bytes() for name in SST_FILES}
    members["stanfordSentimentTreebank/README.txt"] = (sst_dir / "README.txt").read_bytes()
    members["__MACOSX/stanfordSentimentTreebank/._datasetSentences.txt"] = b"\x00\x05\x16\x07"
    return zip_bytes(members)


class Server:
    """A real HTTP server with switchable faults. Records every request's path and Range header."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.fail_first = 0            # answer this many requests with HTTP 500
        self.cut_first = 0             # break off this many responses after half the body
        self.ranges = True             # honour Range requests
        self.requests: list[tuple[str, str | None]] = []
        self.bytes_sent = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                if server.fail_first > 0:
                    server.fail_first -= 1
                    return self.send_error(500, "Internal Server Error")
                data = server.files.get(self.path)
                if data is None:
                    return self.send_error(404, "Not Found")
                start = 0
                if server.ranges and self.headers.get("Range", "").startswith("bytes="):
                    start = int(self.headers["Range"][6:].split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.cut_first > 0:
                    server.cut_first -= 1
                    body = body[: len(body) // 2]
                    self.close_connection = True
                # counted before writing: the client may have the bytes, and the test may check them,
                # before this thread runs its next line
                server.bytes_sent += len(body)
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"


@pytest.fixture
def server():
    s = Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def run_download(*overrides: str, cache: Path, fsize_limit: int | None = None) -> subprocess.CompletedProcess:
    """`python -m pipeline.download` in a subprocess, optionally with RLIMIT_FSIZE (disk full)."""
    args = ["-m", "pipeline.download", *overrides, f"paths.download_cache={cache}", *HYDRA_QUIET]
    if fsize_limit is not None:
        launcher = ("import os, resource, sys; resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]),) * 2); "
                    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")
        args = ["-c", launcher, str(fsize_limit), *args]
    return subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)


def assert_one_error_line(result: subprocess.CompletedProcess, *fragments: str) -> str:
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def sst_overrides(url: str, data: bytes | None, raw: Path) -> list[str]:
    size = "null" if data is None else str(len(data))
    digest = "null" if data is None else sha256(data)
    return [f"corpus.url={url}", f"+corpus.size={size}", f"+corpus.sha256={digest}", f"paths.raw={raw}"]


def assert_sst_output(raw: Path, sst_dir: Path) -> None:
    assert sorted(p.name for p in raw.iterdir()) == ["datasetSentences.txt", "datasetSplit.txt", "source.json"]
    for name in SST_FILES:
        assert (raw / name).read_bytes() == (sst_dir / name).read_bytes()


# --- downloads over HTTP -------------------------------------------------------------------------

@pytest.mark.slow
def test_download_extracts_only_the_used_files_and_reruns_as_a_no_op(server, sst_zip, sst_dir, tmp_path):
    server.files["/sst.zip"] = sst_zip
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    overrides = sst_overrides(server.url("/sst.zip"), sst_zip, raw)

    first = run_download(*overrides, cache=cache)
    assert first.returncode == 0, first.stderr
    assert_sst_output(raw, sst_dir)
    record = json.loads((raw / "source.json").read_text())
    assert record["source"]["sha256"] == sha256(sst_zip)
    assert [p.name for p in cache.iterdir()] == [f"{sha256(sst_zip)[:16]}-sst.zip"]
    assert len(server.requests) == 1

    mtime = (raw / "datasetSentences.txt").stat().st_mtime_ns
    again = run_download(*overrides, cache=cache)
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert len(server.requests) == 1  # the server is not asked again
    assert (raw / "datasetSentences.txt").stat().st_mtime_ns == mtime

    (raw / "datasetSplit.txt").write_text("tampered")
    assert download(corpus_source_for(server.url("/sst.zip"), sst_zip), raw, cache) is True
    assert_sst_output(raw, sst_dir)
    assert len(server.requests) == 1  # rebuilt from the verified cached archive


def test_transient_500s_are_retried(server, tmp_path):
    data = os.urandom(50_000)
    server.files["/f.bin"] = data
    server.fail_first = 2
    path = fetch(server.url("/f.bin"), tmp_path, len(data), sha256(data), policy=QUICK)
    assert path.read_bytes() == data
    assert len(server.requests) == 3


def test_persistent_500_gives_up_with_the_status(server, tmp_path):
    server.files["/f.bin"] = b"x" * 10
    server.fail_first = 100
    with pytest.raises(HTTPStatusError, match="HTTP 500") as caught:
        fetch(server.url("/f.bin"), tmp_path, policy=QUICK)
    assert caught.value.status == 500
    assert len(server.requests) == QUICK.status_retries + 1


def test_a_dropped_connection_resumes_with_a_range_request(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/f.bin"] = data
    server.cut_first = 1
    path = fetch(server.url("/f.bin"), tmp_path, len(data), sha256(data), policy=QUICK)
    assert path.read_bytes() == data
    (first, no_range), (second, resume_range) = server.requests
    assert no_range is None
    resumed_from = int(resume_range.removeprefix("bytes=").removesuffix("-"))
    assert len(data) // 4 < resumed_from <= len(data) // 2  # kept the bytes received (whole blocks)
    assert server.bytes_sent == len(data) // 2 + len(data) - resumed_from


def test_a_server_without_range_support_restarts_cleanly(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/f.bin"] = data
    server.cut_first = 1
    server.ranges = False
    path = fetch(server.url("/f.bin"), tmp_path, len(data), sha256(data), policy=QUICK)
    assert path.read_bytes() == data
    assert server.requests[1][1].startswith("bytes=")  # asked for the rest, got the whole file
    assert server.bytes_sent == len(data) // 2 + len(data)
    assert not list(tmp_path.glob("*.part"))


def test_a_partial_file_from_an_earlier_run_is_resumed(server, tmp_path):
    data = os.urandom(100_000)
    server.files["/f.bin"] = data
    url = server.url("/f.bin")
    from w2v.fetch import cache_name
    (tmp_path / (cache_name(url, sha256(data)) + ".part")).write_bytes(data[:40_000])
    path = fetch(url, tmp_path, len(data), sha256(data), policy=QUICK)
    assert path.read_bytes() == data
    assert server.requests == [("/f.bin", "bytes=40000-")]


@pytest.mark.slow
def test_checksum_mismatch_fails_and_leaves_no_output(server, sst_zip, tmp_path):
    server.files["/sst.zip"] = sst_zip
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    wrong = "0" * 64
    result = run_download(f"corpus.url={server.url('/sst.zip')}", f"+corpus.size={len(sst_zip)}",
                          f"+corpus.sha256={wrong}", f"paths.raw={raw}", cache=cache)
    assert_one_error_line(result, "sha256", sha256(sst_zip), "+corpus.sha256=<hex>", "null skips the check")
    assert not raw.exists()
    assert not any(cache.iterdir())  # the bad download is not kept


@pytest.mark.slow
def test_without_overrides_the_published_pins_apply_and_the_error_names_the_override(server, sst_zip, tmp_path):
    from w2v.sources import SST

    server.files["/sst.zip"] = sst_zip  # the real files, but not the published archive's bytes
    raw, cache = tmp_path / "raw", tmp_path / "cache"
    result = run_download(f"corpus.url={server.url('/sst.zip')}", f"paths.raw={raw}", cache=cache)
    line = assert_one_error_line(result, f"{len(sst_zip):,} bytes", f"expected {SST.archive_size:,}",
                                 "+corpus.size=<bytes> +corpus.sha256=<hex>", "null skips the check")
    assert "the published archive's size and sha256" in line
    assert not raw.exists()
    skipped = run_download(f"corpus.url={server.url('/sst.zip')}", "+corpus.size=null", "+corpus.sha256=null",
                           f"paths.raw={raw}", cache=cache)
    assert skipped.returncode == 0, skipped.stderr
    assert json.loads((raw / "source.json").read_text())["source"]["files"] == dict(SST.files)  # still checked


@pytest.mark.slow
def test_a_misspelt_override_is_one_error_line_naming_the_key(tmp_path):
    result = run_download(f"+corpus.sha265={'0' * 64}", f"paths.raw={tmp_path / 'raw'}", cache=tmp_path / "cache")
    assert_one_error_line(result, "corpus.sha265 is not a setting", "did you mean corpus.sha256?")
    result = run_download("+corpus.sha256=abc", f"paths.raw={tmp_path / 'raw'}", cache=tmp_path / "cache")
    assert_one_error_line(result, "corpus.sha256 must be 64 hex digits")
    assert not (tmp_path / "raw").exists()


@pytest.mark.slow
def test_wrong_size_by_content_length_fails_before_downloading(server, tmp_path):
    server.files["/f.bin"] = b"y" * 1000
    result = run_download(f"corpus.url={server.url('/f.bin')}", "+corpus.size=999", "+corpus.sha256=null",
                          f"paths.raw={tmp_path / 'raw'}", cache=tmp_path / "cache")
    assert_one_error_line(result, "1,000 bytes", "expected 999", "+corpus.size=<bytes>")
    assert not (tmp_path / "raw").exists()


@pytest.mark.slow
def test_http_404_names_the_url_and_the_key(server, tmp_path):
    result = run_download(f"corpus.url={server.url('/missing.zip')}", f"paths.raw={tmp_path / 'raw'}",
                          cache=tmp_path / "cache")
    assert_one_error_line(result, "HTTP 404", "/missing.zip", "corpus.url")
    assert len(server.requests) == 1  # a 404 is not retried
    assert not (tmp_path / "raw").exists()


@pytest.mark.slow
def test_an_unreachable_host_fails_within_the_time_limit_and_names_corpus_url(tmp_path):
    with socket.socket() as sock:  # a port that was just free: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run_download(f"corpus.url=http://127.0.0.1:{port}/sst.zip", f"paths.raw={tmp_path / 'raw'}",
                          cache=tmp_path / "cache")
    assert_one_error_line(result, "cannot connect", "connection refused", "corpus.url")
    assert not (tmp_path / "raw").exists()


def test_unreachable_in_process_raises_host_unreachable(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HostUnreachableError, match="connection refused"):
        fetch(f"http://127.0.0.1:{port}/x.zip", tmp_path, policy=QUICK)


# --- broken and hostile archives -----------------------------------------------------------------

@pytest.mark.parametrize("kind", ["truncated", "not a zip"])
@pytest.mark.slow
def test_truncated_or_non_zip_files_are_refused(kind, sst_zip, tmp_path):
    path = tmp_path / "sst.zip"
    path.write_bytes(sst_zip[: len(sst_zip) // 2] if kind == "truncated" else b"<html>not found</html>")
    raw = tmp_path / "raw"
    result = run_download(*sst_overrides(str(path), None, raw), cache=tmp_path / "cache")
    assert_one_error_line(result, "not a readable zip", str(path))
    assert not raw.exists()


def test_a_corrupt_member_fails_its_crc(sst_dir, tmp_path):
    with zipfile.ZipFile(tmp_path / "bad.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("datasetSentences.txt", b"a" * 1000)
        zf.writestr("datasetSplit.txt", b"b" * 10)
    data = bytearray((tmp_path / "bad.zip").read_bytes())
    data[30 + len("datasetSentences.txt") + 500] ^= 0xFF  # inside the stored bytes of the first member
    (tmp_path / "bad.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="Bad CRC-32"):
        extract_files(tmp_path / "bad.zip", SST_FILES, tmp_path)


def hostile_zip(path: Path, evil: str, sst_dir: Path) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name in SST_FILES:
            zf.writestr(f"sst/{name}", (sst_dir / name).read_bytes())
        if evil == "symlink":
            info = zipfile.ZipInfo("sst/README.txt")
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
        else:
            zf.writestr(zipfile.ZipInfo(evil), b"owned")


@pytest.mark.parametrize("evil, reason", [
    ("/tmp/evil.txt", "absolute path"),
    ("sst/../../evil.txt", "'..' component"),
    ("..\\evil.txt", "'..' component"),
    ("symlink", "is a link"),
])
def test_archives_with_unsafe_members_are_refused_whole(evil, reason, sst_dir, tmp_path):
    archive = tmp_path / "hostile.zip"
    hostile_zip(archive, evil, sst_dir)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(ArchiveError, match=reason):
        extract_files(archive, SST_FILES, target)
    assert list(target.iterdir()) == []


@pytest.mark.slow
def test_the_stage_refuses_a_hostile_archive_without_output(sst_dir, tmp_path):
    archive = tmp_path / "hostile.zip"
    hostile_zip(archive, "sst/../../evil.txt", sst_dir)
    raw = tmp_path / "raw"
    result = run_download(*sst_overrides(f"file://{archive}", None, raw), cache=tmp_path / "cache")
    assert_one_error_line(result, "refusing the whole archive", "evil.txt")
    assert not raw.exists() and not (tmp_path.parent / "evil.txt").exists()


def test_an_archive_without_the_sst_files_is_refused(tmp_path):
    (tmp_path / "other.zip").write_bytes(zip_bytes({"data/readme.md": b"hello"}))
    with pytest.raises(ArchiveError, match="no member named 'datasetSentences.txt'"):
        extract_files(tmp_path / "other.zip", SST_FILES, tmp_path)


# --- disk full (RLIMIT_FSIZE) --------------------------------------------------------------------

@pytest.mark.slow
def test_disk_full_while_downloading(server, sst_zip, tmp_path):
    server.files["/sst.zip"] = sst_zip
    raw = tmp_path / "raw"
    result = run_download(*sst_overrides(server.url("/sst.zip"), sst_zip, raw), cache=tmp_path / "cache",
                          fsize_limit=100_000)
    assert_one_error_line(result, "no space left", "sst.zip.part", "free disk space")
    assert not raw.exists()


@pytest.mark.slow
def test_disk_full_while_extracting_keeps_the_old_output(sst_zip, sst_dir, tmp_path):
    archive = tmp_path / "sst.zip"
    archive.write_bytes(sst_zip)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "old.txt").write_text("the previous output")
    result = run_download(*sst_overrides(str(archive), sst_zip, raw), cache=tmp_path / "cache",
                          fsize_limit=600_000)
    assert_one_error_line(result, "no space left", "datasetSentences.txt")
    assert [p.name for p in raw.iterdir()] == ["old.txt"]  # untouched; no temporary folder left beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "sst.zip"]


# --- local sources -------------------------------------------------------------------------------

def test_local_sources_folder_zip_file_url_and_relative_path(sst_zip, sst_dir, tmp_path):
    archive = tmp_path / "sst.zip"
    archive.write_bytes(sst_zip)
    relative = os.path.relpath(archive, PROJECT_ROOT)
    for n, url in enumerate([str(sst_dir), os.path.relpath(sst_dir, PROJECT_ROOT), f"file://{archive}", relative]):
        raw = tmp_path / f"raw{n}"
        source = corpus_source_for(url, sst_zip if url.endswith(".zip") else None)
        assert download(source, raw, tmp_path / "cache") is True
        assert_sst_output(raw, sst_dir)
        assert download(source, raw, tmp_path / "cache") is False  # verified: no-op
    assert not (tmp_path / "cache").exists()  # local sources are never copied into the cache


def corpus_source_for(url: str, data: bytes | None, kind: str = "sst") -> dict:
    from omegaconf import OmegaConf
    cfg = OmegaConf.load(PROJECT_ROOT / "conf" / "corpus" / f"{kind}.yaml")
    cfg.url = url
    if data is not None:  # else the published corpus's pins (none for text)
        cfg.size, cfg.sha256 = len(data), sha256(data)
    return corpus_source(OmegaConf.create({"corpus": cfg}))



def test_the_published_pins_apply_unless_overridden_and_files_must_be_a_mapping():
    """corpus_source, as a caller without pipeline.config.validate sees it."""
    from omegaconf import OmegaConf

    from pipeline.common import StageError
    from w2v.sources import SST

    def source(**keys):
        return corpus_source(OmegaConf.create({"corpus": {"kind": "sst", "url": " x.zip ", **keys}}))

    assert source() == {"kind": "sst", "url": "x.zip", "size": SST.archive_size, "sha256": SST.archive_sha256,
                        "files": dict(SST.files)}
    mine = "A" * 64
    overridden = source(sha256=mine, size=None, files={"datasetSplit.txt": mine, "datasetSentences.txt": None})
    assert (overridden["sha256"], overridden["size"]) == (mine.lower(), None)
    assert overridden["files"] == {"datasetSplit.txt": mine.lower()}  # null skips that file's check
    assert source(files=None)["files"] == {}
    with pytest.raises(StageError, match=r"^corpus.files must be a mapping \(name: sha256\) or null, got 5$"):
        source(files=5)

@pytest.mark.slow
def test_a_local_folder_with_a_changed_file_fails_the_pinned_checksum(sst_dir, tmp_path):
    folder = tmp_path / "sst"
    folder.mkdir()
    (folder / "datasetSentences.txt").write_bytes((sst_dir / "datasetSentences.txt").read_bytes() + b"1\textra\n")
    (folder / "datasetSplit.txt").write_bytes((sst_dir / "datasetSplit.txt").read_bytes())
    raw = tmp_path / "raw"
    result = run_download(f"corpus.url={folder}", f"paths.raw={raw}", cache=tmp_path / "cache")
    line = assert_one_error_line(result, "datasetSentences.txt has sha256", "expected corpus.files.datasetSentences.txt=f7ae959a")
    changed = sha256((folder / "datasetSentences.txt").read_bytes())
    assert f"'+corpus.files={{datasetSentences.txt:{changed}}}'" in line
    assert not raw.exists()
    accepted = run_download(f"corpus.url={folder}", f"+corpus.files={{datasetSentences.txt:{changed}}}",
                            f"paths.raw={raw}", cache=tmp_path / "cache")  # the override the message names
    assert accepted.returncode == 0, accepted.stderr
    assert (raw / "datasetSentences.txt").read_bytes() == (folder / "datasetSentences.txt").read_bytes()


@pytest.mark.slow
def test_a_missing_local_path_is_reported(tmp_path):
    result = run_download(f"corpus.url={tmp_path / 'nowhere.zip'}", f"paths.raw={tmp_path / 'raw'}",
                          cache=tmp_path / "cache")
    assert_one_error_line(result, "nowhere.zip does not exist", "corpus.url")


# --- corpus=text ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_text_corpus_download_and_local_copy(server, tmp_path):
    text = "the cat sat\nthe dog sat\n".encode()
    server.files["/corpus.txt"] = text
    raw = tmp_path / "raw"
    result = run_download("corpus=text", f"corpus.url={server.url('/corpus.txt')}", f"paths.raw={raw}",
                          cache=tmp_path / "cache")
    assert result.returncode == 0, result.stderr
    assert (raw / "corpus.txt").read_bytes() == text

    local = tmp_path / "mine.txt"
    local.write_bytes(text + b"a bird sang\n")
    raw2 = tmp_path / "raw2"
    result = run_download("corpus=text", f"corpus.url={local}", f"+corpus.sha256={sha256(text)}",
                          f"paths.raw={raw2}", cache=tmp_path / "cache")
    assert_one_error_line(result, "mine.txt has sha256", "+corpus.sha256=<hex>")
    assert download(corpus_source_for(str(local), None, "text"), raw2, tmp_path / "cache")
    assert (raw2 / "corpus.txt").read_bytes() == local.read_bytes()


@pytest.mark.slow
def test_text_corpus_needs_a_url(tmp_path):
    result = run_download("corpus=text", f"paths.raw={tmp_path / 'raw'}", cache=tmp_path / "cache")
    assert_one_error_line(result, "corpus.url is not set")

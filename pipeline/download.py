"""Stage `download`: fetch and verify the corpus, then extract the files the pipeline uses.

    python -m pipeline.download                                          # the official SST archive
    python -m pipeline.download corpus.url=../shared/data/stanfordSentimentTreebank   # a local folder
    python -m pipeline.download corpus.url=file:///data/stanfordSentimentTreebank.zip # a local zip
    python -m pipeline.download corpus=text corpus.url=https://host/corpus.txt +corpus.sha256=<hex>  # checked
    dvc repro download                                                   # as a pipeline stage

`corpus.url` is an http(s) or file:// URL or a path (relative paths start at the project root).
Downloads stream into .cache/downloads/ (git-ignored, outside every DVC output; another folder
with paths.download_cache=...), resume after an interruption and are checked against the size
and sha256 of the published archive (w2v.sources), or the optional +corpus.size=... and
+corpus.sha256=... (null: unchecked; corpus=text has no pins); an extracted folder is checked file
by file against the published files' sha256 (+corpus.files={name: sha256} overrides). The output
folder paths.raw (data/raw) is then replaced whole:
datasetSentences.txt and datasetSplit.txt for corpus=sst, corpus.txt for corpus=text, and
source.json (where the files came from, their sha256). If it already holds the verified files of
the same source, the stage does nothing.
"""
import errno
import json
import logging
import sys
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue

from w2v.archive import ArchiveError, copy_with_sha256, extract_files, sha256_of
from w2v.atomic import atomic_directory
from w2v.fetch import FetchError, HostUnreachableError, HTTPStatusError, IntegrityError, fetch, verify
from w2v.sources import PUBLISHED_CORPORA, PublishedDataSet

from pipeline.common import StageError, project_path, stage
from pipeline.config import RULES

SOURCE_FILE = "source.json"
OUTPUT_FILES = {"sst": ("datasetSentences.txt", "datasetSplit.txt"), "text": ("corpus.txt",)}
_DISK_FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT)


def corpus_source(cfg: DictConfig) -> dict:
    """The checked corpus.* download settings: kind, url, size, sha256, files (the published
    corpus's pins, w2v.sources, unless overridden)."""
    corpus = cfg.get("corpus")
    if corpus is None:
        raise StageError("the configuration has no corpus section; run on conf/ or params.yaml")
    try:
        source = OmegaConf.to_container(corpus, resolve=True, throw_on_missing=True)
    except MissingMandatoryValue as error:
        raise StageError(f"corpus.{error.key} is not set: pass corpus.{error.key}=<path or URL of the corpus file>") from None
    kind = source.get("kind")
    problem = RULES["corpus.kind"].problem(kind)
    if problem is not None:
        raise StageError(f"corpus.kind {problem} (choose corpus=sst or corpus=text)")
    return {"kind": kind, **checked_source(source, "corpus", PUBLISHED_CORPORA.get(kind))}


def checked_source(source: dict, key: str, published: PublishedDataSet | None) -> dict:
    """url, size, sha256 and files of the download settings `source` (the config section `key`):
    the `published` data set's pins where `source` has no such key (+key.sha256=... overrides
    one, null skips its check; +key.files={name: sha256} overrides the pins of those files).
    Checked by the rules of pipeline.config (also for callers without validate) and normalised
    (lowercase digests; files without a digest left out)."""
    for name in ("url", "size", "sha256"):
        problem = RULES[f"{key}.{name}"].problem(source.get(name))
        if problem is not None:
            raise StageError(f"{key}.{name} {problem}")
    given = source.get("files", {})
    if given is not None and not isinstance(given, dict):
        raise StageError(f"{key}.files must be a mapping (name: sha256) or null, got {given!r}")
    files = {} if given is None else {**(published.files if published else {}), **given}
    for name, digest in files.items():
        problem = RULES[f"{key}.files.*"].problem(digest)
        if problem is not None:
            raise StageError(f"{key}.files.{name} {problem}")
    size = source["size"] if "size" in source else published and published.archive_size
    sha256 = source["sha256"] if "sha256" in source else published and published.archive_sha256
    return {"url": source["url"].strip(), "size": size, "sha256": sha256 and sha256.lower(),
            "files": {name: digest.lower() for name, digest in files.items() if digest is not None}}


def local_path(url: str, key: str = "corpus") -> Path | None:
    """The local path a `key`.url names (file:// URL or path), None for an http(s) URL."""
    parts = urlsplit(url)
    if parts.scheme in ("http", "https"):
        return None
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise StageError(f"{key}.url {url!r}: file:// URLs must name a local path (file:///abs/path)")
        return project_path(url2pathname(parts.path))
    if len(parts.scheme) > 1:  # one letter is a Windows drive, not a scheme
        raise StageError(f"{key}.url {url!r}: unsupported scheme {parts.scheme!r}; use http(s)://, file:// or a path")
    return project_path(url)


def obtain(source: dict, cache_dir: Path, progress: bool, key: str = "corpus") -> Path:
    """The local file or folder `source["url"]` names: downloaded into `cache_dir` if it is an
    http(s) URL; a file is checked against source["size"] and source["sha256"]. A missing local
    path is a FileNotFoundError."""
    path = local_path(source["url"], key)
    if path is None:
        return fetch(source["url"], cache_dir, source["size"], source["sha256"], progress=progress)
    if not path.exists():
        raise FileNotFoundError(errno.ENOENT, "does not exist", str(path))
    if path.is_file():
        verify(path, source["size"], source["sha256"], label=str(path))
    return path


def is_up_to_date(raw: Path, source: dict, names: tuple[str, ...] | None = None) -> bool:
    """Whether `raw` holds the verified files `names` (default: the corpus kind's) of this very
    source (the no-op check)."""
    try:
        recorded = json.loads((raw / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if recorded.get("source") != source:
        return False
    expected = recorded.get("files", {})
    names = names or OUTPUT_FILES[source["kind"]]
    return set(expected) == set(names) and all(
        (raw / name).is_file() and sha256_of(raw / name) == expected[name] for name in names)


def check_pinned(where: str, checksums: dict[str, str], pinned: dict[str, str], key: str = "corpus") -> None:
    """Raise StageError if a written file's sha256 differs from its pin (`key`.files)."""
    for name, digest in checksums.items():
        if name in pinned and digest != pinned[name]:
            raise StageError(f"{where}: {name} has sha256 {digest}, expected {key}.files.{name}={pinned[name]}; "
                             f"use the original SST files, or if you changed it on purpose pass "
                             f"'+{key}.files={{{name}:{digest}}}' (null skips the check)")


def materialize(source: dict, target: Path, cache_dir: Path, progress: bool) -> dict[str, str]:
    """Write the corpus files of `source` into the empty folder `target`; return {name: sha256}."""
    kind, url, names = source["kind"], source["url"], OUTPUT_FILES[source["kind"]]
    try:
        path = obtain(source, cache_dir, progress)
    except FileNotFoundError as error:
        raise StageError(f"corpus.url {url!r}: {error.filename} does not exist; point corpus.url at the corpus "
                         f"(a URL, a zip, {'or the extracted SST folder' if kind == 'sst' else 'or a text file'})")
    if kind == "text":
        if path.is_dir():
            raise StageError(f"corpus.url {url!r} is a folder; corpus=text needs one text file, one sentence per line")
        with open(path, "rb") as file:
            return {names[0]: copy_with_sha256(file, target / names[0])}
    if path.is_dir():
        checksums = copy_files(path, names, target, missing=lambda name: (
            f"corpus.url {url!r}: the folder has no {name}; point it at the extracted "
            f"stanfordSentimentTreebank folder or the zip"))
    else:
        checksums = extract_files(path, names, target)
    check_pinned(url, checksums, source["files"])
    return checksums


def copy_files(folder: Path, names, target: Path, missing) -> dict[str, str]:
    """Copy the files `names` of an extracted folder into `target`; {name: sha256}. A file that is
    not there stops with the line `missing(name)`."""
    checksums = {}
    for name in names:
        if not (folder / name).is_file():
            raise StageError(missing(name))
        with open(folder / name, "rb") as file:
            checksums[name] = copy_with_sha256(file, target / name)
    return checksums


def download(source: dict, raw: Path, cache_dir: Path, progress: bool = False,
             names: tuple[str, ...] | None = None, write=materialize) -> bool:
    """Make `raw` hold the verified files of `source`; False if it already did (no-op).

    `write(source, folder, cache_dir, progress)` fills the empty folder and returns {name: sha256}
    of the files `names` (default: the corpus files, written by `materialize`)."""
    if is_up_to_date(raw, source, names):
        return False
    with atomic_directory(raw) as tmp:
        checksums = write(source, tmp, cache_dir, progress)
        record = {"source": source, "files": checksums}
        (tmp / SOURCE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return True


def explain(error: Exception, source: dict, key: str = "corpus",
            local_copy: str = "../shared/data/stanfordSentimentTreebank") -> str:
    """One line: what went wrong and what to do, naming the config key (`key`.url, ...) to change."""
    if isinstance(error, HostUnreachableError):
        return (f"{error}; check the network, or set {key}.url to a mirror or a local copy "
                f"(a zip, or the extracted folder such as {key}.url={local_copy})")
    if isinstance(error, HTTPStatusError):
        if error.status >= 500 or error.status == 429:
            return f"{error}; the server is failing: try again later, or set {key}.url to a mirror or a local copy"
        return f"{error}; check {key}.url (a mirror or a local copy works too)"
    if isinstance(error, IntegrityError):
        return (f"{error}: not the expected file (the published archive's size and sha256, w2v/sources.py, "
                f"or the +{key}.size and +{key}.sha256 given); check {key}.url, or if this file is right pass "
                f"its values as +{key}.size=<bytes> +{key}.sha256=<hex> (null skips the check)")
    if isinstance(error, ArchiveError):
        return f"{error}; point {key}.url at an intact SST zip or the extracted folder"
    if isinstance(error, FetchError):
        return f"{error}; check the network and run again: the download resumes where it stopped"
    if isinstance(error, OSError) and error.errno in _DISK_FULL:
        return (f"no space left while writing {error.filename or 'the corpus'} ({error.strerror}); "
                f"free disk space (or raise the file-size limit) and run again")
    if isinstance(error, OSError):
        return f"cannot read or write {error.filename or 'a file'}: {error.strerror}; check the path and its permissions"
    raise error


@stage
def main(cfg: DictConfig) -> None:
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # retries are retried quietly; failures get one line
    source = corpus_source(cfg)
    raw = project_path(cfg.paths.raw)
    try:
        cache_dir = project_path(cfg.paths.download_cache)
        changed = download(source, raw, cache_dir, progress=sys.stderr.isatty())
    except (FetchError, ArchiveError, OSError) as error:
        raise StageError(explain(error, source)) from None
    names = ", ".join(OUTPUT_FILES[source["kind"]])
    print(f"{raw}: {names} {'from ' + source['url'] if changed else 'already verified, nothing to do'}")


if __name__ == "__main__":
    main()

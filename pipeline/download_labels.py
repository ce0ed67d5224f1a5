"""Stage `download_labels`: fetch and check SST's sentence sentiment trees for the evaluation.

    python -m pipeline.download_labels                                       # the official archive
    python -m pipeline.download_labels labels.url=../shared/data/trainDevTestTrees_PTB   # a local folder
    dvc repro download_labels                                                # as a pipeline stage

`labels.url` is the official `trainDevTestTrees_PTB.zip` (or a mirror: an http(s) or file:// URL,
a zip path) or the extracted folder (holding `trees/` or the three files). The download machinery
is the corpus's (pipeline.download: cache in paths.download_cache, retries, resumption, safe
extraction). The pins are the published release's (w2v.sources.SST_TREES): dev.txt and test.txt
by sha256, train.txt by its line count; the archive's size and sha256 are not known here, so they
are checked only when given (+labels.size=<bytes> +labels.sha256=<hex>). Each pin has its optional
override (+labels.files={test.txt: <sha256>}, +labels.train_lines=<n>; null skips the check).
The output folder paths.labels (data/raw_labels) is replaced whole:
train.txt, dev.txt, test.txt and source.json. Whether the trees line up with the corpus's
sentences is checked where both meet, in the evaluation (w2v.sentiment.read_labels).
"""
import logging
import sys
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.common import StageError, project_path, stage
from pipeline.config import RULES
from pipeline.download import check_pinned, checked_source, copy_files, download, explain, obtain
from w2v.archive import ArchiveError, extract_files
from w2v.atomic import atomic_directory
from w2v.fetch import FetchError
from w2v.sentiment import TREE_FILES
from w2v.sources import SST_TREES

NAMES = tuple(TREE_FILES.values())  # train.txt, dev.txt, test.txt
LOCAL_COPY = "../shared/data/trainDevTestTrees_PTB"


def labels_source(cfg: DictConfig) -> dict:
    """The checked labels.* settings: url, size, sha256, files, train_lines (the published
    trees' pins, w2v.sources.SST_TREES, unless overridden)."""
    section = cfg.get("labels")
    if section is None:
        raise StageError("the configuration has no labels section; run on conf/ or params.yaml")
    source = OmegaConf.to_container(section, resolve=True)
    train_lines = source["train_lines"] if "train_lines" in source else SST_TREES.train_lines
    problem = RULES["labels.train_lines"].problem(train_lines)
    if problem is not None:
        raise StageError(f"labels.train_lines {problem}")
    return {**checked_source(source, "labels", SST_TREES), "train_lines": train_lines}


def count_lines(path: Path) -> int:
    with open(path, "rb") as file:
        return sum(1 for _ in file)


def write_labels(source: dict, target: Path, cache_dir: Path, progress: bool) -> dict[str, str]:
    """Write train.txt, dev.txt and test.txt of `source` into the empty folder `target`, checked
    against the pinned sha256s and train line count; return {name: sha256}."""
    url = source["url"]
    try:
        path = obtain(source, cache_dir, progress, key="labels")
    except FileNotFoundError as error:
        raise StageError(f"labels.url {url!r}: {error.filename} does not exist; point labels.url at "
                         f"trainDevTestTrees_PTB.zip (a URL or a path) or its extracted folder") from None
    if path.is_dir():
        folder = path / "trees" if (path / "trees").is_dir() else path
        checksums = copy_files(folder, NAMES, target, missing=lambda name: (
            f"labels.url {url!r}: the folder has no trees/{name}; point it at the extracted "
            f"trainDevTestTrees_PTB folder or the zip"))
    else:
        checksums = extract_files(path, NAMES, target)
    check_pinned(url, checksums, source["files"], key="labels")
    lines = count_lines(target / "train.txt")
    if source["train_lines"] is not None and lines != source["train_lines"]:
        raise StageError(f"{url}: train.txt has {lines} lines, expected labels.train_lines={source['train_lines']} "
                         f"(one tree per SST train sentence); use the original archive, or pass "
                         f"+labels.train_lines={lines} if you changed it on purpose (null skips the check)")
    return checksums


@stage
def main(cfg: DictConfig) -> None:
    logging.getLogger("urllib3").setLevel(logging.ERROR)  # retries are retried quietly; failures get one line
    folder = project_path(cfg.paths.labels)
    if cfg.corpus.kind != "sst":  # the labels belong to SST's sentences: a text corpus needs none, offline too
        with atomic_directory(folder) as target:
            (target / "NONE.txt").write_text(f"no labels: corpus.kind is {cfg.corpus.kind}, and the sentiment "
                                             f"trees belong to the SST corpus\n", encoding="utf-8")
        print(f"{folder}: no labels fetched (corpus.kind={cfg.corpus.kind}: they belong to the SST corpus)")
        return
    source = labels_source(cfg)
    try:
        cache_dir = project_path(cfg.paths.download_cache)
        changed = download(source, folder, cache_dir, sys.stderr.isatty(), names=NAMES, write=write_labels)
    except (FetchError, ArchiveError, OSError) as error:
        raise StageError(explain(error, source, key="labels", local_copy=LOCAL_COPY)) from None
    print(f"{folder}: {', '.join(NAMES)} {'from ' + source['url'] if changed else 'already verified, nothing to do'}")


if __name__ == "__main__":
    main()

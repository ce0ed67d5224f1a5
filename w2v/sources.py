"""The identity of the published data sets the project reads: checksums, not settings.

    SST.archive_sha256          # the official stanfordSentimentTreebank.zip
    SST_TREES.files["dev.txt"]  # the sentiment trees' dev split, byte-identical in several copies
    PUBLISHED_CORPORA["sst"]    # by corpus kind; a text corpus is the user's own file: nothing pinned

The download stages check what they fetch against these pins, wherever it comes from (the
official URL, a mirror, a local zip or an extracted folder), unless the configuration names its
own value (`+corpus.sha256=...`, README: Data). They are facts about the files, the same for
every experiment, so they stay out of the experiment settings (params.yaml, `dvc exp show`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Mapping


@dataclass(frozen=True)
class PublishedDataSet:
    """One published release.

    archive_size: bytes of its zip, archive_sha256: the zip's hex sha256 (None: not known here,
    unchecked); files: {name of an extracted file: its hex sha256}; train_lines: the line count of
    train.txt (one tree per SST training sentence), for a file whose sha256 is not pinned."""

    name: str
    archive_size: int | None
    archive_sha256: str | None
    files: Mapping[str, str] = field(default_factory=dict)
    train_lines: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))


SST = PublishedDataSet(
    name="Stanford Sentiment Treebank v1.0 (stanfordSentimentTreebank.zip)",
    archive_size=6372817,
    archive_sha256="3f5209483b46bbf129cacbbbe6ae02fe780407034f61cf6342b7833257c3f1db",
    files={
        "datasetSentences.txt": "f7ae959a5ff0565eb860c3f2e600dde118bcb49aee63df8fa9b9a806da235553",
        "datasetSplit.txt": "ad567db10ae5275963f1ac3dd5ec21214b1d688c7aab582e2616ef4b3f970a5a",
    },
)

# The archive's own size and sha256 are not known here (it is not in the shared copies); its dev
# and test files are byte-identical in several public copies, train.txt is checked by its length.
SST_TREES = PublishedDataSet(
    name="SST sentence sentiment trees (trainDevTestTrees_PTB.zip)",
    archive_size=None,
    archive_sha256=None,
    files={
        "dev.txt": "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40",
        "test.txt": "6e54806dee95cf80cd918e7dfb3f6770f6df24bf826f289a4d1f709e1c8f6761",
    },
    train_lines=8544,
)

PUBLISHED_CORPORA: Mapping[str, PublishedDataSet] = MappingProxyType({"sst": SST})

"""Fixtures shared by the whole suite."""
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SST_DIR = PROJECT_ROOT.parent / "shared" / "data" / "stanfordSentimentTreebank"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


@pytest.fixture(scope="session")
def sst_dir() -> Path:
    """The real SST text files (same as in the official archive); skip where they are absent."""
    if not (SST_DIR / "datasetSentences.txt").is_file():
        pytest.skip(f"the SST files are not at {SST_DIR} (see ../shared/data/README.md)")
    return SST_DIR

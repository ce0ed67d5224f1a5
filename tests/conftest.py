"""Fixtures shared by the whole suite."""
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SST_DIR = PROJECT_ROOT.parent / "shared" / "data" / "stanfordSentimentTreebank"


@pytest.fixture(scope="session")
def project_root() -> Path:
    return PROJECT_ROOT


def require(present: bool, message: str) -> None:
    """Skip the test on a developer's machine when something it needs is not there (shared data, a
    browser, a server package); under CI=true fail instead, so CI never passes without testing it
    (.ci/run installs the tools: `make ci-tools`)."""
    if not present:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{message}; CI needs it", pytrace=False)
        pytest.skip(message)


def require_shared_data(path: Path) -> Path:
    """`path` under ../shared/data (see require)."""
    require(path.exists(), f"{path} is missing (see ../shared/data/README.md)")
    return path


@pytest.fixture(scope="session")
def sst_dir() -> Path:
    """The real SST text files (same as in the official archive)."""
    return require_shared_data(SST_DIR / "datasetSentences.txt").parent


@pytest.fixture(scope="session")
def fixture_corpus(tmp_path_factory) -> Path:
    """A processed corpus of 400 random sentences over the 24 plotted words and 40 others."""
    from w2v.corpus import build_corpus, save_corpus
    from w2v.plots import VISUALIZE_WORDS

    rng = np.random.default_rng(0)
    words = VISUALIZE_WORDS + [f"w{i}" for i in range(40)]
    sentences = [list(rng.choice(words, size=rng.integers(4, 12))) for _ in range(400)]
    folder = tmp_path_factory.mktemp("corpus") / "processed"
    save_corpus(build_corpus(sentences, split=[1, 1, 3, 2] * 100, train_on="train"), folder)
    return folder


@pytest.fixture(scope="session")
def empty_store_template(tmp_path_factory) -> Path:
    """An empty SQLite store with MLflow's tables (creating them takes seconds; copying does not)."""
    from mlflow.tracking import MlflowClient

    database = tmp_path_factory.mktemp("store") / "mlflow.db"
    MlflowClient(f"sqlite:///{database}").search_experiments()
    return database


@pytest.fixture
def empty_store(tmp_path, empty_store_template) -> str:
    """A fresh copy of the empty store in tmp_path; its tracking URI."""
    shutil.copy(empty_store_template, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"

"""The package's public surface, and what importing it costs."""
import subprocess
import sys


def test_public_functions_importable_from_w2v():
    import w2v

    for name in w2v.__all__:
        assert callable(getattr(w2v, name)) or isinstance(getattr(w2v, name), type), name


def test_importing_w2v_does_not_load_numba_until_sampling_is_used():
    code = ("import sys, w2v; a = 'numba' in sys.modules; w2v.sample_negatives; "
            "print(a, 'numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]


def test_library_never_imports_pipeline_hydra_dvc_or_mlflow():
    import w2v.evaluation, w2v.trainer, w2v.vectors, w2v.plots, w2v.derivations, w2v.corpus  # noqa: F401
    from pathlib import Path

    for path in Path(w2v.__file__).parent.rglob("*.py"):
        text = path.read_text()
        for banned in ("import pipeline", "from pipeline", "import hydra", "from hydra",
                       "import dvc", "from dvc", "import mlflow", "from mlflow", "omegaconf"):
            assert banned not in text, f"{path.name} uses {banned!r}"

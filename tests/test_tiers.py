"""The test tiers are real: the markers are registered and strict, and `make test-fast`'s selection
(-m "not slow and not integration", collected by a real pytest) leaves out the modules and tests
that start DVC, servers, browsers or signals, and keeps the math, the rules and the readers."""
import subprocess
import sys

from conftest import PROJECT_ROOT

FAST = "not slow and not integration"
# A few of each kind, from modules cheap to collect (collecting all takes seconds more).
LEFT_OUT_MODULES = ["test_dvc_remote.py", "test_resume.py"]
LEFT_OUT_TESTS = ["test_readme.py::test_python_block_runs_as_written"]
KEPT_TESTS = ["test_readme.py::test_the_readme_has_python_blocks",
              "test_derivations.py::test_every_check_passes_on_both_engines",
              "test_gradcheck.py::", "test_losses.py::", "test_sampling.py::", "test_corpus.py::",
              "test_shared_data.py::test_missing_shared_data_fails_under_ci_and_skips_elsewhere"]


def test_the_markers_are_registered_and_strict(pytestconfig):
    registered = {line.split(":")[0] for line in pytestconfig.getini("markers")}
    assert {"slow", "integration"} <= registered
    assert pytestconfig.getoption("strict_markers")


def test_the_fast_selection_leaves_out_the_integration_tests_and_keeps_the_unit_tests():
    files = sorted({name.split("::")[0] for name in LEFT_OUT_MODULES + LEFT_OUT_TESTS + KEPT_TESTS})
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-m", FAST, *(f"tests/{name}" for name in files)],
                          cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    collected = [line.removeprefix("tests/") for line in done.stdout.splitlines() if "::" in line]
    assert "deselected" in done.stdout.splitlines()[-1]
    for module in LEFT_OUT_MODULES:
        assert not [name for name in collected if name.startswith(module + "::")], module
    for test in LEFT_OUT_TESTS:
        assert not [name for name in collected if name.startswith(test)], test
    for test in KEPT_TESTS:
        assert [name for name in collected if name.startswith(test)], test

"""Missing ../shared/data skips a test on a developer's machine and fails it under CI=true."""
import pytest

from conftest import require_shared_data


@pytest.mark.parametrize("ci, outcome", [("true", pytest.fail.Exception), ("", pytest.skip.Exception)])
def test_missing_shared_data_fails_under_ci_and_skips_elsewhere(tmp_path, monkeypatch, ci, outcome):
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match="is missing"):
        require_shared_data(tmp_path / "absent.txt")


def test_present_shared_data_is_returned(tmp_path, monkeypatch):
    monkeypatch.setenv("CI", "true")
    (tmp_path / "here.txt").write_text("x")
    assert require_shared_data(tmp_path / "here.txt") == tmp_path / "here.txt"

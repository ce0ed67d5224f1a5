"""The style rule of the developers' guide that a machine can check: no function body in w2v/ or
pipeline/ over 60 lines (its docstring not counted), numba kernels exempt."""
import importlib.util
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("long_functions", ROOT / "scripts" / "long_functions.py")
long_functions = importlib.util.module_from_spec(_spec)
sys.modules["long_functions"] = long_functions  # dataclasses look their module up there
_spec.loader.exec_module(long_functions)


def _function(name: str, body_lines: int, decorator: str = "", docstring_lines: int = 0) -> str:
    doc = ['    """'] + ["    text"] * docstring_lines + ['    """'] if docstring_lines else []
    body = [f"    x{i} = {i}" for i in range(body_lines)]
    return "\n".join(([decorator] if decorator else []) + [f"def {name}():"] + doc + body) + "\n\n"


def test_the_checker_counts_bodies_without_docstrings_and_exempts_numba_kernels(tmp_path):
    source = tmp_path / "module.py"
    source.write_text(
        "import numba\nfrom numba import njit\n\n"
        + _function("at_the_limit", 60, docstring_lines=30)
        + _function("one_over", 61)
        + _function("kernel", 80, "@njit(cache=True)")
        + _function("bare_kernel", 80, "@numba.jit")
        + _function("other_decorator", 62, "@staticmethod")
        + "class Holder:\n" + textwrap.indent(_function("method", 70), "    ")
        + "def outer():\n" + textwrap.indent(_function("inner", 65), "    "))
    found = {(hit.name, hit.body_lines) for hit in long_functions.long_functions_in(source)}
    assert found == {("one_over", 61), ("other_decorator", 62), ("Holder.method", 70),
                     ("outer.<locals>.inner", 65), ("outer", 66)}
    assert long_functions.main([str(source)]) == 1
    assert long_functions.main([str(source), "--limit", "100"]) == 0


def test_no_function_in_the_library_or_the_pipeline_is_longer_than_60_lines():
    hits = long_functions.long_functions([ROOT / "w2v", ROOT / "pipeline"])
    assert [f"{hit.path.relative_to(ROOT)}:{hit.line} {hit.name} ({hit.body_lines} lines)" for hit in hits] == []

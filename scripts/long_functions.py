"""List the functions in w2v/ and pipeline/ whose body is longer than the style limit.

The body is counted from its first statement after the docstring to the last line of its last
statement, so a docstring of any length is free and blank lines inside the body count. Numba
kernels (decorated with ``njit``/``jit``, bare or called, through any module path) are exempt:
splitting them costs speed or forces argument threading that numba cannot inline away.

Usage: ``python scripts/long_functions.py [--limit 60] [PATH ...]``; exits 1 when any is found.
"""
from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PACKAGES = ("w2v", "pipeline")
LIMIT = 60
NUMBA_DECORATORS = frozenset({"njit", "jit", "generated_jit", "vectorize", "guvectorize", "stencil"})


@dataclass(frozen=True)
class LongFunction:
    path: Path
    name: str       # qualified within its module, e.g. "Trainer.run" or "train.<locals>.step"
    line: int       # line of the ``def``
    body_lines: int


def _decorator_name(node: ast.expr) -> str:
    """Last attribute of a decorator: ``numba.njit(cache=True)`` -> ``"njit"``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def is_numba_kernel(func: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(_decorator_name(d) in NUMBA_DECORATORS for d in func.decorator_list)


def body_length(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Lines from the first statement after the docstring to the end of the last statement."""
    body = func.body
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        body = body[1:]
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def long_functions_in(path: Path, limit: int = LIMIT) -> list[LongFunction]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[LongFunction] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                length = body_length(child)
                if length > limit and not is_numba_kernel(child):
                    found.append(LongFunction(path, name, child.lineno, length))
                visit(child, name + ".<locals>.")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return found


def long_functions(paths: list[Path], limit: int = LIMIT) -> list[LongFunction]:
    files = sorted(f for p in paths for f in ([p] if p.is_file() else p.rglob("*.py")))
    return [hit for f in files for hit in long_functions_in(f, limit)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        default=[PROJECT_ROOT / p for p in DEFAULT_PACKAGES])
    parser.add_argument("--limit", type=int, default=LIMIT, help="longest allowed body, in lines")
    args = parser.parse_args(argv)
    hits = long_functions(args.paths, args.limit)
    for hit in sorted(hits, key=lambda h: -h.body_lines):
        shown = hit.path.relative_to(PROJECT_ROOT) if hit.path.is_relative_to(PROJECT_ROOT) else hit.path
        print(f"{shown}:{hit.line}: {hit.name} has a {hit.body_lines}-line body (limit {args.limit})")
    return 1 if hits else 0


if __name__ == "__main__":
    sys.exit(main())

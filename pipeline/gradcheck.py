"""Gradient checks: verify every derivation of docs/derivations.md on both engines.

    python -m pipeline.gradcheck                          # conf/; vocabulary of data/processed
    python -m pipeline.gradcheck paths.reports=/tmp/rep   # reports elsewhere
    python -m pipeline.gradcheck gradcheck.tol=1e-7     # a stricter tolerance
    dvc repro gradcheck                                   # as a pipeline stage (on params.yaml)

Runs checks (a)-(i) of w2v.derivations against the per-pair functions (w2v.losses) and the
batched engine, on random inputs and on the first 50 words of the processed corpus' vocabulary.
Writes metrics/gradcheck.json (DVC metrics, the headline: passed, and the largest relative error
as its base-10 logarithm, -9.5 for 3e-10, which DVC's rounding would show as 0.0),
reports/gradcheck.json (per check and per engine the max relative error and passed) and
reports/gradcheck.md (a table with every check, engine and input set), prints a summary, and exits with
status 1 when any check fails, so the train stage, which depends on the report, never runs on
wrong gradients.
"""
import json
import math
from collections.abc import Sequence
from pathlib import Path

from w2v import derivations
from w2v.atomic import atomic_write_text
from w2v.corpus import load_corpus

from pipeline.common import StageError, project_path, stage

VOCABULARY_SLICE = 50   # words of the real vocabulary the checks run on (V of the "vocabulary" inputs)
VOCABULARY_DIM = 10     # d and K of the classic configuration
VOCABULARY_K = 10
METRICS_FILE = "gradcheck.json"  # in paths.metrics: the headline DVC shows


def vocabulary_slice(processed_dir: Path, size: int = VOCABULARY_SLICE) -> list[str]:
    """The first `size` words (ids 0..size-1) of the processed corpus in `processed_dir`."""
    try:
        words = load_corpus(processed_dir).words
    except (FileNotFoundError, ValueError) as error:
        raise StageError(f"no usable processed corpus at {processed_dir} ({error}); "
                         "run the tokenize stage first: dvc repro tokenize") from None
    return list(words[:size])


def check_inputs(words: Sequence[str], seed: int = 0) -> list[derivations.CheckInputs]:
    """Random inputs and the vocabulary slice (K shrinks for a vocabulary of fewer than K + 2 words)."""
    K = min(VOCABULARY_K, len(words) - 2)
    if K < 2:
        raise StageError(f"the vocabulary has only {len(words)} words; the checks need at least 4: "
                         "tokenize a larger corpus")
    return [derivations.random_inputs(seed),
            derivations.vocabulary_inputs(words, dim=VOCABULARY_DIM, K=K, seed=seed)]


def write_reports(results, reports_dir: Path, tol: float, inputs_text: str) -> None:
    """reports_dir/gradcheck.json (metrics) and reports_dir/gradcheck.md (table), each atomically.

    The JSON holds the overall result and, per check and per engine, the largest relative error and
    whether all its runs passed; the table has one row per check, engine and input set. A non-finite
    error (a NaN gradient, an engine that raised) is written as null: strict JSON."""
    passed = all(r.passed for r in results)
    report = {
        "passed": passed,
        "failed": sum(not r.passed for r in results),
        "max_rel_error": _finite_or_none(max(r.max_rel_error for r in results)),
        "tolerance": tol,
        "checks": _worst_by(results, "check"),
        "engines": _worst_by(results, "engine"),
    }
    atomic_write_text(reports_dir / "gradcheck.json", json.dumps(report, indent=2, allow_nan=False) + "\n")

    status = "All checks passed" if passed else f"{report['failed']} of {len(results)} checks FAILED"
    lines = [
        "# Gradient checks",
        "",
        f"Every derivation of docs/derivations.md against centred finite differences (h = 1e-4); "
        f"relative error |a - b| / max(1, |a|, |b|), tolerance {tol:g}. "
        f"Inputs: {inputs_text}.",
        "",
        f"**{status}.**",
        "",
        "| check | derivation | engine | inputs | max rel. error | passed | worst comparison |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(f"| `{r.check}` | {derivations.DESCRIPTIONS[r.check]} | {r.engine} | {r.inputs} | "
                     f"{r.max_rel_error:.2e} | {'yes' if r.passed else '**NO**'} | {_table_cell(r.worst)} |")
    atomic_write_text(reports_dir / "gradcheck.md", "\n".join(lines) + "\n")


def _worst_by(results, field: str) -> dict:
    """{value of `field`: {"max_rel_error", "passed"}} over the results sharing that value."""
    groups = {}
    for r in results:
        groups.setdefault(getattr(r, field), []).append(r)
    return {key: {"max_rel_error": _finite_or_none(max(r.max_rel_error for r in group)),
                  "passed": all(r.passed for r in group)}
            for key, group in groups.items()}


def _table_cell(text: str) -> str:
    return text.replace("|", "\\|")


def _finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


def write_headline(results, metrics_path: Path) -> None:
    """metrics_path (DVC metrics): {"passed", "max_rel_error_log10"}, the latter null when an
    error is not finite and -inf-free: an error of exactly 0 is written as -16 (double precision)."""
    worst = max(r.max_rel_error for r in results)
    log10 = round(math.log10(max(worst, 1e-16)), 2) if math.isfinite(worst) else None
    headline = {"passed": all(r.passed for r in results), "max_rel_error_log10": log10}
    atomic_write_text(metrics_path, json.dumps(headline, indent=2) + "\n")


def run_gradcheck(words: Sequence[str], reports_dir: Path, tol: float = derivations.DEFAULT_TOL,
                  engines: Sequence[derivations.Engine] | None = None,
                  vocabulary_source: str = "a vocabulary slice",
                  metrics_path: Path | None = None) -> list[derivations.CheckResult]:
    """Run every check on `engines` (default: per-pair and batched), write both reports (and the
    headline metrics to `metrics_path`, when given) and print a summary; raise StageError (after
    writing them) when any check fails."""
    engines = derivations.default_engines() if engines is None else engines
    input_sets = check_inputs(words)
    results = derivations.run_all_checks(input_sets, engines, tol)
    random_set, vocabulary_set = input_sets
    inputs_text = (f"`random` (a synthetic vocabulary of {len(random_set.words)} words, d = {random_set.dim}, "
                   f"K = {random_set.K}) and `vocabulary` ({vocabulary_source}, d = {vocabulary_set.dim}, "
                   f"K = {vocabulary_set.K})")
    write_reports(results, reports_dir, tol, inputs_text)
    if metrics_path is not None:
        write_headline(results, metrics_path)
    failed = [r for r in results if not r.passed]
    worst = max(results, key=lambda r: r.max_rel_error)
    print(f"gradcheck: {len(derivations.CHECK_NAMES)} checks on engines "
          f"{', '.join(e.name for e in engines)}: {len(results) - len(failed)}/{len(results)} passed; "
          f"max relative error {worst.max_rel_error:.2e} ({worst.check}, {worst.engine}), tolerance {tol:g}")
    print(f"reports: {reports_dir / 'gradcheck.json'}, {reports_dir / 'gradcheck.md'}")
    if failed:
        for r in failed:
            print(f"FAILED {r.check} [{r.engine}, {r.inputs}]: max relative error "
                  f"{r.max_rel_error:.2e} in {r.worst}")
        raise StageError(f"{len(failed)} gradient checks failed (see {reports_dir / 'gradcheck.md'}): "
                         "fix the gradient before training")
    return results


@stage
def main(cfg):
    processed = project_path(cfg.paths.processed)
    tol = float(cfg.gradcheck.tol)
    if not tol > 0:
        raise StageError(f"gradcheck.tol = {tol} must be positive")
    words = vocabulary_slice(processed)
    run_gradcheck(words, project_path(cfg.paths.reports), tol,
                  vocabulary_source=f"first {len(words)} words of {cfg.paths.processed}",
                  metrics_path=project_path(cfg.paths.metrics) / METRICS_FILE)


if __name__ == "__main__":
    main()

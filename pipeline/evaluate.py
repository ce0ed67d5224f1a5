"""Evaluate word vectors: WordSim-353, SimLex-999, Google analogies, neighbours, held-out figures.

    python -m pipeline.evaluate                                      # models/ (the DVC stage after train)
    python -m pipeline.evaluate evaluate.vectors=path/to/vectors.txt # any word2vec text file

On models/ it writes reports/evaluation.json (every figure, interval and reference),
reports/evaluation.md and metrics/evaluation.json (the DVC metrics: the eight headline figures, so
`dvc exp show` stays narrow); on any other file it writes evaluation.json and evaluation.md beside it. When the vectors' folder holds
mlflow_run.json (every model folder does), the figures (`eval_*` metrics) and the report and
neighbours (artifacts under `evaluation/`) go into that MLflow run, next to the training's loss.

The held-out figures (`eval_heldout_*`, w2v.heldout) use the dev sentences of the processed corpus
with the fixed protocol `evaluate.heldout`, never the run's own window, K or loss; they need
vectors.npy and outside_vectors.npy beside the text file and a corpus tokenized with
corpus.train_on=train. Every figure has a 95% bootstrap interval: `<name>_ci95` (half its width)
in MLflow, low and high under "intervals" in the JSON file.
"""
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.common import StageError, project_path, stage
from pipeline.config import processed_corpus
from pipeline.sentiment import sentiment_figures
from w2v.atomic import atomic_write_text
from w2v.evaluation import evaluate_vectors, evaluation_report, load_vectors
from w2v.heldout import (REFERENCE_NAMES, HeldoutProtocol, HeldoutResult, difference_metric, heldout_figures,
                         heldout_report)

HELDOUT_SPLIT = "dev"
HEADLINE = ("eval_ws353_spearman", "eval_simlex_spearman", "eval_analogy_acc",
            "eval_heldout_nll", "eval_heldout_ns_loss", "eval_heldout_recall10",
            "eval_sst5_acc", "eval_sst2_acc")  # the DVC metrics


def heldout_protocol(cfg: DictConfig) -> HeldoutProtocol:
    """The fixed protocol of `evaluate.heldout` (defaults where a key is absent)."""
    settings = OmegaConf.to_container(OmegaConf.select(cfg, "evaluate.heldout", default=None) or {})
    try:
        return HeldoutProtocol(**settings)
    except (TypeError, ValueError) as error:
        raise StageError(f"{error}: fix evaluate.heldout in conf/config.yaml or on the command line")


def trained_min_count(cfg: DictConfig, run_cfg: DictConfig | None) -> int | None:
    """The corpus.min_count the vectors were trained at: the run's own when its config is known."""
    return OmegaConf.select(run_cfg if run_cfg is not None else cfg, "corpus.min_count", default=None)


def _heldout_inputs(cfg: DictConfig, run_cfg: DictConfig | None, model_dir: Path):
    """(corpus, centre vectors, outside vectors), or a note (str) saying why there is no held-out split."""
    import numpy as np

    if not (model_dir / "outside_vectors.npy").is_file() or not (model_dir / "vectors.npy").is_file():
        return f"no vectors.npy and outside_vectors.npy beside the vectors in {model_dir} (both are needed)"
    if run_cfg is not None and OmegaConf.select(run_cfg, "corpus.train_on") == "all":
        return "the model was trained on all sentences (corpus.train_on=all), dev included"
    processed = project_path(cfg.paths.processed)
    try:
        corpus = processed_corpus(processed, trained_min_count(cfg, run_cfg))
    except (OSError, ValueError) as error:
        raise StageError(f"cannot read the processed corpus in {processed} for the held-out figures ({error}): "
                         f"run `dvc repro tokenize` first")
    if corpus.train_on != "train":
        return (f"the processed corpus in {processed} was tokenized with corpus.train_on=all, so training saw the "
                f"dev sentences; run the tokenize stage with corpus.train_on=train")
    if not (corpus.split == 3).any():
        return f"the processed corpus in {processed} has no dev sentences (a plain-text corpus has no split)"
    center_vectors, outside_vectors = np.load(model_dir / "vectors.npy"), np.load(model_dir / "outside_vectors.npy")
    if center_vectors.shape[0] != corpus.vocab_size:
        raise StageError(
            f"the processed corpus in {processed} has {corpus.vocab_size} words but the model in {model_dir} "
            f"has {center_vectors.shape[0]}: it was trained on another corpus; evaluate it with that corpus "
            f"(paths.processed=...)")
    return corpus, center_vectors, outside_vectors


def heldout_evaluation(cfg: DictConfig, run_cfg: DictConfig | None, model_dir: Path) -> tuple[HeldoutResult | None, str | None]:
    """(the held-out figures on the dev sentences, None) or (None, a note saying why there are none)."""
    protocol = heldout_protocol(cfg)
    inputs = _heldout_inputs(cfg, run_cfg, model_dir)
    if isinstance(inputs, str):
        return None, inputs
    corpus, center_vectors, outside_vectors = inputs
    tokens, offsets = corpus.sentences_of(HELDOUT_SPLIT)
    result = heldout_figures(tokens, offsets, center_vectors, outside_vectors, corpus.counts, protocol)
    return (result, None) if result is not None else (None, "no dev pair of two words seen in training")


def heldout_metrics(result: HeldoutResult | None) -> dict[str, float]:
    """eval_heldout_* figures, their _ci95, the share left out and the references (empty without result)."""
    if result is None:
        return {}
    return result.metrics() | {f"eval_heldout_{name}_{suffix}": result.references[name]
                               for name, suffix in REFERENCE_NAMES.items()}


def _saved_run_config(model_dir: Path) -> DictConfig | None:
    """The resolved configuration the training wrote beside the vectors, if any."""
    saved = model_dir / "config.yaml"
    return OmegaConf.load(saved) if saved.is_file() else None


def _json_number(value: float) -> float | None:
    return None if isinstance(value, float) and math.isnan(value) else value


def open_run(run_id: str):
    """An MlflowClient on the project's store, after checking that run `run_id` is in it."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from pipeline.tracking import tracking_uri

    uri = tracking_uri()
    client = MlflowClient(uri)
    try:
        client.get_run(run_id)
    except MlflowException:
        raise StageError(
            f"MLflow run {run_id} is not in the store {uri}: set MLFLOW_TRACKING_URI to the store the "
            f"model was trained with"
        )
    return client


def log_to_mlflow(client, run_id: str, metrics: dict[str, float], report: str, neighbours: dict) -> None:
    """Log the figures (NaN ones left out) and the report and neighbours (artifacts) into run `run_id`."""
    from mlflow.entities import Metric

    timestamp = int(time.time() * 1000)
    client.log_batch(run_id, metrics=[
        Metric(name, float(value), timestamp, 0) for name, value in metrics.items() if not math.isnan(value)
    ])
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "evaluation.md").write_text(report, encoding="utf-8")
        (Path(tmp) / "neighbours.json").write_text(json.dumps(neighbours, indent=1), encoding="utf-8")
        client.log_artifacts(run_id, tmp, artifact_path="evaluation")


def write_json_report(path: Path, metrics: dict[str, float], intervals: dict) -> None:
    """The flat metrics (NaN as null) and, under "intervals", each figure's {"low", "high"}."""
    document = {name: _json_number(value) for name, value in metrics.items()}
    document["intervals"] = {name: {"low": _json_number(low), "high": _json_number(high)}
                             for name, (low, high) in intervals.items()}
    atomic_write_text(path, json.dumps(document, indent=2) + "\n")


def evaluate_vectors_file(cfg: DictConfig, run_cfg: DictConfig | None, vectors_path: Path,
                          metrics_path: Path, report_path: Path, run_id: str | None,
                          headline_path: Path | None = None) -> dict:
    """Evaluate one word2vec text file, write the JSON metrics and the Markdown report, log to MLflow.

    `run_cfg` is the configuration the vectors were trained with (None if unknown); only its
    corpus.train_on is read (held-out figures need unseen dev sentences).
    Returns the metrics (eval_* names; NaN where a figure cannot be computed).
    """
    client = open_run(run_id) if run_id else None  # fail before writing anything
    try:
        vectors = load_vectors(vectors_path)
    except ValueError as error:
        raise StageError(str(error))
    evaluation = evaluate_vectors(vectors)
    heldout, note = heldout_evaluation(cfg, run_cfg, vectors_path.parent)
    if note:
        print(f"note: no held-out figures: {note}", file=sys.stderr)
    # eval_sst5_acc, eval_sst2_acc, ... or a note
    sentiment = sentiment_figures(cfg, vectors_path.parent, trained_min_count(cfg, run_cfg))
    metrics = (evaluation.metrics() | heldout_metrics(heldout) | sentiment.metrics
               | {"eval_absent_words": float(len(evaluation.absent_words))})
    intervals = (evaluation.intervals() | sentiment.intervals
                 | ({f"eval_heldout_{k}": v for k, v in heldout.intervals.items()} if heldout else {})
                 | ({difference_metric(k): v for k, v in heldout.difference_intervals.items()} if heldout else {}))
    report = (evaluation_report(evaluation, source=str(vectors_path)) + heldout_report(heldout, HELDOUT_SPLIT, note)
              + sentiment.report)

    write_json_report(metrics_path, metrics, intervals)
    if headline_path is not None:
        atomic_write_text(headline_path, json.dumps({k: _json_number(metrics[k]) for k in HEADLINE if k in metrics},
                                                    indent=2) + "\n")
    atomic_write_text(report_path, report)
    if run_id:
        log_to_mlflow(client, run_id, metrics, report, evaluation.neighbours)
    return metrics


def _output_paths(cfg: DictConfig, model_dir: Path) -> tuple[Path, Path, Path | None]:
    """(full JSON, report, headline DVC metrics): the DVC stage's outputs for models/, else files
    beside the vectors (sweep jobs, other files) and no headline."""
    if model_dir.resolve() == project_path(cfg.paths.models).resolve():
        reports = project_path(cfg.paths.reports)
        return reports / "evaluation.json", reports / "evaluation.md", project_path(cfg.paths.metrics) / "evaluation.json"
    return model_dir / "evaluation.json", model_dir / "evaluation.md", None


def evaluate_model_dir(cfg: DictConfig, model_dir: Path, run_id: str | None) -> dict:
    """Evaluate model_dir/vectors.txt (the training stage calls this at the end of each run)."""
    model_dir = Path(model_dir)
    metrics_path, report_path, headline_path = _output_paths(cfg, model_dir)
    return evaluate_vectors_file(cfg, cfg, model_dir / "vectors.txt", metrics_path, report_path, run_id, headline_path)


def _run_id_of(model_dir: Path) -> str | None:
    record = model_dir / "mlflow_run.json"
    if not record.is_file():
        return None
    try:
        return json.loads(record.read_text(encoding="utf-8"))["run_id"]
    except (ValueError, KeyError) as error:
        raise StageError(f"{record} is not a valid run record ({error}): train the model again")


@stage
def main(cfg: DictConfig) -> None:
    vectors = OmegaConf.select(cfg, "evaluate.vectors")
    vectors_path = project_path(vectors) if vectors else project_path(cfg.paths.models) / "vectors.txt"
    model_dir = vectors_path.parent
    run_id = _run_id_of(model_dir)
    if run_id is None:
        print(f"note: no {model_dir / 'mlflow_run.json'}, so the figures are not logged to MLflow", file=sys.stderr)
    metrics_path, report_path, headline_path = _output_paths(cfg, model_dir)
    run_cfg = _saved_run_config(model_dir)
    if run_cfg is None and model_dir.resolve() == project_path(cfg.paths.models).resolve():
        run_cfg = cfg  # models/ is trained on the current configuration (DVC)
    metrics = evaluate_vectors_file(cfg, run_cfg, vectors_path, metrics_path, report_path, run_id, headline_path)
    for name, value in metrics.items():
        print(f"{name:22s} {value:.4f}")
    print(f"wrote {metrics_path} and {report_path}" + (f", headline in {headline_path}" if headline_path else ""))


if __name__ == "__main__":
    main()

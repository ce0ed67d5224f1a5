"""Evaluate word vectors: WordSim-353, SimLex-999, Google analogies, neighbours, dev loss.

    python -m pipeline.evaluate                                      # models/ (the DVC stage after train)
    python -m pipeline.evaluate evaluate.vectors=path/to/vectors.txt # any word2vec text file

On models/ it writes metrics/evaluation.json (DVC metrics) and reports/evaluation.md; on any
other file it writes evaluation.json and evaluation.md beside it. When the vectors' folder holds
mlflow_run.json (every model folder does), the figures (`eval_*` metrics) and the report and
neighbours (artifacts under `evaluation/`) go into that MLflow run, next to the training's loss.
The dev loss (`eval_dev_loss`) is computed when the model was trained with corpus.train_on=train,
so the dev sentences are unseen: it needs vectors.npy and outside_vectors.npy beside the text file.
"""
import json
import math
import sys
import tempfile
import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from pipeline.common import StageError, project_path, stage
from pipeline.sentiment import sentiment_figures
from w2v.atomic import atomic_write_text
from w2v.evaluation import evaluate_vectors, evaluation_report, load_vectors

DEV_LOSS_SEED = 0  # fixed negatives for the dev loss, so runs compare on the same draws


def dev_loss(cfg: DictConfig, run_cfg: DictConfig, model_dir: Path) -> float | None:
    """Mean loss per window on the dev sentences, with the loss, window and K of `run_cfg`, the
    training configuration (the processed corpus comes from `cfg.paths`). None when the processed
    corpus counts all sentences (tokenized with train_on=all), so the trainer saw the dev sentences."""
    import numpy as np

    from w2v.corpus import load_corpus
    from w2v.trainer import held_out_loss

    processed = project_path(cfg.paths.processed)
    try:
        corpus = load_corpus(processed)
    except (OSError, ValueError) as error:
        raise StageError(f"cannot read the processed corpus in {processed} for the dev loss ({error}): run `dvc repro tokenize` first")
    for name in ("vectors.npy", "outside_vectors.npy"):
        if not (model_dir / name).is_file():
            raise StageError(f"{model_dir / name} is missing, needed for the dev loss: train the model again")
    if corpus.train_on != "train":
        print(f"note: no dev loss: the processed corpus in {processed} was tokenized with train_on=all, so "
              f"training saw the dev sentences; run the tokenize stage with corpus.train_on=train", file=sys.stderr)
        return None
    center_vectors = np.load(model_dir / "vectors.npy")
    outside_vectors = np.load(model_dir / "outside_vectors.npy")
    if center_vectors.shape[0] != corpus.vocab_size:
        raise StageError(
            f"the processed corpus in {processed} has {corpus.vocab_size} words but the model in {model_dir} "
            f"has {center_vectors.shape[0]}: it was trained on another corpus; evaluate it with that corpus "
            f"(paths.processed=...)"
        )
    tokens, offsets = corpus.sentences_of("dev")
    return float(held_out_loss(
        tokens, offsets, center_vectors, outside_vectors, loss=run_cfg.loss.name, window=run_cfg.train.window,
        K=run_cfg.train.K, neg_weight=corpus.neg_weight, seed=DEV_LOSS_SEED,
    ))


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


def evaluate_vectors_file(cfg: DictConfig, run_cfg: DictConfig | None, vectors_path: Path,
                          metrics_path: Path, report_path: Path, run_id: str | None) -> dict:
    """Evaluate one word2vec text file, write the JSON metrics and the Markdown report, log to MLflow.

    `run_cfg` is the configuration the vectors were trained with (None if unknown: no dev loss).
    Returns the metrics (eval_* names; NaN where a figure cannot be computed).
    """
    client = open_run(run_id) if run_id else None  # fail before writing anything
    try:
        vectors = load_vectors(vectors_path)
    except ValueError as error:
        raise StageError(str(error))
    evaluation = evaluate_vectors(vectors)
    metrics = evaluation.metrics()
    extra = {}
    if run_cfg is not None and OmegaConf.select(run_cfg, "corpus.train_on") == "train":
        loss = dev_loss(cfg, run_cfg, vectors_path.parent)
        if loss is not None:
            metrics["eval_dev_loss"] = extra["dev loss (mean per window)"] = loss
    metrics["eval_absent_words"] = float(len(evaluation.absent_words))
    sentiment = sentiment_figures(cfg, vectors_path.parent)  # eval_sst5_acc, eval_sst2_acc, ... or a note
    metrics.update(sentiment.metrics)
    report = evaluation_report(evaluation, source=str(vectors_path), extra_metrics=extra) + sentiment.report
    if run_cfg is not None and "eval_dev_loss" not in metrics:
        report += "\nNo dev loss: the model was trained on all sentences (corpus.train_on=all), dev included.\n"

    atomic_write_text(metrics_path, json.dumps({**{k: _json_number(v) for k, v in metrics.items()},
                                                "intervals": sentiment.intervals}, indent=2) + "\n")
    atomic_write_text(report_path, report)
    if run_id:
        log_to_mlflow(client, run_id, metrics, report, evaluation.neighbours)
    return metrics


def _output_paths(cfg: DictConfig, model_dir: Path) -> tuple[Path, Path]:
    """The DVC stage's outputs for models/, else files beside the vectors (sweep jobs, other files)."""
    if model_dir.resolve() == project_path(cfg.paths.models).resolve():
        return project_path(cfg.paths.metrics) / "evaluation.json", project_path(cfg.paths.reports) / "evaluation.md"
    return model_dir / "evaluation.json", model_dir / "evaluation.md"


def evaluate_model_dir(cfg: DictConfig, model_dir: Path, run_id: str | None) -> dict:
    """Evaluate model_dir/vectors.txt (the training stage calls this at the end of each run)."""
    model_dir = Path(model_dir)
    metrics_path, report_path = _output_paths(cfg, model_dir)
    return evaluate_vectors_file(cfg, cfg, model_dir / "vectors.txt", metrics_path, report_path, run_id)


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
    metrics_path, report_path = _output_paths(cfg, model_dir)
    run_cfg = _saved_run_config(model_dir)
    if run_cfg is None and model_dir.resolve() == project_path(cfg.paths.models).resolve():
        run_cfg = cfg  # models/ is trained on the current configuration (DVC)
    metrics = evaluate_vectors_file(cfg, run_cfg, vectors_path, metrics_path, report_path, run_id)
    for name, value in metrics.items():
        print(f"{name:22s} {value:.4f}")
    print(f"wrote {metrics_path} and {report_path}")


if __name__ == "__main__":
    main()

"""Stage `tokenize`: read the downloaded corpus into vocabulary, token ids and sentence offsets.

    python -m pipeline.tokenize                              # SST as the assignment reads it
    python -m pipeline.tokenize corpus.fix_encoding=true     # repair clichÃ© -> cliché first
    python -m pipeline.tokenize corpus.train_on=train        # count only the training sentences
    python -m pipeline.tokenize corpus=text corpus.min_count=5   # after downloading a text corpus
    dvc repro tokenize                                       # as a pipeline stage

Reads paths.raw (data/raw, the download stage's output) and writes paths.processed
(data/processed): vocab.parquet, tokens.npy, offsets.npy, split.npy (see w2v.corpus) and
stats.json (sentence, token and type counts per split, the report) and, in paths.metrics,
corpus.json (the DVC metrics: vocab_size and counted_tokens), each file atomically.
"""
import json
import time

from omegaconf import DictConfig

from w2v.atomic import atomic_write_text
from w2v.corpus import TRAIN_ON, corpus_stats, save_corpus
from w2v.readers import SENTENCES_FILE, SPLIT_FILE, CorpusFileError, read_sst, read_text

from pipeline.common import StageError, project_path, stage

STATS_FILE = "stats.json"
METRICS_FILE = "corpus.json"  # in paths.metrics: the headline DVC shows
HEADLINE_STATS = ("vocab_size", "counted_tokens")
TEXT_FILE = "corpus.txt"  # the download stage's name for a corpus=text file


def check_corpus_settings(cfg: DictConfig) -> None:
    """Raise StageError naming the first invalid corpus.* reading setting."""
    corpus = cfg.get("corpus")
    if corpus is None:
        raise StageError("the configuration has no corpus section; run on conf/ or params.yaml")
    if corpus.get("kind") not in ("sst", "text"):
        raise StageError(f"corpus.kind must be sst or text, got {corpus.get('kind')!r} (choose corpus=sst or corpus=text)")
    if not isinstance(corpus.get("fix_encoding"), bool):
        raise StageError(f"corpus.fix_encoding must be true or false, got {corpus.get('fix_encoding')!r}")
    if corpus.get("train_on") not in TRAIN_ON:
        raise StageError(f"corpus.train_on must be one of {', '.join(TRAIN_ON)}, got {corpus.get('train_on')!r}")
    min_count = corpus.get("min_count")
    if isinstance(min_count, bool) or not isinstance(min_count, int) or min_count < 1:
        raise StageError(f"corpus.min_count must be an integer >= 1, got {min_count!r}")


def read_corpus(cfg: DictConfig):
    """The Corpus of the download stage's output folder, read as corpus.* says."""
    raw = project_path(cfg.paths.raw)
    corpus = cfg.corpus
    needed = (SENTENCES_FILE, SPLIT_FILE) if corpus.kind == "sst" else (TEXT_FILE,)
    for name in needed:
        if not (raw / name).is_file():
            raise StageError(f"{raw / name} does not exist; run the download stage for corpus={corpus.kind} "
                             f"first: python -m pipeline.download (or dvc repro download)")
    try:
        if corpus.kind == "sst":
            return read_sst(raw, fix_encoding=corpus.fix_encoding, train_on=corpus.train_on,
                            min_count=corpus.min_count)
        return read_text(raw / TEXT_FILE, fix_encoding=corpus.fix_encoding, min_count=corpus.min_count,
                         train_on=corpus.train_on)
    except CorpusFileError as error:
        raise StageError(str(error)) from None


@stage
def main(cfg: DictConfig) -> None:
    check_corpus_settings(cfg)
    start = time.perf_counter()
    corpus = read_corpus(cfg)
    processed = project_path(cfg.paths.processed)
    save_corpus(corpus, processed)
    stats = corpus_stats(corpus)
    atomic_write_text(processed / STATS_FILE, json.dumps(stats, indent=2) + "\n")
    headline = {key: stats[key] for key in HEADLINE_STATS}
    atomic_write_text(project_path(cfg.paths.metrics) / METRICS_FILE, json.dumps(headline, indent=2) + "\n")
    print(f"{processed}: {stats['sentences']:,} sentences, {stats['vocab_size']:,} word types (with UNK), "
          f"{stats['counted_tokens']:,} counted tokens (train_on={corpus.train_on}) "
          f"in {time.perf_counter() - start:.2f} s")


if __name__ == "__main__":
    main()

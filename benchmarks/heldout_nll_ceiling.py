"""How far below the unigram reference a model can take eval_heldout_nll on this corpus.

    python benchmarks/heldout_nll_ceiling.py                          # data/processed, the reference models
    python benchmarks/heldout_nll_ceiling.py --models multirun/.../0  # also a trained model folder or more
    python benchmarks/heldout_nll_ceiling.py --min-count 5 --models multirun/.../0   # a run at corpus.min_count=5

The held-out NLL (w2v.heldout, window m = 5 on the dev sentences, pairs with a word unseen in
training left out) of three kinds of prediction of the outside word o from the centre c:
- the unigram of the training counts (the report's reference; it ignores c);
- window-pair counts: p(o|c) from the (c, o) pairs of the training sentences at the same m,
  interpolated with the unigram as (1 - w) p(o) + w p_pairs(o|c), w = lam n_c / (n_c + k) with n_c
  the centre's training pairs; lam and k are picked on the dev pairs themselves, so this is an
  optimistic figure for what the window's co-occurrences hold beyond word frequency;
- each model folder's vectors (vectors.npy, outside_vectors.npy), broken down by the centre's
  training count, beside the unigram on the same pairs.
"""
import argparse
from pathlib import Path

import numpy as np
import scipy.sparse as sparse

from w2v.corpus import load_corpus, with_min_count
from w2v.heldout import window_pairs

COUNT_BANDS = [(1, 3), (4, 10), (11, 100), (101, 1000), (1001, None)]


def dev_pairs(corpus, window):
    centres, outsides, _ = window_pairs(*corpus.sentences_of("dev"), window)
    seen = (corpus.counts[centres] > 0) & (corpus.counts[outsides] > 0)
    return centres[seen], outsides[seen]


def pair_count_nll(corpus, centres, outsides, window, unigram):
    """The best dev NLL of the interpolated window-pair model over a small (lam, k) grid."""
    train_centres, train_outsides, _ = window_pairs(*corpus.sentences_of("train"), window)
    V = corpus.vocab_size
    pairs = sparse.coo_matrix((np.ones(len(train_centres)), (train_centres, train_outsides)), shape=(V, V)).tocsr()
    centre_pairs = np.asarray(pairs.sum(axis=1)).ravel()[centres]
    conditional = np.asarray(pairs[centres, outsides]).ravel() / np.maximum(centre_pairs, 1)
    best = (np.inf, None, None)
    for lam in (0.05, 0.1, 0.2, 0.3, 0.5, 0.7):
        for k in (5, 20, 100, 500):
            w = lam * centre_pairs / (centre_pairs + k)
            nll = -np.log((1 - w) * unigram[outsides] + w * conditional).mean()
            best = min(best, (nll, lam, k))
    return best


def model_nll(model: Path, corpus, centres, outsides):
    """NLL per pair of softmax(U v_c) over the words seen in training (float64 (P,))."""
    center_vectors = np.load(model / "vectors.npy").astype(np.float64)
    outside_vectors = np.load(model / "outside_vectors.npy").astype(np.float64)
    seen = np.flatnonzero(corpus.counts > 0)
    column = np.full(corpus.vocab_size, -1)
    column[seen] = np.arange(len(seen))
    unique_centres, row = np.unique(centres, return_inverse=True)
    scores = center_vectors[unique_centres] @ outside_vectors[seen].T
    scores -= scores.max(axis=1, keepdims=True)
    log_normaliser = np.log(np.exp(scores).sum(axis=1))
    return log_normaliser[row] - scores[row, column[outsides]]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processed", type=Path, default=Path("data/processed"))
    parser.add_argument("--window", type=int, default=5)
    parser.add_argument("--models", type=Path, nargs="*", default=[])
    parser.add_argument("--min-count", type=int, default=1, help="corpus.min_count the models were trained at")
    args = parser.parse_args()
    corpus = load_corpus(args.processed)
    if args.min_count > 1:
        corpus = with_min_count(corpus, args.min_count)
    centres, outsides = dev_pairs(corpus, args.window)
    unigram = corpus.counts / corpus.counts[corpus.counts > 0].sum()
    unigram_nll = -np.log(unigram[outsides])
    print(f"{len(centres)} dev pairs, window {args.window}")
    print(f"unigram of the training counts      {unigram_nll.mean():.4f}")
    nll, lam, k = pair_count_nll(corpus, centres, outsides, args.window, unigram)
    print(f"window-pair counts (tuned on dev)   {nll:.4f}  (lam {lam}, k {k}; "
          f"{unigram_nll.mean() - nll:.4f} below the unigram)")
    for model in args.models:
        nll = model_nll(model, corpus, centres, outsides)
        print(f"\n{model}: {nll.mean():.4f} ({nll.mean() - unigram_nll.mean():+.4f} against the unigram)")
        centre_counts = corpus.counts[centres]
        for low, high in COUNT_BANDS:
            band = (centre_counts >= low) & (centre_counts <= (high or centre_counts.max()))
            print(f"  centre count {low}-{high or 'max'}: {band.mean():6.1%} of pairs, model {nll[band].mean():.4f}, "
                  f"unigram {unigram_nll[band].mean():.4f}")


if __name__ == "__main__":
    main()

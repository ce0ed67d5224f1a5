"""word2vec skip-gram (CS224n assignment 2): losses with hand-derived gradients, gradient checking,
sampling, trainer engines and vector I/O. Knows nothing of DVC, Hydra or MLflow."""
from w2v.activations import sigmoid
from w2v.gradcheck import GradcheckResult, gradcheck
from w2v.losses import naive_softmax_loss_and_gradient, neg_sampling_loss_and_gradient, skipgram

__all__ = [
    "GradcheckResult",
    "gradcheck",
    "naive_softmax_loss_and_gradient",
    "neg_sampling_loss_and_gradient",
    "sample_negatives",
    "sigmoid",
    "skipgram",
]


def __getattr__(name):
    # sample_negatives lives with the numba kernels; importing it lazily keeps numba's start-up
    # out of the stages that never sample (download, tokenize, evaluate).
    if name == "sample_negatives":
        from w2v.sampling import sample_negatives

        return sample_negatives
    raise AttributeError(f"module 'w2v' has no attribute {name!r}")

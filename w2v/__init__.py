"""word2vec skip-gram (CS224n assignment 2): losses with hand-derived gradients, gradient checking,
sampling, trainer engines and vector I/O. Knows nothing of DVC, Hydra or MLflow."""

"""The names users pick on the command line and in the pipeline TOML (encoders, normalisations),
declared without importing what implements them, so ``asd --help`` needs neither torch nor FAISS.
The encoder registry and the scoring config check their implementations against these lists
(tests/test_cli.py)."""

ENCODER_NAMES = ("beats", "logmel-stats", "oracle", "stft-mean", "student", "teacher")
NORMALIZATIONS = ("none", "knn", "gwrp", "knn-diff", "gwrp-diff", "kmeans-source", "smote", "domain-standardize", "lof")
TRANSDUCTIVE = frozenset({"domain-standardize"})
INDEX_TYPES = ("exact", "ivf")  # ivf: approximate (IVF lists, then float64 re-ranking), methods.md section 2

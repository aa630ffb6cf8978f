"""Item representations learned from the stream: text vectors adapted by what users take next.

The text encoder knows what items say, not what people do with them. Here every
item gets two learned vectors in a small space (``learned_dim``), each the text
vector through a shared adapter plus a per-item residual::

    p_i = x_i A_in  + r_i        (the item as context: something a user took)
    q_j = x_j A_out + s_j        (the item as the next thing taken), with a bias b_j

A user's context is their recent items weighted by position,
``c_u = Σ_a w_a ⊙ p_(a-th latest)``, and ``q_j · c_u + b_j`` scores what they take
next. It is trained by next-item prediction (item2vec / CBOW-style, a softmax
over the catalogue, sampled when the catalogue is large) on ``(recent items,
item taken)`` examples from the stream. Residuals start at zero and the adapters
at a fixed random projection, so a new item starts from its words and, before
any training, ``q · c`` is close to the text cosine; every decay is by position,
never by clock time, so what is learned means the same in any shop's log.

:class:`RepresentationLearner` is what the trainer (and the in-process replay)
runs; each round it publishes an :class:`ItemSpace`, the snapshot a worker's
recommender hot-swaps (``Recommender.set_item_space``) and embeds its catalogue
with. Measured on ml-100k: docs/accuracy-research.md.

>>> import numpy as np
>>> from model.config import RecommenderConfig
>>> config = RecommenderConfig(learned_dim=8, learned_window=3, learned_interval=2)
>>> learner = RepresentationLearner(4, config)
>>> learner.add_items(["a", "b", "c"], np.eye(3, 4, dtype=np.float32))
>>> learner.add_example(["a"], "b"); learner.due
False
>>> learner.add_example(["b", "a"], "c"); learner.due
True
>>> space = learner.train()
>>> space.version, space.embed(["a", "zz"], np.eye(2, 4, dtype=np.float32))[0].shape
(1, (2, 8))
>>> ItemSpace.from_bytes(space.to_bytes()).version
1
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections import deque
from collections.abc import Sequence

import numpy as np
import torch

from model.config import RecommenderConfig
from model.vectors import unit_rows

#: Up to this many items the softmax runs over the whole catalogue; above, over a uniform sample this big.
FULL_SOFTMAX_ITEMS = 8192


@dataclasses.dataclass
class ItemSpace:
    """A snapshot of the learned representations: adapters, context weights, per-item residuals."""

    version: int
    #: (text dim, learned dim): the shared adapters every item's text goes through.
    adapter_in: np.ndarray
    adapter_out: np.ndarray
    #: (window, learned dim): how much the a-th latest item of a user's context counts, per dimension.
    context_weights: np.ndarray
    #: The items the stream has taught something (the others are their text through the adapters).
    ids: list[str]
    residual_in: np.ndarray
    residual_out: np.ndarray
    bias: np.ndarray

    @classmethod
    def initial(cls, text_dim: int, config: RecommenderConfig) -> ItemSpace:
        """Version 0, the same in every process: a fixed random projection (Johnson–Lindenstrauss keeps
        inner products) and context weights ``learned_age_decay ** age``."""
        d = config.learned_dim
        rng = np.random.default_rng(20261202)
        adapter = (rng.standard_normal((text_dim, d)) / np.sqrt(d)).astype(np.float32)
        weights = np.repeat((config.learned_age_decay ** np.arange(config.learned_window))[:, None], d, axis=1)
        empty = np.zeros((0, d), dtype=np.float32)
        return cls(0, adapter, adapter.copy(), weights.astype(np.float32), [], empty, empty.copy(),
                   np.zeros(0, dtype=np.float32))

    @property
    def dim(self) -> int:
        return self.adapter_in.shape[1]

    @property
    def shape(self) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """(text dim, learned dim) and (window, learned dim): two spaces of one config share it."""
        return self.adapter_in.shape, self.context_weights.shape

    @functools.cached_property
    def slots(self) -> dict[str, int]:
        """Where each learned item's residuals are (built once: a snapshot does not change)."""
        return {item: n for n, item in enumerate(self.ids)}

    def embed(self, ids: Sequence[str], text: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(p, q, b)`` of items with text vectors ``text`` (unit rows): residuals added where learned."""
        p, q = text @ self.adapter_in, text @ self.adapter_out
        b = np.zeros(len(ids), dtype=np.float32)
        slot = self.slots
        mine = [(n, slot[item]) for n, item in enumerate(ids) if item in slot]
        if mine:
            at, learned = map(list, zip(*mine))
            p[at] += self.residual_in[learned]
            q[at] += self.residual_out[learned]
            b[at] = self.bias[learned]
        return p.astype(np.float32), q.astype(np.float32), b

    def to_bytes(self) -> bytes:
        out = io.BytesIO()
        np.savez(out, version=np.int64(self.version), adapter_in=self.adapter_in, adapter_out=self.adapter_out,
                 context_weights=self.context_weights, ids=np.array(self.ids, dtype=str),
                 residual_in=self.residual_in, residual_out=self.residual_out, bias=self.bias)
        return out.getvalue()

    @classmethod
    def from_bytes(cls, data: bytes) -> ItemSpace:
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return cls(int(z["version"]), z["adapter_in"], z["adapter_out"], z["context_weights"],
                       [str(i) for i in z["ids"].tolist()], z["residual_in"], z["residual_out"], z["bias"])


class RepresentationLearner:
    """Learns an :class:`ItemSpace` online from ``(recent items, item taken)`` examples, in torch.

    Examples go to a bounded ring buffer; every ``learned_interval`` new ones, a round
    trains ``learned_epochs`` passes over them plus a replay sample ``learned_replay``
    times as large from the buffer (Adam, warm: the optimiser's state carries over),
    and returns the next version. On a machine with CUDA it trains there.

    Parameters
    ----------
    text_dim
        Size of the text vectors (384 for all-MiniLM-L6-v2).
    config
        The ``learned_*`` knobs.
    start
        A snapshot to continue from (a trainer that restarts); by default version 0.
    """

    def __init__(self, text_dim: int, config: RecommenderConfig, start: ItemSpace | None = None,
                 device: str | None = None):
        self.config = config
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        space = start or ItemSpace.initial(text_dim, config)
        self.version = space.version
        self.ids: list[str] = []
        self.slots: dict[str, int] = {}
        self.text = np.zeros((0, text_dim), dtype=np.float32)
        self.live = np.zeros(0, dtype=bool)
        self._text_t: torch.Tensor | None = None
        self.generator = torch.Generator().manual_seed(0)
        self.rng = np.random.default_rng(0)
        self.adapter_in = self._parameter(space.adapter_in)
        self.adapter_out = self._parameter(space.adapter_out)
        # Positive weights through softplus: stored as its inverse, log(e^w - 1).
        self.context_logit = self._parameter(np.log(np.expm1(np.maximum(space.context_weights, 1e-6))))
        d = space.dim
        self.residual_in = torch.nn.Parameter(torch.zeros((64, d), device=self.device))
        self.residual_out = torch.nn.Parameter(torch.zeros((64, d), device=self.device))
        self.bias = torch.nn.Parameter(torch.zeros(64, device=self.device))
        self._start = space
        self.optimizer = self._optimizer()
        self.examples: deque[tuple[np.ndarray, int]] = deque(maxlen=config.learned_buffer)
        self.fresh = 0

    def _parameter(self, values: np.ndarray) -> torch.nn.Parameter:
        """A float32 parameter on the learner's device, copied from ``values`` (it owns its memory)."""
        return torch.nn.Parameter(torch.tensor(np.asarray(values, dtype=np.float32), device=self.device))

    @property
    def text_dim(self) -> int:
        return self.text.shape[1]

    def _optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.Adam([self.adapter_in, self.adapter_out, self.context_logit, self.residual_in,
                                 self.residual_out, self.bias], lr=self.config.learned_learning_rate)

    # --- the catalogue
    def add_items(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Items and their text vectors (any scale: normalised here, as the index does)."""
        vectors = unit_rows(np.asarray(vectors, dtype=np.float32).reshape(len(ids), -1))
        new = [item for item in dict.fromkeys(ids) if item not in self.slots]
        for item in new:
            self.slots[item] = len(self.ids)
            self.ids.append(item)
        self.text = np.concatenate([self.text, np.zeros((len(new), self.text.shape[1]), np.float32)])
        self.live = np.concatenate([self.live, np.ones(len(new), dtype=bool)])
        for item, vector in zip(ids, vectors):
            self.text[self.slots[item]] = vector
            self.live[self.slots[item]] = True
        self._text_t = None
        self._grow(len(self.ids))
        if new and self._start.ids:  # a restarted trainer: residuals learned before come back with their items
            self._restore(new)

    def remove_items(self, ids: Sequence[str]) -> None:
        """Items that left the catalogue: never a softmax target or negative again."""
        for item in ids:
            if item in self.slots:
                self.live[self.slots[item]] = False

    def _restore(self, ids: list[str]) -> None:
        start = self._start.slots
        pairs = [(self.slots[i], start[i]) for i in ids if i in start]
        if pairs:
            mine, theirs = (torch.tensor(x, device=self.device) for x in zip(*pairs))
            with torch.no_grad():
                self.residual_in[mine] = torch.as_tensor(self._start.residual_in, device=self.device)[theirs]
                self.residual_out[mine] = torch.as_tensor(self._start.residual_out, device=self.device)[theirs]
                self.bias[mine] = torch.as_tensor(self._start.bias, device=self.device)[theirs]

    def _grow(self, n: int) -> None:
        """Room for ``n`` items' residuals: doubled when full, the optimiser's moments carried over."""
        capacity = self.bias.shape[0]
        if n <= capacity:
            return
        size = max(n, 2 * capacity)
        old = [self.residual_in, self.residual_out, self.bias]
        state = [self.optimizer.state.get(p, {}) for p in old]
        grown = []
        for p in old:
            q = torch.zeros((size, *p.shape[1:]), device=self.device)
            q[:capacity] = p.detach()
            grown.append(torch.nn.Parameter(q))
        self.residual_in, self.residual_out, self.bias = grown
        kept = {p: s for p, s in self.optimizer.state.items() if all(p is not o for o in old)}
        self.optimizer = self._optimizer()
        self.optimizer.state.update(kept)
        for p, s in zip(grown, state):
            if s:
                padded = {}
                for key, value in s.items():  # the moments are shaped like the parameter; the step is not
                    if torch.is_tensor(value) and value.dim() and value.shape[0] == capacity:
                        value, short = torch.zeros_like(p), value
                        value[:capacity] = short
                    padded[key] = value
                self.optimizer.state[p] = padded

    # --- examples
    def add_example(self, context: Sequence[str], item: str) -> None:
        """The user's recent items (the latest first) and the item they took next."""
        target = self.slots.get(item)
        rows = [self.slots[i] for i in context[: self.config.learned_window] if i in self.slots]
        if target is None or not rows:
            return
        self.examples.append((np.asarray(rows, dtype=np.int64), target))
        self.fresh += 1

    @property
    def due(self) -> bool:
        """Whether enough new examples came in for a round."""
        return self.fresh >= self.config.learned_interval

    # --- training
    def train(self) -> ItemSpace:
        """One round over the new examples and a replay sample of older ones; returns the next snapshot."""
        config = self.config
        fresh = min(self.fresh, len(self.examples))
        older = len(self.examples) - fresh
        picked = list(range(older, len(self.examples)))
        replay = min(older, int(config.learned_replay * fresh))
        if replay:
            picked += self.rng.choice(older, size=replay, replace=False).tolist()
        self.fresh = 0
        if picked:
            for _ in range(config.learned_epochs):
                order = self.rng.permutation(len(picked))
                for at in range(0, len(order), config.learned_batch):
                    self._step([self.examples[picked[i]] for i in order[at: at + config.learned_batch]])
        self.version += 1
        return self.snapshot()

    def _step(self, examples: list[tuple[np.ndarray, int]]) -> None:
        window = self.config.learned_window
        context = np.full((len(examples), window), -1, dtype=np.int64)
        for n, (rows, _) in enumerate(examples):
            context[n, : len(rows)] = rows
        ctx = torch.as_tensor(context, device=self.device)
        target = torch.as_tensor([t for _, t in examples], device=self.device)
        text = self._text()
        valid = (ctx >= 0).unsqueeze(-1)
        safe = ctx.clamp(min=0)
        n = len(self.ids)
        if n < safe.numel():  # cheaper to embed the catalogue once than every context slot
            p = (text @ self.adapter_in + self.residual_in[:n])[safe]
        else:
            p = text[safe] @ self.adapter_in + self.residual_in[safe]
        weights = torch.nn.functional.softplus(self.context_logit)
        c = (p * weights * valid).sum(1)
        if n <= FULL_SOFTMAX_ITEMS:
            candidates = torch.arange(n, device=self.device)
        else:  # a uniform sample with the targets: the correction for a uniform proposal is a constant
            sample = torch.randint(n, (FULL_SOFTMAX_ITEMS,), generator=self.generator).to(self.device)
            candidates = torch.unique(torch.cat([target, sample]))
        q = text[candidates] @ self.adapter_out + self.residual_out[candidates]
        logits = c @ q.T + self.bias[candidates]
        live = torch.as_tensor(self.live, device=self.device)[candidates]
        # The context's own items are not the answer (unless taken again), nor are items gone.
        in_context = (ctx.unsqueeze(-1) == candidates.view(1, 1, -1)).any(1)
        at = torch.searchsorted(candidates, target)
        blocked = (in_context | ~live) & (candidates.view(1, -1) != target.view(-1, 1))
        logits = logits.masked_fill(blocked, float("-inf"))
        loss = torch.nn.functional.cross_entropy(logits, at)
        loss = loss + self.config.learned_l2 * (self.residual_in[safe].pow(2).sum(-1).mean()
                                                + self.residual_out[target].pow(2).sum(-1).mean())
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    def _text(self) -> torch.Tensor:
        if self._text_t is None:
            self._text_t = torch.as_tensor(self.text, device=self.device)
        return self._text_t

    def snapshot(self) -> ItemSpace:
        """The current representations as an :class:`ItemSpace` (residuals of the items trained so far)."""
        n = len(self.ids)

        def array(t: torch.Tensor) -> np.ndarray:
            return t.detach().cpu().numpy().astype(np.float32)

        weights = torch.nn.functional.softplus(self.context_logit)
        return ItemSpace(self.version, array(self.adapter_in), array(self.adapter_out), array(weights),
                         list(self.ids), array(self.residual_in[:n]), array(self.residual_out[:n]),
                         array(self.bias[:n]))


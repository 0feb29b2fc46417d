"""An LSTM policy over n x m categorical decisions, trained with REINFORCE (Zoph & Le; MnasNet).

At step t the LSTM reads an embedding of the previous choice (each decision position has its own
embedding rows, so position is implicit) and a linear head emits logits over the choices of
decision t (positions with fewer choices are masked). Updates use a moving-average baseline, an
entropy bonus and Adam, on a batch of samples. Every random draw comes from ``fold_in(seed,
step)``, so the sequence of samples is a function of the seed and the rewards seen.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx


@dataclasses.dataclass(frozen=True)
class ReinforceConfig:
    hidden: int = 64
    learning_rate: float = 5e-3
    entropy_weight: float = 1e-3
    baseline_decay: float = 0.95
    # Logit temperature and tanh clipping, as in NAS controllers (Zoph & Le 2017; ENAS).
    temperature: float = 1.0
    tanh_constant: float = 2.5

    def __post_init__(self) -> None:
        from search_space.errors import UserError

        checks = [
            (isinstance(self.hidden, int) and self.hidden >= 1, "hidden", "a positive int"),
            (self.learning_rate > 0, "learning_rate", "> 0"),
            (self.entropy_weight >= 0, "entropy_weight", ">= 0 (a bonus for entropy)"),
            (0 <= self.baseline_decay < 1, "baseline_decay", "in [0, 1)"),
            (self.temperature > 0, "temperature", "> 0"),
            (self.tanh_constant > 0, "tanh_constant", "> 0"),
        ]
        for ok, field, what in checks:
            if not ok:
                raise UserError(f"policy.{field}: must be {what}, got {getattr(self, field)!r}")


class Policy(nnx.Module):
    def __init__(self, choice_counts: Sequence[int], hidden: int, rngs: nnx.Rngs):
        counts = np.asarray(choice_counts)
        self.max_choices = int(counts.max())
        self.offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int32) + 1  # row 0: start token
        self.embed = nnx.Embed(int(counts.sum()) + 1, hidden, rngs=rngs)
        self.cell = nnx.LSTMCell(hidden, hidden, rngs=rngs)
        self.head = nnx.Linear(hidden, self.max_choices, rngs=rngs)
        self.mask = nnx.Variable(jnp.asarray(np.arange(self.max_choices)[None, :] < counts[:, None]))
        self.hidden = hidden

    def logits(self, choices: jax.Array, cfg: ReinforceConfig) -> jax.Array:
        """Teacher-forced logits (T, max_choices) for one decision vector ``choices`` (T,)."""
        offsets = jnp.asarray(self.offsets)
        prev = jnp.concatenate([jnp.zeros((1,), jnp.int32), offsets[:-1] + choices[:-1]])
        carry = self.cell.initialize_carry((self.hidden,), nnx.Rngs(0))
        _, hs = _scan_cell(self.cell, carry, self.embed(prev))
        out = self.head(hs) / cfg.temperature
        out = cfg.tanh_constant * jnp.tanh(out / cfg.tanh_constant)
        return jnp.where(self.mask[...], out, -1e9)


def _scan_cell(cell: nnx.LSTMCell, carry: Any, xs: jax.Array) -> tuple[Any, jax.Array]:
    graphdef, state = nnx.split(cell)

    def f(c, x):
        c, h = nnx.merge(graphdef, state)(c, x)
        return c, h

    return jax.lax.scan(f, carry, xs)


class ReinforceController:
    """REINFORCE over an LSTM policy; ``sample``/``update``/``state_dict``/``load_state_dict``."""

    def __init__(self, choice_counts: Sequence[int], seed: int = 0, config: ReinforceConfig = ReinforceConfig()):
        self.choice_counts = tuple(int(c) for c in choice_counts)
        self.seed, self.config = seed, config
        self.step = 0
        self.baseline: float | None = None
        policy = Policy(self.choice_counts, config.hidden, nnx.Rngs(seed))
        self.graphdef, self.params = nnx.split(policy)
        self.tx = optax.adam(config.learning_rate)
        self.opt_state = self.tx.init(nnx.state(policy, nnx.Param))
        self._sample = jax.jit(self._sample_fn, static_argnums=(2,))
        self._update = jax.jit(self._update_fn)

    # -- pure functions --------------------------------------------------------------------

    def _sample_fn(self, params: Any, key: jax.Array, k: int) -> jax.Array:
        policy = nnx.merge(self.graphdef, params)
        offsets = jnp.asarray(policy.offsets)
        cell_graph, cell_state = nnx.split(policy.cell)
        T = len(self.choice_counts)

        def one(key):
            carry = policy.cell.initialize_carry((policy.hidden,), nnx.Rngs(0))

            def step(state, t):
                carry, prev, key = state
                carry, h = nnx.merge(cell_graph, cell_state)(carry, policy.embed(prev))
                logits = policy.head(h) / self.config.temperature
                logits = self.config.tanh_constant * jnp.tanh(logits / self.config.tanh_constant)
                logits = jnp.where(policy.mask[...][t], logits, -1e9)
                key, sub = jax.random.split(key)
                c = jax.random.categorical(sub, logits)
                return (carry, offsets[t] + c, key), c

            _, cs = jax.lax.scan(step, (carry, jnp.int32(0), key), jnp.arange(T))
            return cs

        return jax.vmap(one)(jax.random.split(key, k))

    def _update_fn(self, params: Any, opt_state: Any, samples: jax.Array, advantages: jax.Array
                   ) -> tuple[Any, Any, jax.Array]:
        def loss_fn(p):
            policy = nnx.merge(self.graphdef, nnx.merge_state(params, p))
            logits = jax.vmap(lambda s: policy.logits(s, self.config))(samples)  # (k, T, C)
            logp = jax.nn.log_softmax(logits)
            chosen = jnp.take_along_axis(logp, samples[..., None], -1)[..., 0].sum(-1)
            probs = jnp.exp(logp)
            entropy = -(jnp.where(probs > 0, probs * logp, 0.0)).sum((-1, -2)).mean()
            return -(chosen * advantages).mean() - self.config.entropy_weight * entropy, entropy

        trainable = nnx.filter_state(params, nnx.Param)
        (loss, entropy), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
        updates, opt_state = self.tx.update(grads, opt_state, trainable)
        new = optax.apply_updates(trainable, updates)
        return nnx.merge_state(params, new), opt_state, entropy

    # -- the interface ---------------------------------------------------------------------

    def _key(self) -> jax.Array:
        return jax.random.fold_in(jax.random.key(self.seed), self.step)

    def sample(self, k: int) -> np.ndarray:
        return np.asarray(self._sample(self.params, self._key(), int(k)), np.int32)

    def update(self, samples: np.ndarray, rewards: Sequence[float]) -> dict[str, float]:
        r = np.asarray(rewards, np.float64)
        mean = float(r.mean())
        if self.baseline is None:
            self.baseline = mean
        adv = jnp.asarray(r - self.baseline, jnp.float32)
        self.params, self.opt_state, entropy = self._update(self.params, self.opt_state,
                                                            jnp.asarray(samples, jnp.int32), adv)
        self.baseline = self.config.baseline_decay * self.baseline + (1 - self.config.baseline_decay) * mean
        self.step += 1
        return {"entropy": float(entropy), "mean_reward": mean, "baseline": float(self.baseline)}

    def state_dict(self) -> dict[str, Any]:
        leaves = jax.tree_util.tree_leaves((self.params, self.opt_state))
        return {"kind": "reinforce", "seed": self.seed, "step": self.step, "baseline": self.baseline,
                "leaves": [np.asarray(x) for x in leaves]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        treedef = jax.tree_util.tree_structure((self.params, self.opt_state))
        leaves = [jnp.asarray(x) for x in state["leaves"]]
        if len(leaves) != treedef.num_leaves:
            raise ValueError("controller state: does not match this controller's shape")
        self.params, self.opt_state = jax.tree_util.tree_unflatten(treedef, leaves)
        self.seed, self.step = int(state["seed"]), int(state["step"])
        self.baseline = None if state["baseline"] is None else float(state["baseline"])

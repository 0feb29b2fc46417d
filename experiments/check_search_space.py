"""Decode random ensemble decision vectors, round-trip them through JSON, and build every member.

    python -m experiments.check_search_space --vectors 1000 --members 3 --native 32

Each member is built with Flax NNX and run forward at its sampled resolution under
``jax.eval_shape`` (shapes and dtypes only, no compilation), about 1-2 s a member on a CPU core.
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from search_space import MnasNetSpace, count, from_json, to_json
from search_space.errors import seed_arg
from search_space.models import build_model, param_counts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vectors", type=int, default=1000)
    ap.add_argument("--members", type=int, default=3)
    ap.add_argument("--native", type=int, default=32, help="native resolution of the data set")
    ap.add_argument("--classes", type=int, default=10)
    ap.add_argument("--seed", type=seed_arg, default=0)
    ap.add_argument("--no-build", action="store_true")
    args = ap.parse_args()
    space = MnasNetSpace(args.native)
    rng = np.random.default_rng(args.seed)
    start, built = time.time(), 0
    for i in range(args.vectors):
        ens = space.decode(space.sample(rng, args.members))
        back = from_json(to_json(ens))
        assert back == ens and back.id == ens.id and space.decode(space.encode(ens)) == ens
        if args.no_build:
            continue
        for m in ens.members:
            model = nnx.eval_shape(lambda: build_model(m, args.classes, rngs=nnx.Rngs(0)))
            c = count(m, args.classes)
            assert param_counts(model) == (c.params, c.bn_params), m.id
            graphdef, state = nnx.split(model)
            out = jax.eval_shape(lambda s, x: nnx.merge(graphdef, s)(x), state,
                                 jax.ShapeDtypeStruct((2, m.resolution, m.resolution, 3), jnp.float32))
            assert out.shape == (2, args.classes), (m.id, out.shape)
            built += 1
        if (i + 1) % 10 == 0:
            print(f"{i + 1}/{args.vectors} ensembles ok, {built} members built and run, "
                  f"{time.time() - start:.0f} s", flush=True)
    print(f"OK: {args.vectors} ensembles of {args.members} decoded, round-tripped; {built} members built and run "
          f"({time.time() - start:.0f} s)")


if __name__ == "__main__":
    main()

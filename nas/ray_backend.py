"""Members as Ray tasks: a local Ray instance (``--backend ray``) or a cluster (``--address``).

Each member is one task with ``num_gpus = gpus_per_member`` (fractions let several small members
share a GPU) or ``num_cpus`` on CPU-only nodes. The split goes into the object store once per batch.
A task whose worker dies is retried ``max_retries`` times by Ray, then recorded as a failed
member; results flow back to the driver, which alone writes the run directory, so ``--resume``
behaves exactly as with the local backends.

On a cluster the project must be installed on every node (``pip install ensemble-nas``), or shipped
with ``runtime_env={"working_dir": ...}``.
"""

from __future__ import annotations

import os
from typing import Any, Callable, Iterable, Iterator

from nas.evaluators import MemberJob, compilation_cache_env, failed_result
from search_space.errors import UserError
from search_space.spec import ArchSpec
from trainer.config import TrainConfig
from trainer.data import Split
from trainer.train import MemberResult

TrainFn = Callable[[ArchSpec, Split, TrainConfig, int], MemberResult]

# Passed on to workers so they share the driver's XLA compilation cache and platform choice.
_FORWARDED_ENV = ("JAX_COMPILATION_CACHE_DIR", "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "JAX_PLATFORMS",
                  "NAS_CACHE_DIR", "NAS_DATA_DIR", "XLA_FLAGS")


def _train_in_worker(spec: ArchSpec, split: Split, config: TrainConfig, seed: int) -> MemberResult:
    from trainer.train import train_member

    return train_member(spec, split, config, seed)


class RayEvaluator:
    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_member: float | None = None,
                 cpus_per_member: float = 1.0, max_retries: int = 1, runtime_env: dict[str, Any] | None = None,
                 train_fn: TrainFn | None = None, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise UserError("--backend ray: Ray is not installed (pip install 'ensemble-nas[ray]')") from None
        # The driver trains nothing: keep its JAX from taking 75% of a GPU the workers need.
        os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
        self.ray = ray
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                ray.init(address=address, runtime_env=runtime_env, include_dashboard=False, num_cpus=num_cpus,
                         logging_level="WARNING", log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as e:
                raise UserError(f"--backend ray: cannot start or reach Ray"
                                f"{' at ' + address if address else ''}: {str(e).splitlines()[0]}") from None
        gpus = ray.cluster_resources().get("GPU", 0)
        if gpus_per_member is None and gpus > 0:
            gpus_per_member = 1.0
        if gpus_per_member and gpus == 0:
            self.close()  # tasks asking for GPUs would wait forever on a cluster without any
            raise UserError(f"--gpus-per-member {gpus_per_member}: the Ray cluster has no GPUs")
        env_vars = {k: os.environ[k] for k in _FORWARDED_ENV if k in os.environ}
        if gpus_per_member:
            # JAX takes 75% of a GPU at start by default; a member owning a fraction of it takes that fraction.
            env_vars["XLA_PYTHON_CLIENT_MEM_FRACTION"] = f"{0.9 * min(1.0, gpus_per_member):.3f}"
        self._env_vars, self._runtime_env = env_vars, runtime_env or {}
        self._options: dict[str, Any] = {"num_cpus": cpus_per_member, "max_retries": max_retries,
                                         "retry_exceptions": False}
        if gpus_per_member:
            self._options["num_gpus"] = gpus_per_member
        self._fn = ray.remote(train_fn or _train_in_worker)

    def _remote(self) -> Any:
        """The task with its environment: the forwarded variables, the driver's persistent
        compilation cache as it is now (a search turns the run's on after building its evaluator),
        then ``runtime_env``'s own variables."""
        env_vars = {**self._env_vars, **compilation_cache_env(), **self._runtime_env.get("env_vars", {})}
        return self._fn.options(**self._options, runtime_env={**self._runtime_env, "env_vars": env_vars})

    def evaluate_many(self, jobs: Iterable[MemberJob], split: Split, config: TrainConfig,
                      ) -> Iterator[tuple[MemberJob, MemberResult]]:
        ray = self.ray
        jobs = list(jobs)  # all submitted at once: Ray's scheduler holds the queue
        if not jobs:
            return
        split_ref = ray.put(split)
        remote = self._remote()
        pending = {remote.remote(job.spec, split_ref, config, job.seed): job for job in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                result = ray.get(ready[0])
            except Exception as e:  # noqa: BLE001 - a dead worker after its retries, or an error in the task
                cause = getattr(e, "cause", None) or e
                result = failed_result(job.spec, cause)
            yield job, result

    def close(self) -> None:
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()

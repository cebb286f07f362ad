"""tf.distribute strategies by name, and where each worker writes.

Strategies must be created before TensorFlow runs any op (logical CPU devices and
collective ops are configured at start-up), so programs call build_strategy first.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile

import tensorflow as tf


def build_strategy(name: str, num_cpu_devices: int = 0, tpu: str = ""):
    if name == "default":
        return tf.distribute.get_strategy()
    from training import distributed_fit_fix
    distributed_fit_fix.apply()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus or num_cpu_devices <= 1:
            return tf.distribute.MirroredStrategy()
        _split_cpu(num_cpu_devices)
        return tf.distribute.MirroredStrategy(
            devices=[f"/cpu:{i}" for i in range(num_cpu_devices)])
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("strategy multi_worker needs TF_CONFIG in the environment "
                             "(see the README's multi-worker section)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu or None)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"Unknown strategy {name!r}")


def _split_cpu(count: int):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration() for _ in range(count)])


def is_chief(strategy) -> bool:
    """The chief writes checkpoints, logs and exports; MultiWorkerMirroredStrategy's
    chief is task "chief", or worker 0 when the cluster has no chief task."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    cluster = json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    if "chief" in cluster:
        return task_type == "chief"
    return task_type == "worker" and task_id == 0


class WorkerOutput:
    """The chief writes into output_dir; other workers into a temporary folder that
    close() removes (they must still write: checkpoint saving is collective)."""

    def __init__(self, output_dir: str, chief: bool):
        self.chief = chief
        if chief:
            os.makedirs(output_dir, exist_ok=True)
            self.path = output_dir
        else:
            self.path = tempfile.mkdtemp(prefix="albert-worker-")

    def close(self):
        if not self.chief:
            shutil.rmtree(self.path, ignore_errors=True)

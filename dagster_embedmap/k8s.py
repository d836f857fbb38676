"""The tags that make dagster-k8s give the embeddings step a GPU."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

__all__ = ["k8s_gpu_tags"]


def k8s_gpu_tags(
    gpus: int = 1,
    resource_name: str = "nvidia.com/gpu",
    node_selector: Mapping[str, str] | None = None,
    tolerations: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """Op tags for the embeddings step under dagster-k8s (``k8s_job_executor``, or the
    ``K8sRunLauncher`` with one pod per run): the step's container requests and is limited to
    ``gpus`` of ``resource_name`` (the device plugin's resource: ``nvidia.com/gpu``, ``amd.com/gpu``),
    optionally pinned to GPU nodes by ``node_selector`` and allowed onto tainted nodes by
    ``tolerations`` (Kubernetes' own field names, e.g. ``{"key": "nvidia.com/gpu", "operator":
    "Exists", "effect": "NoSchedule"}``).
    """
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    config: dict[str, Any] = {
        "container_config": {"resources": {"limits": {resource_name: gpus}, "requests": {resource_name: gpus}}}
    }
    pod_spec: dict[str, Any] = {}
    if node_selector:
        pod_spec["node_selector"] = dict(node_selector)
    if tolerations:
        pod_spec["tolerations"] = [dict(t) for t in tolerations]
    if pod_spec:
        config["pod_spec_config"] = pod_spec
    return {"dagster-k8s/config": config}

"""``EmbedMapComponent``: a whole data map declared in a ``defs.yaml``, no Python needed.

    type: dagster_embedmap.EmbedMapComponent
    attributes:
      name: tickets
      source:
        path: landing/*.jsonl          # one partition per landed file, found by a sensor
      text_column: body
      metadata_columns: [product, priority]
      qdrant:
        url: "{{ env.QDRANT_URL }}"
        api_key_env_var: QDRANT_API_KEY

Every attribute maps onto :func:`dagster_embedmap.build_embedmap_defs` and the two resources; the
settings groups (``embedding``, ``qdrant``, ``projection``, ``topics``, ``labels``) take the fields of
:class:`EmbedderResource`, :class:`QdrantResource`, :class:`ProjectionSettings`,
:class:`ClusterSettings` and :class:`LabelSettings`, with the same names, defaults and descriptions.
Relative paths are relative to the project root (the folder holding ``pyproject.toml``).
"""

import os
import re
import warnings
from pathlib import Path
from typing import Any, Literal, Optional

import dagster as dg
from dagster.components import Scaffolder, ScaffoldRequest, scaffold_with
from pydantic import BaseModel, Field, create_model, model_validator

from ..assets.factory import build_embedmap_defs
from ..core.classify import ClassifierSettings, ClassifierSpec
from ..core.topics.cluster import ClusterSettings
from ..core.topics.labels import LabelSettings
from ..core.layout.project import ProjectionSettings
from ..core.paths import default_home
from ..core.settings import AutomationSettings
from ..core.records.images import ImageSettings
from ..core.records.sources import FileSource
from ..k8s import k8s_gpu_tags
from ..resources import EmbedderResource, QdrantResource
from ..resources.fields import field_of, settings_model

__all__ = ["EmbedMapComponent"]


# -- settings groups, generated from the classes they configure (one source of names and defaults) --


def _settings_model(cls: type, name: str) -> type[BaseModel]:
    """A ``dg.Model`` with the fields, types, defaults and descriptions of core settings class ``cls``."""
    return settings_model(cls, name, (dg.Resolvable, dg.Model))


def _resource_model(cls: type[dg.ConfigurableResource], name: str, skip: tuple[str, ...] = (),
                    **extra: Any) -> type[BaseModel]:
    """A ``dg.Model`` with the config fields of resource ``cls`` (but ``skip``) plus ``extra``."""
    fields: dict[str, Any] = {
        key: (info.annotation, Field(default=info.default, description=info.description))
        for key, info in cls.model_fields.items() if key not in skip
    }
    fields.update(extra)
    with warnings.catch_warnings():
        # EmbedderResource's field "model" shadows Resolvable.model(), which resolution does not call on it
        warnings.filterwarnings("ignore", message='Field name "model"', category=UserWarning)
        return create_model(name, __base__=(dg.Resolvable, dg.Model), __doc__=f"Fields of :class:`{cls.__name__}`.",
                            **fields)


ProjectionFields = _settings_model(ProjectionSettings, "ProjectionFields")
TopicFields = _settings_model(ClusterSettings, "TopicFields")
LabelFields = _settings_model(LabelSettings, "LabelFields")
EmbeddingFields = _resource_model(EmbedderResource, "EmbeddingFields")
QdrantFields = _resource_model(
    QdrantResource, "QdrantFields", skip=("api_key",),
    path=(Optional[str], Field(default=None, description="Folder of the embedded engine; default <home>/qdrant. "
                                                          "Ignored when url is set.")),
    api_key_env_var=(Optional[str], Field(
        default=None, description="Name of the environment variable holding the server's API key, read at run "
        "time (dg.EnvVar), so the key never sits in the loaded definitions or the UI.")),
    api_key=(Optional[str], Field(
        default=None, description="The API key itself, e.g. '{{ env.QDRANT_API_KEY }}' (resolved when the "
        "definitions load; prefer api_key_env_var, which keeps it out of the loaded config).")),
)


# -- the other groups ------------------------------------------------------------------------------


class SourceFields(dg.Resolvable, dg.Model):
    """Where the records come from: files (``path``) or an asset of the project (``asset_key``)."""

    path: Optional[str] = Field(default=None, description="A parquet / CSV / JSON lines file, or a glob of them "
                                "(relative to the project root).")
    asset_key: Optional[str] = Field(default=None, description="An asset returning a polars DataFrame, e.g. "
                                     "'raw/tickets'; give partitions matching its own.")
    format: Optional[Literal["parquet", "csv", "jsonl", "json"]] = Field(
        default=None, description="File format; default: from each file's extension.")
    partition_column: Optional[str] = Field(
        default=None, description="Files: a column whose values are the partition keys (all files are read).")

    @model_validator(mode="after")
    def _one_kind(self) -> "SourceFields":
        if (self.path is None) == (self.asset_key is None):
            raise ValueError("source: give exactly one of 'path' (files) or 'asset_key' (an asset)")
        return self


class PartitionFields(dg.Resolvable, dg.Model):
    """How the per-partition steps (documents, embeddings, collection, projection) are split."""

    type: Optional[Literal["files", "static", "single", "daily", "hourly", "weekly", "monthly"]] = Field(
        default=None, description="'files': one dynamic partition per file of the source's glob, added and "
        "removed by the landing-folder sensor; 'static': the keys given (or the files / partition-column "
        "values present when the definitions load); 'single': one partition 'all'; 'daily' ... 'monthly': time "
        "windows from 'start' (a file named by its window, e.g. 2024-05-01.jsonl, or partition_column values). "
        "Default: 'files' for a glob, 'static' with a partition_column, else 'single'.")
    start: Optional[str] = Field(default=None, description="Time windows: the first window, e.g. '2024-01-01'.")
    end_offset: int = Field(default=0, description="Time windows: windows past the current one to include.")
    timezone: Optional[str] = Field(default=None, description="Time windows: the timezone of the windows.")
    keys: Optional[list[str]] = Field(default=None, description="'static': the partition keys.")

    @model_validator(mode="after")
    def _start_for_time_windows(self) -> "PartitionFields":
        if self.type in ("daily", "hourly", "weekly", "monthly") and not self.start:
            raise ValueError(f"partitions: type {self.type!r} needs a 'start' date")
        return self


ScheduleFields = settings_model(
    AutomationSettings, "ScheduleFields", (dg.Resolvable, dg.Model),
    only=("refit_cron", "refit_drift_share", "sensor_interval_s", "max_runs_per_tick", "running"),
    doc="When the map refreshes by itself (created stopped unless ``running``).")


class GpuFields(dg.Resolvable, dg.Model):
    """How the embeddings step shares and requests GPUs."""

    pool: str = field_of(AutomationSettings, "pool")
    kubernetes_gpus: Optional[int] = Field(default=None, description="On Kubernetes (dagster-k8s): GPUs the "
                                           "embeddings step's pod requests; null: no request.")
    kubernetes_resource: str = Field(default="nvidia.com/gpu", description="The device plugin's resource name.")
    kubernetes_node_selector: dict[str, str] = Field(default_factory=dict, description="Node labels the pod "
                                                     "needs, e.g. {cloud.google.com/gke-accelerator: nvidia-l4}.")
    kubernetes_tolerations: list[dict[str, Any]] = Field(default_factory=list, description="Tolerations of GPU "
                                                         "node taints (Kubernetes field names).")
    tags: dict[str, Any] = Field(default_factory=dict, description="More op tags for the embeddings step, "
                                 "merged over the Kubernetes ones.")

    def op_tags(self) -> dict[str, Any]:
        tags: dict[str, Any] = {}
        if self.kubernetes_gpus:
            tags.update(k8s_gpu_tags(self.kubernetes_gpus, self.kubernetes_resource,
                                     self.kubernetes_node_selector or None, self.kubernetes_tolerations or None))
        tags.update(self.tags)
        return tags


class ClassifierFields(dg.Resolvable, dg.Model):
    """A custom classifier of the map (:class:`dagster_embedmap.ClassifierSpec`): labelled examples (a labels
    file or a label column) and/or class descriptions in words."""

    name: str = Field(description="Lower-case letters, digits and '_': the assets classifier_<name> and "
                      "classes_<name>, the payload fields class_<name> and class_<name>_score.")
    examples: Optional[str] = Field(default=None, description="A parquet / CSV / JSON lines file with columns id "
                                    "and label (relative to the project root).")
    label_column: Optional[str] = Field(default=None, description="A metadata column of the records holding "
                                        "labels (instead of examples).")
    examples_asset: Optional[str] = Field(default=None, description="The key (a/b) of an asset whose value is a "
                                          "table of id and label (instead of examples).")
    descriptions: dict[str, str] = Field(default_factory=dict, description="{class: a description in words}: "
                                         "zero-shot classes alone, priors with examples.")
    threshold: float = Field(default=0.5, description="A record whose best class scores under this gets no class.")
    multi_label: bool = Field(default=False, description="One-vs-rest: a record takes every class scoring at least "
                              "threshold; the labels file gives a record one row per class it belongs to.")
    min_macro_f1: Optional[float] = Field(default=None, description="A check fails when the cross-validated "
                                          "macro-F1 is under this.")

    def spec(self, root: Path) -> ClassifierSpec:
        return ClassifierSpec(self.name, examples=str(_under(root, self.examples)) if self.examples else None,
                              label_column=self.label_column, examples_asset=self.examples_asset,
                              descriptions=dict(self.descriptions),
                              settings=ClassifierSettings(threshold=self.threshold, multi_label=self.multi_label),
                              min_macro_f1=self.min_macro_f1)


# -- the component -------------------------------------------------------------------------------


class EmbedMapScaffolder(Scaffolder):
    """``dg scaffold defs dagster_embedmap.EmbedMapComponent <folder>``: a defs.yaml to fill in."""

    def scaffold(self, request: ScaffoldRequest) -> None:
        name = re.sub(r"\W+", "_", request.target_path.name).strip("_") or "my_map"
        request.target_path.mkdir(parents=True, exist_ok=True)
        (request.target_path / "defs.yaml").write_text(SCAFFOLD_YAML.format(type=request.type_name, name=name,
                                                                    cron=AutomationSettings.refit_cron),
                                                       encoding="utf-8")


SCAFFOLD_YAML = """\
type: {type}

attributes:
  name: {name}                      # asset prefix, group and Qdrant collection
  source:
    path: data/{name}/*.jsonl       # one partition per landed file (parquet, CSV, JSON lines)
    # asset_key: raw/records        # ...or an asset of this project returning a polars DataFrame
  id_column: id
  text_column: text
  # metadata_columns: [category]    # default: every other column
  # partitions: {{type: daily, start: "2024-01-01"}}
  # embedding: {{model: all-MiniLM-L6-v2, device: auto, batch_size: 64}}
  # qdrant: {{url: "{{{{ env.QDRANT_URL }}}}", api_key_env_var: QDRANT_API_KEY}}   # default: embedded
  # projection: {{n_neighbors: 15}}
  # topics: {{levels: 2}}
  # schedule: {{refit_cron: "{cron}", running: false}}
  # gpu: {{pool: gpu, kubernetes_gpus: 1}}
  # classifiers: [{{name: kind, examples: data/labels.csv, descriptions: {{billing: "invoices and refunds"}}}}]
"""


@scaffold_with(EmbedMapScaffolder)
class EmbedMapComponent(dg.Component, dg.Resolvable, dg.Model):
    """A data map: records -> embeddings -> Qdrant -> 2-D layout -> topics -> HTML map, with its
    resources, jobs, refit schedule and sensors. See :func:`dagster_embedmap.build_embedmap_defs`."""

    name: str = Field(description="The map's name: asset key prefix, asset group and Qdrant collection.")
    source: SourceFields = Field(description="Where the records come from.")
    id_column: str = Field(default="id", description="Column with a unique record id.")
    text_column: str = Field(default="text", description="Column with the text to embed.")
    vector_column: Optional[str] = Field(default=None, description="Column of vectors you already have; the "
                                         "model is then never loaded.")
    metadata_columns: Optional[list[str]] = Field(default=None, description="Columns copied to the payload and "
                                                  "the map's hover; null: every other column.")
    empty_text: Literal["skip", "fail"] = Field(default="skip", description="Records with a blank text: left out "
                                                "(counted) or the partition fails.")
    image_column: Optional[str] = Field(default=None, description="Column of image paths (relative to the source's "
                                        "folder, or absolute) or bytes, embedded by the embedder's CLIP-family model.")
    bad_image: Literal["skip", "fail"] = Field(default="skip", description="Records whose image is missing or "
                                               "unreadable: left out (named) or the partition fails.")
    partitions: PartitionFields = Field(default_factory=PartitionFields, description="How the work is split.")
    partitions_per_run: int = Field(default=1, description="A backfill runs this many partitions per run: one "
                                    "process and one model load serve them all.")
    home: Optional[str] = Field(default=None, description="Folder of the map's files; default $EMBEDMAP_HOME, "
                                "else <project root>/.embedmap.")
    collection_name: Optional[str] = Field(default=None, description="Qdrant collection; default: the name.")
    key_prefix: Optional[list[str]] = Field(default=None, description="Asset key prefix; default: [name].")
    group_name: Optional[str] = Field(default=None, description="Asset group; default: the name.")
    embedding: EmbeddingFields = Field(default_factory=EmbeddingFields, description="The embedding model, device, "
                                       "precision and batch size.")
    qdrant: QdrantFields = Field(default_factory=QdrantFields, description="Where the vectors live.")
    projection: ProjectionFields = Field(default_factory=ProjectionFields, description="The 2-D layout (UMAP).")
    topics: TopicFields = Field(default_factory=TopicFields, description="Topic clustering (HDBSCAN) and the tree.")
    labels: LabelFields = Field(default_factory=LabelFields, description="Topic labels (c-TF-IDF keywords).")
    schedule: ScheduleFields = Field(default_factory=ScheduleFields, description="Refits and sensors.")
    gpu: GpuFields = Field(default_factory=GpuFields, description="GPU sharing and requests.")
    duplicate_threshold: float = Field(default=0.95, description="Cosine similarity from which two records count "
                                       "as near-duplicates.")
    classifiers: list[ClassifierFields] = Field(default_factory=list, description="Custom semantic classifiers: "
                                                "each trains on a few labelled records or class descriptions and "
                                                "tags every record.")

    @property
    def resource_prefix(self) -> str:
        """Resource keys are per map (``<name>_embedder``, ``<name>_qdrant``): maps never share settings by accident."""
        return re.sub(r"\W+", "_", self.name).strip("_") or "map"

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        root = Path(context.project_root)
        home = _under(root, self.home or default_home())
        source: Any
        if self.source.path is not None:
            source = FileSource(str(_under(root, self.source.path)), format=self.source.format,
                                partition_column=self.source.partition_column)
        else:
            source = dg.AssetKey.from_user_string(self.source.asset_key)
        embedder_key, qdrant_key = f"{self.resource_prefix}_embedder", f"{self.resource_prefix}_qdrant"
        map_defs = build_embedmap_defs(
            self.name, source,
            id_column=self.id_column, text_column=self.text_column, vector_column=self.vector_column,
            metadata_columns=self.metadata_columns, empty_text=self.empty_text,
            image_column=self.image_column, images=ImageSettings(bad=self.bad_image),
            partitions_def=self._partitions_def(source), home=home, collection_name=self.collection_name,
            partitions_per_run=self.partitions_per_run,
            key_prefix=self.key_prefix, group_name=self.group_name,
            projection=ProjectionSettings(**self.projection.model_dump()),
            clustering=ClusterSettings(**self.topics.model_dump()),
            labels=LabelSettings(**self.labels.model_dump()),
            embedder_key=embedder_key, qdrant_key=qdrant_key, pool=self.gpu.pool,
            refit_cron=self.schedule.refit_cron, refit_drift_share=self.schedule.refit_drift_share,
            max_runs_per_tick=self.schedule.max_runs_per_tick, sensor_interval_s=self.schedule.sensor_interval_s,
            automations_running=self.schedule.running, embeddings_tags=self.gpu.op_tags(),
            duplicate_threshold=self.duplicate_threshold,
            classifiers=[c.spec(root) for c in self.classifiers],
        )
        return dg.Definitions.merge(map_defs, dg.Definitions(resources={
            embedder_key: EmbedderResource(**self.embedding.model_dump()),
            qdrant_key: self._qdrant(home),
        }))

    def _qdrant(self, home: Path) -> QdrantResource:
        fields = self.qdrant.model_dump(exclude={"api_key_env_var", "api_key", "path"})
        if self.qdrant.api_key_env_var:
            fields["api_key"] = dg.EnvVar(self.qdrant.api_key_env_var)
        elif self.qdrant.api_key:
            fields["api_key"] = self.qdrant.api_key
        fields["path"] = str(_under(home, self.qdrant.path) if self.qdrant.path else home / "qdrant")
        return QdrantResource(**fields)

    def _partitions_def(self, source: Any) -> dg.PartitionsDefinition | None:
        spec = self.partitions
        kind = spec.type
        if kind is None:
            if isinstance(source, FileSource) and source.per_file:
                kind = "files"
            elif isinstance(source, FileSource) and source.partition_column:
                kind = "static"
            else:
                kind = "single"
        if kind == "files":
            if not (isinstance(source, FileSource) and source.per_file):
                raise ValueError(f"map {self.name!r}: partitions type 'files' needs a source path with a glob "
                                 "(one partition per file), e.g. landing/*.jsonl")
            return dg.DynamicPartitionsDefinition(name=f"{self.resource_prefix}_files")
        if kind == "single":
            return dg.StaticPartitionsDefinition(["all"])
        if kind == "static":
            return dg.StaticPartitionsDefinition(spec.keys) if spec.keys else None  # None: what the files hold
        windows = {"daily": dg.DailyPartitionsDefinition, "hourly": dg.HourlyPartitionsDefinition,
                   "weekly": dg.WeeklyPartitionsDefinition, "monthly": dg.MonthlyPartitionsDefinition}
        kwargs: dict[str, Any] = {"start_date": spec.start, "end_offset": spec.end_offset}
        if spec.timezone:
            kwargs["timezone"] = spec.timezone
        return windows[kind](**kwargs)


def _under(root: Path, path: str) -> Path:
    """``path`` with ``~`` expanded, relative to ``root`` unless absolute."""
    expanded = Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() else root / expanded

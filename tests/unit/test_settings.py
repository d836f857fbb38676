"""One typed config: each setting's default, description and bounds are declared once, in the core's
settings dataclasses, and the resources, the YAML component's schema and the CLI take them from there."""

from __future__ import annotations

import dataclasses

import pytest

from dagster_embedmap.cli import _parser
from dagster_embedmap.components.embedmap import EmbeddingFields, LabelFields, ProjectionFields, TopicFields
from dagster_embedmap.core.embedding import EncoderSettings
from dagster_embedmap.core.layout.project import ProjectionSettings
from dagster_embedmap.core.settings import AutomationSettings, described, setting
from dagster_embedmap.core.store import StoreLocation
from dagster_embedmap.core.topics.cluster import ClusterSettings
from dagster_embedmap.core.topics.labels import LabelSettings
from dagster_embedmap.resources import EmbedderResource, QdrantResource

SETTINGS = [EncoderSettings, StoreLocation, ProjectionSettings, ClusterSettings, LabelSettings, AutomationSettings]


@pytest.mark.parametrize("cls", SETTINGS, ids=lambda c: c.__name__)
def test_every_setting_has_a_description(cls):
    fields = described(cls)  # raises, naming the fields, where one has none
    assert all(len(f.metadata["description"]) > 20 for f in fields.values())


@pytest.mark.parametrize(("resource", "cls"), [(EmbedderResource, EncoderSettings), (QdrantResource, StoreLocation)])
def test_a_resource_has_exactly_the_fields_defaults_and_descriptions_of_its_settings(resource, cls):
    fields = described(cls)
    assert sorted(resource.model_fields) == sorted(fields)
    for name, info in resource.model_fields.items():
        assert info.default == fields[name].default, name
        assert info.description == fields[name].metadata["description"], name


def test_a_resource_enforces_the_bounds_declared_in_the_core():
    with pytest.raises(Exception, match="batch_size"):
        EmbedderResource(batch_size=0)
    with pytest.raises(Exception, match="timeout_s"):
        QdrantResource(timeout_s=0)


def test_a_resource_hands_the_core_its_settings_unchanged():
    resource = EmbedderResource(model="some/model", batch_size=8, backend="onnx-int8", num_threads=2)
    assert resource.settings() == EncoderSettings(model="some/model", batch_size=8, backend="onnx-int8", num_threads=2)
    location = QdrantResource(url="http://localhost:6333", api_key="s3cret-key", retries=1).location()
    assert location == StoreLocation(url="http://localhost:6333", api_key="s3cret-key", retries=1)
    assert "s3cret" not in repr(location) and "api_key" not in repr(location)


@pytest.mark.parametrize(("model", "cls"), [(ProjectionFields, ProjectionSettings), (TopicFields, ClusterSettings),
                                            (LabelFields, LabelSettings), (EmbeddingFields, EncoderSettings)])
def test_the_component_schema_documents_every_field_from_the_core(model, cls):
    schema = model.model_json_schema()["properties"]
    fields = described(cls)
    assert set(schema) == set(fields)
    for name, f in fields.items():
        assert schema[name]["description"] == f.metadata["description"], name
        assert model.model_fields[name].default == f.default, name


def test_cli_options_take_their_defaults_and_help_from_the_settings():
    parser = _parser()
    build = parser._subparsers._group_actions[0].choices["build"]
    options = {a.dest: a for a in build._actions}
    for name in ("model", "device", "batch_size", "backend"):
        field = described(EncoderSettings)[name]
        assert options[name].default == field.default
        assert options[name].help.startswith(field.metadata["description"][:40])
    assert options["backend"].choices == ("torch", "onnx", "onnx-int8")
    args = parser.parse_args(["build", "x.jsonl", "--text-column", "t", "--home", "h", "--batch-size", "8"])
    assert args.batch_size == 8 and args.model == EncoderSettings().model


def test_a_setting_without_a_description_is_refused_by_name():
    @dataclasses.dataclass(frozen=True)
    class Partial:
        documented: int = setting(1, "A field with its description, as every setting has one.")
        bare: int = 2

    with pytest.raises(TypeError, match=r"Partial: field\(s\) \['bare'\] have no description"):
        described(Partial)


def test_automation_and_gpu_defaults_are_declared_once():
    import inspect

    from dagster_embedmap import build_embedmap_defs
    from dagster_embedmap.components.embedmap import GpuFields, ScheduleFields
    from dagster_embedmap.sensors import build_landing_sensor

    auto, fields = AutomationSettings(), described(AutomationSettings)
    params = inspect.signature(build_embedmap_defs).parameters
    for name in ("refit_cron", "refit_drift_share", "max_runs_per_tick", "sensor_interval_s", "pool"):
        assert params[name].default == getattr(auto, name), name
    assert params["automations_running"].default is auto.running
    assert inspect.signature(build_landing_sensor).parameters["max_runs_per_tick"].default == auto.max_runs_per_tick
    for name, info in ScheduleFields.model_fields.items():
        assert (info.default, info.description) == (fields[name].default, fields[name].metadata["description"])
    assert GpuFields.model_fields["pool"].description == fields["pool"].metadata["description"]
    with pytest.raises(Exception, match="max_runs_per_tick"):
        ScheduleFields(max_runs_per_tick=0)

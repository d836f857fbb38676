"""The landing sensor, evaluated by Dagster on real files, with its partition requests applied between
ticks the way the sensor daemon applies them."""

import hashlib
import json
import logging
import os
from pathlib import Path

import dagster as dg
import pytest

from dagster_embedmap.core.records.sources import FileSource
from dagster_embedmap.sensors import build_landing_sensor

PARTS = dg.DynamicPartitionsDefinition(name="landing_files")


@dg.asset(partitions_def=PARTS)
def landed(context: dg.AssetExecutionContext) -> str:
    return context.partition_key


@dg.asset
def tidy() -> None:
    return None


PER_FILE = dg.define_asset_job("landed_job", selection=[landed])
CLEANUP = dg.define_asset_job("tidy_job", selection=[tidy])


def _defs(sensor: dg.SensorDefinition) -> dg.Definitions:
    return dg.Definitions(assets=[landed, tidy], jobs=[PER_FILE, CLEANUP], sensors=[sensor])


class _Collect(logging.Handler):
    def __init__(self, into: list):
        super().__init__(logging.DEBUG)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append((record.levelno, record.getMessage()))


class Ticker:
    """Evaluates one sensor tick after another, carrying the cursor and applying partition requests."""

    def __init__(self, instance: dg.DagsterInstance, sensor: dg.SensorDefinition):
        self.instance, self.sensor, self.defs, self.cursor = instance, sensor, _defs(sensor), None
        self.logs: list[tuple[int, str]] = []  # (level, message) of every tick's log

    def tick(self):
        context = dg.build_sensor_context(
            instance=self.instance,
            # as in a code server: the instance also comes by reference, which lets Dagster check
            # partition keys against this tick's own partition requests
            instance_ref=self.instance.get_ref(),
            cursor=self.cursor,
            definitions=self.defs,
        )
        context.log.addHandler(_Collect(self.logs))
        data = self.sensor.evaluate_tick(context)
        for request in data.dynamic_partitions_requests or []:
            if isinstance(request, dg.AddDynamicPartitionsRequest):
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            else:
                for key in request.partition_keys:
                    self.instance.delete_dynamic_partition(request.partitions_def_name, key)
        if data.cursor is not None:
            self.cursor = data.cursor
        return data

    def warnings(self) -> str:
        return "\n".join(m for level, m in self.logs if level == logging.WARNING)

    @property
    def partitions(self) -> list[str]:
        return sorted(self.instance.get_dynamic_partitions(PARTS.name))


def _write(path: Path, text: str, mtime: float | None = None) -> str:
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))
    return hashlib.sha256(text.encode()).hexdigest()


def _adds(data) -> list[str]:
    return [k for r in data.dynamic_partitions_requests or [] if isinstance(r, dg.AddDynamicPartitionsRequest)
            for k in r.partition_keys]


def _deletes(data) -> list[str]:
    return [k for r in data.dynamic_partitions_requests or [] if isinstance(r, dg.DeleteDynamicPartitionsRequest)
            for k in r.partition_keys]


@pytest.fixture
def instance():
    with dg.instance_for_test() as inst:
        yield inst


def _sensor(tmp_path: Path, **kwargs) -> dg.SensorDefinition:
    return build_landing_sensor("landing", FileSource(str(tmp_path / "*.jsonl")), PARTS, PER_FILE, **kwargs)


def test_new_file_adds_its_partition_and_requests_a_run(tmp_path, instance):
    sha = _write(tmp_path / "batch1.jsonl", '{"id": 1, "text": "hello"}\n')
    sensor = _sensor(tmp_path)
    assert sensor.job_name == "landed_job"
    assert str(tmp_path / "*.jsonl") in sensor.description
    ticker = Ticker(instance, sensor)

    data = ticker.tick()

    assert _adds(data) == ["batch1"] and _deletes(data) == []
    [run] = data.run_requests
    assert run.partition_key == "batch1"
    assert run.run_key == f"batch1:{sha[:16]}"
    assert run.tags["dagster/partition"] == "batch1"  # resolved by Dagster against the new partition
    assert run.tags["dagster-embedmap/landed_file"] == str(tmp_path / "batch1.jsonl")
    assert json.loads(data.cursor)["files"] == {"batch1": sha}
    assert ticker.partitions == ["batch1"]
    # the request runs: the job materializes that partition
    result = ticker.defs.resolve_job_def("landed_job").execute_in_process(
        instance=instance, partition_key=run.partition_key, tags=run.tags
    )
    assert result.success and result.output_for_node("landed") == "batch1"


def test_same_file_next_tick_requests_nothing(tmp_path, instance):
    _write(tmp_path / "batch1.jsonl", "one\n")
    ticker = Ticker(instance, _sensor(tmp_path))
    assert len(ticker.tick().run_requests) == 1
    cursor = ticker.cursor
    os.utime(tmp_path / "batch1.jsonl", (1e9, 1e9))  # touched, same bytes

    data = ticker.tick()

    assert data.run_requests == [] and not data.dynamic_partitions_requests
    assert data.skip_message == f"no new or changed files in {tmp_path / '*.jsonl'}"
    assert ticker.cursor == cursor and ticker.partitions == ["batch1"]


def test_changed_content_requests_one_new_run(tmp_path, instance):
    first = _write(tmp_path / "batch1.jsonl", "one\n")
    _write(tmp_path / "batch2.jsonl", "two\n")
    ticker = Ticker(instance, _sensor(tmp_path))
    assert len(ticker.tick().run_requests) == 2

    second = _write(tmp_path / "batch1.jsonl", "one, edited\n")
    data = ticker.tick()

    [run] = data.run_requests
    assert run.partition_key == "batch1"
    assert run.run_key == f"batch1:{second[:16]}" != f"batch1:{first[:16]}"
    assert _deletes(data) == []
    assert json.loads(ticker.cursor)["files"]["batch1"] == second
    assert ticker.tick().run_requests == []  # and only once
    assert ticker.partitions == ["batch1", "batch2"]


def test_removed_file_deletes_its_partition_and_runs_cleanup(tmp_path, instance):
    sha = _write(tmp_path / "batch1.jsonl", "one\n")
    _write(tmp_path / "batch2.jsonl", "two\n")
    ticker = Ticker(instance, _sensor(tmp_path, cleanup_job=CLEANUP))
    ticker.tick()
    assert ticker.partitions == ["batch1", "batch2"]

    (tmp_path / "batch1.jsonl").unlink()
    data = ticker.tick()

    assert _deletes(data) == ["batch1"] and _adds(data) == []
    [cleanup] = data.run_requests
    assert cleanup.job_name == "tidy_job" and cleanup.partition_key is None
    assert cleanup.run_key.startswith("removed:batch1:") and len(cleanup.run_key.split(":")[-1]) == 16
    assert json.loads(ticker.cursor)["files"] == {"batch2": _write(tmp_path / "batch2.jsonl", "two\n")}
    assert ticker.partitions == ["batch2"]
    assert ticker.tick().run_requests == []  # removed once

    # landing the very same bytes again runs again, under run keys not used before
    _write(tmp_path / "batch1.jsonl", "one\n")
    again = ticker.tick()
    [run] = again.run_requests
    assert run.partition_key == "batch1" and run.run_key == f"batch1:{sha[:16]}:2"
    (tmp_path / "batch1.jsonl").unlink()
    [cleanup2] = ticker.tick().run_requests
    assert cleanup2.run_key.startswith("removed:batch1:") and cleanup2.run_key != cleanup.run_key


def test_removed_file_without_cleanup_job_only_deletes_the_partition(tmp_path, instance):
    _write(tmp_path / "batch1.jsonl", "one\n")
    ticker = Ticker(instance, _sensor(tmp_path))
    ticker.tick()
    (tmp_path / "batch1.jsonl").unlink()

    data = ticker.tick()

    assert data.run_requests == [] and _deletes(data) == ["batch1"]
    assert "batch1" in data.skip_message
    assert ticker.partitions == [] and json.loads(ticker.cursor)["files"] == {}


def test_reverted_content_runs_again(tmp_path, instance):
    a = _write(tmp_path / "batch1.jsonl", "A\n")
    ticker = Ticker(instance, _sensor(tmp_path))
    keys = [r.run_key for r in ticker.tick().run_requests]
    b = _write(tmp_path / "batch1.jsonl", "B\n")
    keys += [r.run_key for r in ticker.tick().run_requests]
    _write(tmp_path / "batch1.jsonl", "A\n")
    keys += [r.run_key for r in ticker.tick().run_requests]
    assert keys == [f"batch1:{a[:16]}", f"batch1:{b[:16]}", f"batch1:{a[:16]}:2"]


def test_cap_per_tick_takes_the_oldest_files_first(tmp_path, instance):
    # names and ages disagree: the order must follow mtime
    for i, stem in enumerate(["e", "d", "c", "b", "a"]):
        _write(tmp_path / f"{stem}.jsonl", stem, mtime=1_700_000_000 + i)
    ticker = Ticker(instance, _sensor(tmp_path, max_runs_per_tick=2))

    ticks = [ticker.tick() for _ in range(4)]

    assert [[r.partition_key for r in t.run_requests] for t in ticks] == [["e", "d"], ["c", "b"], ["a"], []]
    keys = [r.run_key for t in ticks for r in t.run_requests]
    assert len(set(keys)) == 5
    assert [_adds(t) for t in ticks[:3]] == [["e", "d"], ["c", "b"], ["a"]]
    assert sorted(json.loads(ticks[0].cursor)["files"]) == ["d", "e"]  # the others wait outside the cursor
    assert ticker.partitions == ["a", "b", "c", "d", "e"]


def test_bad_and_duplicate_stems_are_skipped_and_the_others_processed(tmp_path, instance):
    _write(tmp_path / "a|b.jsonl", "pipe\n")
    _write(tmp_path / "x...y.jsonl", "range\n")
    _write(tmp_path / "dup.jsonl", "one\n")
    _write(tmp_path / "dup.csv", "id,text\n1,one\n")
    _write(tmp_path / "good.csv", "id,text\n2,two\n")
    sensor = build_landing_sensor("landing", FileSource(str(tmp_path / "*.*")), PARTS, PER_FILE)
    ticker = Ticker(instance, sensor)

    data = ticker.tick()

    assert [r.partition_key for r in data.run_requests] == ["good"] and _adds(data) == ["good"]
    assert ticker.partitions == ["good"]
    warnings = ticker.warnings()
    for name in ["a|b.jsonl", "x...y.jsonl", "dup.jsonl", "dup.csv"]:
        assert str(tmp_path / name) in warnings
    assert "good" not in warnings
    # still skipped, and no crash, on the next tick
    later = ticker.tick()
    assert later.run_requests == [] and "skipped" in later.skip_message


def test_duplicate_of_a_known_stem_keeps_its_partition(tmp_path, instance):
    _write(tmp_path / "dup.jsonl", "one\n")
    ticker = Ticker(instance, build_landing_sensor("landing", FileSource(str(tmp_path / "*.*")), PARTS, PER_FILE))
    ticker.tick()
    _write(tmp_path / "dup.csv", "id,text\n1,one\n")

    data = ticker.tick()

    assert data.run_requests == [] and not data.dynamic_partitions_requests
    assert ticker.partitions == ["dup"]


def test_a_job_given_by_name(tmp_path, instance):
    _write(tmp_path / "batch1.jsonl", "one\n")
    sensor = build_landing_sensor("landing", FileSource(str(tmp_path / "*.jsonl")), PARTS, "landed_job")
    assert sensor.job_name == "landed_job"
    ticker = Ticker(instance, sensor)
    [run] = ticker.tick().run_requests
    assert run.tags["dagster/partition"] == "batch1"
    dg.Definitions.validate_loadable(ticker.defs)  # the named target resolves in the definitions
    with pytest.raises(TypeError, match="both jobs as definitions"):
        build_landing_sensor("landing", FileSource(str(tmp_path / "*.jsonl")), PARTS, "landed_job",
                             cleanup_job="tidy_job")


def test_unreadable_cursor_starts_over(tmp_path, instance):
    sha = _write(tmp_path / "batch1.jsonl", "one\n")
    ticker = Ticker(instance, _sensor(tmp_path))
    ticker.cursor = "not json"
    [run] = ticker.tick().run_requests
    assert run.run_key == f"batch1:{sha[:16]}"
    assert "unreadable sensor cursor" in ticker.warnings()
    assert json.loads(ticker.cursor)["files"] == {"batch1": sha}


def test_rejects_sources_and_partitions_it_cannot_watch(tmp_path):
    with pytest.raises(ValueError, match="glob"):
        build_landing_sensor("s", FileSource(str(tmp_path / "one.jsonl")), PARTS, PER_FILE)
    with pytest.raises(ValueError, match="glob"):
        build_landing_sensor("s", FileSource(str(tmp_path / "*.jsonl"), partition_column="p"), PARTS, PER_FILE)
    with pytest.raises(TypeError, match="DynamicPartitionsDefinition"):
        build_landing_sensor("s", FileSource(str(tmp_path / "*.jsonl")), dg.StaticPartitionsDefinition(["a"]), PER_FILE)
    with pytest.raises(ValueError, match="max_runs_per_tick"):
        build_landing_sensor("s", FileSource(str(tmp_path / "*.jsonl")), PARTS, PER_FILE, max_runs_per_tick=0)

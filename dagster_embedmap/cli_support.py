"""Parts of the ``embedmap`` command kept beside ``cli.py``: what it checks of a search's topic options
before loading the model, and the telemetry setting of its own Dagster instance."""

from __future__ import annotations

from pathlib import Path

__all__ = ["check_topic", "telemetry_off"]


def check_topic(home: Path, name: str, topic: int | str | None, level: int | None) -> None:
    """Refuse a --topic or --level the map's topic table lacks, and a --level without a --topic."""
    import polars as pl

    from .core.paths import MapLayout
    from .core.store.search import check_topic_filter

    topics = MapLayout(home, name).topics
    if topics.exists():
        check_topic_filter(pl.read_parquet(topics, columns=["level", "topic_id", "label"]), topic, level)
    if level is not None and topic is None:
        raise SystemExit(f"embedmap: --level {level} picks the topic tree level that --topic refers to; give --topic "
                         "too (search has no other use for it)")


def telemetry_off(config: Path) -> None:
    """The CLI's own instance sends no usage statistics and prints no telemetry banner: ``telemetry:
    enabled: false`` is added to its dagster.yaml unless that file has a telemetry setting already."""
    import yaml

    text = config.read_text(encoding="utf-8") if config.exists() else ""
    try:
        settings = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError:  # the user's own file, unreadable: Dagster says so; it is left as it is
        return
    if not isinstance(settings, dict) or "telemetry" in settings:
        return
    config.write_text(text + ("\n" if text and not text.endswith("\n") else "")
                      + "# written by embedmap: no usage statistics from the CLI's runs (set it to true to send them)\n"
                      "telemetry:\n  enabled: false\n", encoding="utf-8")

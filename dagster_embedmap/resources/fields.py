"""Config fields of the resources and the component, taken from the core's settings dataclasses.

A core settings field (declared with :func:`dagster_embedmap.core.settings.setting`) carries its default,
its description and its bounds; :func:`field_of` turns it into the pydantic ``Field`` a Dagster resource
or a component model declares, and :func:`settings_model` builds a whole component model from a
settings class. Nothing here restates a default or a description.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any

from pydantic import BaseModel, Field, create_model

from ..core.settings import described

__all__ = ["field_of", "settings_model", "settings_from"]


def field_of(cls: type, name: str) -> Any:
    """The pydantic ``Field`` of field ``name`` of settings dataclass ``cls``: its default, description
    and bounds."""
    f = described(cls)[name]
    return Field(default=f.default, description=f.metadata["description"], repr=f.repr,
                 **f.metadata.get("bounds", {}))


def settings_model(cls: type, name: str, bases: tuple[type, ...], only: tuple[str, ...] | None = None,
                   doc: str | None = None) -> type[BaseModel]:
    """A pydantic model named ``name`` (over ``bases``) with the fields of settings dataclass ``cls``
    (all, or ``only`` these): same names, types, defaults, descriptions and bounds."""
    hints = typing.get_type_hints(cls)
    fields = {key: (hints[key], field_of(cls, key)) for key in described(cls) if only is None or key in only}
    return create_model(name, __base__=bases, __doc__=doc or f"Fields of :class:`{cls.__name__}`.", **fields)


def settings_from(config: Any, cls: type) -> Any:
    """An instance of settings dataclass ``cls`` from the same-named attributes of ``config`` (a resource
    or a component model)."""
    return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(cls)})

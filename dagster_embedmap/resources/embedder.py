"""The embedding resource: a sentence-transformers model on the best device, loaded once per step process."""

from __future__ import annotations

from typing import Literal, Optional

import dagster as dg
from pydantic import PrivateAttr

from ..core.embedding import Encoder, EncoderSettings
from .fields import field_of, settings_from

__all__ = ["EmbedderResource"]


class EmbedderResource(dg.ConfigurableResource):
    """Embeds texts for a map. The model loads lazily on the first ``encoder`` use inside a step and is
    freed when the step ends. Steps that use it run in the ``gpu`` concurrency pool (see the README) so
    parallel partitions do not oversubscribe one device."""

    # each field's default, description and bounds: EncoderSettings (core/embedding/model.py)
    model: str = field_of(EncoderSettings, "model")
    device: str = field_of(EncoderSettings, "device")
    precision: Literal["auto", "fp32", "fp16", "bf16"] = field_of(EncoderSettings, "precision")
    batch_size: int = field_of(EncoderSettings, "batch_size")
    max_seq_length: Optional[int] = field_of(EncoderSettings, "max_seq_length")
    normalize: bool = field_of(EncoderSettings, "normalize")
    backend: Literal["torch", "onnx", "onnx-int8"] = field_of(EncoderSettings, "backend")
    cache_dir: Optional[str] = field_of(EncoderSettings, "cache_dir")
    num_threads: Optional[int] = field_of(EncoderSettings, "num_threads")

    _encoder: Optional[Encoder] = PrivateAttr(default=None)

    def settings(self) -> EncoderSettings:
        return settings_from(self, EncoderSettings)

    def get_encoder(self) -> Encoder:
        """The step's encoder (the model itself loads on first use)."""
        if self._encoder is None:
            self._encoder = Encoder(self.settings())
        return self._encoder

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

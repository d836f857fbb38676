"""A tiny CLIP model the tests build themselves (no CLIP weights can be downloaded here): a
``transformers.CLIPModel`` from a small ``CLIPConfig`` with a byte-level tokenizer, saved as a
sentence-transformers model folder, so the map loads it through the same path as ``clip-ViT-B-32``.

Its weights are random (seeded): it embeds texts and images into one 16-d space, with no meaning. The
tests check the path (loading, both towers, shapes, caching, the map), never the quality."""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw

DIMENSION = 16
COLOURS = {"red": (220, 30, 30), "green": (30, 180, 60), "blue": (30, 60, 220)}


def build_tiny_clip(folder: Path) -> Path:
    """The model's folder (built once per ``folder``)."""
    st_folder = folder / "tiny-clip"
    if (st_folder / "modules.json").exists():
        return st_folder
    import torch
    from sentence_transformers import SentenceTransformer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from tokenizers.pre_tokenizers import ByteLevel
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizerFast

    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for ch in sorted(ByteLevel.alphabet()):
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], end_of_word_suffix="</w>", unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.TemplateProcessing(
        single="<|startoftext|> $A <|endoftext|>", special_tokens=[("<|startoftext|>", 0), ("<|endoftext|>", 1)])
    tokenizer = CLIPTokenizerFast(tokenizer_object=tok, model_max_length=64, bos_token="<|startoftext|>",
                                  eos_token="<|endoftext|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    config = CLIPConfig(
        text_config=dict(vocab_size=len(vocab), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=64, bos_token_id=0, eos_token_id=1,
                         pad_token_id=1),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=DIMENSION)
    torch.manual_seed(0)
    hf = folder / "tiny-clip-hf"
    CLIPModel(config).save_pretrained(hf)
    CLIPProcessor(image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
                  tokenizer=tokenizer).save_pretrained(hf)
    SentenceTransformer(str(hf), device="cpu").save(str(st_folder))
    return st_folder


def draw_shape(path: Path, colour: str, shape: str, size: tuple[int, int] = (96, 72)) -> Path:
    """A picture of a ``colour`` ``shape`` ("circle" or "square") on white."""
    img = Image.new("RGB", size, (255, 255, 255))
    box = [size[0] // 4, size[1] // 4, 3 * size[0] // 4, 3 * size[1] // 4]
    draw = ImageDraw.Draw(img)
    (draw.ellipse if shape == "circle" else draw.rectangle)(box, fill=COLOURS[colour])
    img.save(path)
    return path

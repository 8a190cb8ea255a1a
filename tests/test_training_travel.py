"""The travel kit (studio/training/travel.py): a dataset packed without its embeddings comes back as the same
dataset once its texts are embedded again, and an encoder that embeds differently is refused."""

from __future__ import annotations

import json

import numpy as np
import pytest

from studio.training import travel
from studio.training.dataset import DATA_FILE, load_dataset, make_synthetic_dataset


class _LookupEncoder:
    """Embeds a text as the synthetic dataset stored it, optionally shifted in its first coordinate."""

    def __init__(self, data, shift: float = 0.0):
        self.table = {c: data.caption_emb[i].astype(np.float32) for i, c in enumerate(data.captions)}
        self.shift = shift
        self.calls = 0

    def encode(self, texts):
        self.calls += 1
        rows = np.stack([self.table[t] for t in texts])
        rows[:, 0] += self.shift
        return rows


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("source"), count=12)


def test_pack_then_unpack_gives_the_same_dataset(source, tmp_path):
    original = load_dataset(source)
    record = travel.pack(source, tmp_path / "kit", check_rows=8)
    assert record["captions"] == len(original.captions) == 36
    assert record["texts"] == len(set(original.captions)) == 26  # the shared keywords travel once
    with np.load(tmp_path / "kit" / travel.KIT_FILE) as kit:
        assert "caption_emb" not in kit.files and "images128" not in kit.files
        assert kit["check_emb"].shape == (8, original.caption_emb.shape[1])

    encoder = _LookupEncoder(original)
    result = travel.unpack(tmp_path / "kit", tmp_path / "data", encoder=encoder, log=lambda line: None)
    assert encoder.calls == 1 and result["check_max_gap"] == 0.0
    copy = load_dataset(tmp_path / "data")
    assert copy.captions == original.captions and copy.names == original.names
    for field in ("images32", "caption_owner", "caption_is_name", "heldout", "group", "subgroup", "base"):
        assert np.array_equal(getattr(copy, field), getattr(original, field)), field
    assert np.array_equal(copy.caption_emb, original.caption_emb)
    assert copy.images128.shape == original.images128.shape and not copy.images128.any()
    manifest = json.loads((tmp_path / "data" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["travel"]["source_sha256"] == manifest["sha256"]
    assert manifest["travel"]["unpacked_sha256"] != manifest["sha256"]  # the 128 px renders are zero there
    assert "zero" in manifest["travel"]["images128"]


def test_another_encoder_is_refused_and_writes_nothing(source, tmp_path):
    travel.pack(source, tmp_path / "kit", check_rows=8)
    shifted = _LookupEncoder(load_dataset(source), shift=0.01)
    with pytest.raises(travel.TravelError, match="not the encoder the dataset was built with"):
        travel.unpack(tmp_path / "kit", tmp_path / "data", encoder=shifted, log=lambda line: None)
    assert not (tmp_path / "data" / DATA_FILE).exists()
    # within the tolerance (float16 rounding on another CPU) it is taken
    close = _LookupEncoder(load_dataset(source), shift=travel.CHECK_TOLERANCE / 4)
    travel.unpack(tmp_path / "kit", tmp_path / "data", encoder=close, log=lambda line: None)
    assert (tmp_path / "data" / DATA_FILE).exists()


def test_missing_folders_get_one_sentence(tmp_path, capsys):
    assert travel.main(["pack", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "kit")]) == 1
    assert "no dataset" in capsys.readouterr().err
    assert travel.main(["unpack", "--kit", str(tmp_path / "none"), "--out", str(tmp_path / "d")]) == 1
    assert "no travel kit" in capsys.readouterr().err


def test_without_worker_processes_it_embeds_in_this_process(monkeypatch):
    class NoProcesses:
        def __init__(self, *args, **kwargs):
            raise OSError("no processes in this sandbox")

    monkeypatch.setattr(travel, "ProcessPoolExecutor", NoProcesses)
    lines = []
    vectors = travel.embed_texts(["red heart", "cat face"], workers=2, log=lines.append)
    from studio.models.usem3 import UseM3Encoder

    assert np.allclose(vectors, UseM3Encoder().encode(["red heart", "cat face"]), atol=1e-5)
    assert vectors.shape == (2, 512) and "failed" in lines[0]

"""The offline evaluation (judge, GAN-test, identity, KID, diversity, upsampler) on a tiny model."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from studio.models.format import load_model
from studio.training.dataset import load_dataset, make_synthetic_dataset
from studio.training.evaluate import (
    composite,
    evaluate_model,
    gan_test_hits,
    generate,
    heldout_gan_test,
    judge_hits,
    kid,
    latents,
    paired_difference,
    psnr,
    sample_row,
    score_snapshots,
)
from studio.training.judge import judge_features, load_judge, save_judge, train_judge


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), count=12)


@pytest.fixture(scope="module")
def data(data_dir):
    return load_dataset(data_dir)


@pytest.fixture(scope="module")
def judge(data):
    judge, info = train_judge(data, minutes=1.0, steps=10, batch=16, width=4, log=lambda _: None)
    assert info["steps"] == 10 and 0.0 <= info["heldout_accuracy"] <= 1.0
    return judge


def test_metrics_on_tiny_model(data, judge, tiny_model_dir):
    model = load_model(tiny_model_dir)
    metrics = evaluate_model(model.generator, model.upsampler, data, judge, psi=0.8, diversity_prompts=3)
    for key in (
        "judge_ceiling",
        "gan_test_train",
        "gan_test_heldout",
        "identity_top1",
        "identity_top5",
        "identity_top5_real32",
        "upsampler_judge_accuracy",
        "bicubic_judge_accuracy",
    ):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["identity_top1"] <= metrics["identity_top5"]
    assert metrics["train_emoji"] == 10 and metrics["heldout_emoji"] == 2
    for key in ("kid", "seed_diversity", "upsampler_psnr", "bicubic_psnr"):
        assert math.isfinite(metrics[key]), key
    assert metrics["seed_diversity"] > 0  # the tiny generator uses z
    # a cache of the judge's view of the real renders, shared across calls, changes no metric
    cache: dict = {}
    for _ in range(2):
        again = evaluate_model(
            model.generator, model.upsampler, data, judge, psi=0.8, diversity_prompts=3, real_cache=cache
        )
        assert again == metrics
    assert "features" in cache


def _snapshot_folder(model, tmp_path):
    """Two EMA snapshots of the tiny generator, as a training run writes them: the weights and a noisy copy."""
    import json

    from safetensors.torch import save_file

    folder = tmp_path / "snapshots"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(model.generator.config.to_json()))
    state = {k: v.contiguous() for k, v in model.generator.state_dict().items()}
    save_file(state, str(folder / "g_ema_0000010.safetensors"))
    torch.manual_seed(1)
    noisy = {k: (v + 0.1 * torch.randn_like(v) if v.is_floating_point() else v) for k, v in state.items()}
    save_file(noisy, str(folder / "g_ema_0000020.safetensors"))
    return folder


def test_snapshots_ranked_by_heldout_gan_test_and_cached(data, judge, tiny_model_dir, tmp_path, monkeypatch):
    import json

    import studio.training.evaluate as evaluate

    model = load_model(tiny_model_dir)
    folder = _snapshot_folder(model, tmp_path)
    lines: list[str] = []
    result = score_snapshots(
        folder, model.upsampler, data, judge, 0.8, limit=4, heldout_seeds=2, progress=lines.append
    )
    assert [r["step"] for r in result["rows"]] == [10, 20] and len(lines) == 2
    assert result["key"] == "gan_test_heldout"
    assert result["best"]["gan_test_heldout"] == max(r["gan_test_heldout"] for r in result["rows"])
    assert json.loads((folder / "scores.json").read_text())["best"] == result["best"]

    def fail(*args, **kwargs):
        raise AssertionError("a scored snapshot was evaluated again")

    monkeypatch.setattr(evaluate, "evaluate_model", fail)
    again = score_snapshots(
        folder, model.upsampler, data, judge, 0.8, limit=4, heldout_seeds=2, progress=lines.append
    )
    assert again["rows"] == result["rows"] and len(lines) == 2
    with pytest.raises(AssertionError):  # other settings are scored afresh
        score_snapshots(folder, model.upsampler, data, judge, 0.7, limit=4, heldout_seeds=2)


def test_cli_scores_snapshots(data_dir, judge, tiny_model_dir, tmp_path, capsys):
    from studio.cli import main

    folder = _snapshot_folder(load_model(tiny_model_dir), tmp_path)
    save_judge(judge, {"steps": 10}, tmp_path / "judge.safetensors")
    args = ["evaluate", "--model", str(tiny_model_dir), "--data", str(data_dir), "--judge"]
    args += [str(tmp_path / "judge.safetensors"), "--snapshots", str(folder), "--limit", "4"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "best: g_ema_00000" in out and "held-out GAN-test" in out
    assert (folder / "scores.json").exists()


def test_no_snapshots_is_one_sentence(data, judge, tmp_path):
    with pytest.raises(evaluate_error()) as info:
        score_snapshots(tmp_path, None, data, judge, 0.8)
    assert "no g_ema_" in str(info.value)


def evaluate_error():
    from studio.training.evaluate import EvaluateError

    return EvaluateError


def test_judge_round_trip(judge, tmp_path, data):
    save_judge(judge, {"steps": 10}, tmp_path / "judge.safetensors")
    loaded, info = load_judge(tmp_path / "judge.safetensors")
    x = torch.rand(2, 4, 128, 128) * 2 - 1
    torch.testing.assert_close(loaded(x), judge(x))
    assert info == {"steps": 10}


def test_metric_helpers():
    a = torch.zeros(1, 4, 8, 8)
    assert psnr(a, a) > 100
    assert abs(psnr(a, a + 0.2) - 20.0) < 1e-6  # error 0.1 in [0, 1] units
    x = torch.randn(200, 16)
    same = abs(kid(x, torch.randn(200, 16), subsets=3, size=100))
    assert kid(x, x + 3.0, subsets=3, size=100) > 10 * same


def test_latents_follow_the_engine_rule():
    z = latents([3, 4], 16, 0.5)
    from studio.engine.latents import seeded_z

    torch.testing.assert_close(z[0], seeded_z(3, 16) * 0.5)
    torch.testing.assert_close(z[1], seeded_z(4, 16) * 0.5)


def test_sample_row_is_deterministic(tiny_model_dir, text_encoder):
    model = load_model(tiny_model_dir)
    row = sample_row(model, text_encoder, "red apple", seeds=(0, 1))
    assert row.shape == (128, 256, 3) and row.dtype == np.uint8
    np.testing.assert_array_equal(row, sample_row(model, text_encoder, "red apple", seeds=(0, 1)))
    emb = torch.from_numpy(text_encoder.encode(["red apple"])).repeat(2, 1)
    images = generate(model.generator, model.upsampler, emb, [0, 1], model.info.default_truncation)
    np.testing.assert_array_equal(np.concatenate(list(composite(images)), axis=1), row)


def test_a_deeper_judge_round_trips_and_an_old_file_reads_as_depth_one(tmp_path, data):
    from safetensors.torch import load_file, save_file

    from studio.training.judge import Judge

    deep = Judge(len(data.subgroups), width=4, depth=2).eval()
    save_judge(deep, {"steps": 1}, tmp_path / "deep.safetensors")
    loaded, _ = load_judge(tmp_path / "deep.safetensors")
    assert loaded.depth == 2
    x = torch.rand(2, 4, 64, 64) * 2 - 1
    torch.testing.assert_close(loaded(x), deep(x))
    # a judge file written before depth existed has no "depth" entry: one conv per scale
    shallow = Judge(len(data.subgroups), width=4).eval()
    save_file(
        dict(shallow.state_dict()),
        str(tmp_path / "old.safetensors"),
        metadata={"info": "{}", "width": "4", "classes": str(len(data.subgroups))},
    )
    old, _ = load_judge(tmp_path / "old.safetensors")
    assert old.depth == 1
    torch.testing.assert_close(old(x), shallow(x))
    assert load_file(str(tmp_path / "old.safetensors")).keys() == shallow.state_dict().keys()


def test_judge_cli_counts_steps_not_minutes(data_dir, tmp_path, capsys):
    """``--steps`` alone trains exactly that many steps with no time limit, and the learning rate's cosine
    follows the steps: the same command gives the same judge however fast the machine is."""
    import json

    from safetensors.torch import load_file

    from studio.training.judge import main

    outs = [tmp_path / "a.safetensors", tmp_path / "b.safetensors"]
    for out in outs:
        args = ["--data", str(data_dir), "--out", str(out), "--steps", "3", "--width", "4", "--batch", "8"]
        assert main(args) == 0
        info = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert info["steps"] == 3 and load_judge(out)[1]["steps"] == 3
    first, second = (load_file(str(out)) for out in outs)
    assert first.keys() == second.keys()
    for key in first:
        torch.testing.assert_close(first[key], second[key], msg=key)
    with pytest.raises(SystemExit):
        main(["--data", str(data_dir), "--out", str(tmp_path / "c.safetensors"), "--steps", "0"])
    assert "--steps must be a positive number of steps." in capsys.readouterr().err
    assert not (tmp_path / "c.safetensors").exists()


def test_a_flip_averaging_judge_sees_an_image_and_its_mirror_alike(tmp_path, data):
    from studio.training.judge import Judge

    torch.manual_seed(0)
    judge = Judge(len(data.subgroups), width=4, depth=2, flip_average=True).eval()
    x = torch.rand(3, 4, 64, 64) * 2 - 1
    torch.testing.assert_close(judge.features(x), judge.features(x.flip(-1)))
    plain = Judge(len(data.subgroups), width=4, depth=2).eval()
    plain.load_state_dict(judge.state_dict())
    assert not torch.allclose(plain.features(x), plain.features(x.flip(-1)))
    save_judge(judge, {}, tmp_path / "flip.safetensors")
    loaded, _ = load_judge(tmp_path / "flip.safetensors")
    assert loaded.flip_average
    torch.testing.assert_close(loaded(x), judge(x))


def test_heldout_gan_test_seed_rounds(data, judge, tiny_model_dir, monkeypatch):
    import studio.training.evaluate as evaluate

    model = load_model(tiny_model_dir)
    seen: list[list[int]] = []
    real_generate = evaluate.generate

    def recording_generate(generator, upsampler, embeddings, seeds, psi, **kwargs):
        seen.append(list(seeds))
        return real_generate(generator, upsampler, embeddings, seeds, psi, **kwargs)

    monkeypatch.setattr(evaluate, "generate", recording_generate)
    heldout_gan_test(model.generator, model.upsampler, data, judge, 0.8, rounds=(1, 3))
    held = [int(i) for i in data.heldout_index]
    assert seen == [[i + 100000 for i in held] + [i + 300000 for i in held]]
    monkeypatch.undo()
    metrics = evaluate_model(
        model.generator, model.upsampler, data, judge, psi=0.8, diversity_prompts=2, heldout_seeds=2
    )
    by_round = [
        heldout_gan_test(model.generator, model.upsampler, data, judge, 0.8, rounds=[k]) for k in (0, 1, 5)
    ]
    # evaluate_model's held-out score is rounds 0 and 1, each round the same emoji once
    assert metrics["gan_test_heldout"] == pytest.approx((by_round[0] + by_round[1]) / 2)
    both = heldout_gan_test(model.generator, model.upsampler, data, judge, 0.8, rounds=(1, 5))
    assert both == pytest.approx((by_round[1] + by_round[2]) / 2)
    with pytest.raises(ValueError, match="at least one seed round"):
        heldout_gan_test(model.generator, model.upsampler, data, judge, 0.8, rounds=())


def test_gan_test_hits_are_one_row_per_round_and_average_to_the_score(data, judge, tiny_model_dir):
    model = load_model(tiny_model_dir)
    held = data.heldout_index
    hits = gan_test_hits(model.generator, model.upsampler, data, judge, 0.8, held, (1, 5))
    assert hits.shape == (2, len(held)) and hits.dtype == bool
    score = heldout_gan_test(model.generator, model.upsampler, data, judge, 0.8, rounds=(1, 5))
    assert hits.mean() == pytest.approx(score)
    # a row is its round alone, whatever else is scored beside it
    alone = gan_test_hits(model.generator, model.upsampler, data, judge, 0.8, held, (5,))
    assert np.array_equal(alone[0], hits[1])
    assert gan_test_hits(model.generator, model.upsampler, data, judge, 0.8, held[:0], (1,)).shape == (1, 0)


def test_judge_hits_count_identity_and_gan_test_as_the_evaluation_does(data, judge, tiny_model_dir):
    """The paired report's identity hits, on the evaluation's own seeds (round 0), average to its identity top-5."""
    from studio.models.cgan import rgba_uint8_to_premultiplied

    model = load_model(tiny_model_dir)
    metrics = evaluate_model(model.generator, model.upsampler, data, judge, psi=0.8, diversity_prompts=3)
    real = judge_features(judge, rgba_uint8_to_premultiplied(torch.from_numpy(data.images128)))
    train = data.train_index
    hits = judge_hits(model.generator, model.upsampler, data, judge, 0.8, train, (0, 2), real_features=real)
    assert hits["identity"].shape == hits["gan_test"].shape == (2, len(train))
    assert hits["identity"][0].mean() == pytest.approx(metrics["identity_top5"])
    assert hits["gan_test"][0].mean() == pytest.approx(metrics["gan_test_train"])
    plain = gan_test_hits(model.generator, model.upsampler, data, judge, 0.8, train, (0, 2))
    assert np.array_equal(plain, hits["gan_test"])
    assert "identity" not in judge_hits(model.generator, model.upsampler, data, judge, 0.8, train, (0,))
    assert judge_hits(model.generator, None, data, judge, 0.8, train[:0], (1,), real_features=real)[
        "identity"
    ].shape == (1, 0)


def test_paired_difference_resamples_emoji_and_finds_a_real_gain():
    rng = np.random.default_rng(3)
    a = rng.random((6, 300)) < 0.3
    same = paired_difference(a, a.copy())
    assert same["difference"] == 0 and same["interval"] == [0.0, 0.0]
    b = a | (rng.random((6, 300)) < 0.15)  # b hits wherever a does, and more
    gain = paired_difference(a, b)
    assert gain["difference"] == pytest.approx(b.mean() - a.mean())
    assert 0 < gain["interval"][0] < gain["difference"] < gain["interval"][1]
    noise = paired_difference(a, rng.random((6, 300)) < 0.3)
    assert noise["interval"][0] < 0 < noise["interval"][1]
    wider = paired_difference(a, b, level=0.99)
    assert wider["interval"][0] <= gain["interval"][0] and wider["interval"][1] >= gain["interval"][1]
    with pytest.raises(ValueError, match="same"):
        paired_difference(a, b[:, :10])
    with pytest.raises(ValueError, match="coverage"):
        paired_difference(a, b, level=1.0)


def test_spread_scores_are_never_written_into_model_json(tiny_model_dir, tmp_path):
    import shutil
    from types import SimpleNamespace

    from studio.training.evaluate import EvaluateError, run_evaluate

    folder = tmp_path / tiny_model_dir.name
    shutil.copytree(tiny_model_dir, folder)
    before = (folder / "model.json").read_bytes()
    args = SimpleNamespace(model=str(folder), spread=True, write_metrics=True, snapshots=None, samples=None)
    with pytest.raises(EvaluateError, match=r"drop --write-metrics\.$"):
        run_evaluate(args)
    assert (folder / "model.json").read_bytes() == before


def test_worded_names_embed_each_name_in_the_phrase_and_leave_the_rest_alone(data, judge, tiny_model_dir):
    """Scoring paraphrased prompts (scripts/ab_report.py --name-phrase): the view embeds each emoji's name put into
    the phrase with the given encoder; worded "{}" through an encoder that returns the dataset's own embeddings it
    scores exactly as the dataset does."""
    from studio.training.evaluate import WordedNames

    stored = {str(text): data.caption_emb[row].astype(np.float32) for row, text in enumerate(data.captions)}
    asked: list[list[str]] = []

    def encode(texts):
        asked.append(list(texts))
        return np.stack(
            [stored.get(text, np.full(data.caption_emb.shape[1], 0.5, np.float32)) for text in texts]
        )

    names = data.name_texts()
    assert names == [str(data.captions[row]) for row in np.flatnonzero(data.caption_is_name)]
    same = WordedNames(data, encode, "{}")
    assert np.array_equal(same.name_embeddings(), data.name_embeddings())
    model = load_model(tiny_model_dir)
    plain = evaluate_model(model.generator, model.upsampler, data, judge, psi=0.8, diversity_prompts=3)
    worded = evaluate_model(model.generator, model.upsampler, same, judge, psi=0.8, diversity_prompts=3)
    assert worded == plain
    emoji = WordedNames(data, encode, "{} emoji")
    embedded = emoji.name_embeddings()
    assert asked[-1] == [f"{name} emoji" for name in names]
    assert np.allclose(embedded, 0.5) and emoji.name_embeddings() is embedded  # embedded once per language
    assert emoji.train_index.tolist() == data.train_index.tolist()  # everything else is the dataset's
    with pytest.raises(ValueError, match="no"):
        WordedNames(data, encode, "emoji")


def test_picture_detail_reads_sharpness_inside_and_outline_length():
    """The rules' detail measure (rule 88): a checkered square has interior detail, a blur takes most of it, a flat
    square has none; the edge length is the square's outline (alpha 0 -> 1 steps); the interior keeps away from the
    outline, so a hard edge adds no detail; a set's summary pools over interior px."""
    import torch.nn.functional as F

    from studio.training.evaluate import detail_summary, picture_detail, summarize_detail

    def square(rgb):
        x = -torch.ones(1, 4, 32, 32)
        x[:, :3, 8:24, 8:24] = rgb * 2 - 1
        x[:, 3, 8:24, 8:24] = 1.0
        return x

    checks = (torch.arange(16)[:, None] + torch.arange(16)[None, :]) % 2
    busy = square(checks.float()[None, None].expand(1, 3, 16, 16))
    flat = square(torch.full((1, 3, 16, 16), 0.5))
    soft = F.avg_pool2d(F.pad(busy, (2, 2, 2, 2), mode="replicate"), 5, stride=1)
    detail, interior, edges = picture_detail(torch.cat([busy, flat]))
    assert interior.tolist() == [12.0 * 12.0, 12.0 * 12.0]  # 2 px in from a 16 px square's outline
    assert edges.tolist() == [64.0, 64.0]  # 4 sides of 16 px, each one full alpha step
    assert float(detail[1]) == 0.0 and float(detail[0]) > 100.0
    assert detail_summary(soft)["interior_detail"] < 0.2 * detail_summary(busy)["interior_detail"]
    pooled = summarize_detail(detail, interior, edges)
    assert pooled == {"interior_detail": round(float(detail.sum()) / 288.0, 5), "edge_length": 64.0}


def test_dark_marks_count_a_faces_eyes_not_its_holes_outline_or_a_light_fleck():
    """The dark-mark px (session 63): two dark eyes on a yellow disc count (each 6 x 6 px), a blank disc has none,
    the same eyes cut as see-through holes count nothing (they are not interior), nor does a light fleck; a
    semi-transparent premultiplied disc reads its straight colour, so its dark eyes count as the opaque one's."""
    from studio.training.evaluate import dark_marks

    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    disc = ((yy - 64) ** 2 + (xx - 64) ** 2) < 50**2

    def face(eye_rgb=None, eye_alpha=1.0, alpha=1.0):
        rgba = torch.zeros(4, 128, 128)
        rgba[:3, disc] = torch.tensor([1.0, 0.8, 0.1])[:, None]
        rgba[3, disc] = 1.0
        for x0 in (44, 78):
            if eye_rgb is not None:
                rgba[:3, 50:56, x0 : x0 + 6] = torch.tensor(eye_rgb)[:, None, None]
            rgba[3, 50:56, x0 : x0 + 6] = eye_alpha
        rgba[:3] *= rgba[3:4] * alpha  # premultiplied
        rgba[3] *= alpha
        return rgba * 2 - 1

    dark = (0.1, 0.05, 0.0)
    faces = [face(dark), face(), face(eye_alpha=0.0), face((1.0, 1.0, 1.0)), face(dark, alpha=0.95)]
    counts = dark_marks(torch.stack(faces), batch=2)
    assert counts.tolist() == [72, 0, 0, 0, 72]
    assert dark_marks(torch.zeros(0, 4, 128, 128)).tolist() == []


def test_dark_marks_equal_the_windows_median_form():
    """The counted form gives the px the median of each px's 9 x 9 window gives (the form it replaced, kept here as
    the reference), on pictures with marks, soft gradients, ties (flat areas, quantised luminance) and see-through
    parts, at any batch size."""
    import torch.nn.functional as F

    from studio.training import evaluate
    from studio.training.evaluate import dark_marks

    def by_median(images):
        y = (images.float() + 1.0) * 0.5
        alpha = y[:, 3:4].clamp(0.0, 1.0)
        luma = ((y[:, :3] / alpha.clamp(min=1e-3)).clamp(0.0, 1.0) * evaluate._LUMA).sum(1, keepdim=True)
        interior = evaluate.alpha_erosion(alpha, evaluate.MARKS_EROSION) > 0.9
        pad = evaluate.MARKS_WINDOW // 2
        windows = F.unfold(F.pad(luma, (pad, pad, pad, pad), mode="reflect"), evaluate.MARKS_WINDOW)
        median = windows.median(1).values.view_as(luma)
        return ((median - luma > evaluate.MARKS_DEPTH) & interior).sum((1, 2, 3))

    generator = torch.Generator().manual_seed(70)
    rgb = torch.rand(6, 3, 128, 128, generator=generator)
    rgb[:2] = (rgb[:2] * 8).round() / 8  # quantised: many ties in a window
    rgb[2] = torch.linspace(0, 1, 128)  # a soft gradient, no marks
    rgb[3, :, 40:60, 40:60] = 0.05  # one dark patch on noise
    alpha = torch.ones(6, 1, 128, 128)
    alpha[4, :, 30:90, 30:90] = 0.0  # a see-through square
    alpha[5] = torch.rand(1, 128, 128, generator=generator) > 0.02  # pinholes everywhere
    images = torch.cat([rgb * alpha, alpha], 1) * 2 - 1
    expected = by_median(images)
    assert expected.sum() > 0 and expected[2] == 0
    assert torch.equal(dark_marks(images), expected)
    assert torch.equal(dark_marks(images, batch=4), expected)

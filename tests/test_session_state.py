"""Session state: change events, requests built from it, restore from a stored request."""

from __future__ import annotations

import errno
import json
import logging
import random

import pytest

from studio.engine.requests import SPREAD_DEFAULT, ConceptSlider, Endpoint, GenerationRequest
from studio.session.history import PromptHistory
from studio.session.settings import DEFAULTS, Settings
from studio.session.state import SEED_RANDOM, InterpolationSlot, SessionState


def test_listeners_hear_each_changed_field_once():
    state = SessionState(model="tiny")
    heard = []
    unsubscribe = state.subscribe(lambda name, value: heard.append((name, value)))
    state.update(prompt="cat", seed=3)
    state.update(prompt="cat")  # unchanged: silent
    state.set_direction(2, 1.5)
    unsubscribe()
    state.update(prompt="dog")
    assert heard == [("prompt", "cat"), ("seed", 3), ("directions", {2: 1.5})]


def test_requests_carry_every_nonzero_offset():
    state = SessionState(model="tiny", prompt="cat", seed=7, count=4, truncation=0.7)
    state.update(directions={0: 1.0, 3: 0.0, 1: -2.0})
    state.add_concept("sad", "happy", 0.5)
    state.add_concept("day", "night", 0.0)
    batch = state.generation_request()
    assert batch == GenerationRequest(
        prompt="cat",
        seed=7,
        count=4,
        truncation=0.7,
        directions=((0, 1.0), (1, -2.0)),
        concepts=(ConceptSlider("sad", "happy", 0.5),),
        model="tiny",
        spread=SPREAD_DEFAULT,
    )
    assert state.preview_request().count == 1
    state.reset_sliders(default_truncation=0.8)
    assert state.directions == {} and all(c.scale == 0 for c in state.concepts) and state.truncation == 0.8


def test_random_seed_mode_draws_a_new_seed():
    state = SessionState(seed=5, seed_mode=SEED_RANDOM)
    assert state.next_seed(random.Random(1)) != 5
    assert state.seed == state.next_seed(random.Random(1))


def test_interpolation_frames_start_at_a_and_restore_round_trips():
    a = GenerationRequest("cat", seed=1, truncation=0.6, directions=((0, 2.0),), model="tiny")
    b = GenerationRequest("dog", seed=9, model="tiny")
    state = SessionState(model="tiny", slot_a=InterpolationSlot(a), slot_b=InterpolationSlot(b))
    frame = state.interpolation_request(0.25)
    assert frame.interpolate_to == Endpoint("dog", 9) and frame.t == 0.25 and frame.directions == ((0, 2.0),)
    fresh = SessionState(model="tiny")
    fresh.restore(frame)
    assert fresh.preview_mode == "interpolation" and fresh.preview_request() == frame
    fresh.restore(a)
    assert fresh.preview_mode == "single" and fresh.preview_request() == a


def test_history_walks_like_a_shell_and_persists(tmp_path):
    history = PromptHistory(tmp_path / "h.json")
    for prompt in ("cat", "dog", "cat"):
        history.add(prompt)
    assert history.entries == ["dog", "cat"]
    assert history.older() == "cat" and history.older() == "dog" and history.older() is None
    assert history.newer() == "cat" and history.newer() == "" and history.newer() is None
    assert PromptHistory(tmp_path / "h.json").entries == ["dog", "cat"]


def test_settings_survive_and_ignore_bad_values(tmp_path):
    settings = Settings(tmp_path / "s.json")
    settings.set("last_prompt", "owl")
    settings.set("count", 3)
    assert settings.save()
    (tmp_path / "t.json").write_text('{"count": "lots", "unknown": 1, "theme": "light"}')
    assert Settings(tmp_path / "s.json")["last_prompt"] == "owl"
    odd = Settings(tmp_path / "t.json")
    assert odd["count"] == 8 and odd["theme"] == "light"


def test_invalid_setting_values_fall_back_one_by_one_with_a_logged_warning(tmp_path, caplog):
    (tmp_path / "s.json").write_text(
        json.dumps(
            {
                "window_geometry": "!!!not base64!!!",
                "interpolation_frames": 1e12,
                "interpolation_fps": 10**12,
                "count": 0,
                "seed": -1,
                "export_format": "bmp",
                "theme": "light",
                "last_prompt": "owl",
            }
        )
    )
    with caplog.at_level(logging.WARNING, logger="studio.session.settings"):
        settings = Settings(tmp_path / "s.json")
    for name in (
        "window_geometry",
        "interpolation_frames",
        "interpolation_fps",
        "count",
        "seed",
        "export_format",
    ):
        assert settings[name] == DEFAULTS[name]
        assert any(name in record.getMessage() for record in caplog.records)
    assert settings["theme"] == "light" and settings["last_prompt"] == "owl"
    assert settings.notice is None


@pytest.mark.parametrize("content", [b"\x00\xffgarbage", b"[1, 2]", b"{" * 100_000])
def test_a_damaged_settings_file_is_kept_as_bad_and_said(tmp_path, content):
    path = tmp_path / "settings.json"
    path.write_bytes(content)
    settings = Settings(path)
    assert settings["count"] == DEFAULTS["count"]
    assert (tmp_path / "settings.json.bad").read_bytes() == content
    assert "damaged" in settings.notice and "settings.json.bad" in settings.notice
    assert settings.save() and json.loads(path.read_text())["count"] == DEFAULTS["count"]


def test_saving_on_a_full_disk_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import studio.atomic as atomic

    path = tmp_path / "settings.json"
    settings = Settings(path)
    settings.set("last_prompt", "owl")
    assert settings.save()
    before = path.read_bytes()

    def write_half_then_fail(file, data):
        file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "write_all", write_half_then_fail)
    settings.set("last_prompt", "cat")
    assert settings.save() is False
    assert [p.name for p in tmp_path.iterdir()] == ["settings.json"] and path.read_bytes() == before
    assert settings["last_prompt"] == "cat"  # kept in memory

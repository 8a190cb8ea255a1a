"""The SQLite gallery: ordered, persistent, transactional, soft delete with undo, fast with many items."""

from __future__ import annotations

import sqlite3
import time

import numpy as np
import pytest

from studio.engine.requests import GenerationRequest
from studio.session.gallery_store import GalleryStore, decode_png


def _image(value: int) -> np.ndarray:
    image = np.zeros((32, 32, 4), np.uint8)
    image[..., 0] = value
    image[..., 3] = 255
    image[0, 0, 3] = 0  # a transparent pixel must survive the round trip
    return image


def test_items_persist_in_order_with_pixels_and_request(tmp_path):
    path = tmp_path / "gallery.sqlite"
    with GalleryStore(path) as store:
        ids = [store.add(GenerationRequest("cat", seed=s), _image(s), "abcd1234") for s in range(3)]
    with GalleryStore(path) as store:
        assert store.ids() == ids
        item = store.item(ids[1])
        assert item.request == GenerationRequest("cat", seed=1) and item.model_hash == "abcd1234"
        assert np.array_equal(store.image(ids[2]), _image(2))
        assert store.thumbnail(ids[0]).startswith(b"\x89PNG")


def test_delete_undo_and_purge_on_reopen(tmp_path):
    path = tmp_path / "gallery.sqlite"
    store = GalleryStore(path)
    ids = store.add_many([(GenerationRequest("cat", seed=s), _image(s), "") for s in range(4)])
    token = store.delete(ids[1:3])
    assert store.ids() == [ids[0], ids[3]]
    store.undelete(token)
    assert store.ids() == ids
    store.delete([ids[0]])
    store.close()
    assert GalleryStore(path).ids() == ids[1:]


def test_a_committed_item_survives_a_crash_of_a_later_write(tmp_path, monkeypatch):
    path = tmp_path / "gallery.sqlite"
    store = GalleryStore(path)
    first = store.add(GenerationRequest("cat"), _image(1))
    with pytest.raises(AttributeError):
        store.add_many(
            [(GenerationRequest("cat", seed=2), _image(2), ""), (GenerationRequest("x"), None, "")]
        )
    # Another connection (a restarted app) sees exactly what was committed.
    assert [r[0] for r in sqlite3.connect(path).execute("SELECT id FROM items")] == [first]
    assert store.page(0, 10)[0].id == first


def test_ten_thousand_items_list_quickly(tmp_path):
    store = GalleryStore(tmp_path / "gallery.sqlite")
    thumb = np.zeros((8, 8, 4), np.uint8)
    store.add_many([(GenerationRequest("p", seed=s), thumb, "") for s in range(10_000)])
    store.close()
    started = time.perf_counter()
    reopened = GalleryStore(tmp_path / "gallery.sqlite")
    ids = reopened.ids()
    page = reopened.page(9_900, 100)
    elapsed = time.perf_counter() - started
    assert len(ids) == 10_000 and [i.seed for i in page] == list(range(9_900, 10_000))
    assert elapsed < 5  # generous: the benchmark measures the real figure


def test_decode_png_gives_rgba(tmp_path):
    from studio.session.gallery_store import encode_png

    assert decode_png(encode_png(_image(9)[..., :3])).shape == (32, 32, 4)


def test_thumbnails_can_be_made_later(tmp_path):
    store = GalleryStore(tmp_path / "gallery.sqlite")
    first = store.add(GenerationRequest("cat"), _image(1), thumbnail=False)
    assert store.thumbnail(first) is None and np.array_equal(store.image(first), _image(1))
    assert store.fill_thumbnails(limit=4) == 1 and store.thumbnail(first).startswith(b"\x89PNG")
    assert store.fill_thumbnails() == 0

"""The SQLite gallery: ordered, persistent, transactional, soft delete with undo, fast with many items."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from studio.engine.requests import GenerationRequest
from studio.session.gallery_store import GalleryError, GalleryStore, decode_png


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


def test_delete_undo_and_purge_on_close(tmp_path):
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


def test_ten_thousand_items_list_and_page_in_order(tmp_path):
    # Speed is the benchmark's business (benchmarks/ui_bench.py); this checks the answers at that size.
    store = GalleryStore(tmp_path / "gallery.sqlite")
    thumb = np.zeros((8, 8, 4), np.uint8)
    store.add_many([(GenerationRequest("p", seed=s), thumb, "") for s in range(10_000)])
    store.close()
    reopened = GalleryStore(tmp_path / "gallery.sqlite")
    ids = reopened.ids()
    page = reopened.page(9_900, 100)
    assert len(ids) == 10_000 and [i.seed for i in page] == list(range(9_900, 10_000))


def test_decode_png_gives_rgba(tmp_path):
    from studio.session.gallery_store import encode_png

    assert decode_png(encode_png(_image(9)[..., :3])).shape == (32, 32, 4)


def test_thumbnails_can_be_made_later(tmp_path):
    store = GalleryStore(tmp_path / "gallery.sqlite")
    first = store.add(GenerationRequest("cat"), _image(1), thumbnail=False)
    assert store.thumbnail(first) is None and np.array_equal(store.image(first), _image(1))
    assert store.fill_thumbnails(limit=4) == 1 and store.thumbnail(first).startswith(b"\x89PNG")
    assert store.fill_thumbnails() == 0


# ----------------------------------------------------------------------------------------------- bad days


def refuse_read_write_opens(monkeypatch, message: str = "attempt to write a readonly database") -> None:
    """Make SQLite refuse to open the gallery for writing, as in a read-only folder (tests run as root, whom
    chmod does not stop); read-only (URI) and in-memory opens still work."""
    import studio.session.gallery_store as gallery_store

    real_connect = sqlite3.connect

    def connect(target, *args, uri=False, **kwargs):
        if not uri and target != ":memory:":
            raise sqlite3.OperationalError(message)
        return real_connect(target, *args, uri=uri, **kwargs)

    monkeypatch.setattr(gallery_store.sqlite3, "connect", connect)


def full_disk(store, monkeypatch, after: int, statement: str = "INSERT"):
    """Let ``after`` more ``statement``s succeed, then fail the way SQLite does on a full disk."""
    real = store._db
    calls = {"n": 0}

    class FullDisk:
        def __getattr__(self, name):
            return getattr(real, name)

        def _check(self, sql):
            if sql.startswith(statement):
                calls["n"] += 1
                if calls["n"] > after:
                    raise sqlite3.OperationalError("database or disk is full")

        def execute(self, sql, *args):
            self._check(sql)
            return real.execute(sql, *args)

        def executemany(self, sql, *args):
            self._check(sql)
            return real.executemany(sql, *args)

    monkeypatch.setattr(store, "_db", FullDisk())


def test_a_write_on_a_full_disk_raises_one_sentence_and_stores_nothing(tmp_path, monkeypatch):
    store = GalleryStore(tmp_path / "gallery.sqlite")
    first = store.add(GenerationRequest("cat"), _image(1))
    full_disk(store, monkeypatch, after=0)
    with pytest.raises(GalleryError, match="disk holding .* is full") as error:
        store.add(GenerationRequest("cat", seed=2), _image(2))
    assert "\n" not in str(error.value)
    monkeypatch.undo()
    assert store.ids() == [first]  # rolled back, and the store keeps working
    assert store.add(GenerationRequest("cat", seed=3), _image(3)) == first + 1


def test_purge_never_takes_rows_another_open_window_can_undo(tmp_path):
    path = tmp_path / "gallery.sqlite"
    first = GalleryStore(path)
    ids = first.add_many([(GenerationRequest("cat", seed=s), _image(s), "") for s in range(3)])
    token = first.delete(ids[:2])
    second = GalleryStore(path)  # a second window opens (and closes) while the first can still undo
    assert second.ids() == [ids[2]]
    second.close()
    first.undelete(token)
    assert first.ids() == ids  # 2 of 2 restored
    first.delete([ids[0]])
    first.close()  # the last window to close purges
    assert sqlite3.connect(path).execute("SELECT count(*) FROM items").fetchone()[0] == 2


def test_a_closing_window_purges_its_own_deletions_even_while_another_is_open(tmp_path):
    path = tmp_path / "gallery.sqlite"
    first, second = GalleryStore(path), GalleryStore(path)
    ids = first.add_many([(GenerationRequest("cat", seed=s), _image(s), "") for s in range(3)])
    first.delete([ids[0]])
    second.delete([ids[1]])
    first.close()
    rows = {r[0] for r in sqlite3.connect(path).execute("SELECT id FROM items")}
    assert rows == {ids[1], ids[2]}  # the second window can still undo its own
    second.undelete([ids[1]])
    assert second.ids() == ids[1:]
    second.close()


def test_a_newer_gallery_is_refused_with_a_sentence_and_left_untouched(tmp_path):
    path = tmp_path / "gallery.sqlite"
    with GalleryStore(path) as store:
        store.add(GenerationRequest("cat"), _image(1))
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version=2")
    db.commit()
    db.close()
    before = path.read_bytes()
    store = GalleryStore(path)
    assert "newer GAN Studio" in store.notice and "\n" not in store.notice
    assert store.ids() == []  # a session gallery: this window still works
    store.add(GenerationRequest("dog"), _image(2))
    store.close()
    assert path.read_bytes() == before
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == 2


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_gallery_is_kept_aside_and_a_fresh_one_started(tmp_path, damage):
    path = tmp_path / "gallery.sqlite"
    with GalleryStore(path) as store:
        store.add_many(
            [(GenerationRequest("cat", seed=s), np.full((64, 64, 4), s, np.uint8), "") for s in range(40)]
        )
    data = path.read_bytes()
    damaged = data[: len(data) // 2] if damage == "truncated" else b"garbage!" * 512
    path.write_bytes(damaged)
    store = GalleryStore(path)
    assert store.notice is not None and "damaged" in store.notice and "kept as" in store.notice
    kept = [p for p in tmp_path.iterdir() if ".damaged-" in p.name]
    assert len(kept) == 1 and kept[0].read_bytes() == damaged
    assert store.ids() == [] and not store.read_only
    store.add(GenerationRequest("dog"), _image(2))
    store.close()
    assert GalleryStore(path).count() == 1


def test_a_read_only_data_folder_opens_the_gallery_read_only(tmp_path, monkeypatch):

    path = tmp_path / "gallery.sqlite"
    with GalleryStore(path) as store:
        ids = store.add_many([(GenerationRequest("cat", seed=s), _image(s), "") for s in range(2)])
    refuse_read_write_opens(monkeypatch)
    store = GalleryStore(path)
    assert store.read_only and "read-only" in store.notice
    assert store.ids() == ids and np.array_equal(store.image(ids[1]), _image(1))
    with pytest.raises(GalleryError, match="read-only"):
        store.add(GenerationRequest("dog"), _image(3))
    assert store.fill_thumbnails() == 0
    store.close()


def test_a_gallery_on_a_read_only_file_system_names_the_reason(tmp_path, monkeypatch):
    import studio.session.gallery_store as gallery_store

    path = tmp_path / "gallery.sqlite"
    with GalleryStore(path) as store:
        store.add(GenerationRequest("cat"), _image(1))
    refuse_read_write_opens(monkeypatch, "unable to open database file")  # what a read-only mount gives
    monkeypatch.setattr(gallery_store.os, "access", lambda folder, mode: False)
    store = GalleryStore(path)
    assert store.read_only and store.count() == 1
    assert "because the folder is read-only" in store.notice

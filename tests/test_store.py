"""Local state: atomic, private, and never silently lost."""
import json
import os
import stat

from mikolicd import journal
from mikolicd.store import PREVIOUS, STATE, State, Store, Validation


def saved(tmp_path, *states):
    store = Store(tmp_path / "state")
    for s in states:
        store.save(s)
    return store


def test_saved_state_loads_back(tmp_path):
    state = State("MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "a.b.c", Validation(1.0, "ok"), 5.0)
    assert saved(tmp_path, state).load() == state


def test_state_files_are_private(tmp_path):
    store = saved(tmp_path, State("MIKO-AAAAA-BBBBB-CCCCC-DDDDD"), State("MIKO-AAAAA-BBBBB-CCCCC-EEEEE"))
    for name in (STATE, PREVIOUS):
        assert stat.S_IMODE(os.stat(store.directory / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700


def test_no_temporary_files_are_left_behind(tmp_path):
    store = saved(tmp_path, State("MIKO-AAAAA-BBBBB-CCCCC-DDDDD"), State(None))
    assert sorted(p.name for p in store.directory.iterdir()) == sorted([PREVIOUS, STATE])


def test_corrupt_state_is_moved_aside_and_the_previous_generation_restored(tmp_path, caplog):
    good = State("MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "old.doc.sig")
    store = saved(tmp_path, good, State("MIKO-AAAAA-BBBBB-CCCCC-DDDDD", "new.doc.sig"))
    (store.directory / STATE).write_bytes(b'{"registration_number": "MIKO-AAAAA-BB')
    assert store.load() == good
    aside = [p.name for p in store.directory.iterdir() if ".corrupt-" in p.name]
    assert aside and "corrupt" in caplog.text and aside[0] in caplog.text
    assert journal.STORE_CORRUPT in {getattr(r, "MESSAGE_ID", None) for r in caplog.records}


def test_corrupt_state_without_backup_starts_empty_but_keeps_the_file(tmp_path):
    store = Store(tmp_path)
    (tmp_path / STATE).write_text(json.dumps(["not", "a", "state"]))
    assert store.load() == State()
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_unknown_fields_are_treated_as_corrupt(tmp_path):
    store = Store(tmp_path)
    (tmp_path / STATE).write_text(json.dumps({"registration_number": None, "surprise": 1}))
    assert store.load() == State()
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_temp_files_of_a_killed_writer_are_swept_at_load(tmp_path):
    store = saved(tmp_path, State("MIKO-AAAAA-BBBBB-CCCCC-DDDDD"))
    dead = store.directory / f".{STATE}.999999999.tmp"
    alive = store.directory / f".{STATE}.{os.getpid()}.tmp"
    dead.write_text("half a write")
    alive.write_text("a write in progress")
    store.load()
    assert not dead.exists() and alive.exists()

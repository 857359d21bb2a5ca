"""Local state: atomic, private, never silently lost, and not to be redirected by planted symlinks."""
import json
import os
import stat

import pytest

from mikolicd import atomic, journal
from mikolicd.errors import StorageFailed
from mikolicd.lifecycle import Validation
from mikolicd.store import CLOCK, INSTALLATION, PREVIOUS, STATE, State, Store
from mikolicd.trust import Checkpoint, Outcome

NUMBER = "MIKO-AAAAA-BBBBB-CCCCC-DDDDD"


def saved(tmp_path, *states):
    store = Store(tmp_path / "state")
    for s in states:
        store.save(s)
    return store


def test_saved_state_loads_back(tmp_path):
    state = State(NUMBER, "a.b.c", Validation(1.0, Outcome.OK), released=True, seat_session="s-1",
                  sessions={"s-2": 1001}, offline_nonce="n", announced=("11:2027-01-01:30",), metrics_at=5.0)
    assert saved(tmp_path, state).load() == state


def test_state_files_are_private(tmp_path):
    store = saved(tmp_path, State(NUMBER), State("MIKO-AAAAA-BBBBB-CCCCC-EEEEE"))
    for name in (STATE, PREVIOUS):
        assert stat.S_IMODE(os.stat(store.directory / name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(store.directory).st_mode) == 0o700


def test_no_temporary_files_are_left_behind(tmp_path):
    store = saved(tmp_path, State(NUMBER), State(None))
    assert sorted(p.name for p in store.directory.iterdir()) == sorted([PREVIOUS, STATE])


def test_corrupt_state_is_moved_aside_and_the_previous_generation_restored(tmp_path, caplog):
    good = State(NUMBER, "old.doc.sig")
    store = saved(tmp_path, good, State(NUMBER, "new.doc.sig"))
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
    (tmp_path / STATE).write_text(json.dumps({"version": 2, "registration_number": None, "surprise": 1}))
    assert store.load() == State()
    assert any(".corrupt-" in p.name for p in tmp_path.iterdir())


def test_temp_files_of_a_killed_writer_are_swept_at_load(tmp_path):
    store = saved(tmp_path, State(NUMBER))
    dead = store.directory / f".{STATE}.999999999.0badf00d.tmp"
    alive = store.directory / atomic.temp_name(STATE)
    dead.write_text("half a write")
    alive.write_text("a write in progress")
    store.load()
    assert not dead.exists() and alive.exists()


def test_the_clock_checkpoint_has_its_own_file(tmp_path):
    store = Store(tmp_path)
    store.save_checkpoint(Checkpoint(1.8e9, 1234.5, "boot"))
    assert store.load_checkpoint() == Checkpoint(1.8e9, 1234.5, "boot")
    assert not (tmp_path / STATE).exists() and stat.S_IMODE((tmp_path / CLOCK).stat().st_mode) == 0o600


def test_a_first_version_high_water_mark_becomes_a_checkpoint_of_an_unknown_boot(tmp_path):
    (tmp_path / STATE).write_text(json.dumps({"registration_number": None, "clock_high_water": 1.8e9}))
    assert Store(tmp_path).load_checkpoint() == Checkpoint(1.8e9, 0.0, "")


def test_a_corrupt_checkpoint_is_moved_aside(tmp_path):
    (tmp_path / CLOCK).write_text("{")
    assert Store(tmp_path).load_checkpoint() is None
    assert any(p.name.startswith(f"{CLOCK}.corrupt-") for p in tmp_path.iterdir())


def test_an_installation_key_readable_by_others_is_refused(tmp_path):
    store = Store(tmp_path)
    store.installation_key()
    os.chmod(tmp_path / INSTALLATION, 0o644)
    with pytest.raises(StorageFailed, match="readable by others"):
        store.installation_key()


def test_a_state_directory_that_is_a_file_is_named_with_its_key(tmp_path):
    (tmp_path / "state").write_text("oops")
    with pytest.raises(StorageFailed, match=r"\[storage\] state_dir .* is not a directory"):
        Store(tmp_path / "state").save(State(NUMBER))


def test_a_symlinked_state_directory_is_not_followed(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "state").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StorageFailed):
        Store(tmp_path / "state").save(State(NUMBER))
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_atomic_replace_does_not_follow_a_symlink_at_the_target(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "file").symlink_to(victim)
    dir_fd = atomic.open_dir(tmp_path / "dir")
    try:
        atomic.replace(dir_fd, "file", b"new")
    finally:
        os.close(dir_fd)
    assert victim.read_text() == "keep me" and (tmp_path / "dir" / "file").read_bytes() == b"new"
    assert not (tmp_path / "dir" / "file").is_symlink()


def test_a_directory_others_may_write_is_refused_for_root_written_files(tmp_path):
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    fd = atomic.open_dir(shared)
    try:
        with pytest.raises(atomic.UnsafeDirectory):
            atomic.require_private(fd, shared)
    finally:
        os.close(fd)

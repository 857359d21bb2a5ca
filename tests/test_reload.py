"""A configuration reload builds the whole new set-up first and swaps it in at once, or changes nothing."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
from nacl.signing import SigningKey

from mikolicd import build, config as configuration
from mikolicd.daemon import Daemon
from mikolicd.jws import key_id, public_pem
from mikolicd.notify import Notifier


def keys_file(path: Path) -> str:
    key = SigningKey.generate()
    path.write_text(public_pem(bytes(key.verify_key)))
    return key_id(bytes(key.verify_key))


def write_config(path: Path, tmp: Path, keys: Path, ca: str = "") -> Path:
    path.write_text(f'[server]\nurl = "https://127.0.0.1:9"\ntrusted_keys = "{keys}"\nca_file = "{ca}"\n'
                    f'[storage]\nstate_dir = "{tmp / "state"}"\n[api]\nsocket = "{tmp / "s.sock"}"\n'
                    f'[hardware]\nroot = "{tmp}"\ndmidecode = ""\n')
    return path


@pytest.fixture
def daemon(tmp_path) -> Daemon:
    keys_file(tmp_path / "old.pem")
    cfg_path = write_config(tmp_path / "mikolicd.toml", tmp_path, tmp_path / "old.pem")
    cfg = configuration.load(cfg_path)
    return Daemon(cfg, cfg_path, build.agent(cfg, lambda verdict: None), Notifier(None))


def test_a_reload_with_a_refused_ca_file_keeps_the_old_trusted_keys_too(daemon, tmp_path, caplog):
    old = daemon.agent.setup
    keys_file(tmp_path / "new.pem")
    write_config(daemon.config_path, tmp_path, tmp_path / "new.pem", ca=str(tmp_path / "missing-ca.pem"))
    with caplog.at_level(logging.ERROR):
        daemon._reload()
    assert daemon.agent.setup is old
    assert "reload refused" in caplog.text and "[server] ca_file" in caplog.text


def test_a_good_reload_swaps_keys_and_client_together(daemon, tmp_path):
    old = daemon.agent.setup
    kid = keys_file(tmp_path / "new.pem")
    write_config(daemon.config_path, tmp_path, tmp_path / "new.pem")
    daemon._reload()
    assert list(daemon.agent.setup.keys) == [kid] and daemon.agent.setup.client is not old.client
    assert daemon.agent.setup.hardware is old.hardware

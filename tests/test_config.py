"""The configuration file: defaults for a PBX, durations, and errors that name file, line and key."""
from pathlib import Path

import pytest

from mikolicd import config
from mikolicd.config import Config, ConfigError, duration, load, parse
from mikolicd.jws import load_trusted_keys


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("15m", 900), ("6h", 21600), ("14d", 1209600),
                                          ("45", 45), (90, 90), (1.5, 1.5)])
def test_durations_accept_units_and_plain_seconds(text, seconds):
    assert duration(text) == seconds


def test_empty_file_gives_pbx_defaults():
    cfg = parse("", "empty.toml")
    assert cfg.api.socket == Path("/run/mikolicd.sock")
    assert cfg.storage.state_dir == Path("/var/lib/mikolicd")
    assert cfg.api.socket_mode == 0o660
    assert cfg.schedule.check_interval == 6 * 3600


def test_every_documented_key_is_read():
    cfg = parse("""
[server]
url = "https://lic.example.test/"
trusted_keys = "/k.pem"
ca_file = "/ca.pem"
timeout = "5s"
proxy = "http://proxy.example.test:3128"
[storage]
state_dir = "/s"
[api]
socket = "/x.sock"
socket_mode = "0600"
socket_group = "www-data"
admin_groups = ["wheel"]
[compat]
listen = "127.0.0.1:8223"
[schedule]
check_interval = "1h"
jitter = 0.2
retry_max_delay = "10m"
[hardware]
root = "/fake"
dmidecode = ""
""", "full.toml")
    assert cfg.server.url == "https://lic.example.test" and cfg.server.timeout == 5
    assert cfg.api.socket_mode == 0o600 and cfg.api.admin_groups == ("wheel",)
    assert cfg.compat.listen == "127.0.0.1:8223"
    assert (cfg.schedule.check_interval, cfg.schedule.jitter, cfg.schedule.retry_max_delay) == (3600, 0.2, 600)
    assert cfg.hardware.root == Path("/fake") and cfg.hardware.dmidecode == ""


@pytest.mark.parametrize("text,needle", [
    ('[schedule]\ncheck_interval = "soon"', "f.toml:2: [schedule] check_interval: expected a duration"),
    ("[schedule]\njitter = 3", "[schedule] jitter: expected a fraction"),
    ('[server]\nurl = "http://lic.example.test"', "[server] url: expected an https:// URL"),
    ('[api]\nsocket_mode = "rw"', "[api] socket_mode: expected a file mode"),
    ('[api]\nsockett = "/x"', "f.toml:2: [api] sockett: unknown key"),
    ("[nonsense]\nx = 1", "f.toml:1: unknown section [nonsense]"),
    ("[server\nurl=1", "f.toml: not valid TOML"),
    ('[compat]\nlisten = "everywhere"', "[compat] listen: expected"),
])
def test_bad_values_name_file_line_key_and_expectation(text, needle):
    with pytest.raises(ConfigError) as err:
        parse(text, "f.toml")
    assert needle in str(err.value)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load(tmp_path / "absent.toml")


def test_shipped_default_config_is_valid():
    cfg = load(Path(__file__).resolve().parents[1] / "etc" / "mikolicd.toml")
    assert isinstance(cfg, Config) and cfg.hardware.snapshot is not None


def test_shipped_trusted_keys_placeholder_stops_start_up_with_what_to_do():
    with pytest.raises(ValueError, match="install the licensing server's public key"):
        load_trusted_keys(Path(__file__).resolve().parents[1] / "etc" / "trusted_keys.pem")


def test_every_key_of_every_section_has_its_reader():
    for table in config.SECTIONS.values():
        assert set(config.PARSERS[table]) == set(table._fields), table.__name__

"""Builds the real agent from a configuration: the edge where files, clocks and randomness come in.

A reload builds a whole new `Setup` here first and the agent swaps it in at once, so a refused part
(an unreadable CA file, say) leaves everything as it was. Errors name the configuration key and the fix.
"""
from __future__ import annotations

import random
import secrets
from collections.abc import Callable
from pathlib import Path

from . import fingerprint
from .agent import Agent, Setup
from .client import LicensingClient, check_ca_file
from .clock import SystemClock
from .config import Config, ConfigError
from .fingerprint.binding import Hardware
from .installation import Installation
from .jws import TrustedKeys, b64url_encode, load_trusted_keys
from .lifecycle import Verdict
from .schedule import Policy
from .store import Store


class SystemEntropy:
    def random(self) -> float:
        return random.random()

    def nonce(self) -> str:
        return b64url_encode(secrets.token_bytes(32))


def _file_problem(key: str, path: Path, exc: OSError, fix: str) -> ConfigError:
    return ConfigError(f"[server] {key} {path}: {exc.strerror or exc}; {fix}")


def trusted_keys(config: Config) -> TrustedKeys:
    path = config.server.trusted_keys
    try:
        return load_trusted_keys(path)
    except OSError as exc:
        raise _file_problem("trusted_keys", path, exc, "install the licensing server's public key there (the "
                            "file trusted_keys.pem from the server), or correct the path") from None
    except ValueError as exc:
        raise ConfigError(f"[server] trusted_keys: {exc}") from None


def policy(config: Config) -> Policy:
    s = config.schedule
    return Policy.of(s.check_interval, s.jitter, s.retry_max_delay)


def setup(config: Config, hardware: Hardware | None = None) -> Setup:
    """Everything a reload may change; the hardware is read once, at start (the snapshot is root's)."""
    keys = trusted_keys(config)
    try:
        check_ca_file(config.server)
    except OSError as exc:
        raise _file_problem("ca_file", config.server.ca_file or Path(), exc, "install the CA certificate there "
                            "(PEM), or set ca_file = \"\" to use only the system's CAs") from None
    if hardware is None:
        hw = config.hardware
        hardware = fingerprint.collect(hw.root, hw.dmidecode, hw.snapshot)
    return Setup(config, keys, LicensingClient(config.server, policy(config)), policy(config), hardware,
                 fingerprint.components(hardware))


def agent(config: Config, on_state: Callable[[Verdict], None]) -> Agent:
    store = Store(config.storage.state_dir)
    return Agent(setup(config), store, SystemClock(), SystemEntropy(), Installation(store.installation_key()),
                 on_state)

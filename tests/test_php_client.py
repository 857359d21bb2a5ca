"""The PHP clients (clients/php): their PHPUnit suite, run by Debian's phpunit against the real daemon and
the real reference server, over the Unix socket and over the legacy TCP listener."""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentproc import AgentProcess, free_port, stopped_at_end
from conftest import SERVER_SCRIPT, RefServer
from hosts import pbx_box

PHP_CLIENT = Path(__file__).resolve().parent.parent / "clients" / "php"
SUITES = sorted(path.name for path in (PHP_CLIENT / "tests").glob("*Test.php"))
PHPUNIT_TIMEOUT = 900

pytestmark = pytest.mark.skipif(shutil.which("phpunit") is None,
                                reason="phpunit is not installed (.ci/run installs Debian's package)")


@pytest.fixture(scope="module")
def base() -> Iterator[Path]:
    """Short, so the agents' socket paths fit AF_UNIX's limit."""
    path = Path(tempfile.mkdtemp(prefix="mikolicd-php-"))
    yield path
    shutil.rmtree(path)


@pytest.fixture(scope="module")
def agents(base: Path, refserver: RefServer) -> Iterator:
    """Agents on distinct fake hosts; every one is stopped (by pid) when the module ends."""
    def make(name: str, seed: int, extra: str = "") -> AgentProcess:
        return AgentProcess(base, name, refserver.url, refserver.trusted_keys, refserver.ca,
                            pbx_box(base / f"hw-{name}", seed).root, extra=extra)

    yield from stopped_at_end(make)


@pytest.fixture(scope="module")
def php_env(agents, refserver: RefServer) -> dict[str, str]:
    """Where the PHPUnit tests find the agents and the server: the PBX's agent (socket), another host that
    can take a seat first, a host with the legacy TCP listener, and the socket of an agent that stopped."""
    port = free_port()
    stopped = agents("stopped", 64).start()
    stopped.stop()
    return dict(
        os.environ,
        MIKOLICD_SOCKET=str(agents("pbx", 61).start().sock),
        MIKOLICD_TEST_OTHER_SOCKET=str(agents("other", 62).start().sock),
        MIKOLICD_TEST_TCP=f"http://127.0.0.1:{port}",
        MIKOLICD_TEST_TCP_SOCKET=str(agents("tcp", 63, f'\n[compat]\nlisten = "127.0.0.1:{port}"\n').start().sock),
        MIKOLICD_TEST_STOPPED_SOCKET=str(stopped.sock),
        MIKOLICD_TEST_CLOSED_TCP=f"http://127.0.0.1:{free_port()}",
        MIKOLIC_SERVER=str(SERVER_SCRIPT),
        MIKOLIC_SERVER_DIR=str(refserver.dir),
    )


@pytest.mark.parametrize("suite", SUITES)
def test_phpunit_suite_passes(suite: str, php_env: dict[str, str]) -> None:
    done = subprocess.run(["phpunit", "--configuration", str(PHP_CLIENT / "phpunit.xml"),
                           str(PHP_CLIENT / "tests" / suite)],
                          cwd=PHP_CLIENT, env=php_env, capture_output=True, text=True, timeout=PHPUNIT_TIMEOUT)
    assert done.returncode == 0, f"phpunit {suite} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    print(done.stdout.strip().splitlines()[-1])  # PHPUnit's count, shown by pytest -rP

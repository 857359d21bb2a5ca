"""`mikolicd`: the daemon (`run`), the embedded default (`dev`) and the root-only hardware snapshot."""
from __future__ import annotations

import argparse
import gc
import importlib.util
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import config as configuration, fingerprint  # the daemon (and the instance lock): by the commands that run it
from .exits import (FAILED, FILE_ERROR, INTERRUPTED, OK, PIPE_CLOSED, USAGE, Failure, emit, file_failure, guarded,
                    ArgumentParser, help_table, merged)

if TYPE_CHECKING:
    import subprocess

PROG = "mikolicd"
DEV_DIR = Path(".mikolicd-dev")
DEV_NEEDS = ("aiohttp", "cryptography")  # the reference server and the throw-away CA: the `dev` extra
SOCKET_PATH_MAX = 107  # sun_path holds 108 bytes with the terminating NUL


def _free_port() -> int:
    import socket  # for dev only, as the other imports of this command
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, log: Path, timeout: float = 20.0) -> None:
    import socket
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise Failure(f"dev: the reference server exited with {proc.returncode}: see {log}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise Failure(f"dev: the reference server did not start listening within {timeout:g} s: see {log}")


def _dev_directory(directory: Path) -> Path:
    """Usable before anything is started: a directory this user may write, with room for a socket path."""
    fix = "choose a directory you may write, e.g. --dir ./.mikolicd-dev"
    if directory.exists() and not directory.is_dir():
        raise Failure(f"dev: --dir {directory} is a file, not a directory; {fix}", FILE_ERROR, "file_error")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise file_failure("dev: cannot create the directory", directory, exc, fix) from None
    directory = directory.resolve()
    if not os.access(directory, os.W_OK | os.X_OK):
        raise Failure(f"dev: cannot write in {directory}; {fix}", FILE_ERROR, "file_error")
    if len(os.fsencode(directory / "mikolicd.sock")) > SOCKET_PATH_MAX:
        raise Failure(f"dev: the socket path {directory / 'mikolicd.sock'} is longer than a Unix socket allows "
                      f"({SOCKET_PATH_MAX} bytes); choose a shorter --dir", USAGE, "invalid_input")
    return directory


def dev(directory: Path) -> int:
    """A reference server on 127.0.0.1 and the agent, everything under one directory."""
    import signal  # with subprocess, for dev only: collect-hardware starts faster without
    import subprocess

    missing = [name for name in DEV_NEEDS if importlib.util.find_spec(name) is None]
    if missing:
        raise Failure(f"dev needs {' and '.join(missing)}, the extras of mikolicd dev: pip install -e '.[dev]' "
                      "in a checkout (or pip install 'mikolicd[dev]')", FAILED, "missing_extra")
    directory = _dev_directory(directory)
    from . import instance
    held = instance.holder(directory / "state", directory / "mikolicd.sock")
    if held:
        what, pid = held
        raise Failure(f"dev: another mikolicd (pid {pid}) already runs on {what}: stop it first (Ctrl-C in its "
                      f"terminal, or kill {pid}), or use another --dir", FAILED, "already_running")
    from . import devpki  # certificate building is for dev only: the daemon's memory stays without it

    server_dir = directory / "server"
    server = [sys.executable, "-m", "mikolicd.refserver.cli"]
    if not (server_dir / "trusted_keys.pem").exists():
        done = subprocess.run([*server, "init", "--dir", str(server_dir)], stdout=subprocess.DEVNULL)
        if done.returncode:
            raise Failure(f"dev: mikolic-server init --dir {server_dir} exited with {done.returncode} (its message "
                          "is above)")
    pki = devpki.make_pki(directory / "pki")
    port = _free_port()
    log = directory / "server.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen([*server, "serve", "--dir", str(server_dir), "--listen", f"127.0.0.1:{port}",
                                 "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, proc, log)
        return _dev_agent(directory, server_dir, pki.ca, port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


def _dev_agent(directory: Path, server_dir: Path, ca: Path, port: int) -> int:
    sock = directory / "mikolicd.sock"
    cfg_path = directory / "mikolicd.toml"
    try:
        cfg_path.write_text(
            f'# written by mikolicd dev: an agent talking to the local reference server\n'
            f'[server]\nurl = "https://127.0.0.1:{port}"\ntrusted_keys = "{server_dir / "trusted_keys.pem"}"\n'
            f'ca_file = "{ca}"\ntimeout = "10s"\n\n'
            f'[storage]\nstate_dir = "{directory / "state"}"\n\n'
            f'[api]\nsocket = "{sock}"\n\n'
            f'[schedule]\ncheck_interval = "1h"\nretry_max_delay = "1m"\n\n'
            f'[hardware]\nroot = "/"\ndmidecode = ""\n')
    except OSError as exc:
        raise file_failure("dev: cannot write the configuration", cfg_path, exc) from None
    ctl = f"mikolicctl --socket {sock}"
    emit(f"""mikolicd dev: reference server on https://127.0.0.1:{port} (log: {directory / 'server.log'})
mikolicd dev: agent socket {sock}, configuration {cfg_path}

Try, in another terminal:
  {ctl} status
  {ctl} register --company "Example LLC" --email admin@example.com --contact "Ann Admin"
  {ctl} fingerprint
  mikolic-server issue --dir {server_dir} --seats 1     # prints a registration number
  {ctl} activate --replace MIKO-XXXXX-XXXXX-XXXXX-XXXXX   # --replace: the trial's number is active
  {ctl} doctor
  curl --unix-socket {sock} http://localhost/v1/status
Stop with Ctrl-C.
""")
    from . import daemon
    return daemon.run(cfg_path)


def collect_hardware(config_path: Path, output: Path) -> int:
    try:
        cfg = configuration.load(config_path)
    except configuration.ConfigError as exc:
        raise Failure(str(exc), USAGE, "config_refused") from None
    hw = fingerprint.collect(cfg.hardware.root, cfg.hardware.dmidecode)
    try:
        fingerprint.write_snapshot(hw, output)
    except OSError as exc:
        raise file_failure("collect-hardware: cannot write the snapshot", output, exc) from None
    found = ", ".join(sorted(hw.values)) or "nothing"
    emit(f"hardware snapshot written to {output}: {found}")
    return OK


SHARED_EXITS = ((USAGE, "a wrong option, or the configuration is refused (the message names file, line and key)"),
                (INTERRUPTED, "interrupted (Ctrl-C) while starting"),
                (PIPE_CLOSED, "standard output was closed early"))


def _exits(*own: tuple[int, str]) -> str:
    return help_table(merged(own, SHARED_EXITS))


def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = ArgumentParser(prog=PROG, formatter_class=raw, description="Miko PBX licensing agent.",
                                epilog="examples:\n  mikolicd dev                       # try everything on one "
                                       "machine\n  mikolicd run --config /etc/mikolicd/mikolicd.toml\n\n"
                                       "`mikolicd COMMAND --help` shows a command's options and exit codes.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True, title="commands")
    config_help = f"the configuration file (default {configuration.DEFAULT_PATH})"
    run = sub.add_parser("run", formatter_class=raw, help="run the daemon in the foreground (systemd Type=notify)",
                         description="Run the licensing agent in the foreground; systemd starts it this way.",
                         epilog="example:\n  mikolicd run --config /etc/mikolicd/mikolicd.toml\n\n" + _exits(
                             (OK, "stopped by SIGTERM or SIGINT"),
                             (FAILED, "could not start: another agent holds the state directory or socket (its "
                                      "pid is named), or a file the configuration names does not load")))
    run.add_argument("--config", type=Path, default=configuration.DEFAULT_PATH, help=config_help)
    dv = sub.add_parser("dev", formatter_class=raw, help="a local reference server and the agent, to try things out",
                        description="Start a reference licensing server on 127.0.0.1 and the agent, with state, "
                                    "socket and configuration under one directory. Needs the dev extras "
                                    "(pip install -e '.[dev]').",
                        epilog="example:\n  mikolicd dev --dir /tmp/lic   # then: mikolicctl --socket "
                               "/tmp/lic/mikolicd.sock status\n\n" + _exits(
                            (OK, "stopped with Ctrl-C"),
                            (FAILED, "could not start: another dev setup runs in that directory (its pid is "
                                     "named), the dev extras are missing, or the reference server failed"),
                            (USAGE, "a wrong option, or a --dir too long for a socket path"),
                            (FILE_ERROR, "--dir is a file, or cannot be created or written")))
    dv.add_argument("--dir", type=Path, default=DEV_DIR, metavar="DIR",
                    help=f"where the server, state, socket and configuration go (default ./{DEV_DIR})")
    hw = sub.add_parser("collect-hardware", formatter_class=raw,
                        help="write the root-only hardware snapshot (raw values, 0600)",
                        description="Read the hardware ids that need root (DMI serials) and write them for the "
                                    "unprivileged daemon ([hardware] snapshot); systemd runs it before the daemon.",
                        epilog="example:\n  mikolicd collect-hardware --output /run/mikolicd/hardware.json\n\n"
                               + _exits((OK, "the snapshot is written"),
                                        (FILE_ERROR, "the output file cannot be written (the message says why)")))
    hw.add_argument("--config", type=Path, default=configuration.DEFAULT_PATH, help=config_help)
    hw.add_argument("--output", type=Path, required=True, metavar="FILE", help="where to write the snapshot (0600)")
    return p


def _main(argv: list[str] | None) -> int:
    args = parser().parse_args(argv)
    if args.command == "collect-hardware":
        return collect_hardware(args.config, args.output)
    from . import daemon
    return daemon.run(args.config) if args.command == "run" else dev(args.dir)


def main(argv: list[str] | None = None) -> int:
    """Start-up allocates what lives for the whole run, so collecting garbage then only costs time (a
    sixth of it, docs/performance.md): collection is off until the daemon has frozen its start-up objects,
    or until a command returns."""
    gc.disable()
    try:
        return guarded(PROG, lambda: _main(argv))
    finally:
        gc.enable()


def entry() -> None:
    """The `mikolicd` command: it leaves without the interpreter's teardown, which cost collect-hardware a
    fifth of its time and would make the daemon wait for a worker thread still stuck on the network; what
    it wrote is on disk (fsync), and its log and output are flushed here."""
    code = main()
    if "logging" in sys.modules:  # the daemon's; collect-hardware does not load it
        sys.modules["logging"].shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

"""`mikolicd`: the daemon (`run`), the embedded default (`dev`) and the root-only hardware snapshot."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from . import config as configuration, daemon, fingerprint


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_listening(port: int, proc: subprocess.Popen, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise SystemExit(f"mikolicd dev: the reference server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mikolicd dev: the reference server did not start listening")


def dev(directory: Path) -> int:
    """A reference server on 127.0.0.1 and the agent, everything under one directory."""
    from . import devpki  # certificate building is for dev only: the daemon's memory stays without it

    directory = directory.resolve()
    directory.mkdir(parents=True, exist_ok=True)
    server_dir = directory / "server"
    server = [sys.executable, "-m", "mikolicd.refserver.cli"]
    if not (server_dir / "trusted_keys.pem").exists():
        subprocess.run([*server, "init", "--dir", str(server_dir)], check=True, stdout=subprocess.DEVNULL)
    pki = devpki.make_pki(directory / "pki")
    port = _free_port()
    with open(directory / "server.log", "ab") as log:
        proc = subprocess.Popen([*server, "serve", "--dir", str(server_dir), "--listen", f"127.0.0.1:{port}",
                                 "--tls-cert", str(pki.cert), "--tls-key", str(pki.key)],
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_listening(port, proc)
        return _dev_agent(directory, server_dir, pki.ca, port)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(10)


def _dev_agent(directory: Path, server_dir: Path, ca: Path, port: int) -> int:
    sock = directory / "mikolicd.sock"
    cfg_path = directory / "mikolicd.toml"
    cfg_path.write_text(
        f'# written by mikolicd dev: an agent talking to the local reference server\n'
        f'[server]\nurl = "https://127.0.0.1:{port}"\ntrusted_keys = "{server_dir / "trusted_keys.pem"}"\n'
        f'ca_file = "{ca}"\ntimeout = "10s"\n\n'
        f'[storage]\nstate_dir = "{directory / "state"}"\n\n'
        f'[api]\nsocket = "{sock}"\n\n'
        f'[schedule]\ncheck_interval = "1h"\nretry_max_delay = "1m"\n\n'
        f'[hardware]\nroot = "/"\ndmidecode = ""\n')
    admin = f"mikolic-server --help   # e.g. mikolic-server issue --dir {server_dir} --seats 1"
    print(f"""mikolicd dev: reference server on https://127.0.0.1:{port} (log: {directory / 'server.log'})
mikolicd dev: agent socket {sock}

Try, in another terminal:
  mikolicctl --socket {sock} status
  mikolicctl --socket {sock} register --company "Example LLC" --email admin@example.com --contact "Ann Admin"
  mikolicctl --socket {sock} fingerprint
  {admin}
  mikolicctl --socket {sock} activate MIKO-XXXXX-XXXXX-XXXXX-XXXXX
  curl --unix-socket {sock} http://localhost/v1/status
Stop with Ctrl-C.
""", flush=True)
    return daemon.run(cfg_path)


def collect_hardware(config_path: Path, output: Path) -> int:
    try:
        cfg = configuration.load(config_path)
    except configuration.ConfigError as exc:
        print(f"mikolicd: {exc}", file=sys.stderr)
        return 2
    hw = fingerprint.collect(cfg.hardware.root, cfg.hardware.dmidecode)
    fingerprint.write_snapshot(hw, output)
    found = ", ".join(sorted(hw.values)) or "nothing"
    print(f"hardware snapshot written to {output}: {found}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="mikolicd", description="Miko PBX licensing agent")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the daemon in the foreground (systemd Type=notify)")
    run.add_argument("--config", type=Path, default=configuration.DEFAULT_PATH)
    dv = sub.add_parser("dev", help="run a local reference server and the agent, for trying things out")
    dv.add_argument("--dir", type=Path, default=Path(".mikolicd-dev"))
    hw = sub.add_parser("collect-hardware", help="write the root-only hardware snapshot (raw values, 0600)")
    hw.add_argument("--config", type=Path, default=configuration.DEFAULT_PATH)
    hw.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.command == "collect-hardware":
        return collect_hardware(args.config, args.output)
    daemon.leave(daemon.run(args.config) if args.command == "run" else dev(args.dir))
    return 0

"""The process around the agent: the instance lock, sockets, signals, systemd notifications, shutdown."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import socket
from pathlib import Path

from . import api, build, config as configuration, instance, journal, legacy, regnum
from .agent import CHECKPOINT_EVERY, Agent
from .errors import MikolicdError, StorageFailed
from .httpserver import Admission, Limits, Server, open_files_limit
from .lifecycle import Verdict
from .notify import Notifier, listen_fds

log = logging.getLogger("mikolicd")

SHUTDOWN_GRACE = 2.0


def describe(verdict: Verdict) -> str:
    return f"license {verdict.state.value}: {verdict.reason}"


def _report_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.critical("the license schedule stopped; watchdog pings stop so systemd restarts mikolicd",
                     exc_info=task.exception())


def read_key_file(path: Path | None) -> str | None:
    """The number the PBX left for the closed daemon ([compat] key_file), if there is a valid one."""
    if path is None:
        return None
    try:
        text = path.read_text(errors="replace")[:200]
    except OSError as exc:
        if not isinstance(exc, FileNotFoundError):
            log.warning("[compat] key_file %s: %s; nothing imported", path, exc.strerror)
        return None
    try:
        return regnum.registration_number(text)
    except regnum.FormatError:
        log.warning("[compat] key_file %s holds no registration number; nothing imported", path)
        return None


class Daemon:
    def __init__(self, cfg: configuration.Config, config_path: Path | None, agent: Agent, notifier: Notifier):
        self.config = cfg
        self.config_path = config_path
        self.agent = agent
        self.notifier = notifier
        self.stop = asyncio.Event()
        self.servers: list[Server] = []
        self.admission = Admission(Limits.for_open_files(open_files_limit()))

    async def _serve(self) -> None:
        """The JSON API only on Unix sockets (passed by systemd or bound here); license.api also on TCP."""
        inherited = listen_fds()
        unix = [s for s in inherited if s.family == socket.AF_UNIX]
        server = api.make_server(self.agent, self.admission)
        self.servers.append(server)
        if inherited:
            for sock in unix:
                await server.listen_socket(sock)
            for sock in (s for s in inherited if s.family != socket.AF_UNIX):
                tcp = api.make_server(self.agent, self.admission, tcp_host=str(sock.getsockname()[0]))
                self.servers.append(tcp)
                await tcp.listen_socket(sock)
            log.info("serving on %d socket(s) passed by systemd (%d Unix with the JSON API, %d TCP with "
                     "license.api only)", len(inherited), len(unix), len(inherited) - len(unix))
        else:
            path = self.config.api.socket
            api.prepare_socket_path(path)
            await server.listen_unix(str(path))
            api.secure_socket(path, self.config.api)
            log.info("serving on %s", path)
        listen = legacy.compat_listen(self.config.compat)
        if listen:
            tcp = api.make_server(self.agent, self.admission, tcp_host=listen[0])
            self.servers.append(tcp)
            try:
                await tcp.listen_tcp(*listen)
                log.info("legacy license.api also on TCP %s:%d", *listen)
            except OSError as exc:
                log.error("cannot listen on [compat] listen %s:%d (%s); license.api stays on the socket only",
                          *listen, exc.strerror or exc)

    async def _watchdog(self, interval: float, schedule: asyncio.Task) -> None:
        """Pings come from the event loop and only while the schedule runs: a stuck loop or a dead schedule
        stops them, and systemd restarts the daemon. The trusted time is checkpointed on them when due."""
        while not self.stop.is_set() and not schedule.done():
            self.notifier.watchdog()
            self.agent.keep_time()
            try:
                await asyncio.wait_for(self.stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    def _reload(self) -> None:
        """A new set-up is built whole from the new file; only then is it swapped in."""
        self.notifier.reloading()
        try:
            new = configuration.load(self.config_path) if self.config_path else self.config
            setup = build.setup(new, hardware=self.agent.setup.hardware)
        except configuration.ConfigError as exc:
            log.error("configuration reload refused, the running configuration stays: %s", exc)
        else:
            self.agent.reload(setup)
            journal.event(log, logging.INFO, f"configuration reloaded from {self.config_path}",
                          message_id=journal.CONFIG_RELOADED)
        self.notifier.reloaded(describe(self.agent.refresh()))

    async def _import_key(self) -> None:
        """Migration from the closed daemon: its key file's number is activated once, when there is none."""
        number = read_key_file(self.config.compat.key_file)
        if number is None or self.agent.state.registration_number:
            return
        try:
            await self.agent.activate(number)
        except MikolicdError as exc:
            journal.event(log, logging.WARNING, f"the registration number in [compat] key_file "
                          f"{self.config.compat.key_file} could not be activated: {exc.message}",
                          message_id=journal.KEY_IMPORTED, registration_number=number)
        else:
            journal.event(log, logging.INFO, f"activated the registration number found in [compat] key_file "
                          f"{self.config.compat.key_file}", message_id=journal.KEY_IMPORTED,
                          registration_number=number)

    async def main(self) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, self.stop.set)
        loop.add_signal_handler(signal.SIGINT, self.stop.set)
        loop.add_signal_handler(signal.SIGHUP, self._reload)
        await self._serve()
        verdict = self.agent.refresh()
        journal.event(log, logging.INFO, f"mikolicd started; {describe(verdict)}",
                      message_id=journal.STATE_CHANGED, state=verdict.state.value,
                      registration_number=self.agent.state.registration_number)
        gc.freeze()  # start-up objects live forever: keep them out of every later collection
        gc.enable()  # off during start-up (mikolicd.main)
        self.notifier.ready(describe(verdict))
        pings = self.notifier.watchdog_interval
        pings_keep_time = pings is not None and pings <= CHECKPOINT_EVERY  # then idle, only the pings wake it
        tasks = [asyncio.create_task(self.agent.run(self.stop, checkpoints=not pings_keep_time)),
                 asyncio.create_task(self._import_key())]
        tasks[0].add_done_callback(_report_crash)
        if pings:
            tasks.append(asyncio.create_task(self._watchdog(pings, tasks[0])))
        await self.stop.wait()
        self.notifier.stopping()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.agent.keep_time(due_only=False)  # a clean stop (a reboot's) loses no trusted time
        for server in self.servers:
            await server.close(SHUTDOWN_GRACE)  # answers still waiting on the licensing server are cut
        return 0


def run(config_path: Path | None) -> int:
    """Exit 2 for a configuration to fix, 1 for anything else that stops start-up; one line each."""
    journal.setup_logging()
    try:
        cfg = configuration.load(config_path) if config_path else configuration.Config()
        held = instance.acquire(cfg.storage.state_dir, None if listen_fds_pending() else cfg.api.socket)
    except configuration.ConfigError as exc:
        log.error("configuration refused: %s", exc)
        return 2
    except instance.AlreadyRunning as exc:
        log.error("cannot start: %s", exc)
        return 1
    except (FileExistsError, NotADirectoryError):
        log.error("cannot start: [storage] state_dir %s is not a directory (a file is in its place or on its "
                  "path): move it away or point state_dir at a directory", cfg.storage.state_dir)
        return 1
    except OSError as exc:
        log.error("cannot start: [storage] state_dir %s: %s", cfg.storage.state_dir, exc.strerror or exc)
        return 1
    notifier = Notifier.from_env()
    try:
        agent = build.agent(cfg, on_state=lambda v: notifier.status(describe(v)))
    except configuration.ConfigError as exc:
        log.error("configuration refused: %s", exc)
        return 2
    except StorageFailed as exc:
        log.error("cannot start: %s", exc.message)
        return 1
    # Not asyncio.run: it would join worker threads still waiting on a hung server, delaying the exit.
    code = asyncio.new_event_loop().run_until_complete(Daemon(cfg, config_path, agent, notifier).main())
    held.release()
    return code


def listen_fds_pending() -> bool:
    """systemd passes the socket (LISTEN_PID is ours): no socket path to lock or bind."""
    return os.environ.get("LISTEN_PID") == str(os.getpid())


"""The process around the agent: sockets, signals, systemd notifications, orderly shutdown."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
from pathlib import Path

from . import api, config as configuration, journal, legacy
from .agent import Agent
from .httpserver import Server
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


class Daemon:
    def __init__(self, cfg: configuration.Config, config_path: Path | None):
        self.config = cfg
        self.config_path = config_path
        self.notifier = Notifier.from_env()
        self.stop = asyncio.Event()
        self.agent = Agent(cfg, on_state=lambda v: self.notifier.status(describe(v)))
        self.servers: list[Server] = []

    async def _serve(self) -> None:
        server = api.make_server(self.agent, self.config.api)
        self.servers.append(server)
        inherited = listen_fds()
        if inherited:
            for sock in inherited:
                await server.listen_socket(sock)
            log.info("serving on %d socket(s) passed by systemd", len(inherited))
        else:
            path = self.config.api.socket
            api.prepare_socket_path(path)
            await server.listen_unix(str(path))
            api.secure_socket(path, self.config.api)
            log.info("serving on %s", path)
        listen = legacy.compat_listen(self.config.compat)
        if listen:
            tcp = api.make_server(self.agent, self.config.api, json_api=False)
            self.servers.append(tcp)
            try:
                await tcp.listen_tcp(*listen)
                log.info("legacy license.api also on TCP %s:%d", *listen)
            except OSError as exc:
                log.error("cannot listen on [compat] listen %s:%d (%s); license.api stays on the socket only",
                          *listen, exc.strerror or exc)

    async def _watchdog(self, interval: float, schedule: asyncio.Task) -> None:
        """Pings come from the event loop and only while the schedule runs: a stuck loop or a dead schedule
        stops them, and systemd restarts the daemon."""
        while not self.stop.is_set() and not schedule.done():
            self.notifier.watchdog()
            try:
                await asyncio.wait_for(self.stop.wait(), interval)
            except asyncio.TimeoutError:
                pass

    def _reload(self) -> None:
        self.notifier.reloading()
        try:
            new = configuration.load(self.config_path) if self.config_path else self.config
            self.agent.reload(new)
        except (configuration.ConfigError, OSError, ValueError) as exc:
            log.error("configuration reload refused, the running configuration stays: %s", exc)
        else:
            journal.event(log, logging.INFO, f"configuration reloaded from {self.config_path}",
                          message_id=journal.CONFIG_RELOADED)
        self.notifier.reloaded(describe(self.agent.refresh()))

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
        self.notifier.ready(describe(verdict))
        tasks = [asyncio.create_task(self.agent.run(self.stop))]
        tasks[0].add_done_callback(_report_crash)
        if self.notifier.watchdog_interval:
            tasks.append(asyncio.create_task(self._watchdog(self.notifier.watchdog_interval, tasks[0])))
        await self.stop.wait()
        self.notifier.stopping()
        log.info("stopping")
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for server in self.servers:
            await server.close(SHUTDOWN_GRACE)  # answers still waiting on the licensing server are cut
        return 0


def run(config_path: Path | None) -> int:
    journal.setup_logging()
    try:
        cfg = configuration.load(config_path) if config_path else configuration.Config()
        daemon = Daemon(cfg, config_path)
    except configuration.ConfigError as exc:
        log.error("configuration refused: %s", exc)
        print(f"mikolicd: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        return 1
    # Not asyncio.run: it would join worker threads still waiting on a hung server, delaying the exit.
    code = asyncio.new_event_loop().run_until_complete(daemon.main())
    daemon.agent.write_lock.acquire(timeout=SHUTDOWN_GRACE)  # let a state write in progress finish
    return code


def leave(code: int) -> None:
    """Exit without joining worker threads: one may still wait on the network, and holds no state file."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)

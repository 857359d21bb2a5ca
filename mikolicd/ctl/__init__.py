"""`mikolicctl`: the admin's terminal client for the agent's socket."""
from ..agentclient import UnixConnection  # tests import it from here until they import agentclient
from .cli import main

__all__ = ["UnixConnection", "main"]

"""`mikolicctl`: the admin's terminal client for the agent's socket."""
from .cli import main

__all__ = ["main"]

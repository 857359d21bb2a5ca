"""mikolicd: the licensing agent of a Miko PBX box."""

__version__ = "0.1.0"

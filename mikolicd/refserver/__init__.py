"""The reference licensing server: the server side of docs/protocol.md, for tests, development and small sites."""

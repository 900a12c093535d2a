"""agentwire's Python client: asyncio and python3-websockets (docs/clients.md)."""
from .client import AgentwireClient, AgentwireError, FileStorage, MemoryStorage, Run

__all__ = ["AgentwireClient", "AgentwireError", "FileStorage", "MemoryStorage", "Run"]

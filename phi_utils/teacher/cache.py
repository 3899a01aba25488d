"""Persistent response cache: one SQLite row per completed response, committed as it arrives.

The key hashes the endpoint's model identity (for a local GGUF: its sha256), the messages and every
sampling parameter including the sample index, so a re-run never pays twice while several distinct
samples per prompt stay possible. Autocommit + WAL: a crash loses no completed response, and
several processes (notebook kernels) may share one run directory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any


def cache_key(model_id: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    blob = json.dumps({"model": model_id, "messages": messages, "params": params}, sort_keys=True,
                      ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()


class ResponseCache:
    """`get(key) -> dict | None`, `put(key, response, meta)`; thread-safe."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, created REAL, "
                         "model TEXT, request TEXT, response TEXT)")

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            row = self._db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0])
        except json.JSONDecodeError:  # a corrupt row is treated as a miss and overwritten later
            return None

    def put(self, key: str, response: dict[str, Any], model: str, request: dict[str, Any]) -> None:
        data = json.dumps(response, ensure_ascii=False, default=str)
        req = json.dumps(request, ensure_ascii=False, default=str)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO responses VALUES (?, ?, ?, ?, ?)",
                             (key, time.time(), model, req, data))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

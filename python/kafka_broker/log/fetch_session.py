"""Fetch sessions (KIP-227): the state a full fetch leaves so that incremental fetches send
only changes (``FetchSession.scala``). The loop thread owns the cache; least recently used
sessions are evicted beyond ``max.incremental.fetch.session.cache.slots``."""

from __future__ import annotations

import random
import time
from collections import OrderedDict
from typing import Any

MAX_SESSIONS = 1000
INT_MAX = (1 << 31) - 1


class SessionPartition:
    __slots__ = ("topic", "topic_id", "partition", "fetch_offset", "max_bytes", "leader_epoch",
                 "hw", "log_start", "replica_log_start", "lso")

    def __init__(self, topic: str | None, topic_id: Any, partition: int) -> None:
        self.topic = topic
        self.topic_id = topic_id
        self.partition = partition
        self.fetch_offset = 0
        self.max_bytes = 0
        self.leader_epoch = -1
        self.hw = -1          # last high watermark sent (incremental: resend on change)
        self.log_start = -1
        self.lso = -1         # last stable offset sent (a marker moves it with no new records)
        self.replica_log_start = -1   # a follower's own log start, as its fetch said


class FetchSession:
    __slots__ = ("id", "epoch", "parts", "used", "uses_ids")

    def __init__(self, sid: int, uses_ids: bool) -> None:
        self.id = sid
        self.epoch = 1                      # next expected epoch
        self.parts: dict[tuple[Any, int], SessionPartition] = {}
        self.used = time.monotonic()
        self.uses_ids = uses_ids


class FetchSessionCache:
    def __init__(self, max_sessions: int = MAX_SESSIONS) -> None:
        self.max = max_sessions
        self.sessions: OrderedDict[int, FetchSession] = OrderedDict()

    def create(self, uses_ids: bool) -> FetchSession | None:
        if self.max <= 0:
            return None
        while len(self.sessions) >= self.max:
            self.sessions.popitem(last=False)      # least recently used
        while True:
            sid = random.randint(1, INT_MAX)
            if sid not in self.sessions:
                break
        s = self.sessions[sid] = FetchSession(sid, uses_ids)
        return s

    def get(self, sid: int) -> FetchSession | None:
        s = self.sessions.get(sid)
        if s is not None:
            self.sessions.move_to_end(sid)
            s.used = time.monotonic()
        return s

    def remove(self, sid: int) -> None:
        self.sessions.pop(sid, None)

    def clear(self) -> None:
        self.sessions.clear()

"""``gateway store migrate``: rename the keys of the layout before Cluster hash tags to their names now.

Run it once on the standalone Redis, with every instance of the old version stopped, before starting the new
version (then, if wanted, move the data to a Cluster: every key is slot-safe from then on). Keys are found by
``SCAN`` and renamed one by one (``RENAME`` keeps a key's TTL); a name already in the new layout matches no rule,
so running it twice changes nothing. The per-conversation timer indexes of an older layout (``hg:timers:<id>``,
their members are in ``hg:timers``) and the locks of stopped instances are deleted.
"""

from __future__ import annotations

import re

from redis.asyncio import Redis
from redis.exceptions import ResponseError

from gateway.store.redis_keys import PREFIX

SCAN_COUNT = 1000

# (old name, new name or None to delete, kind), tried in order: the first that matches applies.
_RULES: tuple[tuple[re.Pattern[str], str | None, str], ...] = tuple(
    (re.compile("^" + re.escape(PREFIX) + old + "$"), None if new is None else PREFIX + new, kind)
    for old, new, kind in (
        (r"conv:([^{].*)", r"conv:{\1}", "conversation"),
        (r"transcript:([^{].*)", r"transcript:{\1}", "transcript"),
        (r"e:([^{].*)", r"e:{\1}", "entry"),
        (r"entry:([^{].*)", r"entry:{\1}", "entry"),
        (r"outbox:item:([^{].*)", r"outbox:item:{\1}", "outbox"),
        (r"outbox:(conv:.+|heads|seq)", r"{outbox}:\1", "outbox"),
        (r"inbox:(.+)", r"{inbox}:\1", "inbox"),
        (r"queue:(.+)", r"{queue}:\1", "queue"),
        (r"(takes|held):(.+)", r"{queue}:\1:\2", "queue"),
        (r"status:(.+)", r"{index}:status:\1", "index"),
        (r"created", r"{index}:created", "index"),
        (r"timers:(.+)", None, "timers"),
        (r"lock:([^{].*)", None, "lock"),
    )
)


def new_name(old: str) -> tuple[str | None, str] | None:
    """The new name of a key of the layout before (None: deleted) and its kind; None when it keeps its name."""
    for pattern, new, kind in _RULES:
        if pattern.match(old):
            return (None if new is None else pattern.sub(new, old)), kind
    return None


async def migrate(client: Redis) -> dict[str, int]:
    """Rename (or delete) every key of the layout before; how many, by kind."""
    counts: dict[str, int] = {}
    async for raw in client.scan_iter(match=PREFIX + "*", count=SCAN_COUNT):
        old = raw.decode() if isinstance(raw, bytes) else raw
        found = new_name(old)
        if found is None:
            continue
        new, kind = found
        if new is None:
            await client.delete(old)
        else:
            try:
                await client.rename(old, new)
            except ResponseError:  # SCAN may return a key twice: renamed already
                continue
        counts[kind] = counts.get(kind, 0) + 1
    return counts

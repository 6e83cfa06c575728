"""An instance sending a listener's reply that stops for good mid-send, for its test to ``kill -9`` (a process of its
own: nothing of it runs after the kill, its locks and claims are left as a dead instance leaves them).

``python -m tests.console.dying_reply <store url> <conversation id> <key> <point> <now, ISO> [<action>]``: Anne's
reply ``TEXT`` sent under the console's ``key`` on the store (its clock fixed at ``now``), the instance stopping
(prints ``dying <claim key>``, then waits for ever, its conversation's lock still held and renewed) at ``point``:
``claimed`` (its reply key claimed, nothing written) or ``written`` (its entry and outbox item written, before the
record's save that marks the key done). ``action`` ``hand_back``: Anne's hand-back under ``key`` instead, stopped
once its key is claimed. Used by ``tests/console/test_reply_taken_over.py``.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime
from typing import Any

from gateway.store import open_store
from gateway.testing import store_keys
from tests.conftest import Clock
from tests.console.test_handback_crash import Dying, instance

TEXT = "Je suis là, prends ton temps."


class Stops(Dying):
    """The real store, whose instance stops at ``point`` of the reply's send (and never goes on)."""

    def __init__(self, store: Any, point: str) -> None:
        super().__init__(store)
        self.point, self.key = point, ""

    async def _stop(self) -> None:
        print(f"dying {self.key}", flush=True)
        await asyncio.Event().wait()  # the test kills the process meanwhile

    async def claim(self, key: str, owner: str, lease_seconds: float, **options: Any) -> Any:
        state = await self._store.claim(key, owner, lease_seconds, **options)
        if key.startswith(("reply:", "hand_back:")):
            self.key = key
            if self.point == "claimed":
                await self._stop()
        return state

    async def save_conversation(self, conversation: Any, **options: Any) -> None:
        if self.point == "written" and options.get("done") is not None:
            await self._stop()
        await self._store.save_conversation(conversation, **options)


async def main(url: str, conversation_id: str, key: str, point: str, now: str, action: str = "reply") -> None:
    store = await open_store(url, keys=store_keys(url))
    clock = Clock(datetime.fromisoformat(now))
    use_clock = getattr(store, "use_clock", None)
    if use_clock is not None:  # Redis: the claim's lease on the app's clock, as ``gateway/app.py`` sets it
        use_clock(clock)
    _, actions = instance(Stops(store, point), clock)
    if action == "hand_back":
        await actions.hand_back(conversation_id, "anne", key=key)
    else:
        await actions.reply(conversation_id, "anne", TEXT, key)
    print("sent", flush=True)  # never: the test kills it first


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:7]))

"""bench/chaos_webchat.py's audit of one network's pages at its cap (``audit_crowd``): each refused page's words of
danger acknowledged and recorded once, otherwise the reason, per page (since 2026-12-07: before, the line gave only
"otherwise 2", and which of a refusal, a silence, a loss at a failover or the audit's own token was left to guess).
Made-up pages and a made-up store count; no process is started."""

from __future__ import annotations

from collections import Counter
from typing import cast

from aiohttp import ClientSession

from bench.chaos_webchat import Crowd, Tally, WebChatClient, WebChats, audit_crowd
from gateway.ids import inbound_entry_id
from gateway.messages import ChannelName, Inbound


def page(number: int) -> WebChatClient:
    """A page whose hello was refused and which was given its words of danger (``crowd_at_cap``)."""
    client = WebChatClient(cast(ClientSession, None), lambda: "http://127.0.0.1:1", "10.252.0.1", number, Tally())
    client.socket, client.hello_refusals = 1, 1
    client.flooded.append(f"k{number}")
    client.sent[f"k{number}"] = 1
    return client


def recorded(users: Counter[str], token: str, message_id: str, times: int = 1) -> None:
    users[inbound_entry_id(Inbound(ChannelName.WEBCHAT, token, message_id))] += times


def acked(client: WebChatClient, token: str, at: float = 10.0) -> None:
    client.tokens.append(token)
    client.acknowledged[client.flooded[0]], client.acked_at[client.flooded[0]] = token, at


def test_each_page_otherwise_says_why_and_names_nobody() -> None:
    users: Counter[str] = Counter()
    ok, refused, lost, elsewhere, twice, silent = (page(n) for n in range(6))
    acked(ok, "tok-ok")
    recorded(users, "tok-ok", "k0")
    refused.refused["k1"], refused.refused_why["k1"] = 1, "client_full"
    acked(lost, "tok-lost", at=50.0)
    acked(elsewhere, "tok-elsewhere")
    recorded(users, "tok-other", "k3")  # under a token no session frame gave the page
    acked(twice, "tok-twice")
    recorded(users, "tok-twice", "k4", times=2)
    chats = WebChats(cast(ClientSession, None), lambda: "")
    chats.crowd = [ok, refused, lost, elsewhere, twice, silent]
    crowd = Crowd()
    audit_crowd(chats, users, crowd, {"tok-ok", "tok-other", "tok-twice"}, lambda at: at > 40.0)
    assert (crowd.danger_acked, crowd.danger_not) == (1, 5)
    reasons = sorted(crowd.why_not)
    assert [r.split(";")[0] for r in reasons] == [
        "acknowledged, never recorded (within a failover window)",
        "acknowledged, recorded 1 under a token the page never got (the audit's)",
        "acknowledged, recorded 2 times",
        "refused client_full (1 frames), recorded 0",
        "sent 1 times, never acknowledged nor refused, recorded 0",
    ]
    assert not any("tok-" in r or "mourir" in r for r in reasons)


def test_a_flood_pages_acknowledged_messages_lost_at_a_failover_are_told_apart() -> None:
    """``audit_flood``'s "acknowledged and lost" split by whether each ack came within 2 s of a failover (since
    2026-12-07: a ``--sentinel --floods`` soak printed "acknowledged and lost 5" for the web floods and nothing said
    whether replication's documented loss explained them, as the walks' line and the provider floods' do)."""
    from bench.chaos_webchat import FloodRules, WebFlood, audit_flood

    client = WebChatClient(cast(ClientSession, None), lambda: "http://127.0.0.1:1", "10.251.0.1", 1, Tally())
    client.tokens.append("tok")
    for index, at in enumerate([10.0, 45.0, 46.0, 12.0]):
        client.flooded.append(f"f{index}")
        client.acknowledged[f"f{index}"], client.acked_at[f"f{index}"] = "tok", at
    recorded(users := Counter[str](), "tok", "f0")
    flood = WebFlood()
    audit_flood(
        client, users, FloodRules(limit=20, risky=10, unread=10, danger_at=frozenset()), flood, lambda at: at > 40
    )
    assert (flood.once, flood.lost, flood.lost_at_failover) == (1, 3, 2)


def test_a_listeners_message_to_a_flood_or_crowd_page_is_received_there() -> None:
    """``--floods --console``: the flood's and the crowd's pages tell words of danger, their conversations are queued
    and taken, and a listener's message reaches them; the console's audit reads every page (``WebChats.received``).
    Until 2026-12-07 (night) it read the walks' pages alone, and each such message was "never received"."""
    session = cast(ClientSession, None)
    chats = WebChats(session, lambda: "http://127.0.0.1:1")
    walk, flooding, held = page(1), page(2), page(3)
    chats.clients.append(walk)
    chats.floods.append(flooding)
    chats.crowd.append(held)
    walk.received["e-walk"] += 1
    flooding.received["e-flood"] += 1
    held.received["e-crowd"] += 2
    assert [chats.received(e) for e in ("e-walk", "e-flood", "e-crowd", "e-none")] == [1, 1, 2, 0]

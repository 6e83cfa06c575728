"""Entries the server writes for the listeners (author ``system``), as a code and its parameters.

The console words each one in its own language (``system.<code>`` in ``gateway/console/static/i18n.js``, French
and English); the entry's ``text`` keeps the French then the English wording, for whatever reads the transcript
as text (exports, an older console). Parameters are plain strings; ``channel`` is a channel's name and
``author`` is ``bot`` or ``listener``, which the console translates too.
"""

from __future__ import annotations

from collections.abc import Mapping

from gateway.store import SystemText

TEXTS: dict[str, tuple[str, str]] = {
    "left.quick_exit": (
        "Le ou la jeune a quitté le chat avec la sortie rapide : il ou elle ne lit plus cette conversation.",
        "The young person left with the quick exit: they no longer read this conversation.",
    ),
    "left.ended": ("Le ou la jeune a terminé la conversation.", "The young person ended the conversation."),
    "left.gone": (
        "Le ou la jeune a fermé le chat (plus connecté·e depuis 90 s).",
        "The young person closed the chat (not connected for 90 s).",
    ),
    "left.back": ("Le ou la jeune est revenu·e sur le chat.", "The young person is back on the chat."),
    "left.blocked": (
        "Le ou la jeune a bloqué la ligne ou s'est désabonné·e sur {channel} : les messages ne lui parviennent plus.",
        "The young person blocked the line or unsubscribed on {channel}: messages no longer reach them.",
    ),
    "left.unblocked": (
        "Le ou la jeune accepte de nouveau les messages sur {channel}.",
        "The young person accepts messages on {channel} again.",
    ),
    "restarted": (
        "Le ou la jeune a rouvert le fil {channel} avec un bouton (« Démarrer », le menu de la page, /start), sans rien"
        " écrire : s'il ou elle l'avait effacé, les messages d'avant ne s'affichent plus de son côté.",
        "The young person reopened the {channel} thread with a button (“Get Started”, the page's menu, /start), writing"
        " nothing: if they had deleted it, the earlier messages no longer show on their side.",
    ),
    "not_sent": (
        "Non envoyé : {channel} n'accepte les messages ({author}) que jusqu'à {hours} h après le dernier message du"
        " jeune."
        " Le message était : {text}",
        "Not sent: {channel} lets the {author} write up to {hours} h after the young person's last message."
        " The message was: {text}",
    ),
    "not_sent.unsubscribed": (
        "Non envoyé : la personne s'est désabonnée ({channel}, STOP) : tes messages ne lui parviennent plus tant"
        " qu'elle n'envoie pas START. Le message était : {text}",
        "Not sent: the person unsubscribed ({channel}, STOP): your messages no longer reach them until they send"
        " START. The message was: {text}",
    ),
    "bot_failed.resent": (
        "Un message du bot n'a pas atteint le ou la jeune ({channel}, erreur {error}, passagère) : il est renvoyé une"
        " fois.",
        "A bot message did not reach the young person ({channel}, error {error}, transient): it is sent again once.",
    ),
    "bot_failed.final": (
        "Un message du bot n'a pas atteint le ou la jeune ({channel}, erreur {error}) : il n'est pas renvoyé (« échec »"
        " dans la conversation).",
        "A bot message did not reach the young person ({channel}, error {error}): it is not sent again (“failed” in"
        " the conversation).",
    ),
    "queue_paused": (
        "Messages d'attente suspendus : {channel} laisse le bot écrire jusqu'à {hours} h après le dernier message"
        " du jeune. Un·e écoutant·e qui prend la conversation peut encore écrire (voir sa fenêtre de réponse).",
        "Queue messages paused: {channel} lets the bot write up to {hours} h after the young person's last message."
        " A listener who takes the conversation can still write (see its reply window).",
    ),
}


def system_text(code: str, params: Mapping[str, str]) -> tuple[SystemText, str]:
    """The entry's code and parameters, and its French · English text. A code not in :data:`TEXTS` is a bug."""
    french, english = TEXTS[code]
    text = f"{french.format_map(dict(params))} · {english.format_map(dict(params))}"
    return SystemText(code, tuple(sorted(params.items()))), text

"""The words of a takedown notice (EU Digital Services Act, art. 16 and 22), its JSON record, and its e-mail.

A notice states (a) why the content is illegal (the category's explanation and legal ground, the listener's
description), (b) its exact location (every URL or handle), (c) the notifier: the helpline, never the young
person, (d) a statement of good faith, and the helpline's trusted-flagger status. It is written in the
platform's language (French or English; another language gets the English frame around the flow's texts).
Child sexual abuse material is located only: no file is ever attached, and the notice says it is also
reported to ``csam_also_to`` (Pharos).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

from gateway.flows.model import Flow
from gateway.notices.record import Evidence, Notice

_FRAME: dict[str, dict[str, str]] = {
    "fr": {
        "subject": "[Signaleur de confiance] {category} - réf. {ref}",
        "hello": "À l'attention de l'équipe de modération de {platform},",
        "intro": "{notifier} vous adresse cette notification au titre de l'article 16 du règlement (UE) 2022/2065"
        " (règlement sur les services numériques), en qualité de signaleur de confiance (article 22) : {status}."
        " Merci de la traiter en priorité.",
        "where": "1. Contenu à retirer (emplacement exact)",
        "why": "2. Pourquoi ce contenu est illicite",
        "category": "Catégorie", "ground": "Fondement juridique", "details": "Précisions",
        "evidence": "3. Preuves",
        "files": "{n} fichier(s) joint(s) : {names}.",
        "no_files": "Aucun fichier joint.",
        "csam": "Aucun fichier joint : un contenu pédocriminel est seulement localisé, jamais copié."
        " Il est aussi signalé à {also}.",
        "notifier": "4. Auteur de la notification",
        "reference": "Référence : {ref}. Merci de répondre à cette adresse en rappelant la référence, pour nous"
        " confirmer la réception puis nous informer de votre décision et des voies de recours.",
        "faith": "5. Déclaration de bonne foi",
        "faith_text": "{notifier} déclare de bonne foi que les informations et allégations contenues dans cette"
        " notification sont exactes et complètes.",
        "minor": "La personne concernée est une personne mineure qui a contacté notre ligne d'écoute ; pour la"
        " protéger, son identité n'est pas communiquée.",
    },
    "en": {
        "subject": "[Trusted flagger notice] {category} - ref. {ref}",
        "hello": "To the {platform} trust and safety team,",
        "intro": "{notifier} submits this notice under Article 16 of Regulation (EU) 2022/2065 (Digital Services"
        " Act), as a trusted flagger (Article 22): {status}. Please process it with priority.",
        "where": "1. Content to remove (exact location)",
        "why": "2. Why this content is illegal",
        "category": "Category", "ground": "Legal ground", "details": "Details",
        "evidence": "3. Evidence",
        "files": "{n} file(s) attached: {names}.",
        "no_files": "No file attached.",
        "csam": "No file attached: child sexual abuse material is only located, never copied. It is also"
        " reported to {also}.",
        "notifier": "4. Notifier",
        "reference": "Reference: {ref}. Please reply to this address quoting the reference, to confirm receipt"
        " and then to inform us of your decision and of the possibilities for redress.",
        "faith": "5. Statement of good faith",
        "faith_text": "{notifier} states in good faith that the information and allegations in this notice are"
        " accurate and complete.",
        "minor": "The person concerned is a minor who contacted our helpline; for their protection, their"
        " identity is not shared.",
    },
}  # fmt: skip


@dataclass(frozen=True)
class Composed:
    subject: str
    text: str
    record: dict[str, Any]


def reference(notice: Notice) -> str:
    return "N-" + notice.id[:10].upper()


def not_in_flow(notice: Notice, flow: Flow) -> list[str]:
    """What of the notice (``platform``, ``category``) a flows.yaml reload removed since it was written: its words
    can no longer be composed (it is listed with what it recorded, and never sent)."""
    platform, category = notice.platform not in flow.platforms, notice.category not in flow.notice_categories
    return ["platform"] * platform + ["category"] * category


def compose(notice: Notice, flow: Flow, files: list[Evidence]) -> Composed:
    """The notice's subject, plain text and JSON record, in the platform's language; its platform and category are
    in the flow (:func:`not_in_flow` says when not)."""
    assert flow.notices is not None  # a notice exists only when the flow has a notices section
    platform, category = flow.platforms[notice.platform], flow.notice_categories[notice.category]
    lang, notifier = notice.language, flow.notices.notifier
    frame = _FRAME.get(lang, _FRAME["en"])
    also = flow.platforms[flow.notices.csam_also_to].name if flow.notices.csam_also_to else ""
    values = {"ref": reference(notice), "platform": platform.name, "notifier": notifier.name,
              "status": _text(notifier.trusted_flagger, lang), "category": _text(category.label, lang),
              "also": also, "n": str(len(files)), "names": ", ".join(f.name for f in files)}  # fmt: skip

    def say(key: str) -> str:
        return frame[key].format(**values)

    evidence = say("csam") if notice.csam else say("files") if files else say("no_files")
    colon = " :" if lang == "fr" else ":"
    details = [f"   {frame['details']}{colon} {notice.description}"] if notice.description else []
    lines = [
        say("hello"), "", say("intro"), "",
        say("where"), *(f"   - {location}" for location in notice.locations), "",
        say("why"), f"   {frame['category']}{colon} {values['category']}",
        f"   {frame['ground']}{colon} {_text(category.ground, lang)}", f"   {_text(category.explanation, lang)}",
        *details, "", say("evidence"), f"   {evidence}", "",
        say("notifier"), f"   {notifier.name} - {notifier.email}", f"   {values['status']}", f"   {say('reference')}",
        "", say("faith"), f"   {say('faith_text')}", "", say("minor"), "",
    ]  # fmt: skip
    record = {
        "reference": values["ref"], "regulation": "EU 2022/2065 art. 16, 22", "language": lang,
        "notifier": {"name": notifier.name, "email": notifier.email, "trusted_flagger": True,
                     "status": values["status"]},
        "platform": {"id": notice.platform, "name": platform.name},
        "category": {"id": notice.category, "label": values["category"], "legal_ground": _text(category.ground, lang)},
        "explanation": _text(category.explanation, lang), "description": notice.description,
        "locations": list(notice.locations), "csam": notice.csam,
        "also_reported_to": also if notice.csam else None,
        "evidence": [{"name": f.name, "content_type": f.content_type, "sha256": hashlib.sha256(f.data).hexdigest()}
                     for f in files],
        "good_faith_statement": say("faith_text"), "created_at": notice.created_at.isoformat(),
    }  # fmt: skip
    return Composed(say("subject"), "\n".join(lines), record)


def notice_email(composed: Composed, flow: Flow, to: str, files: list[Evidence]) -> EmailMessage:
    """The plain-text e-mail, the evidence files and the JSON record attached."""
    assert flow.notices is not None
    sender = flow.notices.notifier.email
    message = _message(sender, to, composed.subject, composed.text)
    for evidence in files:
        maintype, _, subtype = evidence.content_type.partition("/")
        message.add_attachment(evidence.data, maintype=maintype or "application",
                               subtype=subtype or "octet-stream", filename=evidence.name)  # fmt: skip
    record = json.dumps(composed.record, ensure_ascii=False, indent=2).encode()
    message.add_attachment(record, maintype="application", subtype="json",
                           filename=f"{composed.record['reference']}.json")  # fmt: skip
    return message


def plain_email(sender: str, to: str, subject: str, text: str) -> EmailMessage:
    return _message(sender, to, subject, text)


def _message(sender: str, to: str, subject: str, text: str) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message.set_content(text)
    return message


def _text(text: dict[str, str], lang: str) -> str:
    return text.get(lang) or next(iter(text.values()), "")

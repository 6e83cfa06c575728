"""A small but complete flow used by the engine, scenario and CLI tests."""

from __future__ import annotations

import pytest

from gateway.flows.engine import Engine
from gateway.flows.loader import load_text
from gateway.flows.positions import LoadedFlow

MINI_FLOW = """
flow: {id: mini, name: Mini}
languages: [fr, en]
timezone: Europe/Paris
start: welcome
retries: 1
fallback: {queue: listeners, priority: high}
summary: [urgency, age, topic]
fields:
  urgency: {label: {fr: Urgence, en: Urgency}}
  age: {label: {fr: Âge, en: Age}}
  topic: {label: {fr: Sujet, en: Topic}}
schedules:
  day: {weekly: {daily: ["09:00-23:00"]}}
queues:
  listeners: {name: {fr: Écoutants, en: Listeners}, schedule: day}
partners:
  "119": {name: {fr: Le 119, en: The 119}, phone: "119", message: {fr: Appelle le 119., en: Call 119.}}
  pharos:
    name: {fr: Pharos, en: Pharos}
    url: https://www.internet-signalement.gouv.fr
    message: {fr: Signale sur Pharos., en: Report on Pharos.}
messages:
  not_understood: {fr: Je n'ai pas compris., en: I did not understand.}
  prefer_not_to_say: {fr: Je préfère ne pas dire, en: I'd rather not say}
  closed_line: {fr: "Ligne fermée ({hours}), réouverture {reopens}.", en: "Line closed ({hours}), reopens {reopens}."}
  queued: {fr: "Position {position}, {wait} min.", en: "Position {position}, {wait} min."}
  queued_offline: {fr: "Position {position}, personne en ligne.", en: "Position {position}, nobody online."}
  reassurance: {fr: "Toujours là ({position}).", en: "Still here ({position})."}
  reminder: {fr: "Tu es là ?", en: "Are you there?"}
  abandoned: {fr: Au revoir., en: Goodbye.}
  ended: {fr: Fin., en: End.}
  offer_listener: {fr: "Veux-tu parler à un écoutant ?", en: "Do you want to talk to a listener?"}
  offer_yes: {fr: Oui, en: "Yes"}
  offer_no: {fr: Non merci, en: No thanks}
  listener_joined: {fr: Un écoutant arrive., en: A listener joins.}
  idle_closed: {fr: Conversation fermée., en: Conversation closed.}
  rate_limited: {fr: "Trop vite, 119, 3114, 17 ou 112.", en: "Too fast, 119, 3114, 17 or 112."}
  blocked: {fr: "Pas possible, 119, 3114, 17 ou 112.", en: "Not possible, 119, 3114, 17 or 112."}
steps:
  welcome:
    say: {fr: "Bienvenue, c'est confidentiel.", en: "Welcome, it is confidential."}
    next: urgency
  urgency:
    ask: {fr: "Es-tu en danger ?", en: "Are you in danger?"}
    choices:
      - {value: yes_now, label: {fr: Oui, en: "Yes"}, synonyms: {fr: [danger], en: [danger]}}
      - {value: no, label: {fr: Non, en: "No"}}
    store: urgency
    next:
      - {when: {field: urgency, equals: yes_now}, goto: route}
      - {goto: language}
  language:
    ask: {fr: "Quelle langue ?", en: "Which language?"}
    choices:
      - {value: fr, label: {fr: Français, en: French}}
      - {value: en, label: {fr: Anglais, en: English}}
    store: language
    next: age
  age:
    ask: {fr: "Quel âge as-tu ?", en: "How old are you?"}
    number: {min: 5, max: 99}
    store: age
    next: topic
  topic:
    ask: {fr: "Que se passe-t-il ?", en: "What is happening?"}
    choices:
      - {value: harassment, label: {fr: Harcèlement, en: Harassment}, synonyms: {fr: [on m'insulte], en: [bullied]}}
      - {value: images, label: {fr: Images intimes, en: Intimate images}, synonyms: {fr: [nudes], en: [nudes]}}
      - {value: home, label: {fr: À la maison, en: At home}}
    store: topic
    next: details
  details:
    ask: {fr: Raconte en quelques mots., en: Tell me in a few words.}
    text: {max_length: 50}
    store: details
    next: route
interrupts:
  danger:
    match: {fr: [je veux mourir], en: [i want to die]}
    then:
      say: {fr: Ta sécurité d'abord., en: Your safety first.}
      handoff: listeners
      priority: urgent
      refer: ["119"]
  stop:
    match: {fr: [stop], en: [stop]}
    then: {say: {fr: "D'accord, au revoir.", en: "OK, goodbye."}}
routing:
  - name: danger
    when: {field: urgency, equals: yes_now}
    then: {handoff: listeners, priority: urgent, refer: ["119"]}
  - name: home
    when: {field: topic, equals: home}
    then: {refer: ["119"], offer_listener: listeners}
  - name: images
    when: {all: [{field: topic, equals: images}, {closed: listeners}]}
    then: {refer: [pharos]}
  - name: default
    then: {handoff: listeners, priority: normal}
"""


@pytest.fixture(scope="session")
def mini_loaded() -> LoadedFlow:
    loaded, problems = load_text(MINI_FLOW, "mini.yaml")
    assert problems == []
    assert loaded is not None
    return loaded


@pytest.fixture(scope="session")
def engine(mini_loaded: LoadedFlow) -> Engine:
    return Engine(mini_loaded)

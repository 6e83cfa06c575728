"""How a record's text is made shorter before it is sealed (:mod:`gateway.crypto`), and read back.

A sealed plaintext starts with one byte saying how it was packed, or with the record's JSON itself (``{`` or
``[``: never a control byte):

* ``\\x00`` (``PACKED``): zlib, for any kind of record of ``PACK_FROM`` bytes or more, when shorter (since
  2026-11-30);
* ``\\x01`` (``RECORD_V1``): raw deflate with :data:`RECORD_WORDS_1` as its preset dictionary, for the conversation
  record whatever its length, when shorter (since 2026-12-07). A record is a few hundred bytes of JSON whose field
  names and usual values repeat from one record to the next but hardly within one: zlib alone had little to work
  with (844 → 472 bytes in ``bench/load.py --bytes --real-ids``); with the words of a typical record given before
  it, 160 bytes. The packed form has no checksum of its own: AES-GCM authenticates what was sealed.

A preset dictionary can never change once records were written with it (they could not be read again): a better
one is added under a new head byte, and the old one kept for reading. ``tests/test_packing.py`` pins it. An
instance of a version before a head byte reads such a record as altered (docs/deployment.md, "Upgrading").
"""

from __future__ import annotations

import zlib

PACKED = b"\x00"  # a sealed plaintext starting with it is zlib-compressed (a record's JSON never starts with NUL)
PACK_FROM = 512  # records at least this long are sealed compressed when that is shorter
RECORD_V1 = b"\x01"  # the conversation record, raw deflate with RECORD_WORDS_1 as preset dictionary

# The words of typical conversation records of the default flows.yaml, in French and English, at several stages
# (a queued one last: the most common in the store). Never change it (see the module docstring).
RECORD_WORDS_1 = (
    '{"id":"","channel":"webchat","sender":"","pseudonym":"Loutre-","created_at":17,"updated_at":17,'
    '"status":"closed","engine":{"flow_version":"","channel":"webchat","language":"fr","step":"details",'
    '"fields":{"urgency":"no","language":"fr","age":"13","who":"witness","topic":"school_bullying","home":"yes",'
    '"details":""},"attempts":1,"offer":"listeners","offer_route":"","offer_partners":["119"],"how":{"urgency":'
    '"typed","language":"earlier:","age":"model:0.","who":"synonym:","topic":"interrupt:","home":"button"},'
    '"noted":{},"closed_told":"","again":1,"greeted":true},"flow_version":"","queue":"listeners",'
    '"priority":"normal","summary":[["Langue","Français"],["Violences à la maison","Oui"],["Qui écrit","Pour moi"],'
    '["Sujet","Harcèlement scolaire"],["Sujet","Cyberharcèlement"],["Sujet","Photos intimes diffusées"],'
    '["Sujet","Compte piraté, usurpation"],["Sujet","Chantage, sextorsion"],["Qui écrit","Ami·e ou témoin"],'
    '["Who is writing","For me"],["Topic","Cyberbullying"],["Topic","Intimate images shared"],'
    '["Topic","Sextortion, blackmail"],["Topic","Hacked account, identity theft"],["Topic","School bullying"],'
    '["Immediate danger","No"],["Age","14"],["Who is writing","Parent or relative"],["Topic","Shocking content"]],'
    '"route":"harm_at_home","listener":"","outcome":"","taken_at":17,"first_wait_seconds":1,"closed_at":17,'
    '"client":"","left_at":17,"left_how":"quick_exit","unblocked_at":17,"flag":{"risk":"suicide","score":0.9,'
    '"source":"model","words":[]},"erase_asked_at":17,"purged_at":17,"closed_notice_for":17,"closed_told_at":17,'
    '"window_paused_for":17,"standby_at":17,"flagged_at":17,"page_opened_at":17,"partners_given":["3114","17"],'
    '"partners_owed":["116006"],"interrupts_said":["emergency"],"page_answered_at":17,"alert":"danger_now"}'
    '{"id":"","channel":"telegram","sender":"","pseudonym":"Hibou-","status":"with_listener","engine":'
    '{"flow_version":"","channel":"whatsapp","language":"en","fields":{"urgency":"yes_now","language":"en",'
    '"age":"16","who":"professional","topic":"sextortion","details":""},"finished":true,"how":{"urgency":'
    '"button","language":"button","age":"typed","who":"button","topic":"button","details":"typed"},"said":""},'
    '"flow_version":"","queue":"listeners","priority":"urgent","summary":[["Danger immédiat","Oui, maintenant"],'
    '["Âge","15"],["Qui écrit","Professionnel·le"],["Sujet","Écrans, jeux vidéo"],["Sujet","Autre chose"]],'
    '"route":"illegal_content_open","alert":"unsure_danger","partners_given":["pharos"]}'
    '{"id":"","channel":"messenger","sender":"","pseudonym":"","created_at":17,"updated_at":17,"status":"queued",'
    '"engine":{"flow_version":"","channel":"messenger","language":"fr","fields":{"urgency":"unsure",'
    '"language":"fr","age":"15","who":"parent","topic":"cyberharassment","details":""},"finished":true,"how":'
    '{"urgency":"button","language":"button","age":"typed","who":"button","topic":"button","details":"typed"},'
    '"said":""},"flow_version":"","queue":"listeners","priority":"high","summary":[["Danger immédiat",'
    '"Je ne sais pas"],["Âge","15"],["Qui écrit","Parent ou proche"],["Sujet","Contenu choquant"]],'
    '"route":"listeners_open","last_inbound_at":17,"queued_at":17,"waiting_since":17,"alert":"unsure_danger"}'
).encode()

_PRESETS = {"conversation": (RECORD_V1, RECORD_WORDS_1)}  # kind -> (head, preset dictionary) it is packed with


def pack(kind: str, data: bytes) -> bytes:
    """``data`` (a record's JSON) as it is sealed: packed with its kind's preset dictionary when it has one, else
    with zlib from ``PACK_FROM`` bytes, each only when shorter. The preset's packer has zlib's default memory level
    (8; until 2026-12-07 9, whose 128 KiB tables were allocated and cleared for each record: 27 → 15 µs a record, 1.3 %
    of a message's CPU in ``bench/path.py``): its bytes are the same for a record (``tests/test_packing.py``)."""
    if preset := _PRESETS.get(kind):
        head, words = preset
        packer = zlib.compressobj(6, zlib.DEFLATED, -15, 8, zlib.Z_DEFAULT_STRATEGY, words)
        packed = head + packer.compress(data) + packer.flush()
        return packed if len(packed) < len(data) else data
    if len(data) >= PACK_FROM and len(packed := PACKED + zlib.compress(data, 1)) < len(data):
        return packed
    return data


def unpack(kind: str, data: bytes) -> bytes:
    """What :func:`pack` was given. zlib.error when the packed bytes are not exactly one whole stream (cut short,
    or bytes after its end: never for what was sealed, AES-GCM authenticated it)."""
    if data.startswith(PACKED):
        return _inflate(zlib.decompressobj(), data[1:])
    if (preset := _PRESETS.get(kind)) and data.startswith(preset[0]):
        return _inflate(zlib.decompressobj(-15, zdict=preset[1]), data[1:])
    return data


def _inflate(unpacker: zlib._Decompress, data: bytes) -> bytes:
    unpacked = unpacker.decompress(data) + unpacker.flush()
    if not unpacker.eof:
        raise zlib.error("a packed record cut short")
    if unpacker.unused_data:  # until 2026-12-07 dropped silently: a record read as whole that was not what was packed
        raise zlib.error("bytes after a packed record's end")
    return unpacked

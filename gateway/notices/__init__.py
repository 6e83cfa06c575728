"""What listeners do after the chat: takedown notices to platforms, and warm referrals to partners.

    record.py      the Notice and Referral records, their life cycles, how the store keeps them
    locations.py   content locations: URLs validated and normalised, handles where no URL exists
    compose.py     the notice text (DSA art. 16 and 22, in the platform's language), its JSON record, the e-mails
    service.py     create, send or mark filed, follow up, tell the young person, reminders, evidence retention
    referrals.py   consent, the reviewed summary, sending and follow-up
    inbound.py     partners' referrals to the helpline: a queued web chat conversation, opened by a one-time link
    stats.py       the period's figures for supervision and the CSV
    api.py         the console's routes for both

Nothing here ever carries the young person's identity: a notice names the helpline as notifier and the
conversation only by its pseudonym; a referral gives the partner a way back through the helpline.
"""

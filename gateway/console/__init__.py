"""The listeners' side: accounts and sessions (auth), actions on conversations, the HTTP+websocket API."""

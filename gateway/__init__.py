"""helpline-gateway: a multi-channel chatbot gateway for youth helplines."""

__version__ = "0.1.0"

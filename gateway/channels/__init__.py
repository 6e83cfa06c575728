"""Channel adapters: one module per messaging platform, all behind :class:`~gateway.channels.base.Channel`.

``base`` holds the Protocols (``Channel`` and the optional abilities ``Lifecycle``, ``TypingIndicator``,
``MediaFetcher``, ``ReplyWindow``), the ``Batch`` a webhook request becomes, and the helpers the adapters share.
``messenger.MessengerChannel``, ``whatsapp.WhatsAppChannel`` (through Twilio) and ``telegram.TelegramChannel``
each know their own platform only and import nothing of the gateway but ``messages``, ``settings`` and
``errors``. They are imported from their modules, so that importing this package does not load every SDK.
"""

from gateway.channels.base import Batch, Channel, Lifecycle, MediaFetcher, ReplyWindow, TypingIndicator

__all__ = ["Batch", "Channel", "Lifecycle", "MediaFetcher", "ReplyWindow", "TypingIndicator"]

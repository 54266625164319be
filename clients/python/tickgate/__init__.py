"""tickgate: the Python client of the tickgate market-data gateway.

    async with tickgate.connect(url, token=tok) as c:
        await c.subscribe(["AAPL"])
        async for u in c.updates():      # price_update dicts, across reconnects
            ...

Reconnects with exponential backoff and full jitter (and obeys the
server's `reconnect` advisory), resumes every symbol with `recover` from
the last seq/epoch it saw, drops duplicates by seq, answers requests by id
with timeouts, and types every error (tickgate.errors)."""
from .backoff import Backoff
from .client import Client, connect
from .errors import (ClientClosed, Disconnected, Forbidden, InvalidSymbol, LimitExceeded, NotEntitled,
                     RequestTimeout, SubscriptionError, TickgateError, UnknownSymbol)

__version__ = "0.1.0"
__all__ = ["Backoff", "Client", "connect", "TickgateError", "SubscriptionError", "UnknownSymbol",
           "InvalidSymbol", "LimitExceeded", "NotEntitled", "RequestTimeout", "Disconnected",
           "ClientClosed", "Forbidden", "__version__"]

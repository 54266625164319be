"""Typed errors. Every failure the client reports is a TickgateError; its
`code` says what happened: a server error code (invalid_message,
forbidden, rate_limited, auth_failed, ...), subscription_failed
(SubscriptionError and its subclasses by reason), trade_rejected, timeout,
disconnected, closed, queue_full."""


class TickgateError(Exception):
    """code: what happened; message: the server's or the client's words;
    request: the message that failed, when there was one."""

    def __init__(self, code, message=None, **extra):
        super().__init__(message or code)
        self.code = code
        self.message = message or code
        self.request = extra.pop("request", None)
        for k, v in extra.items():
            setattr(self, k, v)


class RequestTimeout(TickgateError):
    """No reply within the request's timeout (code `timeout`)."""


class Disconnected(TickgateError):
    """The connection was lost before the reply, and the request is not one
    that is safe to send again (trade, publish, authenticate,
    admin_broadcast): the server may or may not have acted on it."""


class ClientClosed(TickgateError):
    """The client was closed, or gave up (a fatal close code)."""


class Forbidden(TickgateError):
    """The server's `forbidden`: the role may not, or the identity is not
    entitled to the symbol."""


class SubscriptionError(TickgateError):
    """A subscribe where at least one symbol failed. `reason` and `symbols`
    are those of the first failure (the server sends them in the order
    invalid_symbol, unknown_symbol, limit_exceeded, not_entitled);
    `failures` lists every (reason, symbols); `confirmed` is the
    subscription_confirmed of the accepted symbols (they stay subscribed),
    or None."""

    def __init__(self, failures, confirmed=None):
        reason, symbols = failures[0]
        super().__init__("subscription_failed", "%s: %s" % (reason, ", ".join(symbols)),
                         reason=reason, symbols=list(symbols), failures=list(failures),
                         confirmed=confirmed)


class InvalidSymbol(SubscriptionError):
    pass


class UnknownSymbol(SubscriptionError):
    pass


class LimitExceeded(SubscriptionError):
    pass


class NotEntitled(SubscriptionError):
    pass


_BY_REASON = {"invalid_symbol": InvalidSymbol, "unknown_symbol": UnknownSymbol,
              "limit_exceeded": LimitExceeded, "not_entitled": NotEntitled}
_BY_CODE = {"timeout": RequestTimeout, "disconnected": Disconnected, "closed": ClientClosed,
            "forbidden": Forbidden}


def subscription_error(failures, confirmed=None):
    """The SubscriptionError subclass of the first failure's reason."""
    return _BY_REASON.get(failures[0][0], SubscriptionError)(failures, confirmed)


def error(code, message=None, **extra):
    """A TickgateError of the class for code."""
    return _BY_CODE.get(code, TickgateError)(code, message, **extra)

"""Reconnect delays: exponential backoff with full jitter. Attempt n
(0-based) waits a uniform random time in [0, min(max_s, initial_s *
factor**n)): a crowd of clients that lost the same node comes back spread
over the whole window instead of in waves."""
import random as _random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    def ceiling(self, attempt):
        """min(max_s, initial_s * factor**attempt)."""
        attempt = max(0, attempt)
        if attempt > 64:  # factor**attempt would overflow long before
            return self.max_s
        return min(self.max_s, self.initial_s * self.factor ** attempt)

    def delay(self, attempt, random=_random.random):
        """random() in [0, 1) scaled to the attempt's ceiling."""
        return random() * self.ceiling(attempt)

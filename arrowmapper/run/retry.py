"""Pure retry policy: whether an attempt is worth repeating, and how long to wait first.

Nothing here sleeps; the coordinator schedules the next attempt at ``now + delay``.
"""

from __future__ import annotations

import random

from ..config import RetryConfig
from ..errors import classify

__all__ = ["backoff_delay", "classify", "should_retry"]


def backoff_delay(config: RetryConfig, attempt: int, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based), jitter included."""
    raw = config.base_delay * config.backoff_factor ** max(0, attempt - 1)
    delay = min(config.max_delay, raw)
    if config.jitter:
        r = (rng or random).uniform(1 - config.jitter, 1 + config.jitter)
        delay *= r
    return max(0.0, delay)


def should_retry(config: RetryConfig, attempts: int, transient: bool) -> bool:
    """A transient failure is retried while ``attempts <= max_retries``."""
    return transient and attempts <= config.max_retries

"""How failed chunks are retried: :class:`RetryConfig`."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class RetryConfig:
    """How failed chunks are retried: exponential backoff with jitter.

    The delay before attempt ``n+1`` is ``min(max_delay, base_delay * backoff_factor**(n-1))``,
    then multiplied by a random factor in ``[1 - jitter, 1 + jitter]``.

    >>> RetryConfig(max_retries=5, base_delay=0.5).max_retries
    5
    """

    max_retries: int = 3
    base_delay: float = 0.5
    max_delay: float = 30.0
    backoff_factor: float = 2.0
    jitter: float = 0.25

    def __post_init__(self) -> None:
        if not isinstance(self.max_retries, int) or self.max_retries < 0:
            raise ConfigError(f"max_retries must be an integer >= 0, got {self.max_retries!r}")
        for name in ("base_delay", "max_delay", "backoff_factor", "jitter"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0:
                raise ConfigError(f"{name} must be a number >= 0, got {value!r}")
        if self.jitter > 1:
            raise ConfigError(f"jitter must be between 0 and 1, got {self.jitter!r}")
        if self.backoff_factor < 1:
            raise ConfigError(f"backoff_factor must be >= 1, got {self.backoff_factor!r}")

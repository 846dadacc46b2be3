"""Mirroring the outbox to the platforms: workers, circuit breaker, replay, admin API."""

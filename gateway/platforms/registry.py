"""Which profile class serves a configured profile name."""

from collections.abc import Callable

from gateway.config import DestinationConfig, GatewayConfig
from gateway.platforms.base import PlatformProfile
from gateway.platforms.nhsa import NhsaInventoryProfile
from gateway.platforms.zhaocai import ZhaocaiProfile

__all__ = ["ProfileFactory", "profile_for"]


ProfileFactory = Callable[[DestinationConfig, GatewayConfig], PlatformProfile]


def profile_for(name: str) -> ProfileFactory:
    """The profile class for a configured profile name."""
    profiles: dict[str, ProfileFactory] = {"nhsa-inventory": NhsaInventoryProfile,
                                           "zhaocai": ZhaocaiProfile}
    return profiles[name]

"""Platform profiles: canonical events to one platform's requests, and its answers back."""

from .base import Answer, PlatformProfile, Verdict
from .nhsa import NhsaInventoryProfile
from .zhaocai import ZhaocaiProfile

__all__ = ["Answer", "NhsaInventoryProfile", "PlatformProfile", "Verdict", "ZhaocaiProfile",
           "profile_for"]


def profile_for(name: str) -> type[PlatformProfile]:
    """The profile class for a configured profile name."""
    profiles: dict[str, type[PlatformProfile]] = {"nhsa-inventory": NhsaInventoryProfile,
                                                   "zhaocai": ZhaocaiProfile}
    return profiles[name]

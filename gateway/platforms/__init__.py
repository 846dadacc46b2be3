"""Platform profiles: canonical events to one platform's requests, and its answers back.

The package itself imports nothing: the configuration checks a destination's field rules
against the field specifications here (:mod:`gateway.platforms.custom_fields`) without
loading the profiles. :func:`gateway.platforms.registry.profile_for` names the profiles.
"""

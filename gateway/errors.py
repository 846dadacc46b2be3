"""Deprecated alias: the exception root lives in :mod:`canonical.errors`.

Kept so that adapters written against earlier releases keep importing; import from
``canonical.errors`` (or ``adapters.base``) instead. Removed in 0.3.
"""

import warnings

from canonical.errors import *  # noqa: F403
from canonical.errors import __all__  # noqa: F401

warnings.warn("gateway.errors is deprecated: import from canonical.errors", DeprecationWarning,
              stacklevel=2)

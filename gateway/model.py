"""Deprecated alias: the canonical event model lives in :mod:`canonical.model`.

Kept so that adapters written against earlier releases keep importing; import from
``canonical.model`` (or ``adapters.base``) instead. Removed in 0.3.
"""

import warnings

from canonical.model import *  # noqa: F403
from canonical.model import __all__  # noqa: F401

warnings.warn("gateway.model is deprecated: import from canonical.model", DeprecationWarning,
              stacklevel=2)

"""The ``metaoptimize-optax`` command (also ``python -m metaoptimize_optax.experiments``).

The command line needs the ``experiments`` extra; without it, this says so in one line
instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from metaoptimize_optax._extras import missing_extra


def main(argv: Sequence[str] | None = None) -> int:
  """Runs :func:`.cli.main`; exits with status 1 and one line when an extra is missing."""
  try:
    from metaoptimize_optax.experiments import cli
  except ModuleNotFoundError as e:
    error = missing_extra(e, "the metaoptimize-optax command line")
    if error is e:
      raise
    print(f"metaoptimize-optax: error: {error}", file=sys.stderr)
    return 1
  return cli.main(argv)


if __name__ == "__main__":
  sys.exit(main())

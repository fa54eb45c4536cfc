"""The optional dependencies: which extra installs what, and the error that names it."""

from __future__ import annotations

# The top-level module of each optional dependency -> the extra that installs it.
EXTRA_OF_MODULE = {
  "flax": "flax",
  "gymnax": "rl",
  "six": "rl",  # gymnax imports it without declaring it.
  "matplotlib": "experiments",
  "mnist1d": "experiments",
  "orbax": "experiments",
  "tqdm": "experiments",
  "yaml": "experiments",
}


def missing_extra(error: ModuleNotFoundError, what: str) -> ModuleNotFoundError:
  """``error`` with a one-line message naming the extra that installs the missing module.

  Raised by a module or command of ``what`` that needs an optional dependency; an error
  for any other module is returned unchanged.
  """
  module = (error.name or "").partition(".")[0]
  extra = EXTRA_OF_MODULE.get(module)
  if extra is None:
    return error
  return ModuleNotFoundError(
    f"{what} needs {module!r}, from the {extra!r} extra: pip install 'metaoptimize-optax[{extra}]'",
    name=error.name,
  )

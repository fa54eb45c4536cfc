"""The benchmark table, as text (markdown) and JSON."""

from __future__ import annotations

import json
import math
import os
import pathlib
import platform
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import optax

COLUMNS = (
  "setting",
  "optimizer",
  "ms/step",
  "x AdamW",
  "IQR",
  "XLA bytes x",
  "XLA flops x",
  "state MB",
  "state x AdamW",
  "state over AdamW",
  "compile s",
  "target",
)
SECTIONS = {
  "update": "Optimizer update alone (`tx.update` + `optax.apply_updates`, jitted, donated)",
  "update_undonated": "Optimizer update alone, not donated (fresh output buffers every step)",
  "step": "Whole train step (forward, backward, update; jitted, donated)",
}


def environment() -> dict[str, Any]:
  """Versions and hardware the figures were measured on."""
  device = jax.devices()[0]
  return {
    "jax": jax.__version__,
    "optax": optax.__version__,
    "python": platform.python_version(),
    "backend": jax.default_backend(),
    "device": getattr(device, "device_kind", str(device)),
    "device_count": jax.device_count(),
    "cpu_count": os.cpu_count(),
    "machine": platform.machine(),
    "xla_flags": os.environ.get("XLA_FLAGS", ""),
  }


def _target(row: Mapping[str, Any]) -> str:
  if row["target"] is None:
    return ""
  return f"<= {row['target']:.2f} {'met' if row['met'] else 'MISSED'}"


def number(value: float) -> str:
  """About three significant digits, without an exponent: 0.0608, 12.5, 1,206."""
  if not math.isfinite(value) or value == 0:
    return f"{value:g}"
  decimals = max(0, 2 - math.floor(math.log10(abs(value))))
  return f"{value:,.{decimals}f}"


def cells(row: Mapping[str, Any]) -> tuple[str, ...]:
  """The table cells of one result row."""
  return (
    row["setting"],
    row["optimizer"],
    number(row["ms_per_step"]),
    f"{row['ratio']:.2f}",
    f"{row['ratio_q1']:.2f}-{row['ratio_q3']:.2f}",
    f"{row['xla_bytes_ratio']:.2f}",
    f"{row['xla_flops_ratio']:.2f}",
    number(row["state_bytes"] / 1e6),
    f"{row['state_ratio']:.2f}",
    row["extra_state"],
    number(row["compile_seconds"]),
    _target(row),
  )


def _line(cs: Sequence[str], widths: Sequence[int]) -> str:
  return "| " + " | ".join(c.ljust(w) for c, w in zip(cs, widths, strict=True)) + " |"


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> str:
  """One markdown table per section, aligned for reading as plain text."""
  parts = []
  for section, title in SECTIONS.items():
    body = [cells(r) for r in rows if r["section"] == section]
    if not body:
      continue
    widths = [max(len(c) for c in col) for col in zip(COLUMNS, *body, strict=True)]
    rule = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    lines = [_line(COLUMNS, widths), rule, *(_line(cs, widths) for cs in body)]
    parts.append("\n".join([f"### {title}", "", *lines]))
  return "\n\n".join(parts)


def markdown(
  rows: Sequence[Mapping[str, Any]], settings: Mapping[str, Any], env: Mapping[str, Any]
) -> str:
  """The whole report: how it was measured, then the tables."""
  hw = (
    f"{env['backend']} ({env['device']}, {env['cpu_count']} CPU cores), jax {env['jax']}, "
    f"optax {env['optax']}"
  )
  notes = (
    "`ms/step` is the median over rounds; `x AdamW` is the median over rounds of the time "
    "divided by the mean of `optax.adamw`'s times measured just before and just after it "
    "(all in one process), `IQR` its quartiles. `XLA bytes x` and `XLA flops x` are XLA's "
    "static cost estimate of the compiled step (arrays read and written after fusion; "
    "floating-point operations) over AdamW's: noise-free. `state over AdamW` is the "
    "optimizer state's extra size in params-sized units `P` plus bytes. `compile s` is the "
    "seconds taken to trace, lower and compile the step once (one measurement)."
  )
  return (
    "\n\n".join(
      [
        "# metaoptimize-optax benchmarks",
        f"Measured on {hw}; rounds {settings['rounds']}, "
        f"at least {settings['min_seconds']} s per measurement"
        f"{' (quick run)' if settings.get('quick') else ''}.",
        notes,
        markdown_table(rows),
      ]
    )
    + "\n"
  )


def kept_sections(path: pathlib.Path) -> str:
  """The hand-written tail of an existing report: from its first ``## `` heading on."""
  if not path.exists():
    return ""
  lines = path.read_text().splitlines(keepends=True)
  for i, line in enumerate(lines):
    if line.startswith("## "):
      return "\n" + "".join(lines[i:])
  return ""


def write(
  output_dir: str | pathlib.Path,
  rows: Sequence[Mapping[str, Any]],
  settings: Mapping[str, Any],
  env: Mapping[str, Any],
) -> tuple[pathlib.Path, ...]:
  """Writes ``bench.md`` and ``bench.json`` to ``output_dir``; returns their paths.

  Hand-written sections of an existing ``bench.md`` (from its first level-2
  heading ``## ...`` on; the generated text has none) are kept after the new
  tables, so notes such as a profile survive a rerun.
  """
  out = pathlib.Path(output_dir)
  out.mkdir(parents=True, exist_ok=True)
  md, js = out / "bench.md", out / "bench.json"
  md.write_text(markdown(rows, settings, env) + kept_sections(md))
  js.write_text(
    json.dumps({"environment": dict(env), "settings": dict(settings), "rows": list(rows)}, indent=2)
    + "\n"
  )
  return md, js

"""Is one model ahead of another on the same photos? A paired comparison from photo_sweep's --csv.

    python benchmarks/photo_sweep.py data/photos-val --checkpoints A,B --saturations 0.8,1.0,1.2 --csv sweep.csv
    python benchmarks/paired_gain.py sweep.csv --a A@1.0 --b B

Each photo's PSNR gain under B is subtracted from its gain under A, so what the photos have
in common (some are simply harder) cancels, and the mean difference gets a 95% interval
(1.96 standard errors of the per-photo differences), overall and per group.
Without a saturation for B (``--b B``), B is read at A's colour: its per-photo gains are
interpolated linearly between the two swept saturations whose overall colour share brackets
A's. Models are named as photo_sweep names them (the run folder, or the shipped name).
"""

from __future__ import annotations

import argparse
import csv
from collections import defaultdict
from pathlib import Path

import numpy as np

Rows = dict[float, dict[str, tuple[str, float, float, float]]]  # saturation -> photo -> (group, gain, colour, truth)


def read(path: Path) -> dict[str, Rows]:
    """model name -> saturation -> photo -> figures (one working scale and confidence per model)."""
    table: dict[str, Rows] = defaultdict(lambda: defaultdict(dict))
    with path.open() as f:
        for r in csv.DictReader(f):
            name = Path(r["model"]).parent.name or r["model"]
            figures = (r["group"], float(r["gain"]), float(r["colour"]), float(r["truth_colour"]))
            table[name][float(r["saturation"])][r["photo"]] = figures
    return table


def share(rows: dict[str, tuple[str, float, float, float]]) -> float:
    """Mean colourfulness as a share of the truths' mean, as photo_sweep prints it."""
    return sum(v[2] for v in rows.values()) / max(1e-9, sum(v[3] for v in rows.values()))


def at_colour(model: Rows, target: float) -> tuple[dict[str, float], str]:
    """Per-photo gains of ``model`` interpolated to the overall colour share ``target``."""
    sats = sorted(model)
    shares = [share(model[s]) for s in sats]
    for lo, hi, c_lo, c_hi in zip(sats, sats[1:], shares, shares[1:], strict=False):
        if c_lo <= target <= c_hi:
            w = (target - c_lo) / max(1e-9, c_hi - c_lo)
            gains = {p: (1 - w) * model[lo][p][1] + w * model[hi][p][1] for p in model[lo]}
            return gains, f"x{lo:g}..x{hi:g} at {w:.2f}"
    raise SystemExit(f"no two saturations bracket colour {target:.3f} (swept: {', '.join(f'{c:.3f}' for c in shares)})")


def parse(spec: str) -> tuple[str, float | None]:
    name, _, sat = spec.partition("@")
    return name, float(sat) if sat else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("csv", type=Path)
    ap.add_argument("--a", required=True, help="MODEL@SATURATION")
    ap.add_argument("--b", required=True, help="MODEL@SATURATION, or MODEL to read it at A's colour")
    args = ap.parse_args()
    table = read(args.csv)
    (name_a, sat_a), (name_b, sat_b) = parse(args.a), parse(args.b)
    if sat_a is None:
        raise SystemExit("--a needs a saturation: MODEL@SATURATION")
    a = table[name_a][sat_a]
    if sat_b is None:
        gains_b, how = at_colour(table[name_b], share(a))
    else:
        gains_b, how = {p: v[1] for p, v in table[name_b][sat_b].items()}, f"x{sat_b:g}"
    diffs: dict[str, list[float]] = defaultdict(list)
    for photo, (group, gain, _, _) in a.items():
        diffs[group].append(gain - gains_b[photo])
        diffs["all"].append(gain - gains_b[photo])
    print(f"{name_a} x{sat_a:g} (colour {share(a):.3f}) minus {name_b} {how}, PSNR gain in dB:")
    for group in ["all"] + sorted(g for g in diffs if g != "all"):
        d = np.asarray(diffs[group])
        half = 1.96 * d.std(ddof=1) / np.sqrt(len(d)) if len(d) > 1 else float("nan")
        print(f"  {group:<10} {len(d):>5} photos  {d.mean():+.3f} +- {half:.3f}")


if __name__ == "__main__":
    main()

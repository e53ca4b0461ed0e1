"""Results directories for the report tests, written exactly as docs/dev/report-contract.md says.

The scores come from the package itself (``evaluate``, ``RealManifold.leave_one_out``) on small
2-D features, and every sample of a set with images has a real PNG file whose colour follows its
features, so galleries show distinct pictures. The report tests therefore do not depend on the
``compare`` / ``datasets`` commands.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from rarity_score import RealManifold, evaluate
from rarity_score.io.images import open_images

K = 3

#: File names that must show as text, never as markup.
NASTY_NAMES = (
    "<script>.png",
    'a&b "quoted" <b>bold.png',
    "<img src=x onerror=alert(1)>.png",
)

COMPARE_METHOD = "generated sets scored against the real manifold"
DATASETS_METHOD = "each dataset scored against its own manifold, leave-one-out"


def slug_of(name: str) -> str:
    """The contract's file-safe slug of a set name."""
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name).strip("._") or "set"


def picture(features: np.ndarray, size: int = 48) -> Image.Image:
    """A small image whose colour and disc position follow a 2-D feature vector."""
    x, y = (float(v) for v in features[:2])
    hue = int((np.arctan2(y, x) / (2 * np.pi) + 0.5) * 255) % 256
    radius = float(np.hypot(x, y))
    colour = Image.new("HSV", (1, 1), (hue, 170, 225)).convert("RGB").getpixel((0, 0))
    image = Image.new("RGB", (size, size), (240, 240, 236))
    draw = ImageDraw.Draw(image)
    r = 6 + min(16.0, 5 * radius)
    draw.ellipse([size / 2 - r, size / 2 - r, size / 2 + r, size / 2 + r], fill=colour)
    return image


def images_fingerprint(source: Path | str) -> str:
    """What a run records as ``images_fingerprint`` of an image source."""
    return open_images(source).fingerprint()


def _write_images(folder: Path, names: Sequence[str], features: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, row in zip(names, features, strict=True):
        picture(row).save(folder / name, "PNG")


def _names(prefix: str, n: int, nasty: bool = False) -> list[str]:
    names = [f"{prefix}_{i:03d}.png" for i in range(n)]
    if nasty:
        for position, name in enumerate(NASTY_NAMES[: max(0, n)]):
            names[position] = name
    return names


def _summary_row(name: str, arrays: Mapping[str, Any], metrics: Mapping[str, Any]) -> dict:
    inside = np.asarray(arrays["in_manifold"], dtype=bool)
    scores = np.asarray(arrays["rarity"], dtype=np.float64)[inside]
    n, n_in = int(inside.size), int(inside.sum())

    def stat(fn: Any) -> float | None:
        return float(fn(scores)) if scores.size else None

    return {
        "name": name,
        "n": n,
        "n_in_manifold": n_in,
        "fraction_in_manifold": n_in / n if n else None,
        "n_out_of_manifold": n - n_in,
        "rarity_mean": stat(np.mean),
        "rarity_median": stat(np.median),
        "rarity_q10": stat(lambda s: np.quantile(s, 0.1)),
        "rarity_q90": stat(lambda s: np.quantile(s, 0.9)),
        "precision": metrics.get("precision"),
        "recall": metrics.get("recall"),
        "density": metrics.get("density"),
        "coverage": metrics.get("coverage"),
    }


def _write_set_files(
    results: Path, slug: str, arrays: Mapping[str, Any], ref_names: Sequence[str] | None
) -> None:
    sets = results / "sets"
    sets.mkdir(parents=True, exist_ok=True)
    np.savez(sets / f"{slug}.npz", **{key: np.asarray(value) for key, value in arrays.items()})
    header = [
        "index",
        "name",
        "in_manifold",
        "rarity",
        "sphere_index",
        "sphere_count",
        "nearest_real_index",
        "nearest_real_distance",
        "realism",
        "sphere_name",
        "nearest_real_name",
    ]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i, name in enumerate(arrays["names"]):
        inside = bool(arrays["in_manifold"][i])
        sphere = int(arrays["sphere_index"][i])
        nearest = int(arrays["nearest_real_index"][i])
        realism = float(arrays["realism"][i])
        writer.writerow(
            [
                i,
                name,
                "true" if inside else "false",
                repr(float(arrays["rarity"][i])) if inside else "",
                sphere if inside else "",
                int(arrays["sphere_count"][i]),
                nearest,
                repr(float(arrays["nearest_real_distance"][i])),
                "" if np.isnan(realism) else repr(realism),
                ref_names[sphere] if inside and ref_names else "",
                ref_names[nearest] if ref_names else "",
            ]
        )
    (sets / f"{slug}.csv").write_text(buffer.getvalue(), encoding="utf-8")


def _write_summary(results: Path, rows: list[dict]) -> None:
    summary = {"sets": rows, "comparisons": [], "stability": None}  # format 2
    (results / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    columns = list(rows[0]) if rows else []
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: "" if value is None else value for key, value in row.items()})
    (results / "summary.csv").write_text(buffer.getvalue(), encoding="utf-8")
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += [
        "| " + " | ".join("" if v is None else str(v) for v in row.values()) + " |" for row in rows
    ]
    (results / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


def _run_json(mode: str, command: list[str], **fields: Any) -> dict:
    return {
        "format": "rarity-score/results",
        "format_version": 2,
        "mode": mode,
        "method": DATASETS_METHOD if mode == "datasets" else COMPARE_METHOD,
        "command": command,
        "package_version": "0.1.0",
        "created": "2025-01-01T00:00:00+00:00",
        "k": K,
        **fields,
    }


def make_compare(
    base: Path,
    sets: Mapping[str, tuple[int, float]] | None = None,
    *,
    n_real: int = 60,
    has_images: bool = True,
    real_has_images: bool = True,
    nasty: bool = True,
    seed: int = 0,
) -> Path:
    """A compare-mode results directory under ``base``; returns its path.

    ``sets`` maps a set name to (number of samples, spread of its features): a wider spread puts
    more samples out of the manifold and gives higher rarity. Images go to ``base/images``.
    """
    sets = sets or {"psi=0.7": (40, 0.7), "psi=1.0": (50, 1.3)}
    rng = np.random.default_rng(seed)
    results = base / "results"
    results.mkdir(parents=True)
    real = rng.normal(size=(n_real, 2))
    real_names = _names("real", n_real)
    real_dir = base / "images" / "real"
    if real_has_images:
        _write_images(real_dir, real_names, real)
    entries, rows = [], []
    for position, (name, (n, spread)) in enumerate(sets.items()):
        slug = slug_of(name)
        fake = rng.normal(size=(n, 2)) * spread
        names = _names(f"s{position}", n, nasty=nasty and position == 0)
        folder = base / "images" / slug
        if has_images:
            _write_images(folder, names, fake)
        ev = evaluate(real, fake, k=K)
        arrays = {
            "rarity": ev.rarity,
            "in_manifold": ev.in_manifold,
            "sphere_index": ev.sphere_index,
            "nearest_real_index": ev.nearest_real_index,
            "nearest_real_distance": ev.nearest_real_distance,
            "realism": ev.realism,
            "sphere_count": ev.sphere_count,
            "names": np.array(names if has_images else [f"#{i}" for i in range(n)]),
        }
        _write_set_files(results, slug, arrays, real_names)
        metrics = {key: getattr(ev, key) for key in ("precision", "recall", "density", "coverage")}
        rows.append(_summary_row(name, arrays, metrics))
        entries.append(
            {
                "name": name,
                "slug": slug,
                "source": str(folder) if has_images else str(base / f"{slug}.npy"),
                "kind": "folder" if has_images else "features",
                "n": n,
                "n_skipped": 0,
                "has_images": has_images,
                "table": f"sets/{slug}.csv",
                "arrays": f"sets/{slug}.npz",
                "images_fingerprint": images_fingerprint(folder) if has_images else None,
            }
        )
    loo = RealManifold(real, k=K).leave_one_out()
    np.savez(results / "reference_loo.npz", rarity=loo.rarity, names=np.array(real_names))
    _write_summary(results, rows)
    run = _run_json(
        "compare",
        ["rarity", "compare", "--real", str(real_dir), *[f"--fake={n}=…" for n in sets]],
        extractor={
            "name": "vgg16-fc2",
            "preprocessing": "resize 224x224 bicubic, ImageNet mean/std",
            "weights_id": "torchvision VGG16_Weights.IMAGENET1K_V1",
            "dim": 2,
        }
        if has_images
        else None,
        real={
            "name": "real",
            "source": str(real_dir) if real_has_images else str(base / "real.npy"),
            "kind": "folder" if real_has_images else "features",
            "n": n_real,
            "n_skipped": 0,
            "fingerprint": "f" * 64,
            "images_fingerprint": images_fingerprint(real_dir) if real_has_images else None,
        },
        sets=entries,
        real_has_images=real_has_images,
    )
    (results / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    return results


def make_datasets(
    base: Path, sets: Mapping[str, tuple[int, float]] | None = None, *, seed: int = 1
) -> Path:
    """A datasets-mode results directory: each set scored against itself, leave-one-out."""
    sets = sets or {"ffhq": (45, 1.4), "celeba-hq": (35, 0.8)}
    rng = np.random.default_rng(seed)
    results = base / "results"
    results.mkdir(parents=True)
    entries, rows = [], []
    for position, (name, (n, spread)) in enumerate(sets.items()):
        slug = slug_of(name)
        features = rng.normal(size=(n, 2)) * spread
        names = _names(f"d{position}", n)
        folder = base / "images" / slug
        _write_images(folder, names, features)
        loo = RealManifold(features, k=K).leave_one_out()
        distances = np.linalg.norm(features[:, None] - features[None], axis=-1)
        radii = np.sort(distances, axis=1)[:, K]  # column 0 is the sample itself
        np.fill_diagonal(distances, np.inf)  # own sphere and self left out
        arrays = {
            "rarity": loo.rarity,
            "in_manifold": loo.in_manifold,
            "sphere_index": loo.sphere_index,
            "nearest_real_index": distances.argmin(axis=1),
            "nearest_real_distance": distances.min(axis=1),
            "realism": np.full(n, np.nan),
            "sphere_count": (distances < radii[:, None]).sum(axis=0),
            "names": np.array(names),
        }
        _write_set_files(results, slug, arrays, names)
        rows.append(_summary_row(name, arrays, {}))
        entries.append(
            {
                "name": name,
                "slug": slug,
                "source": str(folder),
                "kind": "folder",
                "n": n,
                "n_skipped": 0,
                "has_images": True,
                "table": f"sets/{slug}.csv",
                "arrays": f"sets/{slug}.npz",
                "images_fingerprint": images_fingerprint(folder),
            }
        )
    _write_summary(results, rows)
    run = _run_json(
        "datasets",
        ["rarity", "datasets", *[f"{n}=…" for n in sets]],
        extractor={
            "name": "vgg16-fc2",
            "preprocessing": "bicubic 224",
            "weights_id": "w",
            "dim": 2,
        },
        real=None,
        sets=entries,
        real_has_images=False,
    )
    (results / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    return results


def make_large(base: Path, n: int = 100_000, n_sets: int = 2, seed: int = 2) -> Path:
    """A feature-only compare-mode results directory with ``n`` samples per set (no CSV files:
    the arrays are what the report reads)."""
    rng = np.random.default_rng(seed)
    results = base / "results"
    (results / "sets").mkdir(parents=True)
    entries, rows = [], []
    for position in range(n_sets):
        name = f"model {position}"
        slug = slug_of(name)
        inside = rng.random(n) < 0.6
        rarity = np.where(inside, rng.gamma(2.0 + position, 1.0, n), np.nan)
        arrays = {
            "rarity": rarity,
            "in_manifold": inside,
            "sphere_index": np.where(inside, rng.integers(0, n, n), -1),
            "nearest_real_index": rng.integers(0, n, n),
            "nearest_real_distance": rng.gamma(2.0, 1.0, n),
            "realism": rng.gamma(1.0, 1.0, n),
            "sphere_count": rng.integers(0, 9, n),
            "names": np.array([f"img_{i:06d}.png" for i in range(n)]),
        }
        np.savez(results / "sets" / f"{slug}.npz", **arrays)
        rows.append(_summary_row(name, arrays, {"precision": float(inside.mean())}))
        entries.append(
            {
                "name": name,
                "slug": slug,
                "source": f"/nowhere/{slug}.npy",
                "kind": "features",
                "n": n,
                "n_skipped": 0,
                "has_images": False,
                "table": f"sets/{slug}.csv",
                "arrays": f"sets/{slug}.npz",
            }
        )
    np.savez(
        results / "reference_loo.npz",
        rarity=rng.gamma(2.0, 1.0, n),
        names=np.array([f"real_{i:06d}.png" for i in range(n)]),
    )
    _write_summary(results, rows)
    run = _run_json(
        "compare",
        ["rarity", "compare", "--real", "real.npy"],
        extractor=None,
        real={
            "name": "real",
            "source": "/nowhere/real.npy",
            "kind": "features",
            "n": n,
            "n_skipped": 0,
            "fingerprint": "0" * 64,
        },
        sets=entries,
        real_has_images=False,
    )
    (results / "run.json").write_text(json.dumps(run, indent=2), encoding="utf-8")
    return results

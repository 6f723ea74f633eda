"""Images of items: how well Agora reads the text in them, how its explicit score behaves on
images that are not explicit, how fast both run, and what the bundled community gains.

    OPENBLAS_NUM_THREADS=1 .venv/bin/python bench/images.py [--data ../shared/data] [--per 10]

**OCR set, built here** (nothing downloaded, nothing committed): real texts drawn into images
with the fonts Debian ships (DejaVu: Bitstream Vera licence; Liberation: OFL; WenQuanYi Micro
Hei: Apache 2.0), ``--per`` images per language and condition:
- English: titles of the bundled Cardano Stack Exchange questions (CC BY-SA 4.0);
- Chinese: waimai-10k reviews from ``--data`` (used to draw images at bench time only: the set
  states no licence, so nothing of it is bundled);
- conditions: clean (black on white, 32 px), small (16 px), other fonts (serif, mono), colour
  (low contrast on a tint), photo (white outlined text over a photograph: sklearn's china.jpg /
  flower.jpg, CC BY 2.0), jpeg (quality 30), rotated (4 degrees), blur (Gaussian, radius 1.2).
Character accuracy = 1 - edit distance / reference length, summed over the set (spaces are
ignored for Chinese and collapsed for English); also with spaces ignored (English), and over
letters, digits and Chinese characters only (punctuation left out: what keywords are made of).
An image is "exact" when every character matches.

**Explicit score on benign images**: every photograph and picture on this machine that is not
a screenshot of text (listed with its licence in the JSON) plus the OCR set's photo-condition
images. No explicit image with a licence that allows it is on this machine, so recall cannot be
measured here: the JSON says so rather than guess.

**Bundled community**: the Cardano dump imported into a fresh SQLite store; how many items name
images (``<img>`` in posts), how many gain media features, and how many images could be read
(they are on i.stack.imgur.com; this machine has no network, and Agora fetches no host that
``media_fetch_hosts`` does not list).

Writes ``bench/results/images.json`` and ``bench/results/images.png``.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import statistics
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from _record import run_record
from PIL import Image, ImageDraw, ImageFilter, ImageFont
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from agora.vision.analyse import analyse_image

REPO = Path(__file__).resolve().parents[1]
FONTS = Path("/usr/share/fonts/truetype")
SANS, SERIF, MONO = (FONTS / "dejavu" / f"DejaVu{n}.ttf" for n in ("Sans", "Serif", "SansMono"))
LIBERATION = FONTS / "liberation" / "LiberationSans-Regular.ttf"
CJK = FONTS / "wqy" / "wqy-microhei.ttc"
SKLEARN_IMAGES = Path(__import__("sklearn").__file__).parent / "datasets" / "images"
MPL_SAMPLES = Path(__import__("matplotlib").get_data_path()) / "sample_data"
CONDITIONS = ("clean", "small", "fonts", "colour", "photo", "jpeg", "rotated", "blur")
THRESHOLD = 0.5  # Settings.explicit_image_threshold's default

#: Benign pictures on this machine, by where they come from and under what licence.
BENIGN = {
    "photographs (matplotlib grace_hopper.jpg: US Navy, public domain; sklearn china.jpg, "
    "flower.jpg: CC BY 2.0)": [
        MPL_SAMPLES / "grace_hopper.jpg",
        SKLEARN_IMAGES / "china.jpg",
        SKLEARN_IMAGES / "flower.jpg",
    ],
    "matplotlib sample pictures (matplotlib licence)": [
        MPL_SAMPLES / "logo2.png",
        MPL_SAMPLES / "Minduka_Present_Blue_Pack.png",
    ],
    "Adwaita icons, 512 px (GNOME, CC BY-SA 3.0 / LGPL-3)": sorted(
        Path("/usr/share/icons/Adwaita/512x512").rglob("*.png")
    ),
    "Node.js and Valgrind documentation figures (MIT / GFDL)": sorted(
        list(Path("/usr/share/doc/nodejs/contributing/doc_img").glob("*.png"))
        + list(Path("/usr/share/doc/valgrind/html/images").glob("*.png"))
    ),
}


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions), two rows of DP."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def normalise(text: str, language: str) -> str:
    return "".join(text.split()) if language == "zh" else " ".join(text.split())


def letters(text: str) -> str:
    """Letters, digits and Chinese characters only: what keywords and search are made of."""
    return "".join(c for c in text if c.isalnum())


def wrap(text: str, width: int) -> list[str]:
    """At most two lines of at most ``width`` characters (words kept whole in English)."""
    if " " not in text:
        return [text[i : i + width] for i in range(0, len(text), width)][:2]
    lines, line = [], ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}".strip()
    return (lines + [line])[:2]


def english_texts() -> list[str]:
    from agora.ingest.stackexchange import load_stackexchange

    dataset = load_stackexchange(REPO / "data" / "cardano-se").dataset
    titles = {i.title for i in dataset.items if i.title and i.title.isascii()}
    return sorted(t for t in titles if 15 <= len(t) <= 60)


def chinese_texts(data: Path) -> list[str]:
    with (data / "waimai-10k" / "waimai_10k.csv").open(encoding="utf-8") as f:
        reviews = [row["review"].strip() for row in csv.DictReader(f)]
    keep = [r for r in reviews if 6 <= len(r) <= 24 and all(not c.isascii() for c in r)]
    return sorted(set(keep))


def draw(lines: list[str], language: str, condition: str, rng: random.Random) -> bytes:
    """One image of ``lines`` under ``condition``."""
    size = 16 if condition == "small" else 32
    if language == "zh":
        path = CJK
    elif condition == "fonts":
        path = rng.choice([SERIF, MONO, LIBERATION])
    else:
        path = SANS
    font = ImageFont.truetype(str(path), size)
    width = 40 + max(int(font.getlength(line)) for line in lines)
    height = 30 + len(lines) * int(size * 1.6)
    if condition == "photo":
        photo = Image.open(
            rng.choice([SKLEARN_IMAGES / "china.jpg", SKLEARN_IMAGES / "flower.jpg"])
        )
        photo = photo.convert("RGB")
        left = rng.randrange(0, max(1, photo.width - width))
        top = rng.randrange(0, max(1, photo.height - height))
        image = photo.crop((left, top, left + width, top + height))
    elif condition == "colour":
        image = Image.new("RGB", (width, height), (rng.randrange(170, 230), 210, 240))
    else:
        image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    for n, line in enumerate(lines):
        at = (20, 15 + n * int(size * 1.6))
        if condition == "photo":
            pen.text(at, line, font=font, fill="white", stroke_width=2, stroke_fill="black")
        elif condition == "colour":
            pen.text(at, line, font=font, fill=(90, 90, 140))
        else:
            pen.text(at, line, font=font, fill="black")
    if condition == "rotated":
        image = image.rotate(4, expand=True, fillcolor="white", resample=Image.BICUBIC)
    if condition == "blur":
        image = image.filter(ImageFilter.GaussianBlur(1.2))
    out = io.BytesIO()
    if condition == "jpeg":
        image.save(out, "JPEG", quality=30)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def ocr_set(data: Path, per: int, progress: Progress) -> tuple[list[dict], list[dict]]:
    rng = random.Random(0)
    texts = {"en": english_texts(), "zh": chinese_texts(data)}
    rows, explicit = [], []
    task = progress.add_task("OCR set", total=per * len(CONDITIONS) * 2)
    for language, pool in texts.items():
        chosen = rng.sample(pool, per * len(CONDITIONS))
        for n, text in enumerate(chosen):
            condition = CONDITIONS[n // per]
            lines = wrap(text, 30 if language == "en" else 12)
            image = draw(lines, language, condition, rng)
            result = analyse_image(image)
            reference = normalise("\n".join(lines), language)
            read = normalise(result.text.text.replace("\n", " "), language)
            rows.append(
                {
                    "language": language,
                    "condition": condition,
                    "reference": reference,
                    "read": read,
                    "edits": edit_distance(read, reference),
                    "edits_without_spaces": edit_distance(
                        normalise(read, "zh"), normalise(reference, "zh")
                    ),
                    "length_without_spaces": len(normalise(reference, "zh")),
                    "edits_letters": edit_distance(letters(read), letters(reference)),
                    "length_letters": len(letters(reference)),
                    "length": len(reference),
                    "seconds": result.seconds,
                    "bytes": len(image),
                }
            )
            if condition == "photo":
                explicit.append(
                    {
                        "image": f"ocr-{language}-photo-{n}",
                        "score": result.explicit.score,
                        "parts": result.explicit.parts,
                    }
                )
            progress.advance(task)
    return rows, explicit


def benign_set(progress: Progress) -> list[dict]:
    paths = [(group, p) for group, found in BENIGN.items() for p in found if p.is_file()]
    task = progress.add_task("benign pictures", total=len(paths))
    out = []
    for group, path in paths:
        result = analyse_image(path.read_bytes())
        out.append(
            {
                "image": str(path),
                "group": group,
                "score": result.explicit.score,
                "parts": result.explicit.parts,
                "seconds": result.seconds,
                "pixels": result.info.width * result.info.height,
            }
        )
        progress.advance(task)
    return out


def community() -> dict:
    """The bundled dump in a fresh SQLite store: items naming images and their features."""
    from agora.config import Settings
    from agora.db import queries
    from agora.db.engine import open_store, session_factory, transaction
    from agora.features.store import image_sources, load_training_data
    from agora.ingest.service import add_dataset
    from agora.ingest.stackexchange import load_stackexchange
    from agora.media.service import MediaPolicy, analyse_pending

    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(data_dir=Path(folder), database_url=f"sqlite:///{folder}/a.db")
        sessions = session_factory(open_store(settings))
        dataset = load_stackexchange(REPO / "data" / "cardano-se").dataset
        with transaction(sessions) as session:
            add_dataset(session, dataset, settings.event_types, max_future_seconds=1e12)
        summary = analyse_pending(sessions, MediaPolicy.of(settings), lambda: datetime.now(UTC))
        with sessions() as session:
            interactions, side, _ = load_training_data(session, settings.event_weights)
            with_text = len(queries.image_texts(session))
    named = [len(image_sources(i.media)) for i in dataset.items]
    tokens = Counter(t for m in side.media for t in m)
    return {
        "items": len(dataset.items),
        "items_naming_images": sum(1 for n in named if n),
        "images_named": sum(named),
        "images_read": summary.analysed,
        "images_not_read": summary.failed,
        "items_with_media_features": sum(1 for m in side.media if m),
        "media_tokens": dict(tokens.most_common()),
        "items_with_text_from_images": with_text,
    }


def plot(rows: list[dict], scores: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.2))
    x = np.arange(len(CONDITIONS))
    for offset, language in ((-0.2, "en"), (0.2, "zh")):
        accuracy = [
            _accuracy([r for r in rows if (r["language"], r["condition"]) == (language, c)])
            for c in CONDITIONS
        ]
        left.bar(x + offset, accuracy, 0.4, label={"en": "English", "zh": "Chinese"}[language])
    left.set_xticks(x, CONDITIONS, rotation=30)
    left.set_ylim(0, 1.05)
    left.set_ylabel("character accuracy")
    left.set_title("OCR on drawn real texts, per condition")
    left.legend(loc="lower left")
    right.hist(scores, bins=np.linspace(0, 1, 21), color="tab:gray")
    right.axvline(THRESHOLD, color="tab:red", linestyle="--", label=f"threshold {THRESHOLD}")
    right.set_xlabel("explicit score (NudeNet, highest exposed-part confidence)")
    right.set_ylabel("benign images")
    right.set_title(f"Explicit score on {len(scores)} benign images")
    right.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _accuracy(rows: list[dict], kind: str = "") -> float:
    """Summed character accuracy over every character, or (``kind``) "_without_spaces" or
    "_letters" (letters, digits and Chinese characters only)."""
    edits, length = "edits" + kind, "length" + kind
    total = sum(r[length] for r in rows)
    return max(0.0, 1 - sum(r[edits] for r in rows) / total) if total else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--per", type=int, default=10, help="Images per language and condition.")
    args = parser.parse_args()
    console = Console()
    with Progress(console=console) as progress:
        rows, photo_scores = ocr_set(args.data, args.per, progress)
        benign = benign_set(progress)
    place = community()
    table = Table(
        "condition",
        "English accuracy",
        "English, spaces ignored",
        "English, letters only",
        "English exact",
        "Chinese accuracy",
        "Chinese, letters only",
        "Chinese exact",
        title="OCR: character accuracy on drawn real texts",
    )
    by_condition = {}
    for condition in (*CONDITIONS, "all"):
        cells = []
        entry = {}
        for language in ("en", "zh"):
            part = [
                r
                for r in rows
                if r["language"] == language and condition in ("all", r["condition"])
            ]
            accuracy = _accuracy(part)
            exact = sum(r["edits"] == 0 for r in part) / len(part)
            entry[language] = {
                "accuracy": round(accuracy, 4),
                "exact": round(exact, 4),
                "images": len(part),
            }
            only_letters = _accuracy(part, "_letters")
            entry[language]["accuracy_letters_only"] = round(only_letters, 4)
            if language == "en":
                spaceless = _accuracy(part, "_without_spaces")
                entry[language]["accuracy_spaces_ignored"] = round(spaceless, 4)
                cells += [f"{accuracy:.3f}", f"{spaceless:.3f}", f"{only_letters:.3f}"]
            else:
                cells += [f"{accuracy:.3f}", f"{only_letters:.3f}"]
            cells.append(f"{exact:.0%}")
        by_condition[condition] = entry
        table.add_row(condition, *cells)
    console.print(table)
    scores = [b["score"] for b in benign] + [p["score"] for p in photo_scores]
    flagged = [b for b in benign + photo_scores if b["score"] >= THRESHOLD]
    seconds = [r["seconds"] for r in rows] + [b["seconds"] for b in benign]
    console.print(
        f"explicit score on {len(scores)} benign images: max {max(scores):.3f}, "
        f"{len(flagged)} at or above {THRESHOLD} "
        f"(false-positive rate {len(flagged) / len(scores):.3f}); "
        "recall not measured (no licensed explicit images on this machine)"
    )
    console.print(
        f"speed: {statistics.median(seconds):.2f} s median per image (OCR + explicit score, "
        f"2 cores), {len(seconds) / sum(seconds):.2f} images/s"
    )
    console.print(f"bundled community: {place}")
    out = {
        "run": run_record(vars(args) | {"conditions": CONDITIONS, "threshold": THRESHOLD}),
        "ocr": {"by_condition": by_condition, "images": rows},
        "explicit_on_benign": {
            "threshold": THRESHOLD,
            "images": len(scores),
            "at_or_above_threshold": len(flagged),
            "false_positive_rate": len(flagged) / len(scores),
            "max_score": max(scores),
            "recall": None,
            "recall_note": "not measured: no explicit image with a licence that allows it is on "
            "this machine (nothing can be downloaded here)",
            "detections": Counter(p for b in benign + photo_scores for p in b["parts"]),
            "sources": {group: len([b for b in benign if b["group"] == group]) for group in BENIGN},
            "benign": benign,
        },
        "speed": {
            "median_seconds": statistics.median(seconds),
            "images_per_second": len(seconds) / sum(seconds),
        },
        "bundled_community": place,
    }
    results = REPO / "bench" / "results"
    (results / "images.json").write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
    plot(rows, scores, results / "images.png")
    console.print(f"wrote {results / 'images.json'} and images.png")


if __name__ == "__main__":
    main()

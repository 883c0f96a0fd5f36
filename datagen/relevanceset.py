"""Build the graded relevance benchmark from Debian's AppStream metadata, on this machine.

    python -m datagen.relevanceset --out data/relevance          # = make relevanceset

Every Debian mirror publishes AppStream metadata for its applications (apt fetches it when the
DEP-11 targets are enabled, see docs/relevance.md): for each of about 2,000 desktop applications
a name, a one-line summary, a long description written by its developers, the freedesktop
categories they filed it under (``Game;BoardGame``), keywords, and an icon. This tool turns them
into a search benchmark with human-assigned labels:

1. each application becomes a listing of the marketplace export (``OUT/raw/Products.csv``):
   title = its name, description = summary + long description, category = its freedesktop main
   category (the filing a seller would pick), price "£0" (free software), location "Debian";
   its 64x64 icon goes to ``OUT/raw/images`` with ``OUT/raw/Images.csv`` (for photo search later);
2. the hand-written queries of :mod:`datagen.relevance_intents` are judged from the categories and
   keywords (grade 2 exact, 1 parent) -- never from the text a retriever reads;
3. the queries are split, seeded, into dev and test halves (an ambiguous text's two senses stay on
   one side): ``OUT/queries/{dev,test}.tsv`` and ``{dev,test}.qrels`` (TREC; grades >= 1 only,
   every other listing counts as not relevant);
4. the export is cleaned with ``python -m training.prepare --products`` into ``OUT/clean``.

The source files are copied into ``OUT/source`` on first use, so a later ``apt-get update``
without the DEP-11 targets (which deletes them from apt's lists) does not break a rebuild.
Deterministic for a given metadata file and ``--seed``. Nothing here is committed (data/ is ignored).
"""

from __future__ import annotations

import argparse
import csv
import glob
import gzip
import html
import io
import json
import re
import shutil
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from common.cli import UserError, run
from datagen.relevance_intents import AMBIGUOUS, INTENTS, Rule
from common.trec import Query, write_qrels, write_queries

APT_LISTS = Path("/var/lib/apt/lists")
COMPONENTS = "*_dep11_Components-amd64.yml.gz"
ICONS = "*_dep11_icons-64x64.tar.gz"
APT_HINT = ("apt-get update -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=true "
            "-o Acquire::IndexTargets::deb::DEP-11-icons::DefaultEnabled=true")
# freedesktop main categories -> the listing's category (Audio and Video are AudioVideo's halves).
MAIN_CATEGORIES = {"AudioVideo": "Audio & Video", "Audio": "Audio & Video", "Video": "Audio & Video",
                   "Development": "Development", "Education": "Education", "Game": "Games",
                   "Graphics": "Graphics", "Network": "Internet", "Office": "Office",
                   "Science": "Science", "Settings": "System", "System": "System",
                   "Utility": "Accessories"}
VIEWED = 3  # listings an ambiguous query's user viewed, most recent first
MIN_RELEVANT = 2  # grade-2 listings a query keeps after its viewed ones are left out
_ID = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class App:
    id: str
    name: str
    description: str
    category: str
    labels: frozenset[str]  # freedesktop categories and "kw:<keyword>"
    icon: str | None  # the file name inside the icons tarball


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m datagen.relevanceset",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("data/relevance"),
                        help="working folder: source/, raw/, queries/, clean/ (default: data/relevance)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seeds the dev/test split and the viewed listings (default: 0)")
    parser.add_argument("--no-clean", action="store_true",
                        help="write raw/ and queries/ only, skip training.prepare")
    return parser


def main(args: argparse.Namespace) -> Path:
    """Write the benchmark; return the queries folder."""
    components, icons = source_files(args.out / "source")
    apps = read_apps(components)
    rng = np.random.default_rng(args.seed)
    queries, qrels = judge(apps, rng)
    raw = args.out / "raw"
    write_export(apps, icons, raw)
    folder = write_split(queries, qrels, args.out / "queries", rng)
    print(f"{len(apps)} listings -> {raw / 'Products.csv'}; {len(queries)} queries "
          f"({len(INTENTS)} intents, {len(AMBIGUOUS)} ambiguous x 2 senses) -> {folder}", flush=True)
    if not args.no_clean:
        subprocess.run([sys.executable, "-m", "training.prepare", "--products",
                        str(raw / "Products.csv"), "--out", str(args.out / "clean")], check=True)
    return folder


def source_files(keep: Path) -> tuple[Path, Path | None]:
    """The AppStream metadata (and icons), copied into ``keep`` the first time.

    Raises:
        UserError: when neither ``keep`` nor apt's lists hold the metadata (says what to run).
    """
    found = []
    for pattern in (COMPONENTS, ICONS):
        kept = sorted(keep.glob(pattern))
        if not kept:
            fresh = sorted(glob.glob(str(APT_LISTS / pattern)))
            if fresh:
                keep.mkdir(parents=True, exist_ok=True)
                shutil.copy2(fresh[0], keep / Path(fresh[0]).name)
                kept = [keep / Path(fresh[0]).name]
        found.append(kept[0] if kept else None)
    if found[0] is None:
        raise UserError(f"no AppStream metadata ({COMPONENTS}) in {keep} or {APT_LISTS}: run "
                        f"`{APT_HINT}` (as root), then again")
    return found[0], found[1]


def read_apps(path: Path) -> list[App]:
    """The desktop applications with a main category, by id (the first of a repeated id wins)."""
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: ~10 s instead of minutes
    with gzip.open(path, "rt", encoding="utf-8") as f:
        documents = list(yaml.load_all(f, Loader=loader))
    apps: dict[str, App] = {}
    for doc in documents[1:]:  # the first document is the file's header
        app = _app(doc) if doc.get("Type") == "desktop-application" else None
        if app is not None and app.id not in apps:
            apps[app.id] = app
    return [apps[key] for key in sorted(apps)]


def _app(doc: dict) -> App | None:
    categories = [str(c) for c in doc.get("Categories") or []]
    main = next((c for c in categories if c in MAIN_CATEGORIES), None)
    name = (doc.get("Name") or {}).get("C")
    if main is None or not name:
        return None
    keywords = (doc.get("Keywords") or {}).get("C") or []
    summary = (doc.get("Summary") or {}).get("C") or ""
    text = plain_text((doc.get("Description") or {}).get("C") or "")
    cached = [i for i in (doc.get("Icon") or {}).get("cached") or [] if i.get("width") == 64]
    return App(id=_ID.sub("-", str(doc["ID"]).removesuffix(".desktop")), name=str(name).strip(),
               description=f"{summary.strip()}\n{text}".strip(), category=MAIN_CATEGORIES[main],
               labels=frozenset(categories) | {f"kw:{str(k).strip().lower()}" for k in keywords},
               icon=cached[0]["name"] if cached else None)


def plain_text(markup: str) -> str:
    """AppStream's description markup (<p>, <ul><li>) as plain text."""
    text = re.sub(r"<li>", "\n- ", markup)
    text = re.sub(r"</p>|<br\s*/?>", "\n", text)
    text = html.unescape(re.sub(r"<[^>]+>", " ", text))
    return "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())


def grade(labels: frozenset[str], exact: Rule, parent: Rule) -> int:
    return 2 if exact.matches(labels) else 1 if parent.matches(labels) else 0


def judge(apps: list[App], rng: np.random.Generator) -> tuple[list[Query], dict[str, dict[str, int]]]:
    """Every query (the ambiguous ones with their viewed listings) and its graded judgments.

    Raises:
        UserError: a query left with fewer than :data:`MIN_RELEVANT` exact matches (the metadata
            changed under the intents: they need a look).
    """
    queries, qrels = [], {}
    for intent in INTENTS:
        queries.append(Query(intent.qid, intent.text))
        qrels[intent.qid] = _grades(apps, intent.exact, intent.parent, ())
    for ambiguous in AMBIGUOUS:
        for name, exact, parent in ambiguous.senses:
            qid = f"{ambiguous.qid}-{name}"
            pool = [a.id for a in apps if exact.matches(a.labels)]
            viewed = tuple(pool[i] for i in rng.choice(len(pool), min(VIEWED, len(pool)), replace=False))
            queries.append(Query(qid, ambiguous.text, viewed))
            qrels[qid] = _grades(apps, exact, parent, viewed)
    thin = [qid for qid, docs in qrels.items() if sum(g == 2 for g in docs.values()) < MIN_RELEVANT]
    if thin:
        raise UserError(f"queries with fewer than {MIN_RELEVANT} exact matches: {', '.join(thin)}")
    return queries, qrels


def _grades(apps: list[App], exact: Rule, parent: Rule, viewed: tuple[str, ...]) -> dict[str, int]:
    # the engine never returns a viewed listing, so it is not judged for that query
    grades = {a.id: grade(a.labels, exact, parent) for a in apps if a.id not in viewed}
    return {doc: g for doc, g in grades.items() if g > 0}


def write_export(apps: list[App], icons: Path | None, raw: Path) -> None:
    """``raw/Products.csv`` and, with the icons tarball, ``raw/Images.csv`` + ``raw/images/``."""
    raw.mkdir(parents=True, exist_ok=True)
    with open(raw / "Products.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["id", "product_name", "category", "product_description", "price", "location"])
        writer.writerows([a.id, a.name, a.category, a.description, "£0", "Debian"] for a in apps)
    if icons is None:
        return
    wanted = {a.icon: a.id for a in apps if a.icon}
    images = raw / "images"
    images.mkdir(exist_ok=True)
    rows = []
    with tarfile.open(icons) as tar:
        for member in tar.getmembers():
            product = wanted.get(Path(member.name).name)
            if product is None or not member.isfile():
                continue
            (images / f"{product}-icon.png").write_bytes(tar.extractfile(member).read())
            rows.append((f"{product}-icon", product))
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows([("id", "product_id"), *sorted(rows)])
    (raw / "Images.csv").write_text(buffer.getvalue(), encoding="utf-8")


def write_split(queries: list[Query], qrels: dict[str, dict[str, int]], folder: Path,
                rng: np.random.Generator) -> Path:
    """Half the intents and half the ambiguous texts for dev, the rest for test."""
    groups = sorted({q.qid.split("-")[0] for q in queries})
    intents = [g for g in groups if g.startswith("i")]
    ambiguous = [g for g in groups if g.startswith("a")]
    dev = set(rng.permutation(intents)[:len(intents) // 2]) | \
        set(rng.permutation(ambiguous)[:len(ambiguous) // 2])
    folder.mkdir(parents=True, exist_ok=True)
    summary = {}
    for split, keep in (("dev", True), ("test", False)):
        chosen = [q for q in queries if (q.qid.split("-")[0] in dev) == keep]
        write_queries(folder / f"{split}.tsv", chosen)
        write_qrels(folder / f"{split}.qrels", {q.qid: qrels[q.qid] for q in chosen})
        summary[split] = {"queries": len(chosen), "with_viewed": sum(bool(q.viewed) for q in chosen),
                          "grade2": sum(sum(g == 2 for g in qrels[q.qid].values()) for q in chosen),
                          "grade1": sum(sum(g == 1 for g in qrels[q.qid].values()) for q in chosen)}
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return folder


if __name__ == "__main__":
    run(main, get_args_parser())

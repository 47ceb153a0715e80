"""A Sphinx extension of the book (``_config.yml``: ``sphinx.extra_extensions``).

It removes the duplicate inline scripts that Sphinx 7.4 writes into every page.  An
extension's ``app.add_js_file(None, body=...)`` reaches the HTML builder twice: once with
``filename=None`` and once, when the builder re-reads the registry before writing, with
``filename=""``, and Sphinx compares the two as different scripts.  sphinx-thebe's inline
script declares ``const THEBE_JS_URL``, so its second copy is a ``SyntaxError`` in the
browser console of every page ("Identifier 'THEBE_JS_URL' has already been declared").
:func:`unique_scripts` keeps the first of scripts that are equal once ``None`` and ``""``
are read as the same (no) file.
"""

from __future__ import annotations

__all__ = [
    "setup",
    "unique_scripts",
]


def _key(script) -> tuple:
    filename = getattr(script, "filename", script) or ""
    attributes = getattr(script, "attributes", {})
    priority = getattr(script, "priority", None)
    return (filename, priority, tuple(sorted((k, str(v)) for k, v in attributes.items())))


def unique_scripts(scripts: list) -> list:
    """``scripts`` without repeats, ``None`` and ``""`` filenames counting as the same."""
    seen: set[tuple] = set()
    out = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            out.append(script)
    return out


def _dedupe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if scripts:
        scripts[:] = unique_scripts(scripts)


def setup(app) -> dict:
    """Register the page hook (last, after every extension added its scripts)."""
    app.connect("html-page-context", _dedupe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}

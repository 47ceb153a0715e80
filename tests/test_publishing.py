"""The publishing workflow and the citation file parse and call what README shows."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_workflow_runs_the_readme_commands_and_deploys_the_html():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = workflow["jobs"]["build"]["steps"]
    runs = [s["run"] for s in steps if "run" in s]
    readme_commands = re.findall(r"^(make \w+)", (ROOT / "README.md").read_text(), flags=re.M)
    assert runs[:2] == readme_commands[:2][::-1]  # make test, then make book
    # then the Pythia edition from the downloaded release, published under /pythia/
    pythia = next(s for s in steps if s.get("run", "").startswith("make book PROFILE=paper"))
    assert pythia["run"] == "make book PROFILE=paper OUT=_build/pythia"
    assert pythia["env"]["HF_HUB_OFFLINE"] == "0"  # the release is downloaded from the hub
    assert runs[2:] == [pythia["run"], "cp -r _build/pythia/_build/html _build/html/pythia"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages"))
    assert upload["with"]["path"] == "_build/html"
    assert workflow["jobs"]["build"]["env"]["HF_HUB_OFFLINE"] == "1"
    assert workflow["jobs"]["deploy"]["needs"] == "build"


def test_citation_file_cites_the_paper():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    (paper,) = cff["references"]
    assert paper["identifiers"][0]["value"] == "arXiv:2508.03616"

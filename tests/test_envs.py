"""The conda env file and the pip pins name the same exact versions."""

import tomllib

import yaml


def _pins(requirements):
    return {r.split("==")[0].lower(): r.split("==")[1] for r in requirements if "==" in r}


def test_conda_env_matches_pyproject_pins():
    with open("pyproject.toml", "rb") as fh:
        pyproject = _pins(tomllib.load(fh)["project"]["dependencies"])
    with open("envs/vrp.yaml") as fh:
        env = yaml.safe_load(fh)
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d)
    conda = _pins(pip_section)
    assert conda == pyproject
    assert pyproject["torch"] == "2.13.0"  # the CPU wheel on local disk; unpinned pulls CUDA
    assert pyproject["transformers"].startswith("5.")


def test_every_pin_is_exact():
    with open("pyproject.toml", "rb") as fh:
        deps = tomllib.load(fh)["project"]["dependencies"]
    assert all("==" in d for d in deps), [d for d in deps if "==" not in d]

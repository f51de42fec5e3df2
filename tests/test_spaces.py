"""Hugging Face Spaces readiness: the README's front matter, the requirements file Spaces installs,
and what a built wheel carries."""

import importlib.metadata
import re
import sys

from import_graph import ROOT, imported_names, package_modules


def _third_party_imports_reachable_from(entry) -> set[str]:
    """Top-level third-party modules imported by ``entry`` and every imgjax module it reaches."""
    modules = package_modules()
    seen, todo, found = set(), [entry], set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        for name in imported_names(path):
            top = name.split(".")[0]
            if top == "imgjax":
                # a package's import reaches its __init__ and, for `from package import module`, that module
                todo += [modules[name]] if name in modules else []
            elif top not in sys.stdlib_module_names and top != "__future__":
                found.add(top)
    return found


def _requirement_names() -> set[str]:
    names = set()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            names.add(re.split(r"[<>=!~\[; ]", line)[0].lower().replace("_", "-"))
    return names


def test_requirements_name_everything_app_py_imports():
    distributions = importlib.metadata.packages_distributions()
    required = _requirement_names()
    modules = _third_party_imports_reachable_from(ROOT / "app.py")
    assert {"gradio", "jax", "flax", "numpy", "PIL"} <= modules  # the walk does reach the package
    missing = {m for m in modules if not {d.lower() for d in distributions.get(m, [m])} & required}
    assert not missing, f"requirements.txt lacks the distributions of {sorted(missing)}"


def test_requirements_pin_what_pyproject_pins():
    pyproject = (ROOT / "pyproject.toml").read_text()
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            assert f'"{line.strip()}"' in pyproject, f"{line.strip()} differs from pyproject.toml"


def test_readme_front_matter_configures_the_space():
    text = (ROOT / "README.md").read_text()
    assert text.startswith("---\n")
    front = dict(line.split(": ", 1) for line in text.split("---\n")[1].splitlines() if ": " in line)
    assert front["sdk"] == "gradio"
    assert front["sdk_version"] == importlib.metadata.version("gradio")  # the version tested
    assert front["app_file"] == "app.py"
    assert front["python_version"].strip('"') == f"{sys.version_info.major}.{sys.version_info.minor}"
    assert "license" in front and 0 < len(front["short_description"]) <= 60
    for binary in ("*.safetensors", "*.png"):
        assert f"{binary} filter=lfs" in (ROOT / ".gitattributes").read_text()


def test_checkpoints_are_small_enough_for_a_space():
    for path in (ROOT / "checkpoints").iterdir():
        assert path.stat().st_size < 10 * 2**20, path


def test_the_built_wheel_carries_the_studio_example_pictures_and_script(tmp_path):
    # `pip install .` (not editable) installs from a wheel: the studio's example pictures must travel
    # in it, as a data-only package, and the build must not warn that setuptools would leave a folder out.
    import subprocess
    import zipfile
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-w", str(tmp_path)],
                            capture_output=True, text=True, timeout=600, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "would be ignored" not in result.stdout + result.stderr
    wheel, = tmp_path.glob("imgjax-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {str(path.relative_to(ROOT)) for path in package_modules().values()}
    assert sources <= names, f"the wheel leaves out {sorted(sources - names)}"  # every subpackage listed
    packed = {name for name in names if name.startswith("imgjax/assets/")}
    assets = [path for pattern in ("*.png", "*.js") for path in (ROOT / "imgjax" / "assets").glob(pattern)]
    assert packed == {f"imgjax/assets/{path.name}" for path in assets}
    assert len(packed) == 10 + 8 + 1  # an example per garment class and per emoji group, and the page's script

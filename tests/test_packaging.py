"""What a new user installs and reads: pyproject.toml declares every third-party module the
package imports; the documentation's links resolve and its pictures are small."""

import ast
import re
import sys
import tomllib

from conftest import REPO

# Installed with DOLFINx itself (conda-forge, the DOLFINx images, Debian), not from PyPI.
DOLFINX_TOOLCHAIN = {"dolfinx", "ufl", "basix", "ffcx", "petsc4py", "mpi4py", "gmsh"}
# Imported only by the scripts ParaView's pvbatch runs (solver/report/pvscripts/).
PARAVIEW = {"paraview", "vtkmodules"}
FIRST_PARTY = {"solver", "meshes"}


def imported_top_level_modules(path):
    """The top-level names of every absolute import in a file, nested ones included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def distribution_name(requirement: str) -> str:
    """PEP 503-normalised project name of a requirement such as 'pydantic>=2'."""
    name = re.match(r"[A-Za-z0-9._-]+", requirement).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_declared():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {distribution_name(requirement) for requirement in project["dependencies"]}
    imports = {}
    for folder in FIRST_PARTY:
        for path in (REPO / folder).rglob("*.py"):
            # pvbatch runs a pvscript with its folder on the path: its siblings are local
            provided = (PARAVIEW | {sibling.stem for sibling in path.parent.glob("*.py")}
                        if "pvscripts" in path.parts else set())
            for name in imported_top_level_modules(path):
                if not (name in sys.stdlib_module_names or name in FIRST_PARTY
                        or name in provided or name in DOLFINX_TOOLCHAIN):
                    imports.setdefault(name, path.relative_to(REPO))
    undeclared = {name: str(path) for name, path in imports.items()
                  if distribution_name(name) not in declared}
    assert not undeclared, f"imported but not in pyproject.toml's dependencies: {undeclared}"
    # the ones the sweep and the report need, by name: a regression guard on the scan itself
    assert {"scipy", "matplotlib", "pandas", "tomli_w", "pint", "pydantic", "rich"} <= set(imports)


def test_documentation_links_and_pictures():
    # every relative link of the README and docs/ leads to a file of the repository, and
    # every picture in docs/img/ is used and small
    pages = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
    link = re.compile(r"\]\(([^)\s]+)\)")
    broken, used = [], set()
    for page in pages:
        for target in link.findall(page.read_text()):
            path = target.split("#")[0]
            if not path or re.match(r"[a-z]+://", path):
                continue
            resolved = (page.parent / path).resolve()
            used.add(resolved)
            if not resolved.exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken
    assert (REPO / "docs" / "tutorial.md").resolve() in used  # linked from the README
    pictures = sorted((REPO / "docs" / "img").glob("*.png"))
    assert pictures
    assert [picture.name for picture in pictures if picture.resolve() not in used] == []
    assert [picture.name for picture in pictures if picture.stat().st_size > 300_000] == []

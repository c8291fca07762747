"""The layers of src/ that src/methods/__init__.py lists hold: no module imports from a layer above
its own, at its top or inside a function (the registry's `get`, by name, is the one way up)."""

import ast
import re
from pathlib import Path

import src.methods

SRC = Path(__file__).resolve().parents[1] / "src"


def listed_layers() -> dict[str, int]:
    """{module, as src.<name>: its layer} from the registry's docstring, e.g. '3  diffusion (...), plotting'."""
    layers = {}
    table = src.methods.__doc__.split("Layers, lowest first")[1].split("\n\n")[1]
    for number, names in re.findall(r"^\s+(\d)\s+(.*(?:\n\s{7}\D.*)*)", table, flags=re.MULTILINE):
        names = re.sub(r"\([^)]*\)", "", names.split(";")[0])  # drop the asides and the root scripts
        for name in re.findall(r"[\w./]+", names):
            name = name.removesuffix(".py").removeprefix("src/").replace(".", "/")
            if (SRC / f"{name}.py").is_file() or (SRC / name).is_dir():  # a module, not a word of the prose
                layers["src." + name.replace("/", ".")] = int(number)
    return layers


def module_of(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str, layers: dict[str, int]) -> int:
    """A module's layer, or its package's (src.synthetic.grf is in src.synthetic's)."""
    while module not in layers and "." in module:
        module = module.rsplit(".", 1)[0]
    return layers[module]


def imported_modules(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            # `from src import training`: the module imported is src.training
            found |= {f"{node.module}.{alias.name}" for alias in node.names if node.module == "src"}
    return {name for name in found if name.startswith("src.")}


def test_every_module_of_src_has_a_listed_layer():
    layers = listed_layers()
    assert layers["src.errors"] == 0 and layers["src.cli"] == 9 and layers["src.methods.gano"] == 8
    unlisted = [module_of(path) for path in SRC.rglob("*.py") if module_of(path) != "src"
                and not any(module_of(path) == m or module_of(path).startswith(m + ".") for m in layers)]
    assert not unlisted, f"add these to the layers in src/methods/__init__.py: {unlisted}"


def test_no_module_imports_from_a_layer_above_its_own():
    layers = listed_layers()
    upward = []
    for path in SRC.rglob("*.py"):
        importer = module_of(path)
        if importer == "src":
            continue
        for imported in imported_modules(path):
            if layer_of(imported, layers) > layer_of(importer, layers):
                upward.append(f"{importer} (layer {layer_of(importer, layers)}) imports {imported} "
                              f"(layer {layer_of(imported, layers)})")
    assert not upward, "\n".join(sorted(upward))

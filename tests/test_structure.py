"""The house rules of the code base, checked: no import circle, small files, one module per tab."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imports_of(packages=("explorer", "training")) -> dict[str, set[str]]:
    """Module → the project modules it imports anywhere in it (in functions too: a lazy import is
    still a circle)."""
    files = {}
    for pkg in packages:
        for f in (ROOT / pkg).rglob("*.py"):
            parts = f.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
                target = ".".join(base + [node.module] if node.module else base)
                found |= {target} | {f"{target}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state, path = {}, []

    def visit(u):
        state[u] = "open"
        path.append(u)
        for v in sorted(graph[u]):
            if state.get(v) == "open":
                return path[path.index(v) :] + [v]
            if v not in state and (cycle := visit(v)):
                return cycle
        path.pop()
        state[u] = "done"
        return None

    return next((c for u in sorted(graph) if u not in state and (c := visit(u))), None)


def test_the_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_circle_in_explorer_or_training():
    graph = imports_of()
    assert "explorer.policy" in graph["explorer.tabs.head"]  # the graph sees relative imports
    assert find_cycle(graph) is None


def test_training_never_imports_the_explorer():
    graph = imports_of()
    assert not {
        m
        for name, deps in graph.items()
        if name.startswith("training")
        for m in deps
        if m.startswith("explorer")
    }


def test_no_explorer_file_is_over_500_lines():
    long = {
        f.name: n for f in (ROOT / "explorer").rglob("*.py") if (n := len(f.read_text().splitlines())) > 500
    }
    assert not long


def test_every_tab_module_is_on_the_page_with_a_build_and_a_wire():
    from explorer import page

    # base: what every tab is given; head_layout: the "Inside a head" tab's layout (its own file: 500 lines)
    modules = {f.stem for f in (ROOT / "explorer" / "tabs").glob("*.py")} - {
        "__init__",
        "base",
        "head_layout",
    }
    assert {m.__name__.rpartition(".")[2] for m in page.TABS} == modules
    for tab in page.TABS:
        assert isinstance(tab.TITLE, str) and callable(tab.build) and callable(tab.wire), tab.__name__


def test_every_tab_sits_in_the_one_tab_bar(page_parts):
    # A component created between two tabs' `with gr.Tab` blocks splits the bar in two (seen once).
    import gradio as gr

    from explorer import page

    demo, _ = page_parts
    bars = [b for b in demo.blocks.values() if isinstance(b, gr.Tabs)]
    assert len(bars) == 1
    titles = [c.label for c in bars[0].children if isinstance(c, gr.Tab)]
    assert titles == [tab.TITLE for tab in page.TABS]

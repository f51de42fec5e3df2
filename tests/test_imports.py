"""The package's import graph runs one way: no module imports, at any depth or inside a function,
a module that imports it back."""

from import_graph import import_graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node):
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_checker_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"imgjax.gan", "imgjax.evaluate", "imgjax.checkpoint", "imgjax.train"} <= graph.keys()
    assert "imgjax.gan" in graph["imgjax.evaluate"]  # the graph sees imports inside functions
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_models_sit_below_training_evaluation_and_serving():
    graph = import_graph()
    above = {"imgjax.train", "imgjax.evaluate", "imgjax.cli", "imgjax.bench"} | {
        name for name in graph if name.startswith(("imgjax.service", "imgjax.studio"))}
    for model in ("imgjax.cnn", "imgjax.ae", "imgjax.gan", "imgjax.encoder", "imgjax.edit", "imgjax.checkpoint"):
        assert not graph[model] & above, (model, graph[model] & above)

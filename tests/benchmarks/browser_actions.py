"""What `python -m tests.benchmarks --browser` times: each row an Action, two Steps it alternates, and the
plot whose update ends the measurement (browser.py does the timing)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace

# Two 12-word sentences: Translate alternates them, so every translation changes the plot.
SENTENCES = (
    "The old man saw a small dog near the river this morning.",
    "My sister said that she would come to our house tomorrow evening.",
)


@dataclass(frozen=True)
class Step:
    """One input: click `control` (a radio, a checkbox, the button), set the range input `control` to `value`,
    or press the mouse on `control` (how="mousedown": a dropdown's option, a table's cell)."""

    control: str
    how: str = "click"
    value: str | None = None
    text: str | None = None  # typed into the source textbox first, untimed
    opens: str | None = (
        None  # clicked first, untimed, to bring `control` onto the page (a dropdown's list, a tab)
    )
    fill: tuple[tuple[str, str], ...] = ()  # (selector, text) typed after `opens`, untimed
    script: str | None = None  # run in the page first, untimed
    then_tab: str | None = None  # the title of a tab clicked right after the input, timed (see MEASURE_JS)


@dataclass(frozen=True)
class Action:
    """A table row: `steps` alternate, starting from the default view; `timed` says which of the two count."""

    name: str
    alternates: str
    target: str  # the plot whose update ends the measurement
    steps: tuple[Step, Step]
    timed: tuple[bool, bool] = (True, True)
    setup: Step | None = None  # untimed, before the first repetition (skipped if that radio is already on)
    restore: str | None = None  # elem_id of a radio group whose value before `setup` is put back at the end
    also: tuple[str, ...] = ()  # other plots that must be redrawn too before the measurement ends
    tab: str | None = None  # the tab that holds its controls: not on the page until a step opens it

    @property
    def targets(self) -> list[str]:
        return [self.target, *self.also]


def radio(elem_id: str, value: str) -> Step:
    return Step(f"#{elem_id} input[type=radio][value='{value}']")


def actions() -> list[Action]:
    """In this order, each leaving the default view behind it (the next one starts from what a newcomer sees)."""
    translate = lambda text: Step("#translate-btn", text=text)
    head = Step("#heads input[type=checkbox][name='1']")
    step = lambda n: Step("#step input[type=range]", how="range", value=str(n))
    return [
        Action(
            "Translate → plot updated",
            "two 12-word sentences",
            "#attention-plot",
            (translate(SENTENCES[1]), translate(SENTENCES[0])),
        ),
        # Two single layers, whatever the default layer view is: the kind toggle measures the default one.
        Action(
            "layer toggle",
            "layer 1 ↔ 2",
            "#attention-plot",
            (radio("layer", "2"), radio("layer", "1")),
            setup=radio("layer", "1"),
            restore="layer",
        ),
        Action(
            "kind toggle",
            "cross ↔ decoder self",
            "#attention-plot",
            (radio("kind", "decoder"), radio("kind", "cross")),
        ),
        Action(
            "head untick",
            "head 1 off (back on untimed)",
            "#attention-plot",
            (head, head),
            timed=(True, False),
        ),
        Action("step-slider move", "step 1 ↔ 2, to the step chart", "#step-plot", (step(2), step(1))),
        *lines_actions(),
        *other_tab_actions(),
        *head_tab_actions(),
    ]


def lines_actions() -> list[Action]:
    """The Attention tab's "Draw as": map → lines, and a toggle while lines are shown (against "kind toggle")."""
    return [
        Action(
            "lines toggle",
            "map → lines (back untimed)",
            "#attention-plot",
            (radio("display", "lines"), radio("display", "map")),
            timed=(True, False),
        ),
        Action(
            "lines: kind toggle",
            "cross ↔ decoder self, as lines",
            "#attention-plot",
            (radio("kind", "decoder"), radio("kind", "cross")),
            setup=radio("display", "lines"),
            restore="display",
        ),
    ]


def other_tab_actions() -> list[Action]:
    """Beam search: a click on a hypothesis (its translation cell) explains it in every map, timed until the
    Attention tab, clicked next, shows its map. Compare: both sentences translated, both maps drawn."""
    choose = lambda row: Step(  # noqa: E731
        f"#beam-hypotheses [data-testid='cell-{row}-1']",
        how="mousedown",
        opens="#beam-tab-button",
        then_tab="Attention",
    )  # a table's cell is chosen on mousedown
    fields = ("#compare-a-text textarea", "#compare-b-text textarea")
    pair = lambda a, b: Step("#compare-btn", opens="#compare-tab-button", fill=tuple(zip(fields, (a, b))))  # noqa: E731
    return [
        Action(
            "beam: choose hypothesis",
            "hypothesis 2 ↔ 1, then Attention",
            "#attention-plot",
            (choose(1), choose(0)),
            tab="Beam search",
        ),
        Action(
            "compare: Compare button",
            "two 12-word sentences, swapped",
            "#compare-a",
            (pair(*SENTENCES[::-1]), pair(*SENTENCES)),
            setup=pair(*SENTENCES),  # the tab's first opening compares its own pair: this one after it
            also=("#compare-b",),
            tab="Compare",
        ),
    ]


HEAD_TAB = "head tab: "
HEAD_PANELS = "#head-values-plot"  # the last of the steps ①–③: drawn with (or after) the others


def head_tab_actions() -> list[Action]:
    """The "Inside a head" tab: a click on a row of the attention map (what the page's plotly_click listener
    does: the click's JSON in window.__headTabClick, then the hidden button), and each picker."""

    def row_click(row: int) -> Step:
        # layers 1 and 2: the quick mode's test model has two
        click = {"plot": "attention-plot", "y": "", "row": row, "panel": "layer 2 · head 2"}
        return Step("#head-click-btn", script=f"window.__headTabClick = {json.dumps(json.dumps(click))}")

    def query(i: int) -> Step:
        return Step(f"#head-query li[data-index='{i}']", how="mousedown", opens="#head-query input")

    actions = [
        Action(
            HEAD_TAB + "row click",
            "map row 2 ↔ 4, layer 2 · head 2",
            HEAD_PANELS,
            (row_click(1), row_click(3)),
            setup=Step("#head-click-btn", script=row_click(3).script, opens="#head-tab-button"),
        ),
        Action(
            HEAD_TAB + "layer change",
            "layer 2 ↔ 1",
            HEAD_PANELS,
            (radio("head-layer", "1"), radio("head-layer", "2")),
        ),
        Action(
            HEAD_TAB + "head change",
            "head 2 ↔ 1",
            HEAD_PANELS,
            (radio("head-head", "1"), radio("head-head", "2")),
        ),
        Action(
            HEAD_TAB + "kind change",
            "cross ↔ decoder self",
            HEAD_PANELS,
            (radio("head-kind", "decoder"), radio("head-kind", "cross")),
        ),
        Action(HEAD_TAB + "query change", "query 2 ↔ 3 (the menu)", HEAD_PANELS, (query(2), query(1))),
    ]
    return [replace(a, tab="Inside a head") for a in actions]

import numpy as np
import plotly.graph_objects as go
import pytest

from explorer.figures import attention_figure, positional_encoding_figure, top_k_figure
from training.model import sinusoidal_encoding


def rand_maps(r, c, q, k, seed=0):
    w = np.random.default_rng(seed).random((r, c, q, k))
    return w / w.sum(-1, keepdims=True)


def heatmaps(fig):
    return [t for t in fig.data if isinstance(t, go.Heatmap)]


def panel_titles(fig):
    return [a.text for a in fig.layout.annotations if a.name == "panel-title"]


def heading(fig):
    return next(a.text for a in fig.layout.annotations if a.name == "heading")


def test_on_a_phone_the_maps_stack_one_per_row_each_with_its_own_labels():
    w = rand_maps(2, 4, 5, 6)
    kw = dict(row_titles=["layer 1", "layer 2"], col_titles=[f"head {h}" for h in range(1, 5)])
    fig = attention_figure(w, list("abcdef"), list("vwxyz"), width=390, **kw)
    hm = heatmaps(fig)
    assert panel_titles(fig) == [f"layer {r} · head {h}" for r in (1, 2) for h in range(1, 5)]
    for i, h in enumerate(hm):  # the same maps, in reading order
        np.testing.assert_allclose(np.asarray(h.z, dtype=float), w[i // 4, i % 4])
    axes = [fig.layout[f"xaxis{'' if i == 0 else i + 1}"] for i in range(8)]
    assert all(tuple(a.domain) == (0.0, 1.0) and a.showticklabels for a in axes)
    ys = [fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain for i in range(8)]
    assert all(lo2 < hi2 < lo1 for (lo1, _), (lo2, hi2) in zip(ys, ys[1:]))  # stacked, never overlapping
    wide = attention_figure(w, list("abcdef"), list("vwxyz"), width=1100, **kw)
    assert len({fig.layout[f"xaxis{i}"].domain for i in ("", 2, 3, 4)}) == 1
    assert len({wide.layout[f"xaxis{i}"].domain for i in ("", 2, 3, 4)}) == 4  # side by side on a desktop


def test_the_heading_wraps_to_the_width_and_never_leaves_the_figure():
    sub = "“She reads a book every night before she goes to bed.” → 她每晚都在床上读书。"
    narrow = attention_figure(
        rand_maps(1, 1, 3, 3),
        list("abc"),
        list("xyz"),
        title="Cross-attention (decoder → encoder)",
        subtitle=sub,
        width=390,
    )
    wide = attention_figure(
        rand_maps(1, 1, 3, 3),
        list("abc"),
        list("xyz"),
        title="Cross-attention (decoder → encoder)",
        subtitle=sub,
        width=1100,
    )
    assert heading(narrow).count("<br>") > heading(wide).count("<br>") == 1
    for line in heading(narrow).replace("<sup>", "").replace("</sup>", "").split("<br>"):
        assert len(line) <= (390 - 20) / 6.5
    h = next(a for a in narrow.layout.annotations if a.name == "heading")
    assert h.yanchor == "top" and h.y <= 1 + narrow.layout.margin.t / (
        narrow.layout.height - narrow.layout.margin.t - narrow.layout.margin.b
    )


def test_one_heatmap_per_panel_with_z_shaped_like_the_labels():
    w = rand_maps(2, 3, 4, 5)
    fig = attention_figure(
        w,
        list("abcde"),
        list("wxyz"),
        row_titles=["layer 1", "layer 2"],
        col_titles=["head 1", "head 2", "head 3"],
    )
    hm = heatmaps(fig)
    assert len(hm) == 6
    for i, h in enumerate(hm):
        assert np.asarray(h.z).shape == (4, 5)
        np.testing.assert_allclose(np.asarray(h.z, dtype=float), w[i // 3, i % 3])
    assert panel_titles(fig)[:2] == ["layer 1 · head 1", "layer 1 · head 2"]
    assert list(hm[0].x) == list("abcde") and list(hm[0].y) == list("wxyz")
    # Hover reads the labels from the axes: no string per cell travels to the browser.
    assert all(h.text is None and "%{x}" in h.hovertemplate and "%{y}" in h.hovertemplate for h in hm)


def test_repeated_tokens_keep_their_own_columns():
    fig = attention_figure(rand_maps(1, 1, 3, 3), ["the", "cat", "the"], ["the", "cat", "the"])
    hm = heatmaps(fig)[0]
    assert np.asarray(hm.z).shape == (3, 3)
    assert len(set(hm.x)) == 3 and [x.replace("\u200b", "") for x in hm.x] == ["the", "cat", "the"]


def test_masked_cells_are_empty_not_zero():
    w = rand_maps(1, 1, 3, 3)
    mask = np.triu(np.ones((3, 3), bool), k=1)
    w[0, 0][mask] = 0.0
    weights_layer, mask_layer = heatmaps(attention_figure(w, list("abc"), list("abc"), masked=mask))
    z = np.asarray(weights_layer.z, dtype=float)
    assert np.isnan(z[mask]).all() and not np.isnan(z[~mask]).any()
    assert weights_layer.hoverongaps is False  # no "weight: NaN" on a masked cell
    grey = np.asarray(mask_layer.z, dtype=float)
    assert (grey[mask] == 1).all() and np.isnan(grey[~mask]).all() and "masked" in mask_layer.hovertemplate


def test_shared_scale_is_zero_to_one_and_per_map_scale_follows_each_max():
    w = rand_maps(1, 2, 3, 3) * np.array([1.0, 0.2])[None, :, None, None]
    shared = heatmaps(attention_figure(w, list("abc"), list("abc")))
    assert [(h.zmin, h.zmax) for h in shared] == [(0.0, 1.0), (0.0, 1.0)]
    fig = attention_figure(w, list("abc"), list("abc"), shared_scale=False)
    own = heatmaps(fig)
    assert [h.zmax for h in own] == pytest.approx([w[0, 0].max(), w[0, 1].max()])
    assert panel_titles(fig) == [f"darkest = {w[0, c].max():.2f}" for c in range(2)]


def test_per_map_scale_ignores_rows_forced_to_one():
    w = rand_maps(1, 1, 3, 3) * 0.5
    w[0, 0, 0] = [1.0, 0.0, 0.0]  # a first decoder row: one visible key, weight 1 by construction
    fig = attention_figure(
        w, list("abc"), list("abc"), shared_scale=False, forced_rows=np.array([1, 0, 0], bool)
    )
    assert heatmaps(fig)[0].zmax == pytest.approx(w[0, 0, 1:].max())


def test_labels_are_escaped_text():
    evil = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a&b"]
    fig = attention_figure(rand_maps(1, 1, 3, 3), evil, evil, title="<b>t</b>")
    ticks = list(heatmaps(fig)[0].x)
    assert ticks == ["&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "a&amp;b"]
    assert list(heatmaps(fig)[0].y) == ticks
    assert "&lt;b&gt;t&lt;/b&gt;" in heading(fig)


def test_highlighted_row_is_outlined():
    fig = attention_figure(rand_maps(1, 2, 4, 3), list("abc"), list("wxyz"), highlight_row=2)
    assert len(fig.layout.shapes) == 2
    assert {(s.y0, s.y1) for s in fig.layout.shapes} == {(1.5, 2.5)}


def test_label_count_mismatch_is_an_error():
    with pytest.raises(ValueError, match="labels"):
        attention_figure(rand_maps(1, 1, 3, 3), list("ab"), list("abc"))


def test_top_k_and_positional_encoding_figures():
    fig = top_k_figure(["爱", "喜", "<unk>"], [0.7, 0.2, 0.05])
    assert list(fig.data[0].x) == [0.7, 0.2, 0.05]
    assert list(fig.layout.yaxis.ticktext) == ["爱", "喜", "&lt;unk&gt;"]
    pe = sinusoidal_encoding(32, 16).numpy()
    fig = positional_encoding_figure(pe, dims=(0, 1, 6))
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), pe)
    assert [t.name for t in fig.data[1:]] == ["dim 0 (sin)", "dim 1 (cos)", "dim 6 (sin)"]
    # one colour language: +1 is red and −1 blue, as on every diverging map of the app
    scale = fig.data[0].colorscale
    red, blue = scale[-1][1], scale[0][1]
    assert (fig.data[0].zmin, fig.data[0].zmax) == (-1, 1)
    assert int(red[4:].split(",")[0]) > int(red.split(",")[2].rstrip(")")), red  # more red than blue at +1
    assert int(blue[4:].split(",")[0]) < int(blue.split(",")[2].rstrip(")")), blue  # more blue than red at −1


def test_figure_module_does_not_import_gradio():
    import ast
    import inspect

    import explorer.figures as figures

    tree = ast.parse(inspect.getsource(figures))
    names = {
        a.name
        for node in ast.walk(tree)
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for a in node.names
    }
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any("gradio" in (n or "") for n in names | modules)


@pytest.mark.parametrize("width", [390, 1400])
@pytest.mark.parametrize("n_tokens", [4, 12, 25, 45])
def test_labels_fit_their_cells_at_any_length_and_width(width, n_tokens):
    from explorer.figures import grid_geometry

    x = [f"word{i}" for i in range(n_tokens)]
    y = [f"我 → 爱{i}" for i in range(n_tokens)]
    geo = grid_geometry(1, 1, x, y, width, show_scale=True)
    if geo.x_angle == 0:  # horizontal labels: each fits inside its own column
        assert max(map(len, x)) * 0.62 * geo.x_font <= geo.cell_w
    else:  # vertical labels: one line of text per labelled column
        assert geo.x_angle == -90 and geo.x_font <= geo.cell_w * geo.x_step
    assert geo.x_step == 1 or (width < 600 and n_tokens > 40)  # thinned only on a phone, for long input
    assert geo.y_font + 4 <= geo.cell_h  # rows at least one line of text apart
    assert 7 <= geo.x_font <= 12 and 9 <= geo.y_font <= 12
    assert geo.left <= 0.35 * width


def test_stacked_panels_have_no_dead_gaps():
    fig = attention_figure(
        rand_maps(3, 1, 25, 25), [f"w{i}" for i in range(25)], [f"w{i}" for i in range(25)]
    )
    doms = [fig.layout[f"yaxis{'' if i == 0 else i + 1}"].domain for i in range(3)]
    plot_px = fig.layout.height - fig.layout.margin.t - fig.layout.margin.b
    gaps_px = [(doms[i][0] - doms[i + 1][1]) * plot_px for i in range(2)]
    assert all(20 <= g <= 40 for g in gaps_px)  # room for the next panel's title, nothing more


def test_training_curves_plot_every_logged_epoch_and_mark_the_shipped_one():
    from explorer.model_figures import training_curves_figure

    history = [
        {"epoch": e, "train_loss": 5 - e * 0.5, "lr": 1e-3 / e, "dev_bleu": 10.0 * e, "dev_chrf": 9.0 * e}
        for e in range(1, 5)
    ]
    fig = training_curves_figure(history, shipped=[3])
    by_name = {t.name: t for t in fig.data}
    assert list(by_name["loss"].y) == [4.5, 4.0, 3.5, 3.0] and list(by_name["BLEU"].x) == [1, 2, 3, 4]
    assert list(by_name["learning rate"].y) == [h["lr"] for h in history]
    assert list(by_name["chrF"].y) == [9.0, 18.0, 27.0, 36.0]
    assert any("shipped: epoch 3" in a.text for a in fig.layout.annotations)
    averaged = training_curves_figure(history, shipped=[2, 3, 4])
    assert [a.text for a in averaged.layout.annotations if "shipped" in a.text] == [
        "shipped: epochs 2–4 averaged"
    ]
    assert [(r.x0, r.x1) for r in averaged.layout.shapes if r.type == "rect"] == [(2, 4)] * 3  # every subplot
    without_dev = training_curves_figure([{"epoch": 1, "train_loss": 3.0}])
    assert [t.name for t in without_dev.data] == ["loss"]


def test_headings_wrap_chinese_by_its_width():
    from explorer.text_fit import char_width, heading_lines, wrap_by_width

    zh = "我和妹妹在一起了河流圣诞节的时候，我们每天晚上都搭了起了一起了一起节日元，然后我们妹妹妹妹去了"
    lines = wrap_by_width(f"“My sister and I went to the old market yesterday.” → {zh}", 40)
    assert all(sum(char_width(c) for c in line) <= 40 for line in lines)
    assert "".join(lines).replace(
        " ", ""
    ) == f"“My sister and I went to the old market yesterday.” → {zh}".replace(" ", "")
    assert len(lines) >= 3  # the Chinese alone is ~90 units wide: it cannot stay on one line
    assert wrap_by_width("I love you.", 40) == [
        "I love you."
    ]  # short text unchanged, English breaks at spaces
    assert wrap_by_width("one two three four", 9) == ["one two", "three", "four"]
    assert heading_lines("Cross-attention", zh, 390).count("<br>") >= 1


def test_a_map_that_labels_only_some_keys_says_so_under_them():
    from explorer.figures import grid_geometry

    x, y = [f"w{i}" for i in range(60)], [f"q{i}" for i in range(8)]
    weights = np.full((1, 1, 8, 60), 1 / 60)
    thinned = attention_figure(weights, x, y, x_title="key", width=390)
    step = grid_geometry(1, 1, x, y, 390, show_scale=True).x_step
    titles = [a.text for a in thinned.layout.annotations if a.name == "axis-title"]
    assert step > 1 and len(thinned.layout.xaxis.tickvals) == len(x[::step])
    assert titles and "labelled" in titles[0] and "every" in titles[0]
    full = attention_figure(weights[..., :8], x[:8], y, x_title="key", width=1400)
    assert [a.text for a in full.layout.annotations if a.name == "axis-title"] == ["key"]

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


def test_one_heatmap_per_panel_with_z_shaped_like_the_labels():
    w = rand_maps(2, 3, 4, 5)
    fig = attention_figure(w, list("abcde"), list("wxyz"), row_titles=["layer 1", "layer 2"],
                           col_titles=["head 1", "head 2", "head 3"])
    hm = heatmaps(fig)
    assert len(hm) == 6
    for i, h in enumerate(hm):
        assert np.asarray(h.z).shape == (4, 5)
        np.testing.assert_allclose(np.asarray(h.z, dtype=float), w[i // 3, i % 3])
    assert [a.text for a in fig.layout.annotations][:2] == ["layer 1 · head 1", "layer 1 · head 2"]
    assert list(fig.layout.xaxis.ticktext) == list("abcde") and list(fig.layout.yaxis.ticktext) == list("wxyz")


def test_repeated_tokens_keep_their_own_columns():
    fig = attention_figure(rand_maps(1, 1, 3, 3), ["the", "cat", "the"], ["the", "cat", "the"])
    assert np.asarray(heatmaps(fig)[0].z).shape == (3, 3)
    assert list(fig.layout.xaxis.tickvals) == [0, 1, 2]


def test_masked_cells_are_empty_not_zero():
    w = rand_maps(1, 1, 3, 3)
    mask = np.triu(np.ones((3, 3), bool), k=1)
    w[0, 0][mask] = 0.0
    z = np.asarray(heatmaps(attention_figure(w, list("abc"), list("abc"), masked=mask))[0].z, dtype=float)
    assert np.isnan(z[mask]).all() and not np.isnan(z[~mask]).any()
    text = np.asarray(heatmaps(attention_figure(w, list("abc"), list("abc"), masked=mask))[0].text)
    assert "masked" in text[0, 2] and "masked" not in text[2, 0]


def test_shared_scale_is_zero_to_one_and_per_map_scale_follows_each_max():
    w = rand_maps(1, 2, 3, 3) * np.array([1.0, 0.2])[None, :, None, None]
    shared = heatmaps(attention_figure(w, list("abc"), list("abc")))
    assert [(h.zmin, h.zmax) for h in shared] == [(0.0, 1.0), (0.0, 1.0)]
    own = heatmaps(attention_figure(w, list("abc"), list("abc"), shared_scale=False))
    assert [h.zmax for h in own] == pytest.approx([w[0, 0].max(), w[0, 1].max()])


def test_labels_are_escaped_text():
    evil = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a&b"]
    fig = attention_figure(rand_maps(1, 1, 3, 3), evil, evil, title="<b>t</b>")
    ticks = list(fig.layout.xaxis.ticktext)
    assert ticks == ["&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;img src=x onerror=alert(1)&gt;", "a&amp;b"]
    assert "<" not in fig.layout.title.text
    assert all("<script>" not in str(t) for t in np.asarray(heatmaps(fig)[0].text).ravel())


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


def test_figure_module_does_not_import_gradio():
    import ast
    import inspect

    import explorer.figures as figures

    tree = ast.parse(inspect.getsource(figures))
    names = {a.name for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom)) for a in node.names}
    modules = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any("gradio" in (n or "") for n in names | modules)

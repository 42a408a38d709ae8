"""jaxplain.plot's token attribution plots: the colours of the extreme and zero tokens, the wrapped
layout, the HTML (escaping, one span per token in order), the reductions, and bad input."""

import matplotlib

matplotlib.use("Agg")

import doctest  # noqa: E402
import html  # noqa: E402
import re  # noqa: E402
import textwrap  # noqa: E402

import jax.numpy as jnp  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib import colors as mcolors  # noqa: E402

import jaxplain._plot_text as T  # noqa: E402
import jaxplain.plot as P  # noqa: E402

TOKENS = ["the", "movie", "was", "not", "good"]
SCORES = np.array([0.0, 0.5, 0.25, -2.0, 1.0])  # most positive: "good", most negative: "not"
SPAN = re.compile(r'<span title="([^"]*)" style="background-color:(#[0-9a-f]{6});[^"]*">(.*?)</span>')


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _spans(snippet):
    return SPAN.findall(snippet)


def test_doctests_run():
    result = doctest.testmod(T)
    assert result.failed == 0 and result.attempted >= 10


def test_plot_reexports_the_text_functions():
    for name in ("text_heatmap", "text_html", "save_text_html", "TEXT_REDUCTIONS"):
        assert name in P.__all__ and getattr(P, name) is getattr(T, name)


# ----------------------------------------------------------------------------- colours


def test_signed_colours_are_the_colormap_ends_and_centre():
    ax = P.text_heatmap(TOKENS, SCORES)
    bwr = plt.get_cmap("bwr")
    face = [p.get_facecolor() for p in ax.patches]
    assert len(face) == 5 and [t.get_text() for t in ax.texts] == TOKENS
    # Limits (-2, 2): "not" (-2) is the blue end, "the" (0) the centre, "good" (1) three quarters.
    assert face[3] == bwr(0.0) and face[0] == bwr(0.5) and face[4] == bwr(0.75)
    np.testing.assert_allclose(face[0], (1.0, 1.0, 1.0, 1.0), atol=0.01)  # zero is white
    # The most positive token reaches the red end when it is the largest |score|.
    face = [p.get_facecolor() for p in P.text_heatmap(TOKENS, -SCORES).patches]
    assert face[3] == bwr(1.0) and face[3] == (1.0, 0.0, 0.0, 1.0) and face[0] == bwr(0.5)
    # The colour bar shows the same symmetric limits.
    fig = ax.figure
    assert len(fig.axes) == 2 and fig.axes[1].get_xlim() == (-2.0, 2.0)


def test_unsigned_colours_span_min_to_max():
    s = np.array([1.0, 3.0, 2.0])
    ax = P.text_heatmap(["a", "b", "c"], s, colorbar=False)  # one sign: drawn unsigned
    reds = plt.get_cmap("Reds")
    face = [p.get_facecolor() for p in ax.patches]
    assert face == [reds(0.0), reds(1.0), reds(0.5)] and len(ax.figure.axes) == 1
    # signed=True forces the diverging map with limits (-3, 3); a custom cmap is honoured.
    face = [p.get_facecolor() for p in P.text_heatmap(["a", "b", "c"], s, signed=True).patches]
    assert face[1] == plt.get_cmap("bwr")(1.0) and face[0] == plt.get_cmap("bwr")(4 / 6)
    face = [p.get_facecolor() for p in P.text_heatmap(["a", "b", "c"], -s, cmap="RdBu_r").patches]
    assert face[1] == plt.get_cmap("RdBu_r")(0.0)  # -3 is the low end when drawn unsigned


def test_html_uses_the_same_colours():
    snippet = P.text_html(TOKENS, jnp.asarray(SCORES))  # JAX input
    bwr = plt.get_cmap("bwr")
    found = _spans(snippet)
    assert [tok for *_, tok in found] == TOKENS
    colours = [c for _, c, _ in found]
    assert colours[3] == mcolors.to_hex(bwr(0.0)) and colours[0] == mcolors.to_hex(bwr(0.5))
    assert _spans(P.text_html(TOKENS, -SCORES))[3][1] == "#ff0000" == mcolors.to_hex(bwr(1.0))
    assert [float(t) for t, *_ in found] == SCORES.tolist()  # the title holds the score


def test_nan_scores_are_gray_and_do_not_set_the_limits():
    s = np.array([np.nan, 1.0, -0.5])
    face = [p.get_facecolor() for p in P.text_heatmap(["pad", "a", "b"], s).patches]
    assert face[0] == T._NAN_COLOR and face[1] == plt.get_cmap("bwr")(1.0)
    found = _spans(P.text_html(["pad", "a", "b"], s))
    assert found[0][:2] == ("nan", mcolors.to_hex(T._NAN_COLOR))
    # All NaN, or all zero: drawn without error (gray, and the centre colour).
    assert all(p.get_facecolor() == T._NAN_COLOR for p in P.text_heatmap(["a", "b"], [np.nan] * 2).patches)
    face = [p.get_facecolor() for p in P.text_heatmap(["a", "b"], np.zeros(2), signed=True).patches]
    assert face == [plt.get_cmap("bwr")(0.5)] * 2


def test_clip_is_symmetric_when_signed():
    s = np.array([-100.0, -1.0, 0.0, 1.0, 2.0])
    ax = P.text_heatmap(list("abcde"), s, clip=(0.0, 0.75))  # |s| 75% quantile = 2
    assert ax.figure.axes[1].get_xlim() == (-2.0, 2.0)
    assert ax.patches[0].get_facecolor() == plt.get_cmap("bwr")(0.0)  # clamped to -2
    found = _spans(P.text_html(list("abcde"), s, clip=(0.0, 0.75)))
    assert found[0][0] == "-100"  # the title keeps the score before clipping


# ----------------------------------------------------------------------------- reductions


def test_embedding_scores_are_reduced():
    rng = np.random.default_rng(0)
    e = rng.normal(size=(4, 6))
    toks = list("abcd")
    ours = [float(t) for t, *_ in _spans(P.text_html(toks, e))]  # reduce="sum" by default
    np.testing.assert_allclose(ours, e.sum(1), rtol=1e-3)
    ours = [float(t) for t, *_ in _spans(P.text_html(toks, e, reduce="norm"))]
    np.testing.assert_allclose(ours, np.linalg.norm(e, axis=1), rtol=1e-3)
    # The norm is unsigned: sequential colours, the largest norm at the top of "Reds".
    face = [p.get_facecolor() for p in P.text_heatmap(toks, e, reduce="norm").patches]
    assert face[int(np.argmax(np.linalg.norm(e, axis=1)))] == plt.get_cmap("Reds")(1.0)
    # (L,) scores are (L, 1): "norm" is |score|.
    ours = [float(t) for t, *_ in _spans(P.text_html(TOKENS, SCORES, reduce="norm"))]
    assert ours == np.abs(SCORES).tolist()


# ----------------------------------------------------------------------------- layout


def _lines(ax):
    return sorted({round(p.get_y(), 6) for p in ax.patches})


def test_wrapping_at_a_known_width():
    toks = ["aaaa"] * 6  # "aaaa aaaa" is 9 characters
    assert len(_lines(P.text_heatmap(toks, np.ones(6), max_width=9))) == 3
    assert len(_lines(P.text_heatmap(toks, np.ones(6), max_width=8))) == 6
    assert len(_lines(P.text_heatmap(toks, np.ones(6), max_width=14))) == 2
    assert len(_lines(P.text_heatmap(toks, np.ones(6)))) == 1  # 29 characters in 80
    # A token longer than the width gets a line of its own, and the words keep their order.
    ax = P.text_heatmap(["a", "b" * 12, "c", "d"], np.ones(4), max_width=5)
    assert [(p.get_x(), round(p.get_y(), 6), p.get_width()) for p in ax.patches] == [
        (0, 0.1, 1), (0, 1.1, 12), (0, 2.1, 1), (2, 2.1, 1)
    ]
    # A long sequence wraps into many lines; the default figure grows with them.
    long = [f"w{i}" for i in range(300)]
    ax = P.text_heatmap(long, np.arange(300.0), max_width=40)
    wrapped = textwrap.wrap(" ".join(long), 40, break_long_words=False)  # the same greedy rule
    assert len(_lines(ax)) == len(wrapped) > 20
    short = P.text_heatmap(long[:10], np.ones(10))
    assert ax.figure.get_size_inches()[1] > 2 * short.figure.get_size_inches()[1]


def test_given_axes_and_title():
    fig, ax = plt.subplots()
    out = P.text_heatmap(TOKENS, SCORES, ax=ax, title="gradient x input", colorbar=False)
    assert out is ax and ax.get_title() == "gradient x input" and len(fig.axes) == 1
    assert ax.texts[0].get_fontfamily() == ["monospace"]
    ax = P.text_heatmap(["$x$"], [1.0])  # no mathtext: drawn as typed
    ax.figure.canvas.draw()
    assert ax.texts[0].get_text() == "$x$"


# ----------------------------------------------------------------------------- HTML


def test_html_escapes_and_has_one_span_per_token_in_order():
    toks = ["<b>", "a&b", '"q"', "plain", "<script>alert(1)</script>"]
    snippet = P.text_html(toks, np.linspace(-1, 1, 5))
    assert "&lt;b&gt;" in snippet and "<b>" not in snippet and "<script>" not in snippet
    found = _spans(snippet)
    assert snippet.count("<span") == len(found) == 5
    assert [html.unescape(t) for *_, t in found] == toks
    assert [t for *_, t in found][:3] == ["&lt;b&gt;", "a&amp;b", "&quot;q&quot;"]
    assert snippet.startswith("<div") and snippet.endswith("</div>")


def test_save_text_html_rows(tmp_path):
    rng = np.random.default_rng(1)
    batch = rng.normal(size=(3, 4, 5))  # (N, L, D)
    toks = [["a", "b", "c", "<d>"], list("efgh"), list("ijkl")]
    rows = [(f"example <{i}>", toks[i], batch[i]) for i in range(3)]
    out = P.save_text_html(tmp_path / "t.html", rows, reduce="norm", title="Norms & more")
    page = out.read_text(encoding="utf-8")
    assert out == tmp_path / "t.html" and page.startswith("<!DOCTYPE html>")
    assert page.count('class="jaxplain-row"') == 3 and page.count("<span") == 12
    assert "example &lt;0&gt;" in page and "Norms &amp; more" in page and "&lt;d&gt;" in page
    assert [html.unescape(t) for *_, t in _spans(page)] == sum(toks, [])
    # Each row its own scale: every row's largest norm is the top colour; the same snippet as text_html.
    assert page.count(mcolors.to_hex(plt.get_cmap("Reds")(1.0))) == 3
    assert P.text_html(toks[1], batch[1], reduce="norm") in page
    # (tokens, scores) rows without a label, on one shared scale: one top colour in all.
    rows = [(["x", "y"], np.array([1.0, -1.0])), (["z"], np.array([4.0]))]
    page = P.save_text_html(tmp_path / "s.html", rows, shared_scale=True).read_text(encoding="utf-8")
    colours = [c for _, c, _ in _spans(page)]
    bwr = plt.get_cmap("bwr")
    assert colours == [mcolors.to_hex(bwr(x)) for x in (0.625, 0.375, 1.0)]
    assert "<b>" not in page  # no labels


# ----------------------------------------------------------------------------- bad input


def test_bad_input():
    with pytest.raises(ValueError, match="tokens is empty"):
        P.text_heatmap([], np.zeros(0))
    with pytest.raises(ValueError, match="5 tokens but 4 scores"):
        P.text_heatmap(TOKENS, np.ones(4))
    with pytest.raises(ValueError, match="5 tokens but 6 scores"):
        P.text_html(TOKENS, np.ones((6, 3)))
    with pytest.raises(TypeError, match="list of strings.*str"):
        P.text_html("the movie", np.ones(2))
    with pytest.raises(TypeError, match=r"tokens\[1\] must be a string, got int"):
        P.text_html(["a", 7], np.ones(2))
    with pytest.raises(ValueError, match=r"\(5, 2, 2\)"):
        P.text_heatmap(TOKENS, np.ones((5, 2, 2)))
    with pytest.raises(ValueError, match="Inf"):
        P.text_html(TOKENS, np.array([0, 1, np.inf, 0, 0]))
    with pytest.raises(ValueError, match="'mean'"):
        P.text_html(TOKENS, SCORES, reduce="mean")
    with pytest.raises(TypeError, match="signed.*'yes'"):
        P.text_html(TOKENS, SCORES, signed="yes")
    with pytest.raises(TypeError, match="clip.*0.99"):
        P.text_heatmap(TOKENS, SCORES, clip=0.99)
    with pytest.raises(ValueError, match=r"0 <= low < high <= 1.*\(0.9, 0.1\)"):
        P.text_html(TOKENS, SCORES, clip=(0.9, 0.1))
    with pytest.raises(ValueError, match="cmap.*'nope'"):
        P.text_html(TOKENS, SCORES, cmap="nope")
    with pytest.raises(ValueError, match="max_width must be >= 1, got 0"):
        P.text_heatmap(TOKENS, SCORES, max_width=0)
    with pytest.raises(TypeError, match="ax must be a matplotlib Axes"):
        P.text_heatmap(TOKENS, SCORES, ax="left")
    with pytest.raises(TypeError, match="real numbers"):
        P.text_html(TOKENS, np.array(list("abcde")))


def test_save_text_html_bad_rows(tmp_path):
    with pytest.raises(ValueError, match="rows is empty"):
        P.save_text_html(tmp_path / "x.html", [])
    with pytest.raises(TypeError, match=r"rows\[0\] must be a tuple"):
        P.save_text_html(tmp_path / "x.html", [TOKENS])
    with pytest.raises(ValueError, match=r"2 tokens but 3 rows\[1\] scores"):
        P.save_text_html(tmp_path / "x.html", [(TOKENS, SCORES), (["a", "b"], np.ones(3))])
    with pytest.raises(TypeError, match="path must be"):
        P.save_text_html(None, [(TOKENS, SCORES)])
    assert not (tmp_path / "x.html").exists()

"""Per-pixel answers (``ovseg_core.render.pixel_answer``) agree with the 3D answer at the threshold,
for lifted and for trained fields, on a small faint tabletop scene."""

from __future__ import annotations

import numpy as np
import pytest

from ovseg_core.eval.segment_quality import iou
from ovseg_core.fields.config import LanguageTrainConfig, LiftConfig
from ovseg_core.fields.lifting import lift_language_fields
from ovseg_core.fields.relevancy import FieldQuery
from ovseg_core.fields.training import LanguageFieldTrainer
from ovseg_core.models.palette_models import VocabularyTextEncoder
from ovseg_core.render import make_renderer
from ovseg_core.render.pixel_answer import answer_scores, answers_per_pixel, render_pixel_answer
from ovseg_core.selection import SelectionConfig, consistent_selection, graph_for
from ovseg_core.synthetic.tabletop_capture import noisy_planted_views, tabletop_capture, top_labels


@pytest.fixture(scope="module")
def small():
    cap = tabletop_capture(3, 150, cameras_per_ring=3, width=96, height=54, table=700, floaters=40)
    renderer = make_renderer("cpu")
    views = noisy_planted_views(cap, renderer)
    train, held = views[:-1], cap.cameras[-1]
    text = VocabularyTextEncoder(cap.vocabulary)
    lifted = lift_language_fields(cap.scene, train, [1], renderer, LiftConfig(), encoder_name=text.name)
    cfg = LanguageTrainConfig(feature_level=1, max_steps=40)
    trained = LanguageFieldTrainer(cap.scene, train, cfg, renderer=renderer, encoder_name=text.name).run()
    return cap, renderer, held, {"lifted": FieldQuery(lifted, text), "trained": FieldQuery(trained, text)}


def shown_in_answer(renderer, scene, camera, answer):  # noqa: ANN001, ANN201
    """The slow twin: each pixel's most-weighted Gaussian from the full contribution list."""
    out = renderer.render(scene, camera, top_k=64)
    ids, w = out.contrib_ids[0].long().numpy(), out.contrib_weights[0].numpy()
    top = np.take_along_axis(ids, np.argmax(w, axis=-1)[..., None], -1)[..., 0]
    covered = (out.alpha[0, ..., 0].numpy() >= 0.5) & (top >= 0)
    return covered & answer[np.clip(top, 0, None)], np.where(covered, top, -1)


@pytest.mark.parametrize("kind", ["lifted", "trained"])
def test_pixel_answer_at_the_threshold_is_the_rendered_3d_answer(small, kind):
    cap, renderer, held, queries = small
    query = queries[kind]
    graph = graph_for(cap.scene, SelectionConfig())
    truth = top_labels(cap, renderer, held)
    for k, name in enumerate(cap.object_names):
        rel, level = query.gaussian_relevancy(name)
        answer = consistent_selection(graph, rel, 0.5, query.evidence(level))
        pixels = render_pixel_answer(renderer, cap.scene, held, rel, answer, 0.5)
        expect, top = shown_in_answer(renderer, cap.scene, held, answer)
        np.testing.assert_array_equal(pixels.answer, expect)
        np.testing.assert_array_equal(pixels.relevancy > 0.5, expect)  # the relevancy image agrees at 0.5
        # away from the answer's edge the image shows the relevancy of what the pixel shows
        plain = np.where(top >= 0, rel[np.clip(top, 0, None)], 0.0)
        same = (top >= 0) & ((rel > 0.5) == answer)[np.clip(top, 0, None)]
        np.testing.assert_allclose(pixels.relevancy[same], plain[same], atol=1e-6)
        assert (pixels.relevancy[top < 0] == 0).all()
        # and the fields render to pixels: the object's own pixels come out
        if (truth == k).sum() >= 20:
            assert iou(pixels.answer, truth == k) >= 0.8, f"{kind} {name}: {iou(pixels.answer, truth == k):.3f}"


def test_answer_scores_put_every_gaussian_on_its_side_of_the_threshold():
    rel = np.array([0.2, 0.7, 0.5, 0.9, 0.1], np.float32)
    answer = np.array([True, False, True, True, False])
    s = answer_scores(rel, answer, 0.5)
    np.testing.assert_array_equal(s > 0.5, answer)
    np.testing.assert_allclose(s[[3, 4]], rel[[3, 4]])  # already on their side: unchanged
    assert s[1] == np.float32(0.5) and 0.5 < s[0] < 0.5 + 1e-6
    with pytest.raises(ValueError, match="one shape"):
        answer_scores(rel, answer[:3], 0.5)
    shown = np.array([[0, 1], [-1, 3]])
    per_t = answers_per_pixel(shown, np.stack([answer, ~answer], 1))
    np.testing.assert_array_equal(per_t[..., 0], [[True, False], [False, True]])
    np.testing.assert_array_equal(per_t[..., 1], [[False, True], [False, False]])

"""Tests for data/plm.py: schema, XLNet layout, orders and masks, partial prediction, resumption."""

import itertools

import numpy as np
import pytest

from data import features, plm
from tests.conftest import FIXTURES
from tests.data.conftest import make_options

B, L, P, K = 4, 32, 8, 4.0


def _options(data_options, corpus, **overrides):
    return data_options(corpus, max_seq_length=L, max_predictions_per_seq=P, plm_k=K,
                        plm_max_span=5, perm_size=0, whole_word_masking=True, **overrides)


def _take(opts, n, split="train", **kwargs):
    kwargs = {"batch_size": B, "seed": 0, **kwargs}
    return list(itertools.islice(plm.make_dataset(opts.corpus, opts.plm, split, **kwargs), n))


@pytest.fixture(scope="module")
def batches():
    return _take(_options(make_options, str(FIXTURES / "corpus_slice.txt.gz")), 6)


def test_schema_matches_features(batches, fixture_corpus, data_options):
    want = features.shapes("plm", B=B, L=L, P=P)
    eval_batch = _take(_options(data_options, fixture_corpus), 1, split="eval")[0]
    for batch in (batches[0], eval_batch):
        assert {k: (v.shape, str(v.dtype)) for k, v in batch.items()} == want


def test_xlnet_layout_ends_with_sep_and_cls(batches):
    for b in batches:
        assert (b["token_ids"][:, -1] == features.CLS_ID).all()
        assert (b["type_ids"][:, -1] == plm.TYPE_CLS).all()
        assert (b["token_ids"][:, -2] == features.SEP_ID).all()
        for row, types in zip(b["token_ids"], b["type_ids"], strict=True):
            real = row != features.PAD_ID
            assert not real[:np.argmax(real)].any()  # padding only on the left
            assert (row == features.SEP_ID).sum() == 2
            assert set(types[real][:-1]) <= {0, 1} and (np.diff(types[real][:-1]) >= 0).all()


def test_about_one_in_k_tokens_is_predicted(batches):
    predicted = np.concatenate([b["plm_weights"].sum(1) for b in batches])
    words = np.concatenate([(b["token_ids"] >= features.NUM_SPECIAL_IDS).sum(1)
                            for b in batches])
    goal = np.minimum(P, np.maximum(1, np.round(words / K)))
    np.testing.assert_array_equal(predicted, goal)
    assert abs(predicted.mean() - (L - 3) / K) < 1.5


def test_targets_are_the_mapped_tokens_and_last_in_the_order(batches):
    for b in batches:
        for r in range(B):
            tm, w, ca = b["plm_target_mapping"][r], b["plm_weights"][r], b["can_attend"][r]
            positions = tm.argmax(1)[w > 0]
            assert (tm[w == 0] == 0).all() and (tm[w > 0].sum(1) == 1).all()
            np.testing.assert_array_equal(b["plm_targets"][r][w > 0],
                                          b["token_ids"][r][positions])
            is_target = np.zeros(L, bool)
            is_target[positions] = True
            context = (b["token_ids"][r] >= features.NUM_SPECIAL_IDS) & ~is_target
            # every target sees all context; context never sees a target
            assert ca[np.ix_(is_target, context)].all()
            assert not ca[np.ix_(context, is_target)].any()
            assert np.diag(ca).all()


def test_can_attend_is_a_factorisation_order(batches):
    """Among real tokens, "i sees j" is a strict order (plus the diagonal): transitive and
    antisymmetric off the context block, so the masks come from one order."""
    for b in batches:
        for r in range(B):
            real = b["token_ids"][r] != features.PAD_ID
            ca = b["can_attend"][r][np.ix_(real, real)]
            sees = ca & ~np.eye(len(ca), dtype=bool)
            two_step = (sees.astype(int) @ sees.astype(int)) > 0
            assert not (two_step & ~ca).any()  # transitive
            off_diagonal = ~np.eye(L, dtype=bool)
            assert not (b["can_attend"][r] & off_diagonal)[:, ~real].any()  # padding unseen


def test_identity_order_gives_left_to_right_masks():
    rank = plm.block_permutation(L, 1, np.random.default_rng(0))
    np.testing.assert_array_equal(rank, np.arange(L))
    everything = np.ones(L, bool)
    ca = plm.masks_from_order(rank, everything, ~everything, everything)
    np.testing.assert_array_equal(ca, np.tril(np.ones((L, L), bool)))


def test_block_permutation_stays_in_blocks():
    rank = plm.block_permutation(L, 8, np.random.default_rng(1))
    assert sorted(rank) == list(range(L))
    assert (rank // 8 == np.arange(L) // 8).all()
    assert not (rank == np.arange(L)).all()


def test_same_seed_same_batches_and_resume(fixture_corpus, data_options, batches):
    opts = _options(data_options, fixture_corpus)
    for a, b in zip(_take(opts, 2, start_position=3 * B), batches[3:5], strict=True):
        for k in a:
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    other = _take(opts, 1, seed=1)[0]
    assert not np.array_equal(other["can_attend"], batches[0]["can_attend"])

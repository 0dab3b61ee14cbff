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


# The per-row builder as it was before plm_batch was vectorised (commit f83959b): the reference
# that plm_batch must equal bit for bit. (sample_targets and block_permutation are unchanged.)
def _reference_batch(token_ids, type_ids, positions, options, is_start_v, seed_key):
    n, length = token_ids.shape
    real = (token_ids != features.PAD_ID).sum(axis=1)
    tokens, types = np.full_like(token_ids, features.PAD_ID), np.zeros_like(type_ids)
    for row in range(n):
        body = real[row] - 1
        tokens[row, length - body - 1:length - 1] = token_ids[row, 1:1 + body]
        types[row, length - body - 1:length - 1] = type_ids[row, 1:1 + body]
        tokens[row, -1], types[row, -1] = features.CLS_ID, plm.TYPE_CLS
    rows = [_reference_row(t, is_start_v, options, np.random.default_rng([*seed_key, int(p)]))
            for t, p in zip(tokens, positions, strict=True)]
    batch = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
    batch.update(token_ids=tokens, type_ids=types)
    return {k: batch[k] for k in features.FEATURES["plm"]}


def _reference_row(token_ids, is_start_v, options, rng):
    length, predictions = len(token_ids), options.instances.max_predictions_per_seq
    is_real = token_ids != features.PAD_ID
    is_func = (token_ids == features.SEP_ID) | (token_ids == features.CLS_ID)
    is_word = is_real & (token_ids >= features.NUM_SPECIAL_IDS)
    goal = min(predictions, max(1, int(round(is_word.sum() / options.plm_k))))
    is_target = plm.sample_targets(is_word, is_start_v[token_ids], goal, options.plm_k,
                                   options.plm_max_span, rng)
    rank = plm.block_permutation(length, options.perm_size or length, rng)
    permuted = is_target | is_func
    order = np.where(permuted, rank, -1)
    self_order = np.where(is_target, order, order + 1)
    hidden = (self_order[:, None] <= order[None, :]) & permuted[None, :]
    positions = np.flatnonzero(is_target)
    mapping = np.zeros((predictions, length), np.float32)
    mapping[np.arange(len(positions)), positions] = 1.0
    targets = np.zeros(predictions, np.int32)
    targets[:len(positions)] = token_ids[positions]
    weights = np.zeros(predictions, np.float32)
    weights[:len(positions)] = 1.0
    return {"can_attend": (~hidden & is_real[None, :]) | np.eye(length, dtype=bool),
            "plm_target_mapping": mapping, "plm_targets": targets, "plm_weights": weights}


def _bert_rows(seed, n, length, vocab=300):
    """Random ``[CLS] A [SEP] B [SEP] pad…`` rows of every length from 5 tokens to L, with some
    [UNK]s inside the segments (non-words that end spans), positions of one and two 32-bit words,
    and a random word-start table."""
    rng = np.random.default_rng(seed)
    token_ids, type_ids = np.zeros((n, length), np.int32), np.zeros((n, length), np.int32)
    for row, real in enumerate(rng.integers(5, length + 1, n)):
        a = rng.integers(1, real - 3)
        words = rng.integers(features.NUM_SPECIAL_IDS, vocab, real)
        words[rng.random(real) < 0.05] = features.UNK_ID
        token_ids[row, :real] = words
        token_ids[row, [0, 1 + a, real - 1]] = features.CLS_ID, features.SEP_ID, features.SEP_ID
        type_ids[row, 2 + a:real] = 1
    positions = rng.integers(0, 2 ** 40, n) >> rng.integers(0, 40, n)
    return token_ids, type_ids, positions, rng.random(vocab) < 0.7


_KEY = (0, 2 ** 63 + 5, 3)  # a seed of two 32-bit words, as (tag, seed, shard)


def _plm_options(length, predictions, k, perm_size):
    return make_options("unused", max_seq_length=length, max_predictions_per_seq=predictions,
                        plm_k=k, plm_max_span=5, perm_size=perm_size,
                        whole_word_masking=True).plm


@pytest.mark.parametrize("length,predictions,k,perm_size,every_piece_starts", [
    (64, 12, 6.0, 0, False),  # XLNet's K and spans
    (48, 16, 2.0, 8, True),  # K = 2: one-word spans take integers(1), no draw: rows redone
    (32, 32, 1.0, 4, False),  # K = 1: every row redone; P = L
])
def test_batch_equals_the_per_row_reference(length, predictions, k, perm_size,
                                            every_piece_starts):
    token_ids, type_ids, positions, is_start_v = _bert_rows(length, 40, length)
    if every_piece_starts:
        is_start_v[:] = True
    args = (token_ids, type_ids, positions, _plm_options(length, predictions, k, perm_size),
            is_start_v, _KEY)
    got, want = plm.plm_batch(*args), _reference_batch(*args)
    assert list(got) == list(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_rows_with_a_draw_numpy_would_reject_are_redone(monkeypatch):
    """Rejections are too rare to meet by chance: flag every third row's draws as rejected;
    those rows are redone as written and the batch is unchanged."""
    from data import pcg64_streams, plm_sampling
    lemire, redone = pcg64_streams.lemire, []

    def rejecting(draw32, bound):
        value, exact = lemire(draw32, bound)
        exact[::3] = False
        return value, exact

    def counted(*args):
        redone.append(args)
        return plm.sample_targets(*args)

    monkeypatch.setattr(pcg64_streams, "lemire", rejecting)
    monkeypatch.setattr(plm_sampling, "sample_targets", counted)
    token_ids, type_ids, positions, is_start_v = _bert_rows(1, 30, 64)
    args = (token_ids, type_ids, positions, _plm_options(64, 12, 6.0, 0), is_start_v, _KEY)
    got, want = plm.plm_batch(*args), _reference_batch(*args)
    assert len(redone) == 10
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def test_batch_digest_recorded_from_the_per_row_code():
    """The bytes of one batch as commit f83959b's per-row code built them (same NumPy)."""
    import hashlib
    token_ids, type_ids, positions, is_start_v = _bert_rows(7, 16, 64)
    batch = plm.plm_batch(token_ids, type_ids, positions, _plm_options(64, 12, 6.0, 0),
                          is_start_v, _KEY)
    digest = hashlib.sha256()
    for name in sorted(batch):
        digest.update(name.encode() + np.ascontiguousarray(batch[name]).tobytes())
    assert digest.hexdigest() == (
        "b7f0eee455348d159118bc1d6a652d5bab70b9318be6bb7e235492af4498b04d")


def _stream_digests(keep: bool) -> list[str]:
    """Digests of the first batches of an XLNet-base-shaped stream (L = 512, P = 85, K = 6),
    the batches dropped as they come (so output buffers may be reused) or all kept."""
    import hashlib
    opts = make_options(str(FIXTURES / "corpus_slice.txt.gz"), max_seq_length=512,
                        max_predictions_per_seq=85, plm_k=6.0, plm_max_span=5, perm_size=0,
                        whole_word_masking=True)
    kept, digests = [], []
    for batch in itertools.islice(plm.make_dataset(opts.corpus, opts.plm, "train", batch_size=8,
                                                   seed=3), 5):
        digest = hashlib.sha256()
        for name in sorted(batch):
            digest.update(name.encode() + np.ascontiguousarray(batch[name]).tobytes())
        digests.append(digest.hexdigest()[:16])
        if keep:
            kept.append(batch)
    if keep:  # what was handed out earlier is unchanged by what came after
        for batch, want in zip(kept, digests, strict=True):
            digest = hashlib.sha256()
            for name in sorted(batch):
                digest.update(name.encode() + np.ascontiguousarray(batch[name]).tobytes())
            assert digest.hexdigest()[:16] == want
    return digests


def test_stream_digest_at_xlnet_base_shapes_recorded_before_the_speedups():
    """Five batches at XLNet-base's shapes as the code before the output-buffer reuse and the
    fused passes built them (recorded then, same NumPy), batches dropped or kept."""
    want = _stream_digests(keep=False)
    assert want == ["b412a66821481c21", "eb617e7ef1f451aa", "038c8101c0d9d2ca",
                    "eec011f7459eb623", "38ed97381c8f0b3f"]
    assert _stream_digests(keep=True) == want


def test_output_arrays_are_reused_only_once_nobody_holds_them():
    outputs = plm._Outputs()
    first = outputs.one_hot("m", (2, 3), np.array([1, 4]))
    first.reshape(-1)[[1, 4]] = 1.0
    held = outputs.one_hot("m", (2, 3), np.array([0]))
    assert held is not first  # `first` is still held here
    address = first.ctypes.data
    del first
    again = outputs.one_hot("m", (2, 3), np.array([5]))
    assert again.ctypes.data == address and not again.any()  # reused, last ones undone
    view = again[0]
    del again
    assert outputs.empty("m", (2, 3), np.float32).ctypes.data != address  # a view holds it
    del view

"""Model behaviour of the recall models (mlcore.models.recall) on toy and tiny synthetic data.

Hand-computed cases (EASE's closed form, popularity's order and window), the list invariants
every model must keep (no excluded, duplicate or self item; exactly k; ties to the more popular
movie), the embedding tables (sharded == array, bit for bit), the popularity fallback, and a
two-taste dataset that every learned model must separate. Tiny data: a few seconds in all.
"""

from __future__ import annotations

import datetime as dt

import joblib
import numpy as np
import pandas as pd
import pytest

from mlcore.metrics import score_auc
from mlcore.models import recall
from mlcore.training import TrainingError

T0 = dt.datetime(2024, 1, 1)


def frame(rows, *, day: int = 0) -> pd.DataFrame:
    """(user, movie, rating[, day]) tuples → an interactions DataFrame."""
    out = []
    for row in rows:
        user, movie, rating, *rest = row
        when = T0 + dt.timedelta(days=int(rest[0] if rest else day))
        out.append((user, movie, rating, when))
    return pd.DataFrame(out, columns=["user_id", "movie_id", "rating", "rated_at"])


# ---- EASE against its closed form, by hand ------------------------------------------------------
# Positives: user 1 -> 10, 20; user 2 -> 10, 20, 30; user 3 -> 20, 30; user 4 -> 10.
# G = XᵀX + I = [[4, 2, 1], [2, 4, 2], [1, 2, 3]], det 24, P = G⁻¹ = [[8, -4, 0],
# [-4, 11, -6], [0, -6, 12]] / 24, B_ij = -P_ij / P_jj (diagonal 0):
B_BY_HAND = np.array([[0, 4 / 11, 0], [0.5, 0, 0.5], [0, 6 / 11, 0]])
TOY = frame(
    [(1, 10, 5), (1, 20, 4), (2, 10, 5), (2, 20, 5), (2, 30, 4), (3, 20, 4.5), (3, 30, 5)]
    + [(4, 10, 4), (4, 30, 2)]  # user 4 also rated 30, below the bar: not a positive
)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_ease_is_the_closed_form(dtype):
    model = recall.EASE(l2=1.0, dtype=dtype)
    summary = model.fit(TOY)
    assert summary["items"] == 3 and summary["rows"] == len(TOY)
    assert model.items_.tolist() == [10, 20, 30]  # 3, 3, 2 positives; 10 and 20 tie: id
    np.testing.assert_allclose(model.B_, B_BY_HAND, atol=1e-6)
    # scores x_u B: user 1 (10, 20) on 30: B[10,30] + B[20,30] = 0.5; user 4 (10) on 20: 4/11
    pairs = model.score_pairs([1, 4, 3, 99], [30, 20, 10, 10])
    np.testing.assert_allclose(pairs, [0.5, 4 / 11, 0.5, 0.0], atol=1e-6)
    ids, scores = model.recommend([4, 3], 2, exclude={4: [10, 30], 3: [20, 30]})
    assert ids.tolist() == [[20, -1], [10, -1]]  # only one unrated movie left each
    np.testing.assert_allclose(scores[:, 0], [4 / 11, 0.5], atol=1e-6)
    assert np.isnan(scores[:, 1]).all()
    ids, scores = model.similar([10, 20], 2)
    # B's row of 20 ties 10 and 30 at 0.5: the more popular movie (10) goes first
    assert ids.tolist() == [[20, 30], [10, 30]]
    np.testing.assert_allclose(scores, [[4 / 11, 0.0], [0.5, 0.5]], atol=1e-6)


def test_ease_restricted_to_the_most_popular_items_backfills_by_popularity():
    model = recall.EASE(l2=1.0, max_items=2)
    model.fit(TOY)
    assert model.B_.shape == (2, 2)
    ids, _ = model.recommend([4], 2, exclude={4: [10]})
    assert ids.tolist() == [[20, 30]]  # 20 by EASE, then 30 from the popularity list
    ids, _ = model.similar([30], 2)  # 30 is outside EASE's items: the popularity list
    assert ids.tolist() == [[10, 20]] and model.n_fallback_ == 1


# ---- popularity ----------------------------------------------------------------------------------
def test_popularity_counts_positives_in_the_window_and_excludes_rated():
    df = frame(
        [(1, 7, 5, 0), (2, 7, 5, 0), (3, 7, 4, 0)]  # 7: three positives, all old
        + [(1, 8, 5, 30), (2, 8, 4, 30)]  # 8: two recent positives
        + [(3, 9, 5, 30), (1, 9, 1, 30), (2, 9, 3.5, 30)]  # 9: one positive, three ratings
        + [(4, 5, 4, 29), (4, 6, 2, 30)]  # 5: one positive (fewer ratings than 9), 6: none
    )
    ever = recall.Popularity()
    ever.fit(df)
    ids, scores = ever.recommend([4, 1], 3, exclude={4: [5, 6], 1: [7, 8, 9]})
    assert ids.tolist() == [[7, 8, 9], [5, 6, -1]]
    assert scores[0].tolist() == [3.0, 2.0, 1.0] and scores[1, :2].tolist() == [1.0, 0.0]
    recent = recall.Popularity(days=7)
    recent.fit(df)
    ids, scores = recent.recommend([4], 5)
    # in the last 7 days: 8 (2), 9 (1, more ratings than 5), 5 (1); then 7 (0, old) and 6
    assert ids.tolist() == [[8, 9, 5, 7, 6]] and scores[0].tolist() == [2, 1, 1, 0, 0]
    assert recent.n_fallback_ == 0
    recent.recommend([4, 12345], 2)
    assert recent.n_fallback_ == 1  # the unseen user: same list, counted
    ids, _ = recent.similar([8, 424242], 2)
    assert ids.tolist() == [[9, 5], [8, 9]]
    assert recent.score_pairs([1, 1], [8, 424242]).tolist() == [2.0, 0.0]


# ---- invariants of every list -------------------------------------------------------------------
def random_ratings(seed: int = 0, users: int = 60, movies: int = 40, n: int = 900) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    popular = rng.zipf(1.6, n) % movies  # skewed popularity
    df = pd.DataFrame(
        {
            "user_id": rng.integers(0, users, n) * 3 + 1000,
            "movie_id": popular * 7 + 5,
            "rating": rng.choice([1.0, 2.5, 3.0, 4.0, 4.5, 5.0], n),
            "rated_at": T0 + pd.to_timedelta(rng.integers(0, 90 * 86_400, n), unit="s"),
        }
    )
    return df.drop_duplicates(["user_id", "movie_id"]).reset_index(drop=True)


def check_lists(ids, scores, k, excluded: dict, users, catalogue: set) -> None:
    assert ids.shape == scores.shape == (len(users), k) and ids.dtype == np.int64
    for row, score, user in zip(ids, scores, users, strict=True):
        listed = row[row >= 0]
        assert len(set(listed)) == len(listed), "duplicate movie"
        assert not set(listed) & set(excluded.get(user, ())), "excluded movie listed"
        assert set(listed) <= catalogue
        available = len(catalogue - set(excluded.get(user, ())))
        assert len(listed) == min(k, available)  # exactly k while the catalogue allows
        assert (row[len(listed) :] == -1).all() and np.isfinite(score[: len(listed)]).all()
        assert np.isnan(score[len(listed) :]).all()


@pytest.mark.parametrize(
    "make",
    [
        lambda: recall.Popularity(days=30),
        lambda: recall.EASE(l2=10.0, max_items=25),
        lambda: recall.ImplicitALS(factors=8, iterations=5, seed=1),
    ],
    ids=["popularity", "ease", "als"],
)
def test_lists_never_hold_excluded_duplicate_or_self_items(make):
    df = random_ratings()
    model = make()
    model.fit(df)
    users = np.r_[np.sort(df["user_id"].unique())[:40], [-5, 77]]  # two unseen users
    seen = {u: g.to_numpy() for u, g in df.groupby("user_id")["movie_id"]}
    catalogue = set(df["movie_id"])
    for k in (5, len(catalogue) + 3):  # k beyond the catalogue: padded with -1
        ids, scores = model.recommend(users, k, exclude=seen, batch_size=7)
        check_lists(ids, scores, k, seen, users, catalogue)
        assert model.n_fallback_ >= 2
        # the same lists from the sparse form of the exclusions, and a second call
        ids2, scores2 = model.recommend(users, k, exclude=recall.rated_matrix(df, users))
        np.testing.assert_array_equal(ids, ids2)
        np.testing.assert_array_equal(scores, scores2)
    model.workers = 1  # one thread gives the same lists as two (batches write their own rows)
    ids1, scores1 = model.recommend(users, k, exclude=seen, batch_size=7)
    np.testing.assert_array_equal(ids, ids1)
    np.testing.assert_array_equal(scores, scores1)
    movies = np.r_[np.sort(df["movie_id"].unique()), [-1]]
    ids, scores = model.similar(movies, 6, batch_size=5)
    for movie, row in zip(movies, ids, strict=True):
        assert movie not in row and len(set(row[row >= 0])) == (row >= 0).sum()
    assert (ids >= 0).all()
    assert np.isfinite(model.score_pairs(users, np.full(len(users), 5))).all()


def test_top_k_breaks_ties_to_the_lower_column_even_at_the_boundary():
    s = np.array([[1.0, 3.0, 3.0, 0.5, 3.0, 3.0], [2.0, 2.0, 2.0, 2.0, 2.0, 2.0]], np.float32)
    s[1, 0] = -np.inf  # excluded
    top, vals = recall._top_k(s, 3)
    assert top.tolist() == [[1, 2, 4], [1, 2, 3]]
    assert vals.tolist() == [[3, 3, 3], [2, 2, 2]]
    # wide rows take the pre-filtered path: the same columns as a full partition, ties and all
    rng = np.random.default_rng(1)
    wide = np.round(rng.normal(0, 1, (40, 5000)), 1).astype(np.float32)  # many ties
    wide[::5, :3000] = -np.inf  # rows that excluded the popular columns: crowded
    wide[1::7] = 0.5  # rows of one repeated score
    for k in (1, 50):
        fast, dense = recall._top_k(wide.copy(), k), recall._top_k_dense(wide.copy(), k)
        np.testing.assert_array_equal(fast[0], dense[0])
        np.testing.assert_array_equal(fast[1], dense[1])
    assert recall._top_k(wide.copy(), 3)[0][1].tolist() == [0, 1, 2]


# ---- embedding tables ---------------------------------------------------------------------------
def test_sharded_table_behaves_exactly_like_the_array_table(tmp_path):
    array = recall.ArrayEmbeddingTable(70_000, 5, init_std=0.1, seed=3, with_bias=True)
    sharded = recall.ShardedEmbeddingTable(70_000, 5, 3, init_std=0.1, seed=3, with_bias=True)
    every = np.arange(70_000)
    np.testing.assert_array_equal(array.lookup(every), sharded.lookup(every))
    assert (array.lookup(every)[:, -1] == 0).all() and array.lookup(every)[:, 0].std() > 0.05
    rng = np.random.default_rng(0)
    for _ in range(3):  # pushes with repeated buckets: they accumulate
        buckets = rng.integers(0, 70_000, 5000)
        buckets[:10] = 42
        deltas = rng.normal(0, 1, (5000, 5)).astype(np.float32)
        array.update(buckets, deltas)
        sharded.update(buckets, deltas)
    np.testing.assert_array_equal(array.lookup(every), sharded.lookup(every))
    q = np.array([42, 5, 42, 69_999, 0])
    np.testing.assert_array_equal(array.lookup(q), sharded.lookup(q))
    # a push of one bucket twice adds both deltas
    before = array.lookup([7])
    array.update([7, 7], np.ones((2, 5), np.float32))
    np.testing.assert_allclose(array.lookup([7]), before + 2)
    # save / load round trip: one file for the array table, one per shard
    assert len(array.save(tmp_path / "a.npz")) == 1
    files = sharded.save(tmp_path / "s.npy")
    assert [f.name for f in files] == [f"s-{i:05d}-of-00003.npy" for i in range(3)]
    loaded_a = recall.ArrayEmbeddingTable.load(tmp_path / "a.npz")
    loaded_s = recall.ShardedEmbeddingTable.load(tmp_path / "s.npy")
    assert (loaded_s.num_buckets, loaded_s.dim, loaded_s.num_shards) == (70_000, 5, 3)
    np.testing.assert_array_equal(loaded_a.lookup(every), array.lookup(every))
    np.testing.assert_array_equal(loaded_s.lookup(every), sharded.lookup(every))
    with pytest.raises(IndexError, match=r"\[0, 70000\)"):
        sharded.lookup([70_000])
    with pytest.raises(ValueError, match="deltas must be"):
        array.update([1, 2], np.zeros((2, 4)))
    with pytest.raises(FileNotFoundError, match="missing"):
        files[1].unlink()
        recall.ShardedEmbeddingTable.load(tmp_path / "s.npy")


def test_from_keras_reads_the_shared_table_and_its_bias():
    from mlcore.models.embedding import build_latent_factor_model, embedding_matrix

    model = build_latent_factor_model(50, dim=4, seed=0, output="linear")
    model.get_layer("bias").set_weights([np.arange(50, dtype=np.float32)[:, None]])
    table, sharded = recall.from_keras(model), recall.from_keras(model, num_shards=3)
    every = np.arange(50)
    assert (table.num_buckets, table.dim) == (50, 5)  # [vector, bias] rows
    np.testing.assert_array_equal(table.lookup(every)[:, :4], embedding_matrix(model))
    assert table.lookup([7])[0, 4] == 7.0
    np.testing.assert_array_equal(sharded.lookup(every), table.lookup(every))


# ---- the learned models on two tastes -----------------------------------------------------------
GROUP_A, GROUP_B = np.arange(100, 120), np.arange(200, 220)


@pytest.fixture(scope="module")
def tastes():
    """60 users love movies 100-119, 40 love 200-219: each rates 12 of their own group's
    (4-5 stars) and 3 of the other's (1-2 stars); 4 more of their own are held out."""
    rng = np.random.default_rng(7)
    rows, truth = [], {}
    for user in range(60 + 40):
        own, other = (GROUP_A, GROUP_B) if user < 60 else (GROUP_B, GROUP_A)
        picked = rng.permutation(own)
        for movie in picked[:12]:
            rows.append((user, movie, rng.choice([4.0, 4.5, 5.0]), rng.integers(0, 30)))
        for movie in rng.choice(other, 3, replace=False):
            rows.append((user, movie, rng.choice([1.0, 1.5, 2.0]), rng.integers(0, 30)))
        truth[user] = picked[12:16]
    df = frame(rows)
    seen = {u: g.to_numpy() for u, g in df.groupby("user_id")["movie_id"]}
    return df, seen, truth


def bpr() -> recall.LatentFactorBPR:
    return recall.LatentFactorBPR(
        num_buckets=4096, dim=8, epochs=5, batch_size=256, learning_rate=0.05, seed=0
    )


@pytest.fixture(scope="module")
def fitted(tastes):
    df, _, _ = tastes
    models = {
        "popularity": recall.Popularity(),
        "als": recall.ImplicitALS(factors=4, iterations=10, regularization=1.0, seed=0),
        "lfm_bpr": bpr(),
        "lfm_mse": recall.LatentFactorMSE(
            num_buckets=4096,
            dim=8,
            epochs=8,
            batch_size=128,
            learning_rate=0.05,
            validation_share=0.1,
            seed=0,
        ),
    }
    summaries = {name: m.fit(df) for name, m in models.items()}
    return models, summaries


def recall_at(ids, users, truth, k):
    pairs = zip(ids, users, strict=True)
    found = [len(set(r[:k]) & set(truth[u])) / len(truth[u]) for r, u in pairs]
    return float(np.mean(found))


@pytest.mark.parametrize("name", ["als", "lfm_bpr", "lfm_mse"])
def test_learned_models_rank_the_users_own_taste_first(tastes, fitted, name):
    df, seen, truth = tastes
    models, summaries = fitted
    model = models[name]
    users = np.arange(100)
    ids, scores = model.recommend(users, 5, exclude=seen)
    own = np.where(users[:, None] < 60, np.isin(ids, GROUP_A), np.isin(ids, GROUP_B))
    assert own.all(), f"{name} listed the other taste's movies for {(~own.all(1)).sum()} users"
    pop_ids, _ = models["popularity"].recommend(users, 5, exclude=seen)
    ours, pop = recall_at(ids, users, truth, 5), recall_at(pop_ids, users, truth, 5)
    assert ours > pop + 0.15, (ours, pop)  # popularity lists group A's movies to everyone
    # AUC: held-out own movies against the other taste's unrated movies
    pos_u = np.repeat(users, 4)
    pos_m = np.concatenate([truth[u] for u in users])
    neg_m = np.concatenate(
        [np.setdiff1d(GROUP_B if u < 60 else GROUP_A, seen[u])[:4] for u in users]
    )
    auc = score_auc(model.score_pairs(pos_u, pos_m), model.score_pairs(pos_u, neg_m))
    assert auc > 0.9, auc
    sims, _ = model.similar([100, 200], 5)
    assert np.isin(sims[0], GROUP_A).all() and np.isin(sims[1], GROUP_B).all()
    assert summaries[name]["fit_seconds"] > 0


def test_latent_factor_models_keep_their_table_and_predict_ratings(tastes, fitted):
    df, _, _ = tastes
    models, summaries = fitted
    mse, bpr = models["lfm_mse"], models["lfm_bpr"]
    assert summaries["lfm_bpr"]["epoch_seconds"] and len(summaries["lfm_bpr"]["losses"]) == 5
    assert summaries["lfm_bpr"]["losses"][-1] < summaries["lfm_bpr"]["losses"][0]
    assert summaries["lfm_mse"]["epochs_run"] >= 1 and summaries["lfm_mse"]["validation_rows"]
    for model in (mse, bpr):
        assert (model.table.num_buckets, model.table.dim) == (4096, 9)  # [vector, bias]
        # the scoring vectors are the table's rows, pulled by hashed id
        from mlcore.models.embedding import hash_ids

        row = model.table.lookup(hash_ids(["i:105"], 4096))[0]
        col = model._item_index([105])[0]
        np.testing.assert_array_equal(model._item_vecs[col, :8], row[:8])
    rated = mse.predict_rating(df["user_id"], df["movie_id"])
    rmse = float(np.sqrt(np.mean((rated - df["rating"].to_numpy()) ** 2)))
    assert rmse < 0.8 and rated.min() >= 0.5 and rated.max() <= 5.0  # std of ratings: 1.5
    cold = mse.predict_rating([0, 999, 999], [999_999, 100, 999_999])
    assert np.isfinite(cold).all()
    assert cold[2] == pytest.approx(mse.offset_ + mse.mean_rating_)  # the intercept: no evidence


def test_unseen_users_get_the_popularity_list(tastes, fitted):
    _, seen, _ = tastes
    models, _ = fitted
    pop_ids, pop_scores = models["popularity"].recommend([-1, -2], 5, exclude={-2: [100, 103]})
    for model in models.values():
        ids, scores = model.recommend([0, -1, -2], 5, exclude={0: seen[0], -2: [100, 103]})
        assert model.n_fallback_ == 2
        np.testing.assert_array_equal(ids[1:], pop_ids)
        np.testing.assert_array_equal(scores[1:], pop_scores)
    assert not np.isin(pop_ids[1], [100, 103]).any()


def test_pickled_models_give_the_same_lists(tastes, fitted, tmp_path):
    _, seen, _ = tastes
    models, _ = fitted
    users = np.arange(-1, 100)
    for name, model in models.items():
        joblib.dump(model, tmp_path / f"{name}.pkl")
        again = joblib.load(tmp_path / f"{name}.pkl")
        before = model.recommend(users, 7, exclude=seen)
        for a, b in zip(before, again.recommend(users, 7, exclude=seen), strict=True):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(model.similar(GROUP_A, 3)[0], again.similar(GROUP_A, 3)[0])


def test_same_data_and_seed_give_the_same_bpr_model(tastes, fitted):
    df, seen, _ = tastes
    models, _ = fitted
    again = bpr()
    again.fit(df)
    users = np.arange(100)
    first = models["lfm_bpr"].recommend(users, 5, exclude=seen)
    second = again.recommend(users, 5, exclude=seen)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_allclose(first[1], second[1], rtol=1e-5)


def test_bad_input_is_a_one_line_training_error():
    with pytest.raises(TrainingError, match=r"lack column\(s\) \['rated_at'\]"):
        recall.Popularity().fit(TOY.drop(columns="rated_at"))
    with pytest.raises(TrainingError, match="no interactions"):
        recall.EASE().fit(TOY.iloc[:0])
    with pytest.raises(TrainingError, match="no positive rating"):
        recall.EASE().fit(TOY.assign(rating=1.0))
    with pytest.raises(RuntimeError, match="call fit"):
        recall.EASE().recommend([1], 3)
    model = recall.Popularity()
    model.fit(TOY)
    with pytest.raises(ValueError, match="k must be a positive integer"):
        model.recommend([1], 0)

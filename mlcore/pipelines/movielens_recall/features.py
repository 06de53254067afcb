"""The feature contract between sql/movielens_recall/ and the trainer."""

# features/movielens_recall/ds=…/ratings/part-*.parquet: one row per user × movie
RATING_COLUMNS = ("user_id", "movie_id", "rating", "rated_at", "label", "split")
# features/movielens_recall/ds=…/movies.parquet: one row per movie of the catalogue
MOVIE_COLUMNS = ("movie_id", "title", "year", "genres", "train_ratings", "train_positives")
SPLITS = ("train", "test")
POSITIVE_RATING = 4.0  # the label's bar, as the SQL draws it

"""Keras model builders, one module per family: ``mlp`` (dense binary classifiers),
``regression`` (dense regressors), ``sequence`` (LSTM/GRU forecasters with quantile outputs,
CNN+LSTM classifiers over behaviour sequences), ``embedding`` (hashed-id latent factor models).

Nothing is imported here: importing ``mlcore.models`` must not pull in Keras and its backend.
"""

"""Keras model builders, one module per family (``mlp``: dense binary classifiers).

Nothing is imported here: importing ``mlcore.models`` must not pull in Keras and its backend.
"""

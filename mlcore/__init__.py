"""nightshift: the ML and data library (no Airflow imports)."""

"""The trainer pod: ``KubernetesPodOperator`` whose ``--ds`` works for Asset-triggered runs.

Imported only by the kubernetes train backend (``launcher.kubernetes_train``), so that parsing
a DAG that trains locally never imports the Kubernetes provider.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

from nightshift_airflow.context import with_run_ds


class TrainerPodOperator(KubernetesPodOperator):
    """``nightshift train <pipeline> --ds {{ ds }}`` in a pod of the trainer image.

    A pipeline run that its sources' Assets started has no logical date, so ``{{ ds }}`` is
    rendered from the triggering events (``context.run_ds``).
    """

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        super().render_template_fields(with_run_ds(context), jinja_env)

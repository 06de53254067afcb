"""The lake's connection: one hook owns its credentials for every task that needs them.

An S3 lake's credentials live in the Airflow connection ``NIGHTSHIFT_AWS_CONN_ID``
(``nightshift_lake``); the hook reads them when a task runs (never while parsing) and hands
them on masked, so that rendered fields and logs never show them.
"""

from __future__ import annotations

from airflow.sdk.bases.hook import BaseHook


class LakeHook(BaseHook):
    """The lake's S3 connection (an Amazon Web Services connection)."""

    conn_name_attr = "aws_conn_id"
    default_conn_name = "nightshift_lake"
    conn_type = "aws"
    hook_name = "nightshift lake"

    def __init__(self, aws_conn_id: str = default_conn_name, **kwargs) -> None:
        super().__init__(**kwargs)
        self.aws_conn_id = aws_conn_id

    def _aws(self):
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        return AwsBaseHook(aws_conn_id=self.aws_conn_id, client_type="s3")

    def get_conn(self):
        """A boto3 S3 client on the connection's credentials."""
        return self._aws().get_conn()

    def test_connection(self) -> tuple[bool, str]:
        try:
            self.get_conn().list_buckets()
        except Exception as exc:  # the UI shows the reason, whatever the client raised
            return False, str(exc)
        return True, "lake connection works"

    def container_env(self) -> tuple[dict[str, str], dict[str, str]]:
        """(public env, private env) for a trainer container: the endpoint, the credentials."""
        from airflow.sdk.log import mask_secret

        aws = self._aws()
        creds = aws.get_credentials()
        private = {"AWS_ACCESS_KEY_ID": creds.access_key, "AWS_SECRET_ACCESS_KEY": creds.secret_key}
        if creds.token:
            private["AWS_SESSION_TOKEN"] = creds.token
        for value in private.values():
            mask_secret(value)
        public = {}
        endpoint = aws.conn_config.endpoint_url
        if endpoint:
            public["NIGHTSHIFT_S3_ENDPOINT"] = endpoint
        return public, private

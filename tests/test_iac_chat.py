"""The chat API stack of document 003 (deploy/dbembed-chat-api.yaml + deploy/dbembed-aurora.yaml):
both templates pass cfn-lint, the function has no VPC and least-privilege IAM (the Data API
on one cluster, one secret, one model, its own logs), the cluster has the Data API enabled
and doc 003's scaling; the Lambda image keeps its promises.  Nothing here deploys."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_iac import _lint

ROOT = Path(__file__).resolve().parents[1]
API = ROOT / "deploy" / "dbembed-chat-api.yaml"
AURORA = ROOT / "deploy" / "dbembed-aurora.yaml"
DATA_API_ACTIONS = {
    "rds-data:ExecuteStatement", "rds-data:BatchExecuteStatement", "rds-data:BeginTransaction",
    "rds-data:CommitTransaction", "rds-data:RollbackTransaction",
}  # fmt: skip


def _load(path: Path) -> dict[str, Any]:
    decode = pytest.importorskip("cfnlint.decode").decode
    template, matches = decode(str(path))
    assert not matches, matches
    return template  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", [API, AURORA], ids=["chat-api", "aurora"])
def test_templates_pass_cfn_lint(path: Path) -> None:
    result = _lint(path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_catches_a_broken_chat_api_template(tmp_path: Path) -> None:
    broken = API.read_text().replace("PackageType: Image", "PackageType: Image\n      Bogus: 1", 1)
    broken = broken.replace("Role: !GetAtt FunctionRole.Arn", "Role: !GetAtt Nope.Arn")
    bad = tmp_path / "broken.yaml"
    bad.write_text(broken)
    failed = _lint(bad)
    assert failed.returncode != 0 and "Bogus" in failed.stdout and "Nope" in failed.stdout


def test_function_uses_the_data_api_without_a_vpc_and_least_privilege() -> None:
    t = _load(API)
    res = t["Resources"]
    fn = res["Function"]["Properties"]
    assert "VpcConfig" not in fn and fn["PackageType"] == "Image"
    env = fn["Environment"]["Variables"]
    assert env["DBEMBED_DATABASE_URL"] == {
        "Fn::Sub": "rds-data://${ClusterArn}/${DatabaseName}?secret_arn=${SecretArn}"
    }
    assert env["DBEMBED_MODEL"] == {"Fn::Sub": "bedrock:${EmbeddingModelId}"}
    assert t["Parameters"]["EmbeddingModelId"]["Default"] == "cohere.embed-multilingual-v3"
    # An HTTP API waits 30 s at most: the function and the resume wait stay below it.
    assert t["Parameters"]["TimeoutSeconds"]["Default"] < 30
    assert t["Parameters"]["ResumeWaitSeconds"]["Default"] < t["Parameters"]["TimeoutSeconds"]["Default"]

    statements = res["FunctionRole"]["Properties"]["Policies"][0]["PolicyDocument"]["Statement"]
    by_sid = {s["Sid"]: s for s in statements}
    assert set(by_sid["DataApiOnThisCluster"]["Action"]) == DATA_API_ACTIONS
    assert by_sid["DataApiOnThisCluster"]["Resource"] == {"Ref": "ClusterArn"}
    assert by_sid["ReadThisSecret"]["Action"] == "secretsmanager:GetSecretValue"
    assert by_sid["ReadThisSecret"]["Resource"] == {"Ref": "SecretArn"}
    assert by_sid["EmbedQueries"]["Action"] == "bedrock:InvokeModel"
    for s in statements:
        actions = s["Action"] if isinstance(s["Action"], list) else [s["Action"]]
        assert s["Effect"] == "Allow" and "*" not in str(s["Resource"]) and not any("*" in a for a in actions)
    assert "ManagedPolicyArns" not in res["FunctionRole"]["Properties"]

    api = res["HttpApi"]["Properties"]
    assert api["ProtocolType"] == "HTTP" and api["Target"] == {"Fn::GetAtt": ["Function", "Arn"]}
    assert res["ApiInvokePermission"]["Properties"]["Principal"] == {
        "Fn::Sub": "apigateway.${AWS::URLSuffix}"
    }


def test_cluster_follows_document_003_with_the_data_api_enabled() -> None:
    t = _load(AURORA)
    c = t["Resources"]["Cluster"]["Properties"]
    assert c["EnableHttpEndpoint"] is True and c["Engine"] == "aurora-postgresql"
    assert t["Parameters"]["EngineVersion"]["Default"].startswith("16.")
    assert c["ManageMasterUserPassword"] is True and c["EnableIAMDatabaseAuthentication"] is True
    assert c["StorageEncrypted"] is True
    p = t["Parameters"]
    assert (p["MinCapacity"]["Default"], p["MaxCapacity"]["Default"]) == (0, 64)
    assert p["SecondsUntilAutoPause"]["Default"] == 1800  # 30 minutes idle
    assert t["Resources"]["ClusterReader"]["Condition"] == "WithReader"
    assert t["Outputs"]["DatabaseUrl"]["Value"]["Fn::Sub"][0].startswith("rds-data://")


def test_lambda_image() -> None:
    text = (ROOT / "deploy" / "lambda.Dockerfile").read_text()
    assert "FROM public.ecr.aws/lambda/python:" in text
    assert "--index-url https://download.pytorch.org/whl/cpu" in text and "torch==${TORCH_VERSION}" in text
    assert 'CMD ["dbembed.api.lambda_handler.handler"]' in text
    assert "[aws,api]" in text


def test_docs_explain_the_data_api_deployment() -> None:
    aws = (ROOT / "docs" / "aws.md").read_text()
    for needle in ("rds-data://", "deploy/dbembed-chat-api.yaml", "deploy/dbembed-aurora.yaml",
                   "enable-http-endpoint", "DatabaseResumingException", "1 MiB", "4 MiB", "64 KB",
                   "rds_data_endpoint_url"):  # fmt: skip
        assert needle in aws, needle
    assert "rds-data://" in (ROOT / "README.md").read_text()

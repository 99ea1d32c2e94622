"""Infrastructure as code: the CloudFormation template passes cfn-lint, keeps the values of
the build report it replaces (document 000), and grants least privilege; the
Dockerfiles keep their promises (multi-stage, CPU torch, non-root, ``dbembed`` entrypoint).

Nothing here deploys or builds: there is no AWS account or Docker engine in CI."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "deploy" / "dbembed-batch.yaml"


def _cfn_lint() -> str:
    exe = Path(sys.executable).with_name("cfn-lint")
    found = str(exe) if exe.exists() else shutil.which("cfn-lint")
    if not found:
        pytest.skip("cfn-lint is not installed (pip install cfn-lint; CI installs it)")
    return found


def _lint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([_cfn_lint(), str(path)], capture_output=True, text=True, timeout=240)


def _template() -> dict[str, Any]:
    decode = pytest.importorskip("cfnlint.decode").decode
    template, matches = decode(str(TEMPLATE))
    assert not matches, matches
    return template


def test_template_passes_cfn_lint_and_lint_catches_errors(tmp_path: Path) -> None:
    result = _lint(TEMPLATE)
    assert result.returncode == 0, result.stdout + result.stderr
    # The check can fail: a job definition with an unknown property and a bad queue reference.
    broken = TEMPLATE.read_text().replace("Type: container", "Type: container\n      Bogus: 1", 1)
    broken = broken.replace("ComputeEnvironment: !Ref ComputeEnvironment", "ComputeEnvironment: !Ref Nope")
    bad = tmp_path / "broken.yaml"
    bad.write_text(broken)
    failed = _lint(bad)
    assert failed.returncode != 0
    assert "Bogus" in failed.stdout and "Nope" in failed.stdout


def test_defaults_follow_document_000() -> None:
    t = _template()
    params = t["Parameters"]
    assert params["JobQueueName"]["Default"] == "sqlite-embedding-job-queue"
    assert params["JobDefinitionName"]["Default"] == "sqlite-embedding-batch-job-def"
    assert params["ComputeEnvironmentName"]["Default"] == "sqlite-embedding-compute-env"
    assert params["InstanceTypes"]["Default"] == "m5.large,m5.xlarge"
    assert params["MaxvCpus"]["Default"] == 20
    assert (params["JobVcpus"]["Default"], params["JobMemoryMiB"]["Default"]) == ("2", "4096")
    assert params["ScheduleRuleName"]["Default"] == "sqlite-embedding-daily-schedule"
    assert params["ScheduleExpression"]["Default"] == "cron(0 2 * * ? *)"
    assert params["InputPath"]["Default"] == "/sqlite-load-test"

    res = t["Resources"]
    job = res["JobDefinition"]["Properties"]
    container = job["ContainerProperties"]
    assert container["Command"] == ["run", "Ref::inputPath", "--json"]
    assert job["Parameters"] == {"inputPath": {"Ref": "InputPath"}}
    mounts = container["MountPoints"]["Fn::If"][1]
    assert mounts[0]["ContainerPath"] == "/sqlite-load-test"
    env = {e["Name"]: e["Value"] for e in container["Environment"] if "Name" in e}
    assert env["DBEMBED_LOG_FORMAT"] == "json" and env["DBEMBED_EMF"] == "true"
    assert env["DBEMBED_DB_SSLMODE"] == "verify-full"
    assert res["ComputeEnvironment"]["Properties"]["ComputeResources"]["MaxvCpus"] == {"Ref": "MaxvCpus"}

    target = res["ScheduleRule"]["Properties"]["Targets"][0]
    assert target["Arn"] == {"Ref": "JobQueue"}
    assert target["BatchParameters"]["ArrayProperties"]["Fn::If"][1] == {"Size": {"Ref": "ArraySize"}}


def _statements(role: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for policy in role["Properties"].get("Policies", []):
        if "Fn::If" in policy:
            policy = policy["Fn::If"][1]
        out.extend(policy["PolicyDocument"]["Statement"])
    return out


def test_iam_is_least_privilege() -> None:
    res = _template()["Resources"]
    job = _statements(res["JobRole"])
    by_action = {s["Action"]: s for s in job}
    assert set(by_action) == {
        "bedrock:InvokeModel",
        "secretsmanager:GetSecretValue",
        "rds-db:connect",
        "s3:ListBucket",
        "s3:GetObject",
        "s3:PutObject",
    }
    for statement in job:
        assert statement["Effect"] == "Allow"
        assert statement["Resource"] != "*" and "*" not in str(statement["Action"])
    assert "foundation-model/${EmbeddingModelId}" in by_action["bedrock:InvokeModel"]["Resource"]["Fn::Sub"]
    assert by_action["secretsmanager:GetSecretValue"]["Resource"] == {"Ref": "DbSecretArn"}
    assert by_action["s3:PutObject"]["Resource"]["Fn::Sub"].endswith("*.embedding_metadata.json")
    assert "s3:prefix" in by_action["s3:ListBucket"]["Condition"]["StringLike"]
    schedule = _statements(res["ScheduleRole"])
    assert [s["Action"] for s in schedule] == ["batch:SubmitJob"]


def test_alarms_cover_failed_files_and_missing_runs() -> None:
    res = _template()["Resources"]
    failed = res["FailedFilesAlarm"]["Properties"]
    assert (failed["MetricName"], failed["ComparisonOperator"], failed["Threshold"]) == (
        "FilesFailed",
        "GreaterThanThreshold",
        0,
    )
    stale = res["NoSuccessfulRunAlarm"]["Properties"]
    assert stale["MetricName"] == "RunSucceeded" and stale["TreatMissingData"] == "breaching"
    assert stale["Period"] * stale["EvaluationPeriods"] == 26 * 3600
    # The metric names are the ones dbembed's EMF lines carry.
    from dbembed.cli.logging_setup import emf_document

    doc = emf_document({"files_failed": 1, "exit_code": 1}, "dbembed")
    assert {"FilesFailed", "RunSucceeded"} <= set(doc)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfiles(name: str) -> None:
    text = (ROOT / name).read_text()
    assert len(re.findall(r"^FROM ", text, flags=re.M)) >= 2, "multi-stage"
    assert re.search(r"^USER 10001", text, flags=re.M), "non-root user"
    assert 'ENTRYPOINT ["dbembed"]' in text
    assert 'pip install "torch==${TORCH_VERSION}"' in text
    assert "[aws,static" in text
    if name == "Dockerfile":
        assert "ARG TORCH_VERSION=2.13.0" in text
        assert "download.pytorch.org/whl/cpu" in text
    else:
        assert "nvidia/cuda" in text

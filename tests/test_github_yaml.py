"""The GitHub integration: workflows and the composite action are schema-valid and do what they say."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
GH = ROOT / ".github"
ACTION = GH / "actions" / "deploysafe" / "action.yml"
TEMPLATES = sorted((GH / "workflow-templates").glob("*.yml"))
WORKFLOWS = [GH / "workflows" / "ci.yml", *TEMPLATES]
CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"


def _load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def _steps(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def _runs(workflow: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in _steps(workflow))


@pytest.mark.parametrize(
    ("path", "schema"),
    [(p, "vendor.github-workflows") for p in WORKFLOWS] + [(ACTION, "vendor.github-actions")],
    ids=[p.name for p in WORKFLOWS] + ["action.yml"],
)
def test_schema_valid(path: Path, schema: str) -> None:
    proc = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", schema, str(path)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yml"
    bad.write_text("name: x\non: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    stepz: []\n")
    proc = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.github-workflows", str(bad)], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 1


def test_expected_files_exist() -> None:
    assert {p.name for p in TEMPLATES} == {"deploysafe-deploy.yml", "deploysafe-backup.yml", "deploysafe-drill.yml"}
    for template in TEMPLATES:
        props = json.loads(template.with_suffix(".properties.json").read_text(encoding="utf-8"))
        assert {"name", "description", "iconName", "categories"} <= set(props)
        assert all(isinstance(props[k], str) and props[k] for k in ("name", "description"))


# --- this repository's CI ----------------------------------------------------------------------


def test_ci_runs_ci_run_on_three_pythons_with_node_20() -> None:
    ci = _load(GH / "workflows" / "ci.yml")
    job = ci["jobs"]["test"]
    assert job["runs-on"] == "ubuntu-latest"
    assert job["strategy"]["matrix"]["python"] == ["3.11", "3.12", "3.13"]
    uses = {s["uses"].split("@")[0]: s.get("with", {}) for s in job["steps"] if "uses" in s}
    assert uses["actions/setup-python"]["python-version"] == "${{ matrix.python }}"
    assert uses["actions/setup-node"]["node-version"] == "20"
    assert "bash .ci/run" in _runs(ci)
    assert "postgresql" in _runs(ci)


def test_ci_run_lints_after_setup_and_before_the_tests() -> None:
    steps = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines() if ln.startswith(("bash ", "exec "))]
    assert steps == ["bash scripts/setup", "bash scripts/lint", "exec bash scripts/test"]
    assert "set -euo pipefail" in (ROOT / ".ci" / "run").read_text()  # a failing lint stops the run


@pytest.mark.parametrize(("ruff_rc", "mypy_rc"), [(0, 0), (1, 0), (0, 1)])
def test_lint_fails_on_either_ruff_or_mypy(tmp_path: Path, ruff_rc: int, mypy_rc: int) -> None:
    """scripts/lint, run against stand-in tools that record their arguments: both checks run as CI needs them,
    and a finding from either one is a non-zero exit."""
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "lint").write_text((ROOT / "scripts" / "lint").read_text())
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    log = tmp_path / "calls.log"
    for tool, rc in (("ruff", ruff_rc), ("python", mypy_rc)):
        (venv_bin / tool).write_text(f'#!/bin/sh\necho "{tool} $*" >> "{log}"\nexit {rc}\n')
        (venv_bin / tool).chmod(0o755)
    proc = subprocess.run(["bash", str(tmp_path / "scripts" / "lint")], capture_output=True, text=True, timeout=30)
    calls = log.read_text().splitlines()
    assert calls[0] == "ruff check ."
    if ruff_rc:
        assert proc.returncode != 0 and len(calls) == 1  # stops at the first failing check
        return
    assert calls[1] == "python -m mypy --strict deploysafe"
    assert (proc.returncode == 0) == (mypy_rc == 0), proc.stderr


# --- the templates ---------------------------------------------------------------------------


def test_deploy_template_runs_one_deploy_at_a_time_on_push_to_main() -> None:
    wf = _load(GH / "workflow-templates" / "deploysafe-deploy.yml")
    assert wf["on"]["push"]["branches"] == ["main"]
    assert wf["concurrency"]["group"] == "deploysafe-production"
    assert wf["concurrency"]["cancel-in-progress"] is False
    (job,) = wf["jobs"].values()
    assert job["environment"] == "production"
    (step,) = [s for s in job["steps"] if s.get("uses") == "./.github/actions/deploysafe"]
    assert step["id"] == "deploysafe"
    report = job["steps"][-1]
    assert "steps.deploysafe.outputs.rolled-back" in json.dumps(report)
    assert any(s.get("run") == "npm ci" for s in job["steps"])  # drizzle-kit must be installed
    # the state dir survives between runners, also after a failed or cancelled run
    uses = [s.get("uses", "") for s in job["steps"]]
    restore = uses.index("actions/cache/restore@v4")
    save = uses.index("actions/cache/save@v4")
    assert restore < uses.index("./.github/actions/deploysafe") < save
    assert job["steps"][save]["if"] == "${{ always() }}"
    assert job["steps"][restore]["with"]["path"] == job["steps"][save]["with"]["path"] == ".deploysafe"


def test_backup_template_runs_daily_at_2_utc() -> None:
    wf = _load(GH / "workflow-templates" / "deploysafe-backup.yml")
    assert wf["on"]["schedule"] == [{"cron": "0 2 * * *"}]
    runs = [s["run"] for s in _steps(wf) if "run" in s]
    assert [r for r in runs if r.startswith("deploysafe ")] == [
        "deploysafe backup --no-prune",
        "deploysafe prune",
        "deploysafe check --warn-ok",
    ]
    assert wf["concurrency"]["group"] == "deploysafe-production"  # never prunes during a deploy


def test_drill_template_runs_monthly() -> None:
    wf = _load(GH / "workflow-templates" / "deploysafe-drill.yml")
    (cron,) = [c["cron"] for c in wf["on"]["schedule"]]
    minute, hour, day, month, weekday = cron.split()
    assert (day, month, weekday) == ("1", "*", "*")
    assert 'deploysafe drill --age "$AGE"' in _runs(wf)


@pytest.mark.parametrize("path", TEMPLATES, ids=[p.name for p in TEMPLATES])
def test_templates_read_secrets_only_from_repository_secrets(path: Path) -> None:
    wf = _load(path)
    (job,) = wf["jobs"].values()
    env = job["env"]
    for name in ("NEON_API_KEY", "DATABASE_URL", "SLACK_WEBHOOK_URL"):
        assert env[name] == "${{ secrets.%s }}" % name
    for key, value in env.items():
        assert "${{" in str(value), f"{path.name}: {key} is a literal; read it from a secret or input"


# --- the composite action --------------------------------------------------------------------


def test_action_inputs_and_outputs() -> None:
    action = _load(ACTION)
    assert action["runs"]["using"] == "composite"
    assert {"config", "python-version", "args", "deploysafe-version"} <= set(action["inputs"])
    outputs = action["outputs"]
    for name in ("exit-code", "snapshot", "rolled-back"):
        assert outputs[name]["value"] == "${{ steps.deploy.outputs.%s }}" % name
    (deploy,) = [s for s in action["runs"]["steps"] if s.get("id") == "deploy"]
    assert "deploysafe --json" in deploy["run"] and " deploy $ARGS" in deploy["run"]
    # Inputs reach the script through env, never pasted into it (no script injection).
    assert "${{" not in deploy["run"]


def _deploy_script() -> str:
    (deploy,) = [s for s in _load(ACTION)["runs"]["steps"] if s.get("id") == "deploy"]
    return str(deploy["run"])


SUMMARY_ROLLED_BACK = {
    "run_id": "20261125T100000Z-abc123",
    "outcome": "rolled back",
    "exit_code": 1,
    "snapshot": "pre-deploy-20261125T100000Z-3f2a1b9",
    "rollback": {"healthy": True},
    "timeline": [{"step": "push", "outcome": "ok"}],
}


def _fake_deploysafe(bin_dir: Path, stdout: str, code: int) -> None:
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "python").symlink_to(sys.executable)
    payload = bin_dir / "stdout.txt"
    payload.write_text(stdout, encoding="utf-8")
    script = bin_dir / "deploysafe"
    script.write_text(f'#!/bin/sh\necho "$@" > "{bin_dir}/argv"\necho "human log" >&2\ncat "{payload}"\nexit {code}\n')
    script.chmod(0o755)


def _run_step(tmp_path: Path, env_extra: dict[str, str]) -> tuple[int, dict[str, str], str]:
    out_file = tmp_path / "github_output"
    out_file.write_text("")
    env = {
        **os.environ,
        "PATH": f"{tmp_path / 'bin'}:{os.environ['PATH']}",
        "RUNNER_TEMP": str(tmp_path),
        "GITHUB_OUTPUT": str(out_file),
        "GITHUB_RUN_ID": "42",
        "GITHUB_RUN_ATTEMPT": "1",
        "CONFIG": "",
        "ARGS": "",
        **env_extra,
    }
    # GitHub runs `shell: bash` steps as: bash --noprofile --norc -eo pipefail {0}
    script = tmp_path / "step.sh"
    script.write_text(_deploy_script())
    proc = subprocess.run(
        ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], env=env, capture_output=True, text=True, check=False
    )
    outputs = dict(line.split("=", 1) for line in out_file.read_text().splitlines())
    return proc.returncode, outputs, proc.stdout


def test_action_step_exposes_the_summary_and_fails_with_the_exit_code(tmp_path: Path) -> None:
    annotations = "::group::snapshot\n::endgroup::\n::warning::lint: DROP COLUMN name\n"
    stdout = annotations + json.dumps(SUMMARY_ROLLED_BACK, indent=2) + "\n::warning::webhook failed\n"
    _fake_deploysafe(tmp_path / "bin", stdout, 1)
    code, outputs, shown = _run_step(tmp_path, {"CONFIG": "deploy/deploysafe.toml", "ARGS": "--sha abc123 --watch 10m"})
    assert code == 1
    assert outputs == {
        "exit-code": "1",
        "snapshot": "pre-deploy-20261125T100000Z-3f2a1b9",
        "rolled-back": "true",
        "outcome": "rolled back",
    }
    assert shown == stdout  # annotations still reach the runner's log
    argv = (tmp_path / "bin" / "argv").read_text().split()
    assert argv == ["--json", "--config", "deploy/deploysafe.toml", "deploy", "--sha", "abc123", "--watch", "10m"]


def test_action_step_success(tmp_path: Path) -> None:
    summary = {**SUMMARY_ROLLED_BACK, "outcome": "deployed", "exit_code": 0, "rollback": None}
    _fake_deploysafe(tmp_path / "bin", json.dumps(summary, indent=2) + "\n", 0)
    code, outputs, _ = _run_step(tmp_path, {})
    assert code == 0
    assert outputs == {"exit-code": "0", "snapshot": summary["snapshot"], "rolled-back": "false", "outcome": "deployed"}
    assert (tmp_path / "bin" / "argv").read_text().split() == ["--json", "deploy"]


def test_action_step_with_the_real_cli_and_a_bad_config(tmp_path: Path) -> None:
    # No summary at all (config error): outputs are still written, and the step fails with 2.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    (bin_dir / "deploysafe").symlink_to(Path(sys.executable).parent / "deploysafe")
    cfg = tmp_path / "deploysafe.toml"
    cfg.write_text('[provider]\ntype = "mysql"\n')
    code, outputs, shown = _run_step(tmp_path, {"CONFIG": str(cfg)})
    assert code == 2
    assert outputs == {"exit-code": "2", "snapshot": "", "rolled-back": "false", "outcome": ""}
    assert shown == ""

"""The Glue jobs as they ship, on a stand-in for AWS Glue 5.0 (see glue_standin.py for what it is made of).

What each test stands in for:
- the dry run: what pip does at every job start with ``--additional-python-modules`` and the
  template's ``--python-modules-installer-option`` on Glue 5.0's documented module set;
- the parse tests: Glue starting the entry scripts with the template's DefaultArguments, a trigger's
  Arguments and the launcher's ``start_job_run`` Arguments, parsed by the real ``awsglue`` library;
- the training run: a Glue job run of ``train_job.py`` with the packaged archive on the path the way
  ``--extra-py-files`` puts it, on the installed module list. Only the JVM side of GlueContext / Job is
  stood in for (tests/glue_runtime/standin/sitecustomize.py); the catalog is a local Hive metastore (there is
  no Glue Data Catalog here) and the store a local folder; AWS calls go to the moto server.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from glue_standin import GlueEnv, GluePackage, clean_env, provided_pins, standin_pythonpath

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "glue"))

import build_package  # noqa: E402

# Glue's own packages: the module list must never replace them (issue 14).
GLUE_OWN = ("pyspark", "py4j", "numpy", "pandas", "pyarrow", "boto3", "botocore", "urllib3")
ACCOUNT, REGION, ENV = "123456789012", "eu-west-1", "dev"
BUCKET = f"fraud-{ENV}-{ACCOUNT}-{REGION}"
pytestmark = [pytest.mark.slow]


def _canon(name: str) -> str:
    from packaging.utils import canonicalize_name

    return canonicalize_name(name)


# ----------------------------------------------------------------------------- the module list
def test_dry_run_replaces_none_of_glues_packages_and_resolves_nothing_else(glue5_base, glue_package, tmp_path):
    report = tmp_path / "report.json"
    proc = glue5_base.pip("install", "--dry-run", "--quiet", "--report", str(report),
                          *glue_package.installer_options, *glue_package.modules)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    resolved = json.loads(report.read_text())["install"]
    installs = {_canon(i["metadata"]["name"]): i["metadata"]["version"] for i in resolved}
    listed = dict(m.split("==") for m in glue_package.modules)
    assert installs == {_canon(n): v for n, v in listed.items()}  # exactly the list: nothing resolved beyond it
    provided = dict(p.split("==") for p in provided_pins())
    replaced = {n: (provided[n], v) for n, v in installs.items() if n in {_canon(p) for p in provided}}
    assert [n for n in GLUE_OWN if n in replaced] == []
    # anything else of Glue's that gets replaced is an upgrade the build said it needed, with its reason
    assert set(replaced) == set(build_package.resolve().upgrades)


def test_installed_list_leaves_only_the_serving_only_requirements_unmet(glue5_base, glue5_job):
    """``pip check`` on the job's environment: every shipped package's requirements hold with Glue's
    versions, except those the build deliberately leaves out (and Glue's own gaps, as on the docs list)."""
    base_gaps = set(glue5_base.pip("check", check=False).stdout.splitlines())
    gaps = set(glue5_job.pip("check", check=False).stdout.splitlines()) - base_gaps
    unmet = {line.split(" requires ")[1].split(",")[0] for line in gaps if " requires " in line}
    # mlflow-skinny's serving side, named here rather than read from the build: widening the build's
    # list must fail this test (the training run below proves the job needs none of these)
    assert unmet == {"fastapi", "starlette", "uvicorn", "databricks-sdk"}, sorted(gaps)
    assert all(line.startswith("mlflow-skinny ") for line in gaps), sorted(gaps)
    versions = {_canon(p["name"]): p["version"] for p in json.loads(glue5_job.pip("list", "--format=json").stdout)}
    for name, version in (p.split("==") for p in provided_pins()):
        if _canon(name) in GLUE_OWN:
            assert versions[_canon(name)] == version, name  # Glue's own, untouched


# ----------------------------------------------------------------------------- job arguments
def _resolver(secret_arn: str, signing_arn: str | None = None):
    from tools.emulator.cfn import Resolver, load_template, parameter_values

    t = load_template()
    given = {n: "placeholder" for n, spec in t["Parameters"].items() if "Default" not in spec}
    given |= {"EnvName": ENV, "AdditionalPythonModules": "scikit-learn==1.9.1"}
    r = Resolver(t, parameter_values(t, given), account_id=ACCOUNT, region=REGION, stack_name=f"fraud-{ENV}")
    signing_arn = signing_arn or secret_arn.replace("card-hash-key", "model-signing-key")
    r.refs |= {"CardHashKeySecret": secret_arn, "ModelSigningKeySecret": signing_arn,
               "PredictionLogTable": f"fraud-{ENV}-prediction-log",
               "TrainJob": f"fraud-train-{ENV}", "LiveDriftJob": f"fraud-live-drift-{ENV}"}  # fmt: skip
    r.attrs["DataKey"] = {"Arn": f"arn:aws:kms:{REGION}:{ACCOUNT}:key/data-key"}
    return t, r


def _job(t, r, logical_id: str) -> dict:
    """The job's name and DefaultArguments as CloudFormation would resolve them (the rest is not needed)."""
    props = t["Resources"][logical_id]["Properties"]
    return {key: r.resolve(props[key]) for key in ("Name", "DefaultArguments")}


def _trigger_arguments(t, r, job_logical_id: str) -> list[dict[str, str]]:
    """The Arguments of every Glue trigger action that starts this job (an action may pass none)."""
    out = []
    for res in t["Resources"].values():
        if res["Type"] == "AWS::Glue::Trigger":
            for action in r.resolve(res["Properties"]["Actions"]):
                if action["JobName"] == r.refs[job_logical_id]:
                    out.append(action.get("Arguments", {}))
    return out


def _launcher_arguments(store_uri: str) -> dict[str, str]:
    from fraud_detection.launcher import GlueLauncher
    from fraud_detection.storage import open_store

    me = SimpleNamespace(store=open_store(store_uri, region=REGION))
    return GlueLauncher.job_arguments(me, "20240101T000000Z-abc123", "file")  # the Lambda's call


def _glue_argv(script: str, job_name: str, arguments: dict[str, str]) -> list[str]:
    """sys.argv as Glue hands it to the script: its ids, then every job argument as ``--key value``."""
    argv = [script, "--JOB_ID", "j_0123", "--JOB_RUN_ID", "jr_0123", "--JOB_NAME", job_name]
    for key, value in arguments.items():
        argv += [key, str(value)]
    return argv


def _cases(secret_arn: str):
    t, r = _resolver(secret_arn)
    cases = []
    for logical, script in (("TrainJob", "train_job.py"), ("LiveDriftJob", "live_drift_job.py")):
        job = _job(t, r, logical)
        defaults = job["DefaultArguments"]
        for i, trigger in enumerate(_trigger_arguments(t, r, logical)):
            cases.append((f"{logical}-trigger{i}", script, job["Name"], defaults | trigger))
        if logical == "TrainJob":
            launcher = _launcher_arguments(defaults["--store_uri"])
            cases.append((f"{logical}-launcher", script, job["Name"], defaults | launcher))
    return cases


_PARSE = """
import json, sys
sys.path.insert(0, sys.argv.pop(1))
sys.argv[0] = sys.argv.pop(1)  # the script's name, as Glue runs it
module = __import__(sys.argv[0].removesuffix(".py"))
args = module._glue_args(sys.argv)
from fraud_detection.settings import Settings
if hasattr(module, "settings_overrides"):
    overrides = module.settings_overrides(args, on_glue=True)
else:
    overrides = {"store_uri": args["store_uri"], "catalog_mode": args["catalog_mode"],
                 "registered_model_name": args["model_name"], "aws_region": args["aws_region"]}
Settings(**overrides)  # every value the template passes is one the settings accept
print(json.dumps(args))
"""


def test_entry_scripts_parse_the_arguments_glue_passes(glue5_job: GlueEnv, glue_package: GluePackage):
    secret = f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:fraud-{ENV}-card-hash-key-AbCdEf"
    cases = _cases(secret)
    assert {c[0] for c in cases} >= {"TrainJob-trigger0", "TrainJob-launcher", "LiveDriftJob-trigger0"}
    script_dir = str(glue_package.files["train_job.py"].parent)
    env = clean_env(PYTHONPATH=standin_pythonpath(glue_package.files["fraud_detection.zip"]))
    for name, script, job_name, arguments in cases:
        argv = _glue_argv(script, job_name, arguments)
        proc = subprocess.run([str(glue5_job.python), "-c", _PARSE, script_dir, *argv], env=env,
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert proc.returncode == 0, f"{name}: {proc.stderr[-2000:]}"
        parsed = json.loads(proc.stdout.strip().splitlines()[-1])
        assert parsed["JOB_NAME"] == job_name
        # every job option the template / trigger / launcher passes reaches the script (Glue's own are Glue's)
        passed = {k[2:]: v for k, v in arguments.items() if k[2:] in {"store_uri", "input", *_script_options(script)}}
        assert {k: parsed.get(k) for k in passed} == {k: str(v) for k, v in passed.items()}, name
        assert parsed["job_bookmark_option"] == "job-bookmark-disable"


def _script_options(script: str) -> set[str]:
    import live_drift_job
    import train_job

    return set(train_job.OPTIONAL) if script == "train_job.py" else {*live_drift_job.OPTIONAL, *live_drift_job.SECRETS}


def test_every_job_argument_the_template_passes_is_known_to_its_script():
    """An argument with a single dash-free name that is no Glue parameter must be one the script reads."""
    t, r = _resolver("arn:x")
    glue_own = {"extra-py-files", "additional-python-modules", "python-modules-installer-option",
                "enable-glue-datacatalog", "job-bookmark-option", "enable-metrics", "enable-observability-metrics",
                "TempDir"}  # fmt: skip
    for logical, script in (("TrainJob", "train_job.py"), ("LiveDriftJob", "live_drift_job.py")):
        args = _job(t, r, logical)["DefaultArguments"]
        job_options = {k[2:] for k in args} - glue_own
        unknown = job_options - {"store_uri", "input", *_script_options(script)}
        assert unknown == set(), f"{logical} passes {sorted(unknown)}, which {script} never reads"


# ----------------------------------------------------------------------------- a training run
@pytest.fixture()
def moto_secret(monkeypatch):
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    import boto3

    creds = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}
    sm = boto3.client("secretsmanager", endpoint_url=url, region_name=REGION, **creds)
    arn = sm.create_secret(Name=f"fraud-{ENV}-card-hash-key", SecretString="k" * 64)["ARN"]
    signing = sm.create_secret(Name=f"fraud-{ENV}-model-signing-key", SecretString="s" * 64)["ARN"]
    yield url, arn, signing
    server.stop()


@pytest.mark.spark
def test_training_run_completes_on_the_standin(glue5_job, glue_package, moto_secret, small_history_csv, tmp_path):
    moto_url, secret_arn, signing_arn = moto_secret
    t, r = _resolver(secret_arn, signing_arn)
    job = _job(t, r, "TrainJob")
    store = tmp_path / "store"
    run_id = "20240101T000000Z-standin"
    arguments = job["DefaultArguments"] | _launcher_arguments(job["DefaultArguments"]["--store_uri"])
    # local store and input instead of the bucket (Spark here has no S3 connector); all else as deployed
    arguments |= {"--store_uri": str(store), "--input": str(small_history_csv), "--run_id": run_id}
    state = tmp_path / "spark"
    derby = f"jdbc:derby:;databaseName={state / 'metastore_db'};create=true"
    zip_path = glue_package.files["fraud_detection.zip"]
    # Glue's launcher: spark-submit with the archive as --py-files and a Hive catalog (Glue's is the Data
    # Catalog; here a local Derby metastore). Shuffle partitions cut from Glue's 200 only for speed.
    submit = ["--master", "local[2]", "--driver-memory", "2g", "--py-files", str(zip_path),
              "--conf", "spark.sql.catalogImplementation=hive",
              "--conf", f"spark.sql.warehouse.dir={state / 'warehouse'}",
              "--conf", f"spark.hadoop.javax.jdo.option.ConnectionURL={derby}",
              "--conf", f"spark.driver.extraJavaOptions=-Dderby.system.home={state}",
              "--conf", "spark.sql.shuffle.partitions=8", "--conf", "spark.ui.enabled=false",
              "pyspark-shell"]  # fmt: skip
    events = tmp_path / "glue_events.jsonl"
    env = clean_env(
        PYTHONPATH=standin_pythonpath(zip_path),
        PYSPARK_PYTHON=str(glue5_job.python),
        PYSPARK_SUBMIT_ARGS=shlex.join(submit),
        AWS_ENDPOINT_URL=moto_url,
        AWS_ACCESS_KEY_ID="testing",
        AWS_SECRET_ACCESS_KEY="testing",
        AWS_DEFAULT_REGION=REGION,
        GLUE_STANDIN_EVENTS=str(events),
        OMP_NUM_THREADS="1",
    )
    env.pop("AWS_PROFILE", None)
    argv = _glue_argv(str(glue_package.files["train_job.py"]), job["Name"], arguments)
    proc = subprocess.run([str(glue5_job.python), *argv], env=env, cwd=tmp_path, capture_output=True, text=True,
                          timeout=900)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-4000:]
    record = json.loads((store / "runs" / f"{run_id}.json").read_text())
    assert record["status"] == "succeeded" and record["trigger"] == "file"
    assert json.loads((store / "models" / "latest.json").read_text())["version"] == record["version"]
    calls = [json.loads(line) for line in events.read_text().splitlines()]
    assert [c["call"] for c in calls] == ["init", "commit"] and calls[0]["job_name"] == job["Name"]

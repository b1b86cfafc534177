"""Integrations: training stacks, model registries, serving-time admission, event webhooks.

- :mod:`ftguard.integrations.hf`: the transformers callbacks (``ApprovalGuard``,
  ``DriftMonitor``).
- MLflow (the ``mlflow`` extra): :func:`register_job_model` puts a job that passed the gate in
  the model registry under an alias; :func:`verify_registered_model` checks a registered
  version against its attestation.
- Admission: :func:`check_model` (allow or deny, with reasons, over the gate's verification),
  :func:`review_admission` (a Kubernetes AdmissionReview in, its answer out) and
  :func:`make_admission_server`.
- Events: signed webhooks on job state changes (:func:`add_webhook`, :func:`verify_webhook`);
  :func:`attach_webhooks` is how a workspace's store sends them after each commit.

Names are imported on first use: ``import ftguard.integrations`` imports none of them (and
never mlflow).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ftguard._lazy import lazy_attributes

if TYPE_CHECKING:
    from ftguard.integrations._admission import (
        ANNOTATION_ATTESTATION,
        ANNOTATION_MODEL_SIGNATURE,
        ANNOTATION_MODEL_URI,
        AdmissionConfig,
        AdmissionDecision,
        check_model,
        make_admission_server,
        review_admission,
    )
    from ftguard.integrations._mlflow import (
        MlflowRegistration,
        MlflowVerification,
        register_job_model,
        verify_registered_model,
    )
    from ftguard.integrations._webhook_delivery import (
        attach_webhooks,
        redeliver_webhooks,
        webhook_dispatcher,
    )
    from ftguard.integrations._webhooks import (
        EVENT_TYPES,
        SIGNATURE_HEADER,
        WebhookDelivery,
        WebhookEndpoint,
        add_webhook,
        list_deliveries,
        list_webhooks,
        remove_webhook,
        sign_webhook,
        verify_webhook,
    )

__all__ = [
    "ANNOTATION_ATTESTATION",
    "ANNOTATION_MODEL_SIGNATURE",
    "ANNOTATION_MODEL_URI",
    "EVENT_TYPES",
    "SIGNATURE_HEADER",
    "AdmissionConfig",
    "AdmissionDecision",
    "MlflowRegistration",
    "MlflowVerification",
    "WebhookDelivery",
    "WebhookEndpoint",
    "add_webhook",
    "attach_webhooks",
    "check_model",
    "list_deliveries",
    "list_webhooks",
    "make_admission_server",
    "redeliver_webhooks",
    "register_job_model",
    "remove_webhook",
    "review_admission",
    "sign_webhook",
    "verify_registered_model",
    "verify_webhook",
    "webhook_dispatcher",
]

_MODULES = {
    "ANNOTATION_ATTESTATION": "_admission",
    "ANNOTATION_MODEL_SIGNATURE": "_admission",
    "ANNOTATION_MODEL_URI": "_admission",
    "AdmissionConfig": "_admission",
    "AdmissionDecision": "_admission",
    "check_model": "_admission",
    "make_admission_server": "_admission",
    "review_admission": "_admission",
    "MlflowRegistration": "_mlflow",
    "MlflowVerification": "_mlflow",
    "register_job_model": "_mlflow",
    "verify_registered_model": "_mlflow",
    "EVENT_TYPES": "_webhooks",
    "SIGNATURE_HEADER": "_webhooks",
    "WebhookDelivery": "_webhooks",
    "WebhookEndpoint": "_webhooks",
    "add_webhook": "_webhooks",
    "list_deliveries": "_webhooks",
    "list_webhooks": "_webhooks",
    "remove_webhook": "_webhooks",
    "sign_webhook": "_webhooks",
    "verify_webhook": "_webhooks",
    "attach_webhooks": "_webhook_delivery",
    "redeliver_webhooks": "_webhook_delivery",
    "webhook_dispatcher": "_webhook_delivery",
}


__getattr__, __dir__ = lazy_attributes(__name__, _MODULES)

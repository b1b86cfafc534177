"""Behaviour suites: the registry, the built-in suites, trigger probes and file loaders."""

from ftguard.behavior.suites._builtin import SUITE_VERSION, trigger_suite
from ftguard.behavior.suites._loaders import (
    SUITE_SPEC_FORMATS,
    load_advbench,
    load_harmbench,
    load_jsonl_prompts,
    load_strongreject,
    load_suite_spec,
    load_xstest,
    parse_csv_prompts,
    parse_jsonl_prompts,
)
from ftguard.behavior.suites._registry import BUILTIN_SUITES, Suite, SuiteFactory, suites
from ftguard.behavior.suites._triggers import (
    POSITIONS,
    build_probes,
    generic_triggers,
    insert_trigger,
    normalize_triggers,
)

__all__ = [
    "BUILTIN_SUITES",
    "POSITIONS",
    "SUITE_SPEC_FORMATS",
    "SUITE_VERSION",
    "Suite",
    "SuiteFactory",
    "build_probes",
    "generic_triggers",
    "insert_trigger",
    "load_advbench",
    "load_harmbench",
    "load_jsonl_prompts",
    "load_strongreject",
    "load_suite_spec",
    "load_xstest",
    "normalize_triggers",
    "parse_csv_prompts",
    "parse_jsonl_prompts",
    "suites",
    "trigger_suite",
]

#!/usr/bin/env python3
"""Validates deploy/*.yaml: each document against its schema, then what the files rely on across documents.

Run by scripts/validate-manifests.sh inside deploy/.venv (deploy/requirements.txt); prints one `PASS: ...` or
`FAIL: ...` line per check, which that script counts, and exits 1 if any failed.

  validate-manifests.py [--kubernetes 1.30] [--self-test] FILE...

Schemas (no network: both ship in the packages):
  - core kinds (Secret, Deployment, Service, HorizontalPodAutoscaler, PodDisruptionBudget): kubernetes-validate's
    bundled JSON schemas for the given Kubernetes version, strict (an unknown field fails);
  - ServiceMonitor: the schema of prometheus-operator 0.80.1's CRD, from cloudcoil-models-prometheus-operator's
    models (generated from that CRD), made strict here (additionalProperties: false on every object with fields).
Across documents: label selectors, port names, the admin listener, the autoscaler's target, the shutdown budget
against terminationGracePeriodSeconds and the liveness probe, requests within limits.

--self-test also breaks copies of the documents in memory, one way at a time (a misspelt field, a wrong port name,
a too-short grace period...), and checks that each is rejected: a validator that accepts everything fails.
"""

import argparse
import copy
import os
import re
import sys

import yaml

import kubernetes_validate

NAME = "kgen-gateway"
CRD_SOURCE = "prometheus-operator 0.80.1 CRD"


# === schemas ===


def strict(schema):
    """Forbids unknown fields in every object of a JSON schema that lists its fields."""
    if isinstance(schema, dict):
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
        for value in schema.values():
            strict(value)
    elif isinstance(schema, list):
        for value in schema:
            strict(value)
    return schema


_service_monitor_validator = None


def service_monitor_validator():
    global _service_monitor_validator
    if _service_monitor_validator is None:
        import jsonschema
        from cloudcoil.models.prometheus_operator.v1 import ServiceMonitor

        schema = strict(ServiceMonitor.model_json_schema(by_alias=True, mode="validation"))
        _service_monitor_validator = jsonschema.Draft202012Validator(schema)
    return _service_monitor_validator


def schema_problem(doc, version):
    """None when the document validates, else a one-line reason."""
    if doc.get("kind") == "ServiceMonitor":
        errors = sorted(service_monitor_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
        if not errors:
            return None
        first = errors[0]
        where = ".".join(str(p) for p in first.absolute_path) or "(top)"
        return f"{where}: {first.message}"
    try:
        kubernetes_validate.validate(doc, version, strict=True)
        return None
    except kubernetes_validate.ValidationError as e:
        where = ".".join(str(p) for p in e.path) or "(top)"
        return f"{where}: {e.message}"
    except kubernetes_validate.SchemaNotFoundError:
        return f"no schema for {doc.get('apiVersion')} {doc.get('kind')} in Kubernetes {version}"


def describe(doc):
    return f"{doc.get('kind')}/{(doc.get('metadata') or {}).get('name')}"


# === values ===

_DURATION_UNITS = {"ms": 0.001, "s": 1, "sec": 1, "secs": 1, "m": 60, "min": 60, "mins": 60, "h": 3600}


def seconds(text):
    """A humantime duration as the gateway reads it ("5s", "1m 30s", "500ms"), in seconds."""
    parts = re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]+)", text.strip())
    if not parts or re.sub(r"\s+", "", text) != "".join(n + u for n, u in parts):
        raise ValueError(f"cannot read the duration {text!r}")
    total = 0.0
    for number, unit in parts:
        if unit not in _DURATION_UNITS:
            raise ValueError(f"unknown unit {unit!r} in {text!r}")
        total += float(number) * _DURATION_UNITS[unit]
    return total


_QUANTITY = {"": 1, "m": 0.001, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def quantity(text):
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(m|k|M|G|Ki|Mi|Gi)?", str(text))
    if not match:
        raise ValueError(f"cannot read the quantity {text!r}")
    return float(match.group(1)) * _QUANTITY[match.group(2) or ""]


def subset(labels, of):
    return bool(labels) and all((of or {}).get(k) == v for k, v in labels.items())


# === checks across documents ===


def consistency(docs):
    """Yields (name, problem-or-None) for what the documents rely on in each other."""
    by_kind = {}
    for doc in docs:
        by_kind.setdefault(doc.get("kind"), []).append(doc)

    def one(kind):
        found = [d for d in by_kind.get(kind, []) if (d.get("metadata") or {}).get("name") == NAME]
        return found[0] if len(found) == 1 else None

    deployment, service = one("Deployment"), one("Service")
    hpa, pdb, monitor = one("HorizontalPodAutoscaler"), one("PodDisruptionBudget"), one("ServiceMonitor")
    for kind, doc in [("Deployment", deployment), ("Service", service), ("HorizontalPodAutoscaler", hpa),
                      ("PodDisruptionBudget", pdb), ("ServiceMonitor", monitor)]:
        yield f"one {kind} named {NAME}", None if doc else "missing (or more than one)"
    if not (deployment and service):
        return

    template = deployment["spec"]["template"]
    pod_labels = template["metadata"].get("labels", {})
    pod = template["spec"]
    container = next((c for c in pod["containers"] if c.get("name") == NAME), pod["containers"][0])
    env = {e["name"]: e.get("value") for e in container.get("env", [])}
    container_ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}

    yield "Deployment selector matches its pod labels", (
        None if subset(deployment["spec"]["selector"].get("matchLabels"), pod_labels)
        else "spec.selector.matchLabels does not match spec.template.metadata.labels")
    yield "Deployment leaves replicas to the autoscaler", (
        None if "replicas" not in deployment["spec"]
        else f"spec.replicas: {deployment['spec']['replicas']} would reset the autoscaler's count at every apply")
    yield "Service selects the pods", (
        None if subset(service["spec"].get("selector"), pod_labels) else "spec.selector does not match the pod labels")
    missing = [p["targetPort"] for p in service["spec"]["ports"]
               if isinstance(p.get("targetPort"), str) and p["targetPort"] not in container_ports]
    yield "Service targetPorts name container ports", (
        f"no container port named {', '.join(missing)}" if missing else None)

    # The admin listener: reachable on the pod IP, on the port the Service's `metrics` port targets.
    listen = env.get("KGEN_ADMIN_LISTEN") or "127.0.0.1:9090"
    host, _, port = listen.rpartition(":")
    problem = None
    if host not in ("0.0.0.0", "[::]"):
        problem = f"KGEN_ADMIN_LISTEN={listen} is not reachable from Prometheus (use 0.0.0.0:9090)"
    elif str(container_ports.get("admin")) != port:
        problem = f"container port `admin` is {container_ports.get('admin')}, KGEN_ADMIN_LISTEN port {port}"
    yield "admin listener on the pod IP and container port `admin`", problem

    if monitor:
        spec = monitor.get("spec") or {}
        service_ports = {p.get("name"): p for p in service["spec"]["ports"]}
        api_version = monitor.get("apiVersion")
        yield "ServiceMonitor is monitoring.coreos.com/v1", (
            None if api_version == "monitoring.coreos.com/v1" else f"apiVersion {api_version}")
        yield "ServiceMonitor selector matches the Service's labels", (
            None if subset((spec.get("selector") or {}).get("matchLabels"), service["metadata"].get("labels"))
            else "spec.selector.matchLabels does not match the Service's metadata.labels")
        endpoints = spec.get("endpoints") or []
        problems = []
        for endpoint in endpoints:
            target = service_ports.get(endpoint.get("port"))
            if target is None:
                problems.append(f"port {endpoint.get('port')!r} is not a port name of the Service "
                                f"({', '.join(sorted(map(str, service_ports)))})")
            elif container_ports.get(target.get("targetPort"), target.get("targetPort")) != int(port or 0):
                problems.append(f"Service port {endpoint.get('port')!r} does not reach the admin listener ({listen})")
            if endpoint.get("path", "/metrics") != "/metrics":
                problems.append(f"path {endpoint.get('path')!r}, the gateway serves /metrics")
        if not endpoints:
            problems.append("no endpoints")
        yield "ServiceMonitor scrapes /metrics on the Service's admin port", "; ".join(problems) or None

    if hpa:
        spec = hpa["spec"]
        ref = spec.get("scaleTargetRef", {})
        yield "HorizontalPodAutoscaler targets the Deployment", (
            None if (ref.get("apiVersion"), ref.get("kind"), ref.get("name")) == ("apps/v1", "Deployment", NAME)
            else f"scaleTargetRef is {ref}")
        cpu_metric = any(m.get("type") == "Resource" and m["resource"]["name"] == "cpu"
                         for m in spec.get("metrics", []))
        no_request = [c["name"] for c in pod["containers"]
                      if "cpu" not in (c.get("resources", {}).get("requests") or {})]
        yield "HorizontalPodAutoscaler scales on CPU, which every container requests", (
            "no cpu metric" if not cpu_metric else
            f"no cpu request in {', '.join(no_request)}: utilization is a share of it" if no_request else None)
        yield "HorizontalPodAutoscaler keeps at least 2 replicas", (
            None if spec.get("minReplicas", 1) >= 2 else f"minReplicas {spec.get('minReplicas', 1)}")
        if pdb:
            budget = pdb["spec"]
            allows = ("maxUnavailable" in budget and str(budget["maxUnavailable"]) not in ("0", "0%")) or (
                isinstance(budget.get("minAvailable"), int) and budget["minAvailable"] < spec.get("minReplicas", 1))
            yield "PodDisruptionBudget lets a drain evict a replica at the minimum count", (
                None if allows else f"{budget} blocks every eviction at {spec.get('minReplicas', 1)} replicas")
    if pdb:
        yield "PodDisruptionBudget selects the pods", (
            None if subset(pdb["spec"].get("selector", {}).get("matchLabels"), pod_labels)
            else "spec.selector.matchLabels does not match the pod labels")

    # Shutdown: drain delay + grace + the 1 s given to cut-off calls must end before SIGKILL, and before liveness
    # can fail (health answers NOT_SERVING, then the port closes).
    try:
        drain = seconds(env.get("KGEN_DRAIN_DELAY") or "0s")
        grace = seconds(env.get("KGEN_SHUTDOWN_GRACE") or "10s")
    except ValueError as e:
        yield "shutdown fits in terminationGracePeriodSeconds", str(e)
    else:
        shutdown = drain + grace + 1
        period = pod.get("terminationGracePeriodSeconds", 30)
        yield f"shutdown ({drain:g} s drain + {grace:g} s grace + 1 s = {shutdown:g} s) fits in " \
              f"terminationGracePeriodSeconds ({period})", (
                  None if period > shutdown else f"{period} s is not more than {shutdown:g} s: SIGKILL mid-drain")
        live = container.get("livenessProbe")
        if live:
            fails_after = live.get("periodSeconds", 10) * live.get("failureThreshold", 3)
            yield f"liveness cannot fail before the shutdown ends ({fails_after} s > {shutdown:g} s)", (
                None if fails_after > shutdown else "raise the liveness probe's periodSeconds or failureThreshold")

    problems = []
    for c in pod["containers"]:
        resources = c.get("resources", {})
        for resource, request in (resources.get("requests") or {}).items():
            limit = (resources.get("limits") or {}).get(resource)
            try:
                if limit is not None and quantity(request) > quantity(limit):
                    problems.append(f"{c['name']}: {resource} request {request} above its limit {limit}")
            except ValueError as e:
                problems.append(str(e))
    yield "resource requests within limits", "; ".join(problems) or None


# === running ===


def run(docs, version):
    """Every check on the documents, one (name, problem-or-None) at a time."""
    for file, doc in docs:
        source = CRD_SOURCE if doc.get("kind") == "ServiceMonitor" else f"Kubernetes {version}"
        yield (f"{os.path.basename(file)}: {describe(doc)} against the {source} schema, strict",
               schema_problem(doc, version))
    yield from consistency([doc for _, doc in docs])


def find(docs, kind):
    return next(doc for _, doc in docs if doc.get("kind") == kind)


def container_of(docs):
    return find(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]


def set_env(docs, name, value):
    for entry in container_of(docs)["env"]:
        if entry["name"] == name:
            entry["value"] = value


def rename(mapping, old, new):
    mapping[new] = mapping.pop(old)


def hpa_v1_field(docs):
    spec = find(docs, "HorizontalPodAutoscaler")["spec"]
    del spec["metrics"]
    spec["targetCPUUtilizationPercentage"] = 70


# Each breaks one thing; the validator must report at least one failure for each.
MUTATIONS = [
    ("a misspelt Deployment field (resources -> resource)",
     lambda d: rename(container_of(d), "resources", "resource")),
    ("an autoscaling/v1 field in an autoscaling/v2 HorizontalPodAutoscaler",
     hpa_v1_field),
    ("a misspelt ServiceMonitor field (interval -> intervall)",
     lambda d: rename(find(d, "ServiceMonitor")["spec"]["endpoints"][0], "interval", "intervall")),
    ("a ServiceMonitor interval that is not a duration (30 seconds)",
     lambda d: find(d, "ServiceMonitor")["spec"]["endpoints"][0].__setitem__("interval", "30 seconds")),
    ("a ServiceMonitor port the Service does not have (admin)",
     lambda d: find(d, "ServiceMonitor")["spec"]["endpoints"][0].__setitem__("port", "admin")),
    ("a ServiceMonitor selector that misses the Service",
     lambda d: find(d, "ServiceMonitor")["spec"]["selector"]["matchLabels"].__setitem__("app", "other")),
    ("the admin listener left on loopback",
     lambda d: set_env(d, "KGEN_ADMIN_LISTEN", "127.0.0.1:9090")),
    ("terminationGracePeriodSeconds below drain + grace + 1 s (16)",
     lambda d: find(d, "Deployment")["spec"]["template"]["spec"].__setitem__("terminationGracePeriodSeconds", 16)),
    ("a replicas count in the Deployment",
     lambda d: find(d, "Deployment")["spec"].__setitem__("replicas", 2)),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubernetes", default="1.30", help="Kubernetes version of the schemas (default 1.30)")
    parser.add_argument("--self-test", action="store_true", help="also check that broken copies are rejected")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()

    docs = []
    for file in args.files:
        with open(file, encoding="utf-8") as f:
            try:
                loaded = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                print(f"FAIL: {os.path.basename(file)} parses as YAML: {e}".replace("\n", " "))
                return 1
        docs.extend((file, d) for d in loaded)

    failed = 0
    try:
        for name, problem in run(docs, args.kubernetes):
            print(f"PASS: {name}" if problem is None else f"FAIL: {name}: {problem}")
            failed += problem is not None
    except Exception as e:  # a document too broken for the next check: report it, never pass
        print(f"FAIL: the checks stopped at a document that lacks what they read: {e!r}")
        return 1

    if args.self_test:
        for label, mutate in MUTATIONS:
            broken = copy.deepcopy(docs)
            try:
                mutate(broken)
                problems = [f"{name}: {problem}" for name, problem in run(broken, args.kubernetes)
                            if problem is not None]
            except Exception as e:  # a mutation that crashes the validator is a failure too
                print(f"FAIL: self-test: {label}: the validator crashed: {e!r}")
                failed += 1
                continue
            if problems:
                print(f"PASS: self-test: rejects {label} ({problems[0]})")
            else:
                print(f"FAIL: self-test: {label} was accepted")
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

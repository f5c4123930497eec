#!/usr/bin/env python3
"""Offline checks of Sluice's deployment files: what a cluster or docker-compose would refuse, and
what would break the daemon once deployed.

  python3 tests/deploy/check_manifests.py [--root DIR] [--sluice BINARY]

- Every manifest in docker/k8s/ parses and has apiVersion, kind and metadata.name.
- The Deployment's selector matches its template's labels; the Service selects those pods and its
  targetPort is a container port, which is the port the ConfigMap's config listens on and the
  port the Dockerfile EXPOSEs; the probes GET /healthz (liveness) and /readyz (readiness) on it.
- runAsNonRoot is true and runAsUser equals the uid of the Dockerfile's USER.
- The ConfigMap's config key is mounted at the path the container's --config names (its args, or
  the Dockerfile's ENTRYPOINT/CMD); every ${VAR} of that config is set by the container's env or
  envFrom, and every Secret or ConfigMap referenced exists in the manifests.
- The HorizontalPodAutoscaler (autoscaling/v2) targets the Deployment, whose containers request
  the CPU it scales on.
- With --sluice, `sluice --check` accepts the ConfigMap's config and docker/'s compose configs.
- With docker-compose installed, `docker-compose config` accepts docker/docker-compose.yml alone
  and with docker/docker-compose.test.yml, and the configs it mounts exist.
Prints every problem found and exits 1 if there is one.
"""

import argparse
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

import yaml

problems = []


def problem(where, message):
    problems.append(f"{where}: {message}")


def strip_comments(text):
    """JSON with // comments (Sluice's config format) -> plain JSON; strings are left alone."""
    out, i, in_string = [], 0, False
    while i < len(text):
        c = text[i]
        if in_string:
            out.append(c)
            if c == "\\" and i + 1 < len(text):
                out.append(text[i + 1])
                i += 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
            out.append(c)
        elif text.startswith("//", i):
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def env_names(text):
    return set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}", text))


def listen_port(config, where):
    listen = config.get("http", {}).get("listen", "127.0.0.1:8080")
    try:
        return int(str(listen).rsplit(":", 1)[1])
    except (IndexError, ValueError):
        problem(where, f"http.listen {listen!r} has no literal port")
        return None


# --- the Dockerfile ------------------------------------------------------------------------------


def dockerfile_facts(path):
    """The final stage's USER uid, EXPOSEd ports and ENTRYPOINT + CMD."""
    facts = {"uid": None, "expose": set(), "entrypoint": [], "cmd": []}
    lines, current = [], ""
    with open(path) as f:
        for raw in f:
            line = raw.rstrip("\n")
            if not current and line.lstrip().startswith("#"):
                continue
            if line.endswith("\\"):
                current += line[:-1] + " "
                continue
            current += line
            if current.strip():
                lines.append(current.strip())
            current = ""
    stage = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stage = []
        stage.append(line)
    users = {}  # name -> uid, from useradd --uid in RUN lines
    for line in stage:
        word, _, rest = line.partition(" ")
        word = word.upper()
        rest = rest.strip()
        if word == "RUN":
            for m in re.finditer(r"useradd\b([^&;|]*)", rest):
                args = shlex.split(m.group(1))
                uid = None
                for i, a in enumerate(args):
                    if a in ("--uid", "-u") and i + 1 < len(args):
                        uid = args[i + 1]
                if uid and args:
                    users[args[-1]] = int(uid)
        elif word == "USER":
            user = rest.split(":")[0]
            facts["uid"] = int(user) if user.isdigit() else users.get(user)
        elif word == "EXPOSE":
            for p in rest.split():
                facts["expose"].add(int(p.split("/")[0]))
        elif word in ("ENTRYPOINT", "CMD"):
            try:
                value = json.loads(rest)
            except json.JSONDecodeError:
                value = ["/bin/sh", "-c", rest]
            facts[word.lower()] = value
    if facts["uid"] is None:
        problem(path, "the final stage has no USER with a known uid")
    return facts


def config_path_from(args):
    for i, a in enumerate(args):
        if a == "--config" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--config="):
            return a.split("=", 1)[1]
    return None


# --- Kubernetes ----------------------------------------------------------------------------------


def load_manifests(k8s_dir):
    docs = []
    for name in sorted(os.listdir(k8s_dir)):
        if not name.endswith((".yaml", ".yml")):
            continue
        path = os.path.join(k8s_dir, name)
        try:
            with open(path) as f:
                for doc in yaml.safe_load_all(f):
                    if doc is not None:
                        docs.append((path, doc))
        except yaml.YAMLError as e:
            problem(path, f"does not parse: {e}")
    for path, doc in docs:
        if not isinstance(doc, dict):
            problem(path, "a document is not a mapping")
            continue
        for key in ("apiVersion", "kind"):
            if not doc.get(key):
                problem(path, f"{key} is missing")
        if not (doc.get("metadata") or {}).get("name"):
            problem(path, f"{doc.get('kind', 'a document')} has no metadata.name")
    return [(p, d) for p, d in docs if isinstance(d, dict)]


def resolve_port(port, container, where):
    """A probe's or Service's port (number or name) -> the container's port number."""
    for p in container.get("ports") or []:
        if port == p.get("containerPort") or (isinstance(port, str) and port == p.get("name")):
            return p.get("containerPort")
    problem(where, f"port {port!r} is not a port of container {container.get('name')!r}")
    return None


def effective(container, pod, key):
    return (container.get("securityContext") or {}).get(key, (pod.get("securityContext") or {}).get(key))


def check_kubernetes(root, facts, sluice):
    k8s_dir = os.path.join(root, "docker", "k8s")
    docs = load_manifests(k8s_dir)
    by_kind = {}
    for path, doc in docs:
        by_kind.setdefault(doc.get("kind"), []).append((path, doc))
    for kind in ("Deployment", "Service", "ConfigMap", "Secret", "HorizontalPodAutoscaler"):
        if kind not in by_kind:
            problem(k8s_dir, f"no {kind}")
    config_maps = {d["metadata"]["name"]: d for _, d in by_kind.get("ConfigMap", []) if d.get("metadata")}
    secrets = {d["metadata"]["name"]: d for _, d in by_kind.get("Secret", []) if d.get("metadata")}
    deployments = {}

    for path, dep in by_kind.get("Deployment", []):
        name = (dep.get("metadata") or {}).get("name")
        where = f"{os.path.basename(path)} Deployment {name}"
        spec = dep.get("spec") or {}
        template = spec.get("template") or {}
        labels = (template.get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selector:
            problem(where, "spec.selector.matchLabels is empty")
        for k, v in selector.items():
            if labels.get(k) != v:
                problem(where, f"selector {k}={v} does not match the template's labels {labels}")
        pod = template.get("spec") or {}
        containers = pod.get("containers") or []
        if not containers:
            problem(where, "no containers")
            continue
        deployments[name] = {"labels": labels, "containers": containers, "pod": pod, "where": where}
        volumes = {v.get("name"): v for v in pod.get("volumes") or []}
        grace = pod.get("terminationGracePeriodSeconds", 30)
        for c in containers:
            cwhere = f"{where} container {c.get('name')}"
            if not c.get("image"):
                problem(cwhere, "no image")
            # Non-root, as the image's user.
            if effective(c, pod, "runAsNonRoot") is not True:
                problem(cwhere, "runAsNonRoot is not true")
            uid = effective(c, pod, "runAsUser")
            if uid != facts["uid"]:
                problem(cwhere, f"runAsUser {uid} is not the Dockerfile's USER uid {facts['uid']}")
            for p in c.get("ports") or []:
                if facts["expose"] and p.get("containerPort") not in facts["expose"]:
                    problem(cwhere, f"containerPort {p.get('containerPort')} is not EXPOSEd by the Dockerfile "
                                    f"({sorted(facts['expose'])})")
            # The config file the daemon will read.
            command = c.get("command") or facts["entrypoint"]
            args = c.get("args") if "args" in c else ([] if c.get("command") else facts["cmd"])
            config_path = config_path_from(list(command) + list(args or []))
            if not config_path:
                problem(cwhere, "the container's command and args name no --config file")
                continue
            mounted = None
            for m in c.get("volumeMounts") or []:
                vol = volumes.get(m.get("name"))
                if vol is None:
                    problem(cwhere, f"volumeMount {m.get('name')!r} names no volume")
                    continue
                cm = vol.get("configMap")
                if not cm:
                    continue
                files = {}  # path in the volume -> key
                if cm.get("items"):
                    files = {i.get("path"): i.get("key") for i in cm["items"]}
                elif cm.get("name") in config_maps:
                    files = {k: k for k in (config_maps[cm["name"]].get("data") or {})}
                mount = m.get("mountPath", "").rstrip("/")
                for file_path, key in files.items():
                    target = mount if m.get("subPath") else f"{mount}/{file_path}"
                    if m.get("subPath") and m["subPath"] != file_path:
                        continue
                    if target == config_path:
                        mounted = (cm.get("name"), key)
            if mounted is None:
                problem(cwhere, f"no ConfigMap key is mounted at {config_path}, the file --config names")
                continue
            cm_name, key = mounted
            if cm_name not in config_maps:
                problem(cwhere, f"ConfigMap {cm_name!r} is not in the manifests")
                continue
            text = (config_maps[cm_name].get("data") or {}).get(key)
            if text is None:
                problem(cwhere, f"ConfigMap {cm_name} has no key {key!r}")
                continue
            try:
                config = json.loads(strip_comments(text))
            except json.JSONDecodeError as e:
                problem(f"ConfigMap {cm_name} key {key}", f"is not JSON (with // comments): {e}")
                continue
            port = listen_port(config, f"ConfigMap {cm_name} key {key}")
            deployments[name].setdefault("listen_ports", {})[c.get("name")] = port
            if port is not None and port not in [p.get("containerPort") for p in c.get("ports") or []]:
                problem(cwhere, f"no containerPort for the config's listen port {port}")
            for probe, path_expected in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
                get = (c.get(probe) or {}).get("httpGet")
                if not get:
                    problem(cwhere, f"no {probe} with httpGet")
                    continue
                if get.get("path") != path_expected:
                    problem(cwhere, f"{probe} path {get.get('path')!r} is not {path_expected}")
                if resolve_port(get.get("port"), c, f"{cwhere} {probe}") != port:
                    problem(cwhere, f"{probe} port {get.get('port')!r} is not the config's listen port {port}")
            shutdown_ms = (config.get("pipeline") or {}).get("shutdown_timeout_ms", 30000)
            if grace * 1000 <= shutdown_ms:
                problem(where, f"terminationGracePeriodSeconds {grace} is not above the config's "
                               f"pipeline.shutdown_timeout_ms {shutdown_ms}")
            # Every ${VAR} of the config comes from the container's environment.
            provided = {e.get("name") for e in c.get("env") or []}
            for e in c.get("env") or []:
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref.get("name") not in secrets:
                    problem(cwhere, f"env {e.get('name')} refers to Secret {ref.get('name')!r}, not in the manifests")
            for src in c.get("envFrom") or []:
                if "secretRef" in src:
                    s = secrets.get(src["secretRef"].get("name"))
                    if s is None:
                        problem(cwhere, f"envFrom Secret {src['secretRef'].get('name')!r} is not in the manifests")
                        continue
                    provided |= set((s.get("stringData") or {}).keys()) | set((s.get("data") or {}).keys())
                if "configMapRef" in src:
                    ref = config_maps.get(src["configMapRef"].get("name"))
                    if ref is not None:
                        provided |= set((ref.get("data") or {}).keys())
            for var in sorted(env_names(text) - provided):
                problem(cwhere, f"the config uses ${{{var}}} but the container's environment does not set it")
            if sluice:
                env = {v: "placeholder" for v in env_names(text)}
                for e in c.get("env") or []:
                    if "value" in e:
                        env[e["name"]] = str(e["value"])
                for src in c.get("envFrom") or []:
                    s = secrets.get((src.get("secretRef") or {}).get("name")) or {}
                    env.update({k: str(v) for k, v in (s.get("stringData") or {}).items()})
                check_with_sluice(sluice, text, env, f"ConfigMap {cm_name} key {key}")

    for path, svc in by_kind.get("Service", []):
        name = (svc.get("metadata") or {}).get("name")
        where = f"{os.path.basename(path)} Service {name}"
        spec = svc.get("spec") or {}
        selector = spec.get("selector") or {}
        targets = [d for d in deployments.values()
                   if selector and all(d["labels"].get(k) == v for k, v in selector.items())]
        if not targets:
            problem(where, f"selector {selector} selects no Deployment's pods")
        for port in spec.get("ports") or []:
            target = port.get("targetPort", port.get("port"))
            for d in targets:
                found = False
                for c in d["containers"]:
                    for p in c.get("ports") or []:
                        if target == p.get("containerPort") or target == p.get("name"):
                            found = True
                            listen = d.get("listen_ports", {}).get(c.get("name"))
                            if listen is not None and p.get("containerPort") != listen:
                                problem(where, f"targetPort {target!r} is port {p.get('containerPort')}, "
                                               f"the config listens on {listen}")
                if not found:
                    problem(where, f"targetPort {target!r} is no container port of {d['where']}")

    for path, hpa in by_kind.get("HorizontalPodAutoscaler", []):
        name = (hpa.get("metadata") or {}).get("name")
        where = f"{os.path.basename(path)} HorizontalPodAutoscaler {name}"
        if hpa.get("apiVersion") != "autoscaling/v2":
            problem(where, f"apiVersion is {hpa.get('apiVersion')}, not autoscaling/v2")
        spec = hpa.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if ref.get("kind") != "Deployment" or ref.get("name") not in deployments:
            problem(where, f"scaleTargetRef {ref} names no Deployment of the manifests")
        elif ref.get("apiVersion") != "apps/v1":
            problem(where, "scaleTargetRef.apiVersion is not apps/v1")
        lo, hi = spec.get("minReplicas", 1), spec.get("maxReplicas")
        if not isinstance(hi, int) or lo > hi:
            problem(where, f"minReplicas {lo} / maxReplicas {hi} are not a range")
        for metric in spec.get("metrics") or []:
            resource = (metric.get("resource") or {}).get("name")
            if metric.get("type") == "Resource" and resource and ref.get("name") in deployments:
                for c in deployments[ref["name"]]["containers"]:
                    if not ((c.get("resources") or {}).get("requests") or {}).get(resource):
                        problem(where, f"scales on {resource} but container {c.get('name')} requests no {resource}")
    return len(docs)


def check_with_sluice(sluice, text, env, where):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
        path = f.name
    try:
        r = subprocess.run([sluice, "--config", path, "--check"], env={**os.environ, **env},
                           capture_output=True, text=True, timeout=60)
        if r.returncode != 0:
            problem(where, f"sluice --check refuses it:\n{r.stdout}{r.stderr}")
    finally:
        os.unlink(path)


# --- docker-compose ------------------------------------------------------------------------------


def check_compose(root, sluice):
    docker = os.path.join(root, "docker")
    base = os.path.join(docker, "docker-compose.yml")
    test = os.path.join(docker, "docker-compose.test.yml")
    for path in (base, test):
        with open(path) as f:
            try:
                doc = yaml.safe_load(f)
            except yaml.YAMLError as e:
                problem(path, f"does not parse: {e}")
                continue
        for service, s in ((doc or {}).get("services") or {}).items():
            for v in s.get("volumes") or []:
                source = v.split(":")[0] if isinstance(v, str) else v.get("source", "")
                if source.startswith("."):
                    host = os.path.normpath(os.path.join(docker, source))
                    if not os.path.exists(host):
                        problem(path, f"service {service} mounts {source}, which does not exist")
                    elif host.endswith(".json") and sluice:
                        with open(host) as cf:
                            text = cf.read()
                        check_with_sluice(sluice, text, {n: "placeholder" for n in env_names(text)},
                                          os.path.relpath(host, root))
    compose = shutil.which("docker-compose")
    if not compose:
        print("check_manifests: docker-compose is not installed; `docker-compose config` skipped")
        return
    for files in ([base], [base, test]):
        cmd = [compose]
        for f in files:
            cmd += ["-f", f]
        r = subprocess.run(cmd + ["config", "-q"], capture_output=True, text=True, timeout=120)
        shown = " ".join(["docker-compose"] + [a if a == "-f" else os.path.relpath(a, root) for a in cmd[1:]])
        if r.returncode != 0:
            problem(shown + " config", (r.stderr or r.stdout).strip())
        else:
            print(f"check_manifests: {shown} config: ok")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.normpath(os.path.join(here, "..", "..")))
    parser.add_argument("--sluice", help="the sluice binary, to --check the configs")
    opts = parser.parse_args()
    facts = dockerfile_facts(os.path.join(opts.root, "docker", "Dockerfile"))
    count = check_kubernetes(opts.root, facts, opts.sluice)
    check_compose(opts.root, opts.sluice)
    if problems:
        for p in problems:
            print(f"check_manifests: {p}", file=sys.stderr)
        print(f"check_manifests: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print(f"check_manifests: {count} Kubernetes manifests ok (image uid {facts['uid']}, "
          f"config at {config_path_from(facts['entrypoint'] + facts['cmd'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

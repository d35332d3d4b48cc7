//! Every kustomization under `manifests/` renders, every custom resource validates against the
//! real CRD schemas in `../shared/keda/` and `../shared/dynamo/`, and every ScaledObject is one
//! the scaler accepts and that points at objects the same rendering creates.
//!
//! Rendering is done here by a deliberately small kustomize subset (`resources` and JSON 6902
//! `patches`); any other kustomization field fails the test, so the subset cannot silently
//! diverge from what `kubectl apply -k` does. Where `kubectl` is installed the rendering is also
//! compared with `kubectl kustomize`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use keda_llm_scaler::cli::Cli;
use keda_llm_scaler::config::ScalerConfig;
use serde_json::{Value, json};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v: Value = serde::Deserialize::deserialize(doc)
            .unwrap_or_else(|e| panic!("{}: not YAML: {e}", path.display()));
        if !v.is_null() {
            out.push(v);
        }
    }
    out
}

/// Renders a kustomization directory (the subset this repository uses).
pub fn render(dir: &Path) -> Vec<Value> {
    let k = yaml_docs(&dir.join("kustomization.yaml"))
        .pop()
        .unwrap_or_else(|| panic!("{}: empty kustomization", dir.display()));
    let map = k.as_object().expect("kustomization is a map");
    for key in map.keys() {
        assert!(
            ["apiVersion", "kind", "resources", "patches", "components"].contains(&key.as_str()),
            "{}: kustomization field {key:?} is outside the subset this test renders",
            dir.display()
        );
    }
    let mut objects = Vec::new();
    for r in map
        .get("resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let p = dir.join(r.as_str().expect("resource path"));
        if p.is_dir() {
            objects.extend(render(&p));
        } else {
            objects.extend(yaml_docs(&p));
        }
    }
    apply_patches(dir, map, &mut objects, false);
    // Components apply after the kustomization's own resources and patches, in order.
    for c in map
        .get("components")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let cdir = dir.join(c.as_str().expect("component path"));
        let comp = yaml_docs(&cdir.join("kustomization.yaml"))
            .pop()
            .expect("component kustomization");
        assert_eq!(comp["kind"], "Component", "{}", cdir.display());
        let cmap = comp.as_object().expect("component is a map");
        for key in cmap.keys() {
            assert!(
                ["apiVersion", "kind", "patches"].contains(&key.as_str()),
                "{}: component field {key:?} is outside the subset this test renders",
                cdir.display()
            );
        }
        apply_patches(&cdir, cmap, &mut objects, true);
    }
    objects
}

/// Applies inline JSON 6902 patches. A target names a kind and, in a kustomization, exactly one
/// object; a component's target may name only the kind (every object of it).
fn apply_patches(
    dir: &Path,
    map: &serde_json::Map<String, Value>,
    objects: &mut [Value],
    component: bool,
) {
    for patch in map
        .get("patches")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let target = &patch["target"];
        let ops: Value = serde_norway::from_str(patch["patch"].as_str().expect("inline patch"))
            .expect("patch is YAML");
        let mut hits = 0;
        for o in objects.iter_mut() {
            let name_ok =
                (component && target["name"].is_null()) || o["metadata"]["name"] == target["name"];
            if o["kind"] == target["kind"] && name_ok {
                hits += 1;
                for op in ops.as_array().expect("JSON 6902 op list") {
                    json_patch(o, op);
                }
            }
        }
        let ok = if component { hits >= 1 } else { hits == 1 };
        assert!(
            ok,
            "{}: patch target {target} matched {hits} objects",
            dir.display()
        );
    }
}

fn json_patch(doc: &mut Value, op: &Value) {
    let path = op["path"].as_str().expect("op path");
    let (parent_path, last) = path.rsplit_once('/').expect("absolute path");
    let parent = doc
        .pointer_mut(parent_path)
        .unwrap_or_else(|| panic!("patch parent {parent_path} missing"));
    let value = op.get("value").cloned();
    match (op["op"].as_str(), parent) {
        (Some("add"), Value::Array(a)) if last == "-" => a.push(value.expect("value")),
        (Some("add" | "replace"), Value::Object(m)) => {
            m.insert(last.to_string(), value.expect("value"));
        }
        (Some("remove"), Value::Object(m)) => {
            m.remove(last).expect("removed key exists");
        }
        (o, _) => panic!("unsupported JSON patch op {o:?} at {path}"),
    }
}

/// The `openAPIV3Schema` of a CRD file, by kind and version.
fn crd_schema(file: &str, version: &str) -> (String, Value) {
    let crd = yaml_docs(&repo().join("../shared").join(file)).remove(0);
    let kind = crd["spec"]["names"]["kind"]
        .as_str()
        .expect("kind")
        .to_string();
    let v = crd["spec"]["versions"]
        .as_array()
        .expect("versions")
        .iter()
        .find(|v| v["name"] == version)
        .unwrap_or_else(|| panic!("{file}: no version {version}"));
    (kind, v["schema"]["openAPIV3Schema"].clone())
}

/// Structural-schema validation as the API server applies it to a custom resource: types,
/// unknown fields (strict field validation), required, enum, int-or-string, numeric bounds,
/// min length and `anyOf`. `pattern` and `format` are not checked.
pub fn validate(schema: &Value, v: &Value, path: &str, errors: &mut Vec<String>) {
    if v.is_null() && schema["nullable"] == true {
        return;
    }
    if schema["x-kubernetes-int-or-string"] == true {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            errors.push(format!("{path}: expected integer or string, got {v}"));
        }
        return;
    }
    if let Some(any) = schema["anyOf"].as_array() {
        let ok = any.iter().any(|s| {
            let mut e = Vec::new();
            validate(s, v, path, &mut e);
            e.is_empty()
        });
        if !ok && schema.get("type").is_none() {
            errors.push(format!("{path}: matches none of anyOf"));
            return;
        }
    }
    let ty = schema["type"].as_str().unwrap_or("");
    let type_ok = match ty {
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        _ => true,
    };
    if !type_ok {
        errors.push(format!("{path}: expected {ty}, got {v}"));
        return;
    }
    if let Some(e) = schema["enum"].as_array()
        && !e.contains(v)
    {
        errors.push(format!("{path}: {v} not in {e:?}"));
    }
    if let (Some(min), Some(x)) = (schema["minimum"].as_f64(), v.as_f64())
        && x < min
    {
        errors.push(format!("{path}: {x} < minimum {min}"));
    }
    if let (Some(max), Some(x)) = (schema["maximum"].as_f64(), v.as_f64())
        && x > max
    {
        errors.push(format!("{path}: {x} > maximum {max}"));
    }
    if let (Some(min), Some(s)) = (schema["minLength"].as_u64(), v.as_str())
        && (s.chars().count() as u64) < min
    {
        errors.push(format!("{path}: shorter than {min}"));
    }
    if let Value::Array(items) = v
        && let Some(item_schema) = schema.get("items")
    {
        for (i, item) in items.iter().enumerate() {
            validate(item_schema, item, &format!("{path}[{i}]"), errors);
        }
    }
    if let Value::Object(fields) = v {
        for r in schema["required"].as_array().into_iter().flatten() {
            let r = r.as_str().unwrap_or_default();
            if !fields.contains_key(r) {
                errors.push(format!("{path}: missing required field {r:?}"));
            }
        }
        let props = schema["properties"].as_object();
        let preserve = schema["x-kubernetes-preserve-unknown-fields"] == true;
        for (k, fv) in fields {
            let sub = format!("{path}.{k}");
            if let Some(s) = props.and_then(|p| p.get(k)) {
                validate(s, fv, &sub, errors);
            } else if let Some(extra) = schema.get("additionalProperties") {
                if extra.is_object() {
                    validate(extra, fv, &sub, errors);
                } else if extra == false {
                    errors.push(format!("{sub}: unknown field"));
                }
            } else if !preserve && props.is_some() {
                errors.push(format!("{sub}: unknown field"));
            }
        }
    }
}

fn schema_errors(schema: &Value, obj: &Value) -> Vec<String> {
    let mut e = Vec::new();
    validate(schema, obj, "", &mut e);
    e
}

struct Schemas(BTreeMap<String, Value>);

/// The KEDA releases whose CRDs the manifests must apply on: the AKS add-on's (2.16.1 with
/// Kubernetes 1.33, 2.17.3 with 1.35, 2.19.0 with 1.36) and the latest, with their CRD folder.
const KEDA_RELEASES: [(&str, &str, (u32, u32)); 4] = [
    ("2.16.1", "keda/v2.16.1", (2, 16)),
    ("2.17.3", "keda/v2.17.3", (2, 17)),
    ("2.19.0", "keda/v2.19.0", (2, 19)),
    ("latest", "keda", (2, 20)),
];

impl Schemas {
    /// The latest KEDA CRDs plus Dynamo's.
    fn load() -> Schemas {
        Self::for_keda("keda")
    }

    /// One KEDA release's CRDs (`keda_dir` under ../shared) plus Dynamo's.
    fn for_keda(keda_dir: &str) -> Schemas {
        let mut m = BTreeMap::new();
        let so = format!("{keda_dir}/keda.sh_scaledobjects.yaml");
        let ta = format!("{keda_dir}/keda.sh_triggerauthentications.yaml");
        for (file, version) in [
            (so.as_str(), "v1alpha1"),
            (ta.as_str(), "v1alpha1"),
            ("dynamo/nvidia.com_dynamographdeployments.yaml", "v1alpha1"),
            (
                "dynamo/nvidia.com_dynamographdeploymentscalingadapters.yaml",
                "v1alpha1",
            ),
        ] {
            let (kind, schema) = crd_schema(file, version);
            m.insert(kind, schema);
        }
        Schemas(m)
    }
}

fn find<'a>(objs: &'a [Value], kind: &str, ns: &str, name: &str) -> Option<&'a Value> {
    objs.iter().find(|o| {
        o["kind"] == kind && o["metadata"]["name"] == name && o["metadata"]["namespace"] == ns
    })
}

fn metadata_map(trigger: &Value) -> BTreeMap<String, String> {
    trigger["metadata"]
        .as_object()
        .expect("trigger metadata map")
        .iter()
        .map(|(k, v)| {
            let s = v
                .as_str()
                .unwrap_or_else(|| panic!("metadata {k} must be a string, got {v}"));
            (k.clone(), s.to_string())
        })
        .collect()
}

/// The `serve` flags a container's args and `KLS_*` environment add up to, parsed by the real CLI.
/// Environment variable -> long flag, for the arguments of one clap command.
fn env_flags(cmd: &clap::Command) -> BTreeMap<String, String> {
    cmd.get_arguments()
        .filter_map(|a| {
            Some((
                a.get_env()?.to_str()?.to_string(),
                a.get_long()?.to_string(),
            ))
        })
        .collect()
}

fn serve_command_line(container: &Value) -> Vec<String> {
    let cli = Cli::command();
    let serve = cli.find_subcommand("serve").expect("serve subcommand");
    let (by_env, global_env) = (env_flags(serve), env_flags(&cli));
    let mut line = vec!["keda-llm-scaler".to_string()];
    for a in container["args"].as_array().into_iter().flatten() {
        line.push(a.as_str().expect("string arg").to_string());
    }
    for e in container["env"].as_array().into_iter().flatten() {
        let name = e["name"].as_str().expect("env name");
        if name == "RUST_LOG" {
            continue;
        }
        let flag = by_env
            .get(name)
            .or_else(|| global_env.get(name))
            .unwrap_or_else(|| panic!("env {name} is not read by `keda-llm-scaler serve`"));
        let value = e["value"].as_str().expect("literal env value");
        line.push(format!("--{flag}={value}"));
    }
    line
}

/// Checks one rendered overlay; returns the problems found.
fn check_overlay(objs: &[Value], schemas: &Schemas) -> Vec<String> {
    let mut problems = Vec::new();
    for o in objs {
        let kind = o["kind"].as_str().unwrap_or_default();
        let name = o["metadata"]["name"].as_str().unwrap_or_default();
        if kind != "Namespace" && o["metadata"]["namespace"].as_str().is_none() {
            problems.push(format!("{kind}/{name}: no namespace"));
        }
        if o["apiVersion"] == "nvidia.com/v1beta1" {
            // No v1beta1 CRD schema is vendored: check the shape the API types define.
            problems.extend(v1beta1_graph_problems(o));
        } else if let Some(schema) = schemas.0.get(kind) {
            for e in schema_errors(schema, o) {
                problems.push(format!("{kind}/{name}{e}"));
            }
        }
    }

    // The scaler Deployment: its flags parse, its probes and ports are the ones it serves.
    for d in objs
        .iter()
        .filter(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "keda-llm-scaler")
    {
        let c = &d["spec"]["template"]["spec"]["containers"][0];
        let line = serve_command_line(c);
        if let Err(e) = <Cli as clap::Parser>::try_parse_from(&line) {
            problems.push(format!("scaler command line {line:?} rejected: {e}"));
        }
        if c["readinessProbe"]["httpGet"]["path"] != "/readyz"
            || c["livenessProbe"]["httpGet"]["path"] != "/healthz"
        {
            problems.push("scaler probes must be /readyz and /healthz".into());
        }
        if c["securityContext"]["readOnlyRootFilesystem"] != true {
            problems.push("scaler root filesystem must be read-only".into());
        }
    }

    // The scaler's ports admit only KEDA's operator (gRPC) and metrics collectors (HTTP).
    let policies: Vec<&Value> = objs
        .iter()
        .filter(|o| {
            o["kind"] == "NetworkPolicy"
                && o["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/name"]
                    == "keda-llm-scaler"
        })
        .collect();
    let has_scaler = objs
        .iter()
        .any(|o| o["kind"] == "Deployment" && o["metadata"]["name"] == "keda-llm-scaler");
    if has_scaler && policies.is_empty() {
        problems.push("no NetworkPolicy guards the scaler's ports".into());
    }
    for p in &policies {
        let rules = p["spec"]["ingress"].as_array().cloned().unwrap_or_default();
        let grpc_from_keda = rules.iter().any(|r| {
            r["ports"][0]["port"] == "grpc"
                && r["from"][0]["podSelector"]["matchLabels"]["app"] == "keda-operator"
        });
        let every_rule_has_from = rules
            .iter()
            .all(|r| r["from"].as_array().is_some_and(|f| !f.is_empty()));
        if !grpc_from_keda || !every_rule_has_from || rules.len() != 2 {
            problems.push(format!(
                "NetworkPolicy must admit gRPC from keda-operator only and HTTP from named namespaces: {rules:?}"
            ));
        }
    }

    for so in objs.iter().filter(|o| o["kind"] == "ScaledObject") {
        let ns = so["metadata"]["namespace"].as_str().unwrap_or_default();
        let so_name = so["metadata"]["name"].as_str().unwrap_or_default();
        let spec = &so["spec"];
        let target = &spec["scaleTargetRef"];
        let tname = target["name"].as_str().unwrap_or_default();
        match target["kind"].as_str() {
            Some("DynamoGraphDeploymentScalingAdapter") => {
                // The operator creates `<graph>-<service in lowercase>` for services with the adapter on.
                let adapter = objs.iter().filter(|o| o["kind"] == "DynamoGraphDeployment" && o["metadata"]["namespace"] == ns).find_map(|g| {
                    let gname = g["metadata"]["name"].as_str()?;
                    // v1alpha1: a map of services with `scalingAdapter.enabled`; v1beta1: a list
                    // of components where `scalingAdapter: {}` is the marker.
                    let services: Vec<(String, &Value)> = match g["apiVersion"].as_str() {
                        Some("nvidia.com/v1beta1") => g["spec"]["components"]
                            .as_array()?
                            .iter()
                            .filter(|c| c["scalingAdapter"].is_object())
                            .filter_map(|c| Some((c["name"].as_str()?.to_string(), c)))
                            .collect(),
                        _ => g["spec"]["services"]
                            .as_object()?
                            .iter()
                            .filter(|(_, s)| s["scalingAdapter"]["enabled"] == true)
                            .map(|(k, s)| (k.clone(), s))
                            .collect(),
                    };
                    services.into_iter().find_map(|(svc, s)| {
                        (format!("{gname}-{}", svc.to_lowercase()) == tname).then(|| json!({
                            "apiVersion": "nvidia.com/v1alpha1",
                            "kind": "DynamoGraphDeploymentScalingAdapter",
                            "metadata": {"name": tname, "namespace": ns},
                            "spec": {"dgdRef": {"name": gname, "serviceName": svc}, "replicas": s["replicas"].clone()},
                        }))
                    })
                });
                match adapter {
                    Some(a) => {
                        for e in schema_errors(&schemas.0["DynamoGraphDeploymentScalingAdapter"], &a) {
                            problems.push(format!("derived adapter {tname}{e}"));
                        }
                        if target["apiVersion"] != "nvidia.com/v1alpha1" {
                            problems.push(format!("{so_name}: adapter apiVersion must be nvidia.com/v1alpha1"));
                        }
                    }
                    None => problems.push(format!("{so_name}: no DynamoGraphDeployment service with scalingAdapter.enabled yields adapter {tname}")),
                }
            }
            Some(kind) => {
                if find(objs, kind, ns, tname).is_none() {
                    problems.push(format!(
                        "{so_name}: scale target {kind}/{tname} is not in the rendering"
                    ));
                }
            }
            None => problems.push(format!("{so_name}: scaleTargetRef.kind missing")),
        }

        for trig in spec["triggers"].as_array().into_iter().flatten() {
            if trig["type"] != "external" {
                continue;
            }
            let md = metadata_map(trig);
            let cfg = match ScalerConfig::from_metadata(&md, &BTreeMap::new()) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(format!("{so_name}: the scaler rejects its metadata: {e}"));
                    continue;
                }
            };
            if trig["metricType"] != "AverageValue" {
                problems.push(format!(
                    "{so_name}: metricType must be AverageValue (the answer is a replica count)"
                ));
            }
            if spec["minReplicaCount"].as_u64() != Some(u64::from(cfg.decision.policy.min_replicas))
                || spec["maxReplicaCount"].as_u64()
                    != Some(u64::from(cfg.decision.policy.max_replicas))
            {
                problems.push(format!("{so_name}: minReplicas/maxReplicas metadata must equal minReplicaCount/maxReplicaCount"));
            }
            // scalerAddress names a rendered Service port of the scaler.
            let addr = md.get("scalerAddress").cloned().unwrap_or_default();
            let (host, port) = addr.rsplit_once(':').unwrap_or((&addr, ""));
            let mut parts = host.split('.');
            let (svc, svc_ns) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            match find(objs, "Service", svc_ns, svc) {
                Some(s)
                    if s["spec"]["ports"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| {
                            p["port"].as_u64().map(|n| n.to_string()).as_deref() == Some(port)
                                && p["name"] == "grpc"
                        }) => {}
                _ => problems.push(format!(
                    "{so_name}: scalerAddress {addr} is not a rendered Service's grpc port"
                )),
            }
            // Worker discovery names a rendered headless Service and one of its ports.
            if let Some(service) = md.get("service") {
                let mut parts = service.split('.');
                let (svc, svc_ns) = (parts.next().unwrap_or(""), parts.next().unwrap_or(ns));
                match find(objs, "Service", svc_ns, svc) {
                    Some(s) if s["spec"]["clusterIP"] == "None" => {
                        let port = md.get("port").cloned().unwrap_or_default();
                        if !s["spec"]["ports"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .any(|p| {
                                p["port"].as_u64().map(|n| n.to_string()).as_deref()
                                    == Some(port.as_str())
                            })
                        {
                            problems.push(format!(
                                "{so_name}: port {port} is not a port of Service {svc}"
                            ));
                        }
                    }
                    _ => problems.push(format!(
                        "{so_name}: service {service} is not a rendered headless Service"
                    )),
                }
            }
            if let Some(auth) = trig["authenticationRef"]["name"].as_str()
                && find(objs, "TriggerAuthentication", ns, auth).is_none()
            {
                problems.push(format!(
                    "{so_name}: TriggerAuthentication {auth} is not in the rendering"
                ));
            }
        }
    }
    problems
}

/// A `nvidia.com/v1beta1` DynamoGraphDeployment against the fields its API types define
/// (`spec.components[]` with `name`, `type`, `replicas`, `podTemplate`, `scalingAdapter`), since
/// no v1beta1 CRD schema is vendored in ../shared.
fn v1beta1_graph_problems(g: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let name = g["metadata"]["name"].as_str().unwrap_or_default();
    if !g["spec"]["services"].is_null() {
        out.push(format!("{name}: v1beta1 has `components`, not `services`"));
    }
    let Some(components) = g["spec"]["components"].as_array() else {
        out.push(format!("{name}: spec.components is required"));
        return out;
    };
    let allowed = [
        "name",
        "type",
        "replicas",
        "podTemplate",
        "scalingAdapter",
        "modelRef",
        "multinode",
        "sharedMemorySize",
        "compilationCache",
        "frontendSidecar",
        "globalDynamoNamespace",
        "topologyConstraint",
        "eppConfig",
        "experimental",
    ];
    let types = ["frontend", "worker", "prefill", "decode", "planner", "epp"];
    let mut seen = std::collections::BTreeSet::new();
    for c in components {
        let cname = c["name"].as_str().unwrap_or_default();
        if cname.is_empty() || cname.len() > 63 || !seen.insert(cname) {
            out.push(format!(
                "{name}: component name {cname:?} missing, too long or repeated"
            ));
        }
        for key in c
            .as_object()
            .map(|m| m.keys().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            if !allowed.contains(&key.as_str()) {
                out.push(format!("{name}/{cname}: unknown component field {key:?}"));
            }
        }
        if !c["type"].is_null() && !types.iter().any(|t| c["type"] == *t) {
            out.push(format!(
                "{name}/{cname}: type {} is not one of {types:?}",
                c["type"]
            ));
        }
        if !c["scalingAdapter"].is_null() && !c["scalingAdapter"].is_object() {
            out.push(format!(
                "{name}/{cname}: scalingAdapter is a marker object (`{{}}`)"
            ));
        }
    }
    out
}

/// The oldest KEDA whose CRD accepts, and whose operator runs, what the ScaledObjects use:
/// per-direction `tolerance` needs 2.18, `fallback.behavior` 2.17, and a non-static fallback
/// behavior on a target that is not a Deployment or StatefulSet 2.18 (kedacore/keda#6992).
fn min_keda(objs: &[Value]) -> (u32, u32) {
    let mut min = (2, 16);
    for so in objs.iter().filter(|o| o["kind"] == "ScaledObject") {
        let b = &so["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behavior"];
        if !b["scaleUp"]["tolerance"].is_null() || !b["scaleDown"]["tolerance"].is_null() {
            min = min.max((2, 18));
        }
        let fb = &so["spec"]["fallback"]["behavior"];
        if !fb.is_null() {
            min = min.max((2, 17));
            let workload = matches!(
                so["spec"]["scaleTargetRef"]["kind"].as_str(),
                None | Some("Deployment" | "StatefulSet")
            );
            if fb != "static" && !workload {
                min = min.max((2, 18));
            }
        }
    }
    min
}

/// What a release's operator would do wrong with this rendering, beyond its CRD schema.
fn operator_problems(objs: &[Value], release: (u32, u32)) -> Vec<String> {
    let mut out = Vec::new();
    for so in objs.iter().filter(|o| o["kind"] == "ScaledObject") {
        let fb = &so["spec"]["fallback"]["behavior"];
        let kind = so["spec"]["scaleTargetRef"]["kind"]
            .as_str()
            .unwrap_or("Deployment");
        if release < (2, 18)
            && !fb.is_null()
            && fb != "static"
            && !matches!(kind, "Deployment" | "StatefulSet")
        {
            out.push(format!(
                "{}: fallback.behavior {fb} on a {kind} crashes keda-operator before 2.18 (kedacore/keda#6992)",
                so["metadata"]["name"]
            ));
        }
    }
    out
}

fn kustomizations() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![repo().join("manifests")];
    while let Some(d) = stack.pop() {
        let k = d.join("kustomization.yaml");
        // Components are rendered through the overlays that use them.
        if k.exists()
            && yaml_docs(&k)
                .first()
                .is_some_and(|v| v["kind"] != "Component")
        {
            out.push(d.clone());
        }
        for e in std::fs::read_dir(&d).expect("read manifests dir").flatten() {
            if e.path().is_dir() {
                stack.push(e.path());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn every_overlay_renders_and_validates_against_the_real_crds() {
    let schemas = Schemas::load();
    let dirs = kustomizations();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| {
            d.strip_prefix(repo())
                .expect("under repo")
                .display()
                .to_string()
        })
        .collect();
    for want in [
        "manifests/base",
        "manifests/overlays/dynamo",
        "manifests/overlays/vllm",
        "manifests/overlays/tls",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from {names:?}"
        );
    }
    let mut scaled_objects = 0;
    let releases: Vec<(&str, (u32, u32), Schemas)> = KEDA_RELEASES
        .iter()
        .map(|(name, dir, v)| (*name, *v, Schemas::for_keda(dir)))
        .collect();
    let mut matrix = vec![format!(
        "{:<48} {}",
        "overlay",
        KEDA_RELEASES.map(|r| r.0).join("  ")
    )];
    for d in &dirs {
        let objs = render(d);
        assert!(!objs.is_empty(), "{}: renders nothing", d.display());
        scaled_objects += objs.iter().filter(|o| o["kind"] == "ScaledObject").count();
        let problems = check_overlay(&objs, &schemas);
        assert!(
            problems.is_empty(),
            "{}:\n  {}",
            d.display(),
            problems.join("\n  ")
        );
        // Every overlay against every KEDA release: where it claims support it must validate,
        // and where it does not the release must really refuse it (the claim is not a guess).
        let min = min_keda(&objs);
        let mut row = Vec::new();
        for (name, version, release_schemas) in &releases {
            let mut problems = check_overlay(&objs, release_schemas);
            problems.extend(operator_problems(&objs, *version));
            if *version >= min {
                assert!(
                    problems.is_empty(),
                    "{} on KEDA {name}:\n  {}",
                    d.display(),
                    problems.join("\n  ")
                );
                row.push("yes");
            } else {
                assert!(
                    !problems.is_empty(),
                    "{} claims KEDA >= {min:?} but validates on {name}",
                    d.display()
                );
                row.push("no");
            }
        }
        let shown = d.strip_prefix(repo()).unwrap_or(d).display().to_string();
        matrix.push(format!("{shown:<48} {}", row.join("     ")));
        if [
            "manifests/overlays/dynamo",
            "manifests/overlays/vllm",
            "manifests/overlays/tls",
        ]
        .contains(&shown.as_str())
        {
            assert_eq!(
                min,
                (2, 16),
                "{shown}: the default overlays must apply on every KEDA the AKS add-on ships"
            );
        }
    }
    eprintln!("{}", matrix.join("\n"));
    assert!(
        scaled_objects >= 3,
        "dynamo, vllm and tls overlays each carry a ScaledObject"
    );
}

#[test]
fn the_checks_catch_what_a_cluster_or_the_scaler_would_reject() {
    let schemas = Schemas::load();
    let objs = render(&repo().join("manifests/overlays/dynamo"));
    assert!(check_overlay(&objs, &schemas).is_empty());
    let so_at = objs
        .iter()
        .position(|o| o["kind"] == "ScaledObject")
        .expect("a ScaledObject");
    let dgd_at = objs
        .iter()
        .position(|o| o["kind"] == "DynamoGraphDeployment")
        .expect("a graph");

    let mutate = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut o = objs.clone();
        f(&mut o);
        check_overlay(&o, &schemas).join("\n")
    };
    let typo =
        mutate(&|o| o[so_at]["spec"]["triggers"][0]["metadata"]["ttftTargetMS"] = json!("500"));
    assert!(typo.contains("ttftTargetMS"), "{typo}");
    let bad_type = mutate(&|o| o[so_at]["spec"]["fallback"]["replicas"] = json!("four"));
    assert!(bad_type.contains(".spec.fallback.replicas"), "{bad_type}");
    let unknown = mutate(&|o| {
        o[so_at]["spec"]["advanced"]["horizontalPodAutoscalerConfig"]["behaviour"] = json!({})
    });
    assert!(unknown.contains("behaviour: unknown field"), "{unknown}");
    let bad_enum = mutate(&|o| o[so_at]["spec"]["fallback"]["behavior"] = json!("sometimes"));
    assert!(bad_enum.contains("not in"), "{bad_enum}");
    let no_adapter = mutate(&|o| {
        o[dgd_at]["spec"]["services"]["VllmDecodeWorker"]["scalingAdapter"]["enabled"] =
            json!(false)
    });
    assert!(
        no_adapter.contains("scalingAdapter.enabled"),
        "{no_adapter}"
    );
    let dgd_unknown =
        mutate(&|o| o[dgd_at]["spec"]["services"]["VllmDecodeWorker"]["gpus"] = json!(1));
    assert!(dgd_unknown.contains("gpus: unknown field"), "{dgd_unknown}");
    let bad_addr = mutate(&|o| {
        o[so_at]["spec"]["triggers"][0]["metadata"]["scalerAddress"] =
            json!("keda-llm-scaler.keda-llm-scaler.svc.cluster.local:9999")
    });
    assert!(bad_addr.contains("scalerAddress"), "{bad_addr}");
    let bad_max = mutate(&|o| o[so_at]["spec"]["maxReplicaCount"] = json!(20));
    assert!(bad_max.contains("maxReplicaCount"), "{bad_max}");
    let dep_at = objs
        .iter()
        .position(|o| o["kind"] == "Deployment")
        .expect("scaler Deployment");
    let bad_flag = mutate(&|o| {
        o[dep_at]["spec"]["template"]["spec"]["containers"][0]["args"]
            .as_array_mut()
            .expect("args")
            .push(json!("--no-such-flag"))
    });
    assert!(bad_flag.contains("rejected"), "{bad_flag}");
}

/// Where `kubectl` is installed, the subset renderer must agree with real kustomize.
#[test]
fn the_renderer_agrees_with_kubectl_kustomize_where_installed() {
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("version")
        .arg("--client")
        .output()
    else {
        eprintln!("kubectl not installed: comparison skipped (the schema checks above still run)");
        return;
    };
    if !out.status.success() {
        return;
    }
    for d in kustomizations() {
        let out = std::process::Command::new("kubectl")
            .arg("kustomize")
            .arg(&d)
            .output()
            .expect("kubectl kustomize");
        assert!(
            out.status.success(),
            "{}: {}",
            d.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).expect("utf-8");
        let mut theirs: Vec<String> = serde_norway::Deserializer::from_str(&text)
            .map(|doc| {
                let v: Value =
                    serde::Deserialize::deserialize(doc).expect("kustomize output is YAML");
                v.to_string()
            })
            .collect();
        let mut ours: Vec<String> = render(&d).iter().map(Value::to_string).collect();
        theirs.sort();
        ours.sort();
        assert_eq!(ours, theirs, "{}: renderings differ", d.display());
    }
}

/// The Dockerfile's build and runtime stages are the same Debian release (the binary links the
/// build image's glibc), and that release is one distroless still supports.
#[test]
fn the_image_is_built_and_run_on_one_supported_debian() {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).expect("Dockerfile");
    let froms: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("FROM "))
        .map(|l| l.split_whitespace().next().unwrap_or_default())
        .collect();
    assert_eq!(froms.len(), 2, "two stages: {froms:?}");
    let codename = froms[0].rsplit('-').next().unwrap_or_default();
    let build = match codename {
        "bookworm" => 12,
        "trixie" => 13,
        "forky" => 14,
        other => panic!(
            "build image {} has an unknown Debian codename {other:?}",
            froms[0]
        ),
    };
    let runtime: u32 = froms[1]
        .split("debian")
        .nth(1)
        .and_then(|r| r.split(':').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("runtime image {} names no Debian release", froms[1]));
    assert_eq!(build, runtime, "build {} vs runtime {}", froms[0], froms[1]);
    assert!(
        runtime >= 13,
        "distroless cc-debian12 reached end of life in September 2026"
    );
}

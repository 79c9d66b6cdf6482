// Validates rendered Kubernetes manifests (multi-document YAML on stdin) without a cluster:
// Kubernetes objects against the Kubernetes OpenAPI schemas (kubernetes-models), KEDA objects
// against KEDA's own CRD schemas. Unknown fields are errors, as with kubectl's strict field validation.
// Usage: kubectl kustomize infra/k8s/overlays/dev | node infra/validate/validate-manifests.mjs infra/validate/keda-crds
import fs from "node:fs";
import path from "node:path";
import yaml from "js-yaml";
import Ajv from "ajv";

const crdDir = process.argv[2];
if (!crdDir) { console.error("usage: validate-manifests.mjs CRD_DIR < manifests.yaml"); process.exit(2); }

// Structural schemas leave unknown fields to pruning; reject them instead so a typo cannot pass.
function strict(schema) {
  if (schema && typeof schema === "object") {
    if (schema.properties && schema.additionalProperties === undefined && !schema["x-kubernetes-preserve-unknown-fields"])
      schema.additionalProperties = false;
    for (const value of Object.values(schema)) strict(value);
  }
  return schema;
}

const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const crdSchemas = new Map();
for (const file of fs.readdirSync(crdDir).filter(f => f.endsWith(".yaml"))) {
  const crd = yaml.load(fs.readFileSync(path.join(crdDir, file), "utf8"));
  for (const version of crd.spec.versions) {
    const schema = strict(structuredClone(version.schema.openAPIV3Schema));
    crdSchemas.set(`${crd.spec.group}/${version.name}/${crd.spec.names.kind}`, ajv.compile(schema));
  }
}

const docs = yaml.loadAll(fs.readFileSync(0, "utf8")).filter(d => d);
const errors = [];
for (const doc of docs) {
  const id = `${doc.kind}/${doc.metadata?.name ?? "?"}`;
  const crd = crdSchemas.get(`${doc.apiVersion}/${doc.kind}`);
  if (crd) {
    if (!crd(doc)) errors.push(`${id}: ${ajv.errorsText(crd.errors, { separator: "; " })}`);
    continue;
  }
  const modelPath = `kubernetes-models/${doc.apiVersion}/${doc.kind}`;
  let Model;
  try { Model = (await import(modelPath))[doc.kind]; } catch { Model = undefined; }
  if (!Model) { errors.push(`${id}: no schema for ${doc.apiVersion} ${doc.kind}`); continue; }
  // Secret data is base64 that kustomize wraps over lines; the API server's decoder skips the line breaks.
  if (doc.kind === "Secret" && doc.data)
    for (const key of Object.keys(doc.data)) doc.data[key] = String(doc.data[key]).replace(/\s+/g, "");
  try { new Model(doc).validate(); } catch (e) { errors.push(`${id}: ${e.message}`); }
}

if (errors.length) {
  for (const e of errors) console.error(e);
  process.exit(1);
}
console.log(`valid: ${docs.length} objects`);

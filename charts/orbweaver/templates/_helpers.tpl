{{/*
Names. With the release named "orbweaver" (as the docs install it) the objects are
orbweaver-agent, orbweaver-controller and the webhook configurations "orbweaver": the
binaries' defaults, and the names the CNI plugin's error hints assume.
*/}}
{{- define "orbweaver.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "orbweaver.agent.name" -}}
{{- printf "%s-agent" (include "orbweaver.fullname" .) -}}
{{- end -}}

{{- define "orbweaver.controller.name" -}}
{{- printf "%s-controller" (include "orbweaver.fullname" .) -}}
{{- end -}}

{{/* The Service in front of the webhooks: the controller's --webhook-service. */}}
{{- define "orbweaver.webhook.service" -}}
{{- include "orbweaver.controller.name" . -}}
{{- end -}}

{{/* The Mutating- and ValidatingWebhookConfiguration: the controller's --webhook-configuration. */}}
{{- define "orbweaver.webhook.configuration" -}}
{{- .Values.webhook.configurationName | default (include "orbweaver.fullname" .) -}}
{{- end -}}

{{/* The Secret of the webhook certificate: the controller's --webhook-cert-secret. */}}
{{- define "orbweaver.webhook.certSecret" -}}
{{- printf "%s-webhook-certs" (include "orbweaver.fullname" .) -}}
{{- end -}}

{{/*
The Secret the webhook server's certificate comes from: the controller's own (tls.method
auto, and cert-manager's Certificate writes the same one) or yours (provided).
*/}}
{{- define "orbweaver.webhook.tlsSecret" -}}
{{- if eq .Values.tls.method "provided" -}}
{{- .Values.tls.provided.secretName -}}
{{- else -}}
{{- include "orbweaver.webhook.certSecret" . -}}
{{- end -}}
{{- end -}}

{{/* cert-manager's Certificate (and self-signed Issuer) of tls.method certManager. */}}
{{- define "orbweaver.webhook.certificate" -}}
{{- printf "%s-webhook" (include "orbweaver.fullname" .) -}}
{{- end -}}

{{/*
orbweaver.rbac.rules: the rules of one role of files/rbac/, which `make generate` writes
from the +kubebuilder:rbac markers beside the binaries' API calls, as a YAML list (nothing
when the role has none). Its argument is a dict: "root" (the top context), "file", "kind"
(ClusterRole or Role) and "name" of the role there, and "names" (optional): resourceNames
to put in place of the binaries' defaults, e.g. {"orbweaver": <the chart's name>}.
*/}}
{{- define "orbweaver.rbac.rules" -}}
{{- $found := false -}}
{{- $rules := list -}}
{{- range $doc := regexSplit "(?m)^---$" (.root.Files.Get .file) -1 -}}
{{- $o := fromYaml $doc -}}
{{- if and (eq (get $o "kind") $.kind) (eq (dig "metadata" "name" "" $o) $.name) -}}
{{- $found = true -}}
{{- range $rule := $o.rules -}}
{{- $r := deepCopy $rule -}}
{{- if and $.names (hasKey $r "resourceNames") -}}
{{- $names := list -}}
{{- range $r.resourceNames -}}
{{- $names = append $names (get $.names . | default .) -}}
{{- end -}}
{{- $_ := set $r "resourceNames" $names -}}
{{- end -}}
{{- $rules = append $rules $r -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if not $found -}}
{{- fail (printf "%s has no %s %s: run make generate" .file .kind .name) -}}
{{- end -}}
{{- if $rules -}}
{{- toYaml $rules -}}
{{- end -}}
{{- end -}}

{{/* The agent's socket and its host folder. */}}
{{- define "orbweaver.agent.runDir" -}}/var/run/orbweaver{{- end -}}
{{- define "orbweaver.agent.socket" -}}/var/run/orbweaver/agent.sock{{- end -}}

{{- define "orbweaver.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "orbweaver.agent.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: agent
{{- end -}}

{{- define "orbweaver.controller.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{/*
image renders repository:tag, the tag defaulting to the chart's appVersion, or
repository@digest when a digest is given; imageRegistry, when set, replaces what comes
before the repository's last path element.
*/}}
{{- define "orbweaver.image" -}}
{{- $repo := .repository -}}
{{- if .registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .registry) (base .repository) -}}
{{- end -}}
{{- if .digest -}}
{{- printf "%s@%s" $repo .digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (.tag | default .appVersion) -}}
{{- end -}}
{{- end -}}

{{/*
The families: at least one. values.schema.json says the same; this message is for
`--set` combinations that reach the templates anyway (helm template --skip-schema-validation).
*/}}
{{- define "orbweaver.validate" -}}
{{- if not (or .Values.ipam.enableIPv4 .Values.ipam.enableIPv6) -}}
{{- fail "ipam.enableIPv4 and ipam.enableIPv6 are both false: enable at least one" -}}
{{- end -}}
{{- if eq .Values.tls.method "provided" -}}
{{- if not .Values.tls.provided.secretName -}}
{{- fail "tls.method is provided: set tls.provided.secretName to your kubernetes.io/tls Secret" -}}
{{- end -}}
{{- if not (contains "BEGIN CERTIFICATE" (b64dec .Values.tls.provided.caBundle)) -}}
{{- fail "tls.method is provided: set tls.provided.caBundle to the base64 of the PEM CA that signed the Secret's certificate (base64 -w0 ca.crt)" -}}
{{- end -}}
{{- end -}}
{{- if and (eq .Values.tls.method "certManager") .Values.tls.certManager.issuerRef (not .Values.tls.certManager.issuerRef.name) -}}
{{- fail "tls.certManager.issuerRef has no name: name your Issuer or ClusterIssuer, or leave issuerRef empty for a self-signed one" -}}
{{- end -}}
{{- end -}}

{{/* thirdPartyKinds as the controller's --auto-pool-third-party-kinds: group/version/Kind,... */}}
{{- define "orbweaver.autoPool.thirdPartyKinds" -}}
{{- $out := list -}}
{{- range .Values.ipam.autoPool.thirdPartyKinds -}}
{{- if .group -}}
{{- $out = append $out (printf "%s/%s/%s" .group .version .kind) -}}
{{- else -}}
{{- $out = append $out (printf "%s/%s" .version .kind) -}}
{{- end -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

{{/* statefulWorkloadKinds as --stateful-workload-kinds: group/version/Kind,... */}}
{{- define "orbweaver.statefulWorkloadKinds" -}}
{{- $out := list -}}
{{- range .Values.ipam.statefulWorkloadKinds -}}
{{- $out = append $out (printf "%s/%s/%s" .group .version .kind) -}}
{{- end -}}
{{- join "," $out -}}
{{- end -}}

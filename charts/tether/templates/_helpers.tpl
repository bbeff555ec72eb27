{{/* Name of the chart's objects' app label and the base of fullname: nameOverride or the chart's name. */}}
{{- define "tether.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects: fullnameOverride, else <release>-<name> (just <release> when it contains the name). */}}
{{- define "tether.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "tether.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object of the chart. */}}
{{- define "tether.labels" -}}
app.kubernetes.io/name: {{ include "tether.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selector labels of the operator pods. */}}
{{- define "tether.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tether.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "tether.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tether.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference from an image value and the chart: [registry/]repository, then @digest when set,
else :tag (the chart's appVersion when empty).
*/}}
{{- define "tether.image" -}}
{{- $image := index . 0 -}}
{{- $chart := index . 1 -}}
{{- $repository := $image.repository -}}
{{- with $image.registry }}{{ $repository = printf "%s/%s" . $repository }}{{ end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (default $chart.AppVersion $image.tag) -}}
{{- end -}}
{{- end -}}

{{- define "tether.operatorImage" -}}
{{- include "tether.image" (list .Values.operator.image .Chart) -}}
{{- end -}}

{{- define "tether.sidecarImage" -}}
{{- include "tether.image" (list .Values.sidecar.image .Chart) -}}
{{- end -}}

{{/* imagePullSecrets of the chart's pods: the chart's own, then global.imagePullSecrets of a parent chart. */}}
{{- define "tether.imagePullSecrets" -}}
{{- $secrets := concat (default list .Values.imagePullSecrets) (default list (dig "imagePullSecrets" list (default dict .Values.global))) -}}
{{- with $secrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ if kindIs "string" . }}{{ . }}{{ else }}{{ .name }}{{ end }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Labels of the `helm test` pod (the NetworkPolicy lets it reach the admin port). */}}
{{- define "tether.testSelectorLabels" -}}
app.kubernetes.io/name: {{ include "tether.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: test
{{- end -}}

{{- define "tether.testImage" -}}
{{- if .Values.test.image.repository -}}
{{- include "tether.image" (list .Values.test.image .Chart) -}}
{{- else -}}
{{- include "tether.operatorImage" . -}}
{{- end -}}
{{- end -}}

{{/* The operator's CA Secret (xds.tls): caSecretName, else <fullname>-ca. */}}
{{- define "tether.caSecretName" -}}
{{- default (printf "%s-ca" (include "tether.fullname" .)) .Values.xds.tls.caSecretName -}}
{{- end -}}

{{/* The Secret cert-manager writes the xDS certificate into (xds.tls.certManager): secretName, else <fullname>-xds-tls. */}}
{{- define "tether.xdsTlsSecretName" -}}
{{- default (printf "%s-xds-tls" (include "tether.fullname" .)) .Values.xds.tls.certManager.secretName -}}
{{- end -}}

{{/* True (non-empty) when xDS serves TLS from a cert-manager Certificate. */}}
{{- define "tether.xdsCertManager" -}}
{{- if and .Values.xds.enabled .Values.xds.tls.enabled .Values.xds.tls.certManager.issuerRef.name -}}true{{- end -}}
{{- end -}}

{{/* The sidecar-injection MutatingWebhookConfiguration (cluster-scoped): <fullname>-injector. */}}
{{- define "tether.webhookConfigurationName" -}}
{{- printf "%s-injector" (include "tether.fullname" .) -}}
{{- end }}

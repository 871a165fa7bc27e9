{{/*
Names. Components are "<release>-<component>" so the Airflow subchart (which cannot read our helpers) can name
them from .Release.Name alone; shared objects (Secret, settings ConfigMap) have fixed names from values.
*/}}
{{- define "conf-profile.fullname" -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "conf-profile.componentName" -}}
{{- printf "%s-%s" (include "conf-profile.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "conf-profile.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: conf-profile
{{- end -}}

{{- define "conf-profile.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "conf-profile.image" -}}
{{- printf "%s:%s" .repository .tag -}}
{{- end -}}

{{- define "conf-profile.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The Secret every component reads credentials from. */}}
{{- define "conf-profile.secretName" -}}
{{- default .Values.secrets.name .Values.secrets.existingSecret -}}
{{- end -}}

{{- define "conf-profile.postgresHost" -}}
{{- if .Values.postgresql.enabled -}}
{{- include "conf-profile.componentName" (dict "root" . "component" "postgresql") -}}
{{- else -}}
{{- required "externalDatabase.host is required when postgresql.enabled=false" .Values.externalDatabase.host -}}
{{- end -}}
{{- end -}}

{{- define "conf-profile.postgresPort" -}}
{{- if .Values.postgresql.enabled -}}5432{{- else -}}{{ .Values.externalDatabase.port }}{{- end -}}
{{- end -}}

{{- define "conf-profile.s3Endpoint" -}}
{{- if .Values.s3.endpointUrl -}}
{{- .Values.s3.endpointUrl -}}
{{- else if .Values.minio.enabled -}}
{{- printf "http://%s:9000" (include "conf-profile.componentName" (dict "root" . "component" "minio")) -}}
{{- else -}}
{{- fail "s3.endpointUrl is required when minio.enabled=false" -}}
{{- end -}}
{{- end -}}

{{- define "conf-profile.mlflowUri" -}}
{{- if .Values.mlflow.trackingUri -}}
{{- .Values.mlflow.trackingUri -}}
{{- else if .Values.mlflow.enabled -}}
{{- printf "http://%s:%d" (include "conf-profile.componentName" (dict "root" . "component" "mlflow")) (int .Values.mlflow.port) -}}
{{- end -}}
{{- end -}}

{{- define "conf-profile.vllmBaseUrl" -}}
{{- if .Values.vllm.baseUrl -}}
{{- .Values.vllm.baseUrl -}}
{{- else if .Values.vllm.enabled -}}
{{- printf "http://%s:%d/v1" (include "conf-profile.componentName" (dict "root" . "component" "vllm")) (int .Values.vllm.port) -}}
{{- end -}}
{{- end -}}

{{- define "conf-profile.trainerImage" -}}
{{- include "conf-profile.image" .Values.images.trainer -}}
{{- end -}}

{{- define "conf-profile.vllmImage" -}}
{{- if .Values.vllm.image.repository -}}
{{- include "conf-profile.image" .Values.vllm.image -}}
{{- else -}}
{{- include "conf-profile.trainerImage" . -}}
{{- end -}}
{{- end -}}

{{/*
The conf-profile settings tree (conf_profile/config.py) the DAGs read: generated endpoints and compute section,
then confProfile.settings merged over them. Credentials never go here (the loader rejects a file that has them).
*/}}
{{- define "conf-profile.settings" -}}
{{- $compute := dict
      "mode" .Values.compute.mode
      "namespace" (default .Release.Namespace .Values.compute.namespace)
      "trainer_image" (include "conf-profile.trainerImage" .)
      "gpus" (int .Values.compute.gpus)
      "node_selector" (deepCopy .Values.compute.nodeSelector)
      "tolerations" (deepCopy .Values.compute.tolerations)
      "accelerate_config" .Values.compute.acceleratorConfig -}}
{{- $vllm := include "conf-profile.vllmBaseUrl" . -}}
{{- if $vllm }}{{ $_ := set $compute "vllm_base_url" $vllm }}{{ end -}}
{{- $generated := dict
      "lake" (printf "s3://%s/%s" .Values.s3.buckets.lake .Values.confProfile.lakePrefix | trimSuffix "/")
      "s3" (dict "endpoint_url" (include "conf-profile.s3Endpoint" .) "region" .Values.s3.region)
      "compute" $compute -}}
{{- $mlflow := include "conf-profile.mlflowUri" . -}}
{{- if $mlflow }}{{ $_ := set $generated "mlflow" (dict "tracking_uri" $mlflow) }}{{ end -}}
{{- if .Values.studentServer.enabled }}
{{- $_ := set $generated "inference" (dict "base_url" (printf "http://%s:%d/v1" (include "conf-profile.componentName" (dict "root" . "component" "vllm-student")) (int .Values.studentServer.port)) "model" .Values.studentServer.servedModelName) }}
{{- end -}}
{{- toYaml (mustMergeOverwrite $generated (deepCopy .Values.confProfile.settings)) -}}
{{- end -}}

{{/* Names, labels and shared pod pieces. Component helpers take (dict "root" $ "component" NAME). */}}

{{- define "orderly.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-scoped name; 63 is the DNS label limit Kubernetes enforces on names. */}}
{{- define "orderly.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "orderly.componentName" -}}
{{- printf "%s-%s" (include "orderly.fullname" .root | trunc 50 | trimSuffix "-") .component }}
{{- end }}

{{/* The headless Service of a component, within the 63 characters of a DNS label. */}}
{{- define "orderly.headlessName" -}}
{{- printf "%s-%s-headless" (include "orderly.fullname" .root | trunc 41 | trimSuffix "-") .component }}
{{- end }}

{{- define "orderly.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "orderly.selectorLabels" -}}
app.kubernetes.io/name: {{ include "orderly.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end }}

{{- define "orderly.labels" -}}
helm.sh/chart: {{ include "orderly.chart" .root }}
{{ include "orderly.selectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: orderly
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "orderly.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "orderly.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "orderly.image" -}}
{{- $img := .Values.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository (default .Chart.AppVersion $img.tag) }}
{{- end }}
{{- end }}

{{/* The Secret holding a component's PostgreSQL URL: its own, else the shared one. */}}
{{- define "orderly.databaseEnv" -}}
{{- $svc := index .root.Values.services .component -}}
- name: ORDERLY_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ default .root.Values.database.existingSecret $svc.database.existingSecret }}
      key: {{ $svc.database.key }}
{{- end }}

{{/* Pod-level security: the image's numeric non-root user, so runAsNonRoot can be verified. */}}
{{- define "orderly.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "orderly.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The root filesystem is read-only; /tmp is the one writable place (ORDERLY_DATA_DIR lives there). */}}
{{- define "orderly.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end }}

{{/* The gRPC calls between components, a fact of the binary rather than a setting:
     `orderly <caller> --help` lists ORDERLY_<CALLEE>_ENDPOINT. JSON list of the callees of
     .component (empty for components that call no one). */}}
{{- define "orderly.callees" -}}
{{- $participant := list "orchestrator" -}}
{{- $calls := dict "order" (list "inventory" "payment") "orchestrator" (list "inventory" "payment") "inventory" $participant "payment" $participant -}}
{{- get $calls .component | default list | toJson -}}
{{- end }}

{{/* Whether notification POSTs to a webhook (its URL in a Secret) instead of writing the file. */}}
{{- define "orderly.notificationsWebhook" -}}
{{- if .Values.notifications.webhook.existingSecret }}true{{ end -}}
{{- end }}

{{/* Where callers find a component in this release: every pod of its headless Service,
     looked up again every few seconds, each request balanced over them. */}}
{{- define "orderly.endpoint" -}}
{{- printf "dns:///%s:%d" (include "orderly.headlessName" .) (int (index .root.Values.services .component).port) -}}
{{- end }}

{{/* The components whose requests take idempotency keys (PlaceOrder, Deposit, Restock), a fact
     of the binary: `orderly <component> --help` lists ORDERLY_IDEMPOTENCY_TTL_SECS. */}}
{{- define "orderly.idempotent" -}}
{{- if has .component (list "order" "payment" "inventory") }}true{{ end -}}
{{- end }}

{{/* Settings only some components accept (each held to its own --help by the drift test):
     where the callees answer, how long idempotency keys are kept, the orchestrator's saga
     limits, the notification sink (the file, or the webhook whose URL only ever comes from a
     Secret). */}}
{{- define "orderly.componentEnv" -}}
{{- $v := .root.Values -}}
{{- $callees := include "orderly.callees" . | fromJsonArray -}}
{{- range $callees }}
- name: ORDERLY_{{ upper . }}_ENDPOINT
  value: {{ include "orderly.endpoint" (dict "root" $.root "component" .) | quote }}
{{- end }}
{{- if $callees }}
- name: ORDERLY_DEPENDENCY_TIMEOUT_MS
  value: {{ int $v.dependencies.timeoutMs | quote }}
{{- end }}
{{- if include "orderly.idempotent" . }}
- name: ORDERLY_IDEMPOTENCY_TTL_SECS
  value: {{ int $v.idempotency.ttlSeconds | quote }}
{{- end }}
{{- if eq .component "orchestrator" }}
- name: ORDERLY_SAGA_DEADLINE_MS
  value: {{ int $v.saga.deadlineMs | quote }}
- name: ORDERLY_COMPENSATION_MAX_ATTEMPTS
  value: {{ int $v.saga.compensationMaxAttempts | quote }}
{{- with $v.saga.definitions }}
- name: ORDERLY_SAGA_DEFINITIONS
  value: {{ include "orderly.sagaFiles" $v | quote }}
{{- end }}
{{- with $v.saga.participants }}
{{- $participants := list }}
{{- range $name := keys . | sortAlpha }}
{{- $participants = append $participants (printf "%s=%s" $name (get $v.saga.participants $name)) }}
{{- end }}
- name: ORDERLY_PARTICIPANTS
  value: {{ join "," $participants | quote }}
{{- end }}
{{- end }}
{{- if eq .component "notification" }}
{{- with $v.notifications.webhook }}
{{- if .existingSecret }}
- name: ORDERLY_NOTIFICATIONS_WEBHOOK
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .key }}
{{- else }}
- name: ORDERLY_NOTIFICATIONS_FILE
  value: {{ $v.notifications.file | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where the orchestrator finds the saga definitions (saga.definitions), comma separated. */}}
{{- define "orderly.sagaFiles" -}}
{{- $files := list -}}
{{- range $file := keys .saga.definitions | sortAlpha -}}
{{- $files = append $files (printf "/etc/orderly/saga/%s" $file) -}}
{{- end -}}
{{- join "," $files -}}
{{- end -}}

{{/* kafka.topicPartitions as ORDERLY_KAFKA_TOPIC_PARTITIONS: TOPIC=N pairs, comma separated, in a stable order. */}}
{{- define "orderly.topicPartitions" -}}
{{- $pairs := list -}}
{{- range $topic := keys . | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%d" $topic (int (get $ $topic))) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end }}

{{/* The Secret with a component's TLS files (tls.crt, tls.key, ca.crt): tls.existingSecrets
     names it, else <component name>-tls, which tls.certManager's Certificate writes. */}}
{{- define "orderly.tlsSecretName" -}}
{{- $own := get .root.Values.tls.existingSecrets .component -}}
{{- default (printf "%s-tls" (include "orderly.componentName" .)) $own -}}
{{- end }}

{{/* Seconds in a duration of hours, minutes and seconds ("2160h", "1h30m"; the schema allows
     no other units), so the chart can compare two of them. */}}
{{- define "orderly.durationSeconds" -}}
{{- $unit := dict "h" 3600 "m" 60 "s" 1 -}}
{{- $total := 0 -}}
{{- range regexFindAll "[0-9]+[hms]" . -1 -}}
{{- $total = add $total (mul (regexFind "[0-9]+" . | atoi) (get $unit (regexFind "[hms]" .))) -}}
{{- end -}}
{{- $total -}}
{{- end }}

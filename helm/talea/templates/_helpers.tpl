{{/*
Names, labels, images, database URLs, the credentials Secret, and the pieces
every talea pod shares (security contexts, probes, the wait-bootstrap init
container).
*/}}

{{- define "talea.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "talea.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "talea.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "talea.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: talea
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "write"). */}}
{{- define "talea.selectorLabels" -}}
app.kubernetes.io/name: {{ include "talea.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "talea.componentLabels" -}}
{{ include "talea.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "talea.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "talea.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* An image reference: (dict "root" $ "repository" "talea/talead"). */}}
{{- define "talea.image" -}}
{{- $registry := .root.Values.image.registry -}}
{{- $tag := default .root.Chart.AppVersion .root.Values.image.tag -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry .repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The credentials Secret's name. */}}
{{- define "talea.credentialsSecretName" -}}
{{- default (printf "%s-credentials" (include "talea.fullname" .)) .Values.credentials.existingSecret -}}
{{- end -}}

{{- define "talea.postgresHost" -}}
{{- required "postgres.host is required: the PostgreSQL server (a direct connection, never PgBouncer)" .Values.postgres.host -}}
{{- end -}}

{{/*
The host and port application traffic uses: PgBouncer when enabled, else
Postgres directly.
*/}}
{{- define "talea.pooledHostPort" -}}
{{- if .Values.pgbouncer.enabled -}}
{{- if .Values.pgbouncer.deploy -}}
{{- printf "%s-pgbouncer:%d" (include "talea.fullname" .) (int .Values.pgbouncer.port) -}}
{{- else -}}
{{- printf "%s:%d" (required "pgbouncer.host is required when pgbouncer.deploy is false" .Values.pgbouncer.host) (int .Values.pgbouncer.port) -}}
{{- end -}}
{{- else -}}
{{- printf "%s:%d" (include "talea.postgresHost" .) (int .Values.postgres.port) -}}
{{- end -}}
{{- end -}}

{{- define "talea.directHostPort" -}}
{{- printf "%s:%d" (include "talea.postgresHost" .) (int .Values.postgres.port) -}}
{{- end -}}

{{/*
Environment for a database URL: the password from the credentials Secret and
the URL built around it with Kubernetes' $(VAR) expansion, so the password
never appears in a manifest. (dict "root" $ "direct" true).
*/}}
{{- define "talea.dbEnv" -}}
{{- $root := .root -}}
{{- $hostPort := ternary (include "talea.directHostPort" $root) (include "talea.pooledHostPort" $root) .direct -}}
- name: TALEA_DB_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "talea.credentialsSecretName" $root }}
      key: db-password
- name: TALEA_DB_URL
  value: {{ printf "postgres://%s:$(TALEA_DB_PASSWORD)@%s/%s?sslmode=%s" $root.Values.postgres.user $hostPort $root.Values.postgres.database $root.Values.postgres.sslmode | quote }}
{{- end -}}

{{/*
The credentials Secret's data: the existing Secret's values when there is one
(`existing` is what `lookup` found), new random values only on a first
install in `fresh` mode, and a render-time failure otherwise, because new
credentials would not open an existing database.
(dict "root" $ "existing" $lookupResult)
*/}}
{{- define "talea.credentialsData" -}}
{{- $root := .root -}}
{{- $name := include "talea.credentialsSecretName" $root -}}
{{- $data := dict -}}
{{- if .existing -}}
{{- $data = default (dict) .existing.data -}}
{{- if not (get $data "db-password") -}}
{{- fail (printf "Secret %s exists but has no db-password: restore it from a backup, or create it with the database's password" $name) -}}
{{- end -}}
{{- else if or (eq $root.Values.bootstrap.mode "recover") $root.Release.IsUpgrade -}}
{{- fail (printf "the credentials Secret %s was not found, and this is %s: new credentials would not open the existing database. Restore the Secret (it is kept on uninstall), or create it and set credentials.existingSecret" $name (ternary "an upgrade" "a recover bootstrap" $root.Release.IsUpgrade)) -}}
{{- end -}}
db-password: {{ get $data "db-password" | default (randAlphaNum 32 | b64enc) }}
api-token: {{ get $data "api-token" | default (printf "talea_%s" (randAlphaNum 48) | b64enc) }}
scope-service-token: {{ get $data "scope-service-token" | default (randAlphaNum 48 | b64enc) }}
signing-key.json: {{ get $data "signing-key.json" | default (printf "{\"algorithm\":\"ed25519\",\"seed\":\"%s\"}\n" (sha256sum (randAlphaNum 64)) | b64enc) }}
{{- end -}}

{{/* Pod-level security context: the restricted Pod Security Standard. */}}
{{- define "talea.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "talea.containerSecurityContext" -}}
{{ toYaml .Values.securityContext }}
{{- end -}}

{{/*
The init container of every pod that uses the database: waits until the
schema is at this release's version. (dict "root" $ "direct" bool)
*/}}
{{- define "talea.waitBootstrap" -}}
- name: wait-bootstrap
  image: {{ include "talea.image" (dict "root" .root "repository" .root.Values.image.talead) }}
  imagePullPolicy: {{ .root.Values.image.pullPolicy }}
  args: ["wait-bootstrap"]
  env:
    {{- include "talea.dbEnv" (dict "root" .root "direct" .direct) | nindent 4 }}
    - name: TALEA_WAIT_BOOTSTRAP_S
      value: {{ .root.Values.waitBootstrap.timeoutSeconds | quote }}
  securityContext:
    {{- include "talea.containerSecurityContext" .root | nindent 4 }}
  resources:
    {{- toYaml .root.Values.waitBootstrap.resources | nindent 4 }}
{{- end -}}

{{/* Readiness on /health (503 when saturated), liveness on /livez. */}}
{{- define "talea.probes" -}}
readinessProbe:
  httpGet:
    path: /health
    port: http
  periodSeconds: 5
  timeoutSeconds: 2
  failureThreshold: 2
livenessProbe:
  httpGet:
    path: /livez
    port: http
  initialDelaySeconds: 5
  periodSeconds: 10
  timeoutSeconds: 2
  failureThreshold: 6
{{- end -}}

{{/* The container ports every talea service has. */}}
{{- define "talea.ports" -}}
- name: http
  containerPort: 8080
  protocol: TCP
{{- if .Values.metrics.enabled }}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end }}
{{- end -}}

{{- define "talea.commonEnv" -}}
- name: TALEA_BIND
  value: "0.0.0.0:8080"
{{- if .Values.metrics.enabled }}
- name: TALEA_METRICS_BIND
  value: {{ printf "0.0.0.0:%d" (int .Values.metrics.port) | quote }}
{{- end }}
- name: TALEA_LOG_FORMAT
  value: json
{{- end -}}

{{/* Scheduling fields shared by every pod. */}}
{{- define "talea.scheduling" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Helpers of the fleet (fleet.enabled): the roles' labels, the catalog's Secret, the environment and
volumes every role's pod shares. */}}

{{/* Selector labels of one role's pods: the release's plus app.kubernetes.io/component. */}}
{{- define "callvault.roleSelectorLabels" -}}
{{ include "callvault.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- with .recorder }}
callvault.io/recorder: {{ . }}
{{- end }}
{{- end -}}

{{- define "callvault.roleLabels" -}}
helm.sh/chart: {{ include "callvault.chart" .root }}
{{ include "callvault.roleSelectorLabels" . }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: callvault
{{- end -}}

{{/* The catalog URL's Secret: the user's (catalog.existingSecret), else the bundled PostgreSQL's. */}}
{{- define "callvault.catalogSecretName" -}}
{{- if .Values.catalog.existingSecret -}}
{{- .Values.catalog.existingSecret -}}
{{- else if .Values.postgresql.enabled -}}
{{- printf "%s-postgresql" (include "callvault.fullname" .) -}}
{{- end -}}
{{- end -}}
{{- define "callvault.catalogSecretKey" -}}
{{- if .Values.catalog.existingSecret -}}{{ .Values.catalog.existingSecretKey }}{{- else -}}url{{- end -}}
{{- end -}}

{{- define "callvault.postgresqlName" -}}
{{- printf "%s-postgresql" (include "callvault.fullname" .) -}}
{{- end -}}

{{/* The settings file of a role: callvault.toml rendered from the values with some of them replaced.
.root: the chart's root; .janus: config.janus overrides; .rtp: rtp overrides. */}}
{{- define "callvault.roleConfig" -}}
{{- $vals := deepCopy .root.Values -}}
{{- $_ := set $vals.config "janus" (mergeOverwrite (deepCopy $vals.config.janus) (default (dict) .janus)) -}}
{{- $_ := set $vals "rtp" (mergeOverwrite (deepCopy $vals.rtp) (default (dict) .rtp)) -}}
{{- include "callvault.config" (dict "Values" $vals) -}}
{{- end -}}

{{/* Environment of every fleet pod: its roles, the API key, the catalog, the archive's secrets.
.root, .roles (list); .noArchive: no store credentials (a worker that builds no exports); .noWebhooks:
no webhook secrets (workers announce nothing). */}}
{{- define "callvault.fleetEnv" -}}
{{- $root := .root -}}
{{- $noWebhooks := .noWebhooks -}}
- name: CALLVAULT_ROLES
  value: {{ toJson .roles | quote }}
- name: CALLVAULT_HEALTHCHECK_PORT
  value: {{ $root.Values.config.httpPort | int | quote }}
{{- if $root.Values.fleet.workers.exports }}
# Lifecycle passes (deletions, holds to the store, export schedules) on the worker pods, which have the
# store (lifecycle.run_on); the API pods run none and send the workers' recording.deleted.
- name: CALLVAULT_LIFECYCLE__RUN_ON
  value: "workers"
{{- end }}
{{- if or $root.Values.apiKeys.adminKey $root.Values.apiKeys.existingSecret }}
- name: {{ $root.Values.apiKeys.envName }}
  valueFrom:
    secretKeyRef:
      name: {{ include "callvault.apiKeysSecretName" $root }}
      key: {{ $root.Values.apiKeys.existingSecretKey }}
{{- end }}
# The shared PostgreSQL catalog (api.catalog_url) and the job queue in it.
- name: CALLVAULT_API__CATALOG_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "callvault.catalogSecretName" $root }}
      key: {{ include "callvault.catalogSecretKey" $root }}
{{- if and $root.Values.archive.enabled (not .noArchive) }}
{{- if include "callvault.hasS3Secret" $root }}
- name: CALLVAULT_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "callvault.s3SecretName" $root }}
      key: access-key
- name: CALLVAULT_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "callvault.s3SecretName" $root }}
      key: secret-key
{{- end }}
{{- if not $noWebhooks }}
{{- with $root.Values.archive.webhooks.endpoints }}
{{- range $i, $e := . }}
- name: WEBHOOK_SECRET_{{ $i }}
  valueFrom:
    secretKeyRef:
      name: {{ default (include "callvault.webhooksSecretName" $root) $e.existingSecret }}
      key: {{ if $e.existingSecret }}{{ default "secret" $e.existingSecretKey }}{{ else }}endpoint-{{ $i }}{{ end }}
{{- end }}
- name: CALLVAULT_ARCHIVE__WEBHOOKS__ENDPOINTS
  value: {{ include "callvault.webhookEndpointsJson" $root | quote }}
{{- end }}
{{- end }}
{{- end }}
{{- with $root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Read-only mounts of every fleet pod (config file, signing key, playback identity). .root, .config:
the ConfigMap's name; .noArchive: no signing key nor playback identity (a worker that builds no exports). */}}
{{- define "callvault.fleetMounts" -}}
{{- $root := .root -}}
- name: config
  mountPath: {{ include "callvault.configPath" $root }}
  subPath: callvault.toml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- if and $root.Values.archive.enabled (not .noArchive) (include "callvault.hasSigningKey" $root) }}
- name: signing-key
  mountPath: /etc/callvault/signing
  readOnly: true
{{- end }}
{{- if and $root.Values.archive.enabled (not .noArchive) $root.Values.archive.encryption.playbackIdentitySecret }}
- name: playback-identity
  mountPath: /etc/callvault/playback
  readOnly: true
{{- end }}
{{- with $root.Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "callvault.fleetVolumes" -}}
{{- $root := .root -}}
- name: config
  configMap:
    name: {{ .config }}
- name: tmp
  emptyDir: {}
{{- if and $root.Values.archive.enabled (not .noArchive) (include "callvault.hasSigningKey" $root) }}
- name: signing-key
  secret:
    secretName: {{ include "callvault.signingSecretName" $root }}
    defaultMode: 0400
    items:
      - key: signing-key.pem
        path: signing-key.pem
{{- end }}
{{- if and $root.Values.archive.enabled (not .noArchive) $root.Values.archive.encryption.playbackIdentitySecret }}
- name: playback-identity
  secret:
    secretName: {{ $root.Values.archive.encryption.playbackIdentitySecret }}
    defaultMode: 0400
    items:
      - key: identity.txt
        path: identity.txt
{{- end }}
{{- with $root.Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod-level settings every fleet pod shares. */}}
{{- define "callvault.fleetPodSettings" -}}
{{- $root := . -}}
serviceAccountName: {{ include "callvault.serviceAccountName" $root }}
automountServiceAccountToken: {{ $root.Values.automountServiceAccountToken }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
securityContext:
  {{- toYaml $root.Values.podSecurityContext | nindent 2 }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Probes of a callvault container. */}}
{{- define "callvault.probes" -}}
startupProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .Values.startupProbe | nindent 2 }}
livenessProbe:
  httpGet:
    path: /healthz
    port: http
  {{- toYaml .Values.livenessProbe | nindent 2 }}
readinessProbe:
  httpGet:
    path: /readyz
    port: http
  {{- toYaml .Values.readinessProbe | nindent 2 }}
{{- end -}}

{{/* The ReadWriteMany claim of the fleet's shared data folder. */}}
{{- define "callvault.sharedClaimName" -}}
{{- default (printf "%s-shared" (include "callvault.fullname" .)) .Values.fleet.sharedVolume.existingClaim -}}
{{- end -}}

{{/* NetworkPolicy peers standing for one recorder's SFU: its own sfu, else networkPolicy.sfu. */}}
{{- define "callvault.recorderSfuPeers" -}}
{{- $sfu := default .root.Values.networkPolicy.sfu .recorder.sfu -}}
{{- if $sfu.podSelector }}
- podSelector:
    {{- toYaml $sfu.podSelector | nindent 4 }}
  {{- with $sfu.namespaceSelector }}
  namespaceSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
{{- range $sfu.ipBlocks }}
- ipBlock:
    cidr: {{ . }}
{{- end }}
{{- end -}}

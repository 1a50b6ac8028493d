{{/* Names and labels. */}}
{{- define "callvault.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callvault.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "callvault.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "callvault.selectorLabels" -}}
app.kubernetes.io/name: {{ include "callvault.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "callvault.labels" -}}
helm.sh/chart: {{ include "callvault.chart" . }}
{{ include "callvault.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: recorder
{{- end -}}

{{- define "callvault.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "callvault.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "callvault.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* Secret names: the user's existingSecret, else the chart's own. */}}
{{- define "callvault.janusSecretName" -}}
{{- default (printf "%s-janus" (include "callvault.fullname" .)) .Values.secrets.janus.existingSecret -}}
{{- end -}}
{{- define "callvault.s3SecretName" -}}
{{- default (printf "%s-s3" (include "callvault.fullname" .)) .Values.archive.storage.s3.existingSecret -}}
{{- end -}}
{{- define "callvault.signingSecretName" -}}
{{- default (printf "%s-signing" (include "callvault.fullname" .)) .Values.archive.signing.existingSecret -}}
{{- end -}}
{{- define "callvault.apiKeysSecretName" -}}
{{- default (printf "%s-api-keys" (include "callvault.fullname" .)) .Values.apiKeys.existingSecret -}}
{{- end -}}
{{- define "callvault.webhooksSecretName" -}}
{{- printf "%s-webhooks" (include "callvault.fullname" .) -}}
{{- end -}}

{{- define "callvault.hasSigningKey" -}}
{{- if or .Values.archive.signing.existingSecret .Values.archive.signing.privateKeyPem -}}true{{- end -}}
{{- end -}}

{{- define "callvault.hasS3Secret" -}}
{{- $s3 := .Values.archive.storage.s3 -}}
{{- if or $s3.existingSecret $s3.accessKey $s3.secretKey -}}true{{- end -}}
{{- end -}}

{{- define "callvault.dataDir" -}}/var/lib/callvault/data{{- end -}}
{{- define "callvault.configPath" -}}/etc/callvault/callvault.toml{{- end -}}
{{- define "callvault.signingKeyPath" -}}/etc/callvault/signing/signing-key.pem{{- end -}}

{{/* terminationGracePeriodSeconds: the service's shutdown grace plus a margin. */}}
{{- define "callvault.terminationGrace" -}}
{{- add (ceil .Values.config.shutdownGrace | int) (int .Values.terminationGraceExtraSeconds) -}}
{{- end -}}

{{/* The settings of `callvault serve` (recorder/service/settings.py), as TOML. */}}
{{- define "callvault.config" -}}
{{- $c := .Values.config -}}
{{- $cfg := dict -}}
{{- range $k, $v := $c.extra -}}
{{- $_ := set $cfg $k $v -}}
{{- end -}}
{{- $_ := set $cfg "http_host" "0.0.0.0" -}}
{{- $_ := set $cfg "http_port" (int $c.httpPort) -}}
{{- $_ := set $cfg "data_dir" (include "callvault.dataDir" .) -}}
{{- $_ := set $cfg "rtp_port_min" (int .Values.rtp.portMin) -}}
{{- $_ := set $cfg "rtp_port_max" (int .Values.rtp.portMax) -}}
{{- $_ := set $cfg "shutdown_grace" (float64 $c.shutdownGrace) -}}
{{- if $c.recorder -}}
{{- $_ := set $cfg "recorder" $c.recorder -}}
{{- end -}}
{{- if $c.composite -}}
{{- $_ := set $cfg "composite" $c.composite -}}
{{- end -}}
{{- $j := $c.janus -}}
{{- $janus := dict "enabled" $j.enabled "ws_url" $j.wsUrl "events" $j.events -}}
{{- $_ := set $janus "record_rooms" "all" -}}
{{- if kindIs "slice" $j.recordRooms -}}
{{- $rooms := list -}}
{{- range $j.recordRooms -}}{{- $rooms = append $rooms (toString .) -}}{{- end -}}
{{- $_ := set $janus "record_rooms" $rooms -}}
{{- end -}}
{{- $_ := set $janus "empty_room_grace" (float64 $j.emptyRoomGrace) -}}
{{- $_ := set $janus "restart_grace" (float64 $j.restartGrace) -}}
{{- $_ := set $janus "video_pt" (int $j.videoPt) -}}
{{- $_ := set $janus "audio_pt" (int $j.audioPt) -}}
{{- if $j.forwardHost -}}
{{- $_ := set $janus "forward_host" $j.forwardHost -}}
{{- else if and .Values.rtp.service.enabled .Values.rtp.service.advertisedAddress -}}
{{- $_ := set $janus "forward_host" .Values.rtp.service.advertisedAddress -}}
{{- end -}}
{{- $_ := set $cfg "janus" $janus -}}
{{- /* api.*: the HTTP server's limits, over any other api.* settings given in config.extra.api */ -}}
{{- $l := $c.api -}}
{{- $api := deepCopy (default (dict) (get $c.extra "api")) -}}
{{- $_ := set $api "max_request_line" (int $l.maxRequestLine) -}}
{{- $_ := set $api "max_header_size" (int $l.maxHeaderSize) -}}
{{- $_ := set $api "max_headers" (int $l.maxHeaders) -}}
{{- $_ := set $api "header_timeout" (float64 $l.headerTimeout) -}}
{{- $_ := set $api "body_timeout" (float64 $l.bodyTimeout) -}}
{{- $_ := set $api "max_connections" (int $l.maxConnections) -}}
{{- $_ := set $cfg "api" $api -}}
{{- if .Values.archive.enabled -}}
{{- $archive := dict -}}
{{- $_ := include "callvault.archiveConfig" (dict "root" . "out" $archive) -}}
{{- $_ := set $cfg "archive" $archive -}}
{{- end -}}
{{- toToml $cfg -}}
{{- end -}}

{{/* archive.* (recorder/archive/settings.py): fills the dict "out" (a dict keeps int and float types,
which a round trip through YAML would not). */}}
{{- define "callvault.archiveConfig" -}}
{{- $root := .root -}}
{{- $a := $root.Values.archive -}}
{{- $out := .out -}}
{{- range $k, $v := $a.extra -}}
{{- $_ := set $out $k $v -}}
{{- end -}}
{{- $s3 := $a.storage.s3 -}}
{{- $worm := dict "enabled" $s3.worm.enabled "mode" $s3.worm.mode "days" (int $s3.worm.days) -}}
{{- $s3cfg := dict "endpoint" $s3.endpoint "region" $s3.region "bucket" $s3.bucket "secure" $s3.secure "worm" $worm -}}
{{- $storage := dict "backend" $a.storage.backend "s3" $s3cfg "presign_expiry_seconds" (int $a.storage.presignExpirySeconds) -}}
{{- if $a.storage.keyTemplate -}}
{{- $_ := set $storage "key_template" $a.storage.keyTemplate -}}
{{- end -}}
{{- $_ := set $out "storage" $storage -}}
{{- $_ := set $out "spool" (dict "max_bytes" (int64 $a.spool.maxBytes)) -}}
{{- $_ := set $out "delete_local_after_upload" $a.deleteLocalAfterUpload -}}
{{- $_ := set $out "finish_timeout" (float64 $a.finishTimeout) -}}
{{- if include "callvault.hasSigningKey" $root -}}
{{- $_ := set $out "signing" (dict "key_file" (include "callvault.signingKeyPath" $root) "generate_if_missing" false) -}}
{{- else -}}
{{- $_ := set $out "signing" (dict "generate_if_missing" $a.signing.generateIfMissing) -}}
{{- end -}}
{{- $_ := set $out "webhooks" (dict "max_retry_seconds" (float64 $a.webhooks.maxRetrySeconds)) -}}
{{- $enc := dict -}}
{{- if $a.encryption.recipients -}}
{{- $_ := set $enc "recipients" $a.encryption.recipients -}}
{{- end -}}
{{- if $a.encryption.escrow -}}
{{- $_ := set $enc "escrow" $a.encryption.escrow -}}
{{- end -}}
{{- if $a.encryption.playbackIdentitySecret -}}
{{- $_ := set $enc "playback_identity_file" "/etc/callvault/playback/identity.txt" -}}
{{- end -}}
{{- if $enc -}}
{{- $_ := set $out "encryption" $enc -}}
{{- end -}}
{{- end -}}

{{/* Webhook endpoints as the JSON of archive.webhooks.endpoints, each secret a $(VAR) reference that
Kubernetes expands from the env var defined before it (the secret itself never appears in the pod spec). */}}
{{- define "callvault.webhookEndpointsJson" -}}
{{- $eps := list -}}
{{- range $i, $e := .Values.archive.webhooks.endpoints -}}
{{- $ep := dict "id" $e.id "url" $e.url "secret" (printf "$(WEBHOOK_SECRET_%d)" $i) -}}
{{- if $e.eventTypes -}}{{- $_ := set $ep "event_types" $e.eventTypes -}}{{- end -}}
{{- if $e.timeout -}}{{- $_ := set $ep "timeout" $e.timeout -}}{{- end -}}
{{- $eps = append $eps $ep -}}
{{- end -}}
{{- toJson $eps -}}
{{- end -}}

{{/* NetworkPolicy peers that stand for the SFU (Janus). */}}
{{- define "callvault.sfuPeers" -}}
{{- $sfu := .Values.networkPolicy.sfu -}}
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

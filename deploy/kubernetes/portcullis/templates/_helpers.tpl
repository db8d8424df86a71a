{{/*
Names and labels.
*/}}
{{- define "portcullis.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "portcullis.fullname" -}}
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

{{- define "portcullis.commonLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "portcullis.labels" -}}
{{ include "portcullis.commonLabels" . }}
{{ include "portcullis.selectorLabels" . }}
{{- end -}}

{{- define "portcullis.redis.labels" -}}
{{ include "portcullis.commonLabels" . }}
{{ include "portcullis.redis.selectorLabels" . }}
{{- end -}}

{{- define "portcullis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: proxy
{{- end -}}

{{- define "portcullis.redis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "portcullis.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: redis
{{- end -}}

{{- define "portcullis.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "portcullis.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/*
An image reference from {repository, tag, digest}; the digest wins. Called
with (list image defaultTag).
*/}}
{{- define "portcullis.imageRef" -}}
{{- $img := index . 0 -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (toString (default (index . 1) $img.tag)) -}}
{{- end -}}
{{- end -}}

{{/*
The registry (containerd's certs.d directory name) of an image repository:
its first path segment when that looks like a host (a dot, a colon or
"localhost"), else docker.io; Docker Hub's other names are docker.io.
*/}}
{{- define "portcullis.registryOf" -}}
{{- $parts := splitList "/" (lower .) -}}
{{- $first := first $parts -}}
{{- $reg := "docker.io" -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $reg = $first -}}
{{- end -}}
{{- include "portcullis.normalizeRegistry" $reg -}}
{{- end -}}

{{- define "portcullis.normalizeRegistry" -}}
{{- $r := lower . -}}
{{- if has $r (list "index.docker.io" "registry-1.docker.io") -}}docker.io{{- else -}}{{ $r }}{{- end -}}
{{- end -}}

{{/*
Whole seconds of a Go duration made of h, m and s parts ("5s", "1m30s",
"0"); called with (list fieldName value). Anything else fails rendering.
*/}}
{{- define "portcullis.seconds" -}}
{{- $name := index . 0 -}}
{{- $v := toString (index . 1) -}}
{{- if eq $v "0" -}}
0
{{- else if and (ne $v "") (regexMatch "^([0-9]+h)?([0-9]+m)?([0-9]+s)?$" $v) -}}
{{- $h := regexFind "[0-9]+h" $v | trimSuffix "h" | default "0" | atoi -}}
{{- $m := regexFind "[0-9]+m" $v | trimSuffix "m" | default "0" | atoi -}}
{{- $s := regexFind "[0-9]+s" $v | trimSuffix "s" | default "0" | atoi -}}
{{- add (mul $h 3600) (mul $m 60) $s -}}
{{- else -}}
{{- fail (printf "%s: %q is not a duration in whole seconds such as \"5s\", \"30s\" or \"1m30s\" (the chart adds it into terminationGracePeriodSeconds)" $name $v) -}}
{{- end -}}
{{- end -}}

{{/*
A field of .Values.config as text, or a default when it is not given (null
or absent; a given 0 stays 0). Called with (list root key default).
*/}}
{{- define "portcullis.configOr" -}}
{{- $c := default (dict) (index . 0).Values.config -}}
{{- $k := index . 1 -}}
{{- if or (not (hasKey $c $k)) (kindIs "invalid" (index $c $k)) -}}
{{- index . 2 -}}
{{- else -}}
{{- toString (index $c $k) -}}
{{- end -}}
{{- end -}}

{{/*
terminationGracePeriodSeconds: at least preStop sleep + shutdownDelay +
shutdownTimeout (Portcullis's defaults 5s and 30s when not given). Computed
with terminationGraceMarginSeconds on top when not set; a set value that is
smaller than the sum fails rendering.
*/}}
{{- define "portcullis.terminationGracePeriodSeconds" -}}
{{- $preStop := int .Values.preStopSleepSeconds -}}
{{- $delay := include "portcullis.seconds" (list "config.shutdownDelay" (include "portcullis.configOr" (list . "shutdownDelay" "5s"))) | int -}}
{{- $timeout := include "portcullis.seconds" (list "config.shutdownTimeout" (include "portcullis.configOr" (list . "shutdownTimeout" "30s"))) | int -}}
{{- $sum := add $preStop $delay $timeout -}}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds -}}
{{- add $sum (int .Values.terminationGraceMarginSeconds) -}}
{{- else -}}
{{- $set := int .Values.terminationGracePeriodSeconds -}}
{{- if lt $set $sum -}}
{{- fail (printf "terminationGracePeriodSeconds is %d, less than preStopSleepSeconds (%d) + config.shutdownDelay (%ds) + config.shutdownTimeout (%ds) = %d: Kubernetes would kill Portcullis in the middle of its shutdown, cutting pulls; set it to at least %d, or leave it null to have it computed" $set $preStop $delay $timeout $sum $sum) -}}
{{- end -}}
{{- $set -}}
{{- end -}}
{{- end -}}

{{/*
Where things are mounted in the Portcullis container.
*/}}
{{- define "portcullis.configDir" -}}/etc/portcullis/config{{- end -}}
{{- define "portcullis.policyDir" -}}/etc/portcullis/policy{{- end -}}
{{- define "portcullis.keysDir" -}}/etc/portcullis/keys{{- end -}}
{{- define "portcullis.credentialsDir" -}}/etc/portcullis/credentials{{- end -}}
{{- define "portcullis.tlsDir" -}}/etc/portcullis/tls{{- end -}}
{{- define "portcullis.redisDir" -}}/etc/portcullis/redis{{- end -}}
{{- define "portcullis.cacheMount" -}}/var/lib/portcullis{{- end -}}
{{- define "portcullis.tufMount" -}}/var/cache/portcullis{{- end -}}

{{- define "portcullis.isDaemonSet" -}}
{{- if eq .Values.mode "daemonset" -}}true{{- else if eq .Values.mode "deployment" -}}{{- else -}}
{{- fail (printf "mode: want deployment or daemonset, got %q" .Values.mode) -}}
{{- end -}}
{{- end -}}

{{/*
Redis: "" (none), "internal" (in the chart) or "external" (redis.address).
*/}}
{{- define "portcullis.redis.mode" -}}
{{- if and .Values.redis.enabled .Values.redis.address -}}
{{- fail "redis: set either redis.enabled (Redis in the chart) or redis.address (your Redis), not both" -}}
{{- else if .Values.redis.enabled -}}internal
{{- else if .Values.redis.address -}}external
{{- end -}}
{{- end -}}

{{- define "portcullis.redis.secretName" -}}
{{- default (printf "%s-redis" (include "portcullis.fullname" .)) .Values.redis.existingSecret -}}
{{- end -}}

{{/*
Whether Portcullis gets a Redis password file.
*/}}
{{- define "portcullis.redis.hasPassword" -}}
{{- if .Values.redis.existingSecret -}}
{{- if .Values.redis.passwordKey -}}true{{- end -}}
{{- else if or (eq (include "portcullis.redis.mode" .) "internal") .Values.redis.password -}}true
{{- end -}}
{{- end -}}

{{/*
The password of the chart's Redis Secret: redis.password, else (in-chart
Redis) one derived from the HMAC key, so that rendering stays deterministic
(helm template, GitOps) and needs one secret value only.
*/}}
{{- define "portcullis.redis.password" -}}
{{- if .Values.redis.password -}}
{{- .Values.redis.password -}}
{{- else -}}
{{- printf "portcullis-redis-password:%s" .Values.redis.hmacKey | sha256sum -}}
{{- end -}}
{{- end -}}

{{/*
The registry address Portcullis listens on, and its admin address.
*/}}
{{- define "portcullis.listen" -}}
{{- if include "portcullis.isDaemonSet" . -}}
{{- printf "%s:%d" .Values.daemonset.listenAddress (int .Values.ports.registry) -}}
{{- else -}}
{{- printf ":%d" (int .Values.ports.registry) -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.adminListen" -}}
{{- if include "portcullis.isDaemonSet" . -}}
{{- printf "%s:%d" .Values.daemonset.adminAddress (int .Values.ports.admin) -}}
{{- else -}}
{{- printf ":%d" (int .Values.ports.admin) -}}
{{- end -}}
{{- end -}}

{{/*
Whether upstream i has credentials from a Secret the chart makes.
*/}}
{{- define "portcullis.hasCreatedCredentials" -}}
{{- range .Values.upstreams -}}
{{- if and .auth .auth.password (not .auth.existingSecret) -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{- define "portcullis.hasCredentials" -}}
{{- range .Values.upstreams -}}{{- if .auth -}}true{{- end -}}{{- end -}}
{{- end -}}

{{- define "portcullis.hasClientCA" -}}
{{- if or .Values.tls.clientCA.existingSecret .Values.tls.clientCA.bundle -}}true{{- end -}}
{{- end -}}

{{/*
config.yaml: .Values.config with the parts the chart owns. The
checksum/config annotation is of this text, as Portcullis reads it only at
start.
*/}}
{{- define "portcullis.configYaml" -}}
{{- $c := deepCopy (default (dict) .Values.config) -}}
{{- range $k := list "listen" "adminListen" "policyFile" "tls" "cache" "redis" "upstreams" -}}
{{- if hasKey $c $k -}}
{{- fail (printf "config.%s is set by the chart: use the chart's own values (ports, policy, tls, cache, redis, upstreams; see README.md)" $k) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $c "listen" (include "portcullis.listen" .) -}}
{{- $_ := set $c "adminListen" (include "portcullis.adminListen" .) -}}
{{- if $c.unverified -}}
{{- $_ := set $c "unverified" true -}}
{{- else -}}
{{- $_ := unset $c "unverified" -}}
{{- if .Values.policy.existingConfigMap -}}
{{- $_ := set $c "policyFile" (printf "%s/%s" (include "portcullis.policyDir" .) .Values.policy.key) -}}
{{- else -}}
{{- $_ := set $c "policyFile" "policy.yaml" -}}
{{- end -}}
{{- end -}}
{{- if .Values.tls.enabled -}}
{{- $t := dict "certFile" (printf "%s/tls.crt" (include "portcullis.tlsDir" .)) "keyFile" (printf "%s/tls.key" (include "portcullis.tlsDir" .)) -}}
{{- if include "portcullis.hasClientCA" . -}}
{{- $_ := set $t "clientCAFile" (printf "%s/client-ca.crt" (include "portcullis.tlsDir" .)) -}}
{{- end -}}
{{- $_ := set $c "tls" $t -}}
{{- end -}}
{{- if .Values.cache.enabled -}}
{{- $_ := set $c "cache" (dict "dir" (printf "%s/store" (include "portcullis.cacheMount" .)) "maxSize" .Values.cache.maxSize "maxStale" .Values.cache.maxStale) -}}
{{- end -}}
{{- $ups := list -}}
{{- range $i, $u := .Values.upstreams -}}
{{- if not $u.registry -}}{{- fail (printf "upstreams[%d].registry is required" $i) -}}{{- end -}}
{{- $o := omit $u "auth" "ca" -}}
{{- if $u.ca -}}
{{- if $u.caFile -}}{{- fail (printf "upstreams[%d]: set ca or caFile, not both" $i) -}}{{- end -}}
{{- $_ := set $o "caFile" (printf "upstream-%d-ca.pem" $i) -}}
{{- end -}}
{{- with $u.auth -}}
{{- if not .username -}}{{- fail (printf "upstreams[%d].auth.username is required" $i) -}}{{- end -}}
{{- if and (not .password) (not .existingSecret) -}}{{- fail (printf "upstreams[%d].auth: set password or existingSecret" $i) -}}{{- end -}}
{{- $_ := set $o "auth" (dict "username" .username "passwordFile" (printf "%s/upstream-%d-password" (include "portcullis.credentialsDir" $) $i)) -}}
{{- end -}}
{{- $ups = append $ups $o -}}
{{- end -}}
{{- if not $ups -}}{{- fail "upstreams: list at least one registry" -}}{{- end -}}
{{- with $c.defaultRegistry -}}
{{- if not (has (include "portcullis.normalizeRegistry" .) (include "portcullis.upstreamRegistries" $ | splitList "\n")) -}}
{{- fail (printf "config.defaultRegistry %q is not the registry of any of upstreams" .) -}}
{{- end -}}
{{- end -}}
{{- $_ := set $c "upstreams" $ups -}}
{{- $rm := include "portcullis.redis.mode" . -}}
{{- if $rm -}}
{{- $dir := include "portcullis.redisDir" . -}}
{{- $r := dict "hmacKeyFile" (printf "%s/hmac-key" $dir) "keyPrefix" .Values.redis.keyPrefix -}}
{{- if eq $rm "internal" -}}
{{- $_ := set $r "address" (printf "%s-redis:6379" (include "portcullis.fullname" .)) -}}
{{- else -}}
{{- $_ := set $r "address" .Values.redis.address -}}
{{- end -}}
{{- with .Values.redis.username -}}{{- $_ := set $r "username" . -}}{{- end -}}
{{- with .Values.redis.timeout -}}{{- $_ := set $r "timeout" . -}}{{- end -}}
{{- if include "portcullis.redis.hasPassword" . -}}
{{- $_ := set $r "passwordFile" (printf "%s/password" $dir) -}}
{{- end -}}
{{- if .Values.redis.tls.enabled -}}
{{- $t := dict "caFile" (printf "%s/ca.crt" $dir) -}}
{{- if .Values.redis.tls.clientCertificate -}}
{{- $_ := set $t "certFile" (printf "%s/tls.crt" $dir) -}}
{{- $_ := set $t "keyFile" (printf "%s/tls.key" $dir) -}}
{{- end -}}
{{- $_ := set $r "tls" $t -}}
{{- end -}}
{{- $_ := set $c "redis" $r -}}
{{- end -}}
# Portcullis config, rendered by the Helm chart: see
# deploy/config-example.yaml for every field. Read at start only (a change
# rolls the pods through the checksum/config annotation); the policy beside
# it is re-read when it changes.
{{ toYaml $c }}
{{- end -}}

{{/*
The rendered checks that do not belong to one template.
*/}}
{{- define "portcullis.validate" -}}
{{- if include "portcullis.isDaemonSet" . -}}
{{- if .Values.tls.enabled -}}
{{- fail "tls.enabled: DaemonSet mode serves plain HTTP on the node's loopback (daemonset.listenAddress); TLS is for mode: deployment" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (hasPrefix "127." .Values.daemonset.adminAddress) -}}
{{- fail "serviceMonitor.enabled in DaemonSet mode needs daemonset.adminAddress reachable from Prometheus (e.g. 0.0.0.0), not loopback" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) (or (not .Values.tls.cert) (not .Values.tls.key)) -}}
{{- fail "tls.enabled: set tls.existingSecret, or both tls.cert and tls.key" -}}
{{- end -}}
{{- if and (include "portcullis.hasClientCA" .) (not .Values.tls.enabled) -}}
{{- fail "tls.clientCA needs tls.enabled" -}}
{{- end -}}
{{- if and (eq .Values.cache.volume.type "persistentVolumeClaim") .Values.cache.enabled (or (include "portcullis.isDaemonSet" .) (gt (int .Values.replicaCount) 1)) -}}
{{- fail "cache.volume.type persistentVolumeClaim is one claim, and a content store is one process's: use it with mode deployment and replicaCount 1, or use ephemeral (a claim per pod)" -}}
{{- end -}}
{{- if and (include "portcullis.redis.mode" .) (not .Values.redis.existingSecret) -}}
{{- if not .Values.redis.hmacKey -}}
{{- fail "redis: set redis.hmacKey (at least 32 bytes, the same for every replica; make one with: head -c 32 /dev/urandom | base64) or redis.existingSecret" -}}
{{- end -}}
{{- if lt (len .Values.redis.hmacKey) 32 -}}
{{- fail "redis.hmacKey must be at least 32 bytes (make one with: head -c 32 /dev/urandom | base64)" -}}
{{- end -}}
{{- end -}}
{{- if and (eq (include "portcullis.redis.mode" .) "internal") .Values.redis.existingSecret (not .Values.redis.passwordKey) -}}
{{- fail "redis.enabled with redis.existingSecret needs redis.passwordKey: the in-chart Redis always requires a password" -}}
{{- end -}}
{{- if and .Values.redis.tls.enabled (not .Values.redis.tls.existingSecret) -}}
{{- fail "redis.tls.enabled needs redis.tls.existingSecret (ca.crt, and tls.crt/tls.key with clientCertificate)" -}}
{{- end -}}
{{- if and .Values.redis.tls.enabled (eq (include "portcullis.redis.mode" .) "internal") -}}
{{- fail "redis.tls is for your own Redis (redis.address); the in-chart Redis speaks plain TCP inside the cluster" -}}
{{- end -}}
{{- end -}}

{{/*
A volume from {type, sizeLimit, size, storageClassName}: emptyDir or a
generic ephemeral volume (a claim per pod). Called with (list name volume labels).
*/}}
{{- define "portcullis.scratchVolume" -}}
{{- $name := index . 0 -}}
{{- $v := index . 1 -}}
- name: {{ $name }}
{{- if eq $v.type "emptyDir" }}
  emptyDir:
    {{- with $v.sizeLimit }}
    sizeLimit: {{ . }}
    {{- else }} {}
    {{- end }}
{{- else if eq $v.type "ephemeral" }}
  ephemeral:
    volumeClaimTemplate:
      metadata:
        labels:
          {{- index . 2 | nindent 10 }}
      spec:
        accessModes: ["ReadWriteOnce"]
        {{- with $v.storageClassName }}
        storageClassName: {{ . }}
        {{- end }}
        resources:
          requests:
            storage: {{ $v.size }}
{{- else }}
{{- fail (printf "%s volume type: want emptyDir or ephemeral%s, got %q" $name (ternary " or persistentVolumeClaim" "" (eq $name "cache")) $v.type) }}
{{- end }}
{{- end -}}

{{/*
DaemonSet mode: the registries whose pulls containerd sends to Portcullis,
one per line. Never those of the images this pod (and the in-chart Redis)
needs to start, nor daemonset.skipRegistries: with Portcullis down on a node,
those pulls would have nowhere to go.
*/}}
{{- define "portcullis.daemonset.skipped" -}}
{{- $skip := list (include "portcullis.registryOf" .Values.image.repository) (include "portcullis.registryOf" .Values.daemonset.hostsWriter.image.repository) -}}
{{- if eq (include "portcullis.redis.mode" .) "internal" -}}
{{- $skip = append $skip (include "portcullis.registryOf" .Values.redis.image.repository) -}}
{{- end -}}
{{- range .Values.daemonset.skipRegistries -}}
{{- $skip = append $skip (include "portcullis.normalizeRegistry" .) -}}
{{- end -}}
{{- $skip | uniq | join "\n" -}}
{{- end -}}

{{- define "portcullis.upstreamRegistries" -}}
{{- $out := list -}}
{{- range .Values.upstreams -}}
{{- $out = append $out (include "portcullis.normalizeRegistry" (toString .registry)) -}}
{{- end -}}
{{- $out | join "\n" -}}
{{- end -}}

{{- define "portcullis.daemonset.routed" -}}
{{- $upstreams := include "portcullis.upstreamRegistries" . | splitList "\n" -}}
{{- $want := $upstreams -}}
{{- with .Values.daemonset.registries -}}
{{- $want = list -}}
{{- range . -}}
{{- $r := include "portcullis.normalizeRegistry" . -}}
{{- if not (has $r $upstreams) -}}
{{- fail (printf "daemonset.registries: %q is not the registry of any of upstreams (Portcullis would refuse every pull of it)" .) -}}
{{- end -}}
{{- $want = append $want $r -}}
{{- end -}}
{{- end -}}
{{- $skip := splitList "\n" (include "portcullis.daemonset.skipped" .) -}}
{{- $out := list -}}
{{- range $want | uniq -}}
{{- if not (has . $skip) -}}
{{- $out = append $out . -}}
{{- end -}}
{{- end -}}
{{- $out | join "\n" -}}
{{- end -}}

{{/*
A hosts.toml. Called with (list root serverURL comment). The first line
marks the file as this release's, so that the writer may replace or remove it.
*/}}
{{- define "portcullis.daemonset.marker" -}}
# managed-by: portcullis helm chart, release {{ .Release.Namespace }}/{{ .Release.Name }}
{{- end -}}

{{- define "portcullis.hostsToml" -}}
{{- $root := index . 0 -}}
{{- $url := index . 1 -}}
{{ include "portcullis.daemonset.marker" $root }}
# {{ index . 2 }}
{{- if index . 3 }}
#
# The proxy is the `server`, so there is nothing to fall back to: containerd
# tries the [host."..."] entries, then `server`, moving on after any error,
# a 403 DENIED included, and here both are the proxy. The [host."..."] table
# must stay: without a host table containerd 1.6 logs "failed to decode
# hosts.toml" and pulls from the registry itself.
{{- end }}
server = {{ $url | quote }}

[host.{{ $url | quote }}]
  capabilities = ["pull", "resolve"]
{{- end -}}

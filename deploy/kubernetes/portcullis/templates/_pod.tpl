{{/*
The pod template of the Deployment and of the DaemonSet.
*/}}
{{- define "portcullis.podTemplate" -}}
{{- $ds := include "portcullis.isDaemonSet" . -}}
{{- $fullname := include "portcullis.fullname" . -}}
{{- $rm := include "portcullis.redis.mode" . -}}
metadata:
  labels:
    {{- include "portcullis.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # config.yaml (and the files it names that are read only at start) are
    # not reloaded: a change rolls the pods. The policy is reloaded live.
    checksum/config: {{ include "portcullis.configYaml" . | sha256sum }}
    checksum/startup-files: {{ include "portcullis.startupFilesChecksum" . }}
    {{- if $ds }}
    # The init container writes the hosts.toml files at start only.
    checksum/containerd-hosts: {{ include (print $.Template.BasePath "/containerd-hosts.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "portcullis.serviceAccountName" . }}
  automountServiceAccountToken: false
  enableServiceLinks: false
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- if $ds }}
  # containerd on the node reaches the proxy at
  # {{ include "portcullis.listen" . }}, without cluster DNS; the proxy
  # itself still resolves cluster names (Redis).
  hostNetwork: true
  dnsPolicy: ClusterFirstWithHostNet
  {{- end }}
  # >= preStop sleep + shutdownDelay + shutdownTimeout (see README.md).
  terminationGracePeriodSeconds: {{ include "portcullis.terminationGracePeriodSeconds" . }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- if not $ds }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- range . }}
    - {{ toYaml (omit . "labelSelector") | indent 6 | trim }}
      labelSelector:
        {{- if .labelSelector }}
        {{- toYaml .labelSelector | nindent 8 }}
        {{- else }}
        matchLabels:
          {{- include "portcullis.selectorLabels" $ | nindent 10 }}
        {{- end }}
    {{- end }}
  {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with (ternary .Values.daemonset.tolerations .Values.tolerations (eq $ds "true")) }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $ds }}
  initContainers:
    # Writes containerd's hosts.toml for each routed registry on this node
    # (see the -containerd-hosts ConfigMap), atomically, before the proxy
    # starts; removes those it wrote before for registries no longer routed.
    - name: containerd-hosts
      image: {{ include "portcullis.imageRef" (list .Values.daemonset.hostsWriter.image "latest") | quote }}
      imagePullPolicy: {{ .Values.daemonset.hostsWriter.image.pullPolicy }}
      command: ["/bin/sh", "/etc/portcullis-hosts/write-hosts.sh"]
      securityContext:
        # root, to write into the node's root-owned certs.d; no capability.
        runAsUser: 0
        runAsGroup: 0
        runAsNonRoot: false
        readOnlyRootFilesystem: true
        allowPrivilegeEscalation: false
        capabilities:
          drop: ["ALL"]
        seccompProfile:
          type: RuntimeDefault
      resources:
        {{- toYaml .Values.daemonset.hostsWriter.resources | nindent 8 }}
      volumeMounts:
        - name: containerd-hosts
          mountPath: /etc/portcullis-hosts
          readOnly: true
        - name: certs-d
          mountPath: /host/certs.d
  {{- end }}
  containers:
    - name: portcullis
      image: {{ include "portcullis.imageRef" (list .Values.image .Chart.AppVersion) | quote }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - serve
        - --config
        - {{ include "portcullis.configDir" . }}/config.yaml
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        # Writable, for sigstore-go's default TUF cache ($HOME/.sigstore).
        - name: HOME
          value: {{ include "portcullis.tufMount" . }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: registry
          containerPort: {{ .Values.ports.registry }}
          protocol: TCP
        - name: admin
          containerPort: {{ .Values.ports.admin }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: admin
          {{- if $ds }}
          host: {{ .Values.daemonset.adminAddress | replace "0.0.0.0" "127.0.0.1" }}
          {{- end }}
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: admin
          {{- if $ds }}
          host: {{ .Values.daemonset.adminAddress | replace "0.0.0.0" "127.0.0.1" }}
          {{- end }}
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- if gt (int .Values.preStopSleepSeconds) 0 }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ int .Values.preStopSleepSeconds }}
      {{- end }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      volumeMounts:
        # A directory, not a subPath: ConfigMap updates reach the pod.
        - name: config
          mountPath: {{ include "portcullis.configDir" . }}
          readOnly: true
        {{- if and (not .Values.config.unverified) .Values.policy.existingConfigMap }}
        - name: policy
          mountPath: {{ include "portcullis.policyDir" . }}
          readOnly: true
        {{- end }}
        {{- if or .Values.keys.existingSecret .Values.keys.files }}
        - name: keys
          mountPath: {{ include "portcullis.keysDir" . }}
          readOnly: true
        {{- end }}
        {{- if include "portcullis.hasCredentials" . }}
        - name: credentials
          mountPath: {{ include "portcullis.credentialsDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.tls.enabled }}
        - name: tls
          mountPath: {{ include "portcullis.tlsDir" . }}
          readOnly: true
        {{- end }}
        {{- if $rm }}
        - name: redis
          mountPath: {{ include "portcullis.redisDir" . }}
          readOnly: true
        {{- end }}
        {{- if .Values.cache.enabled }}
        - name: cache
          mountPath: {{ include "portcullis.cacheMount" . }}
        {{- end }}
        - name: tuf-cache
          mountPath: {{ include "portcullis.tufMount" . }}
        - name: tmp
          mountPath: /tmp
        {{- with .Values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      configMap:
        name: {{ $fullname }}
    {{- if and (not .Values.config.unverified) .Values.policy.existingConfigMap }}
    - name: policy
      configMap:
        name: {{ .Values.policy.existingConfigMap }}
    {{- end }}
    {{- if or .Values.keys.existingSecret .Values.keys.files }}
    - name: keys
      secret:
        secretName: {{ default (printf "%s-keys" $fullname) .Values.keys.existingSecret }}
    {{- end }}
    {{- if include "portcullis.hasCredentials" . }}
    - name: credentials
      projected:
        sources:
          {{- range $i, $u := .Values.upstreams }}
          {{- with $u.auth }}
          - secret:
              name: {{ default (printf "%s-credentials" $fullname) .existingSecret }}
              items:
                - key: {{ ternary (default "password" .passwordKey) (printf "upstream-%d-password" $i) (not (empty .existingSecret)) }}
                  path: upstream-{{ $i }}-password
          {{- end }}
          {{- end }}
    {{- end }}
    {{- if .Values.tls.enabled }}
    - name: tls
      projected:
        sources:
          - secret:
              name: {{ default (printf "%s-tls" $fullname) .Values.tls.existingSecret }}
              items:
                - key: tls.crt
                  path: tls.crt
                - key: tls.key
                  path: tls.key
          {{- if include "portcullis.hasClientCA" . }}
          - secret:
              name: {{ default (printf "%s-client-ca" $fullname) .Values.tls.clientCA.existingSecret }}
              items:
                - key: {{ ternary .Values.tls.clientCA.key "ca.crt" (not (empty .Values.tls.clientCA.existingSecret)) }}
                  path: client-ca.crt
          {{- end }}
    {{- end }}
    {{- if $rm }}
    - name: redis
      projected:
        sources:
          - secret:
              name: {{ include "portcullis.redis.secretName" . }}
              items:
                - key: {{ ternary .Values.redis.hmacKeyKey "hmac-key" (not (empty .Values.redis.existingSecret)) }}
                  path: hmac-key
                {{- if include "portcullis.redis.hasPassword" . }}
                - key: {{ ternary .Values.redis.passwordKey "password" (not (empty .Values.redis.existingSecret)) }}
                  path: password
                {{- end }}
          {{- if .Values.redis.tls.enabled }}
          - secret:
              name: {{ .Values.redis.tls.existingSecret }}
              items:
                - key: ca.crt
                  path: ca.crt
                {{- if .Values.redis.tls.clientCertificate }}
                - key: tls.crt
                  path: tls.crt
                - key: tls.key
                  path: tls.key
                {{- end }}
          {{- end }}
    {{- end }}
    {{- if .Values.cache.enabled }}
    {{- if eq .Values.cache.volume.type "persistentVolumeClaim" }}
    - name: cache
      persistentVolumeClaim:
        claimName: {{ default (printf "%s-cache" $fullname) .Values.cache.volume.existingClaim }}
    {{- else }}
    {{- include "portcullis.scratchVolume" (list "cache" .Values.cache.volume (include "portcullis.selectorLabels" .)) | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- include "portcullis.scratchVolume" (list "tuf-cache" .Values.tufCache.volume (include "portcullis.selectorLabels" .)) | nindent 4 }}
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
    {{- if $ds }}
    - name: containerd-hosts
      configMap:
        name: {{ $fullname }}-containerd-hosts
    - name: certs-d
      hostPath:
        path: {{ .Values.daemonset.certsDir }}
        type: DirectoryOrCreate
    {{- end }}
    {{- with .Values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{/*
The checksum of the other files Portcullis reads only at start: the upstream
CA files beside config.yaml and the Secrets the chart makes for credentials,
TLS and Redis (Secrets of yours are not seen: roll the pods yourself when
you change one). The keys the policy names are reloaded with it.
*/}}
{{- define "portcullis.startupFilesChecksum" -}}
{{- $parts := list -}}
{{- range .Values.upstreams -}}
{{- $parts = append $parts (toString (default "" .ca)) -}}
{{- if and .auth (not .auth.existingSecret) -}}{{- $parts = append $parts (toString .auth.password) -}}{{- end -}}
{{- end -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) -}}
{{- $parts = concat $parts (list (toString .Values.tls.cert) (toString .Values.tls.key)) -}}
{{- end -}}
{{- $parts = concat $parts (list (toString .Values.tls.clientCA.bundle) (toString .Values.redis.password) (toString .Values.redis.hmacKey)) -}}
{{- join "\n--\n" $parts | sha256sum -}}
{{- end -}}

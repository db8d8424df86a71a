package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/redis/go-redis/v9"
	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
	"github.com/portcullis-dev/portcullis/fleet"
	"github.com/portcullis-dev/portcullis/gate"
	"github.com/portcullis-dev/portcullis/proxy"
	"github.com/portcullis-dev/portcullis/store"
	"github.com/portcullis-dev/portcullis/upstream"
	"github.com/portcullis-dev/portcullis/verify"
)

func newServeCmd() *cobra.Command {
	var configPath, logFormat string
	cmd := &cobra.Command{
		Use:   "serve --config FILE",
		Short: "Serve the registry mirror",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), configPath, logFormat)
		},
	}
	cmd.Flags().StringVar(&configPath, "config", "", "path of the YAML config file (required)")
	cmd.Flags().StringVar(&logFormat, "log-format", "json", "log format: json or console")
	addLogLevelFlag(cmd)
	_ = cmd.MarkFlagRequired("config")
	return cmd
}

// serve loads the config, wires the proxy, and serves until ctx ends, then
// shuts down gracefully within the configured deadline.
func serve(ctx context.Context, configPath, logFormat string) error {
	log, err := newLogger(logFormat)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()
	cfg, err := config.Load(configPath)
	if err != nil {
		return usageError(err)
	}
	setLogLevel(cfg.LogLevel)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	builder := &gate.Loader{}
	w, err := wire(cfg, builder, log, reg)
	if err != nil {
		return err
	}
	defer w.close()
	p := w.proxy
	status := func() string { return unverifiedStatus } // no gate: "unverified: true"
	if w.gate != nil {
		reloader := gate.NewReloader(cfg.PolicyFile, builder, w.gate, log, reg)
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		defer signal.Stop(hup)
		if f := w.fleet; f != nil {
			reloader.AnnounceWith(func(rev string) { f.AnnounceReload(ctx, rev) })
			f.OnReload(func(string) { reloader.Kick() })
			go f.Run(ctx)
		}
		go reloader.Run(ctx, policyPollInterval, tufRefreshInterval, hup)
		status = func() string {
			var why []string
			for _, d := range []string{reloader.Degraded(), w.fleetDegraded()} {
				if d != "" {
					why = append(why, d)
				}
			}
			if len(why) == 0 {
				return ""
			}
			return "degraded: " + strings.Join(why, "; ")
		}
	}
	srv := &http.Server{
		Handler:           p,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          zap.NewStdLog(log.Named("http")),
	}
	if srv.TLSConfig, err = serverTLS(cfg.TLS); err != nil {
		return usageError(err)
	}
	var ready atomic.Bool
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	var cache *cacheAdmin
	if w.store != nil {
		addr := ln.Addr().String()
		cache = &cacheAdmin{store: w.store, log: log.Named("admin"),
			warm: func(ctx context.Context, image string, progress func(string)) warmResult {
				return warm(ctx, addr, image, cfg.DefaultRegistry, w.up.Has, progress)
			}}
	}
	var decisions *decisionsAdmin
	if w.gate != nil {
		decisions = &decisionsAdmin{log: w.decisions, gate: w.gate, zap: log.Named("admin")}
	}
	admin := &http.Server{Handler: adminHandler(reg, &ready, status, cache, decisions), ReadHeaderTimeout: 10 * time.Second}

	adminLn, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		ln.Close()
		return fmt.Errorf("adminListen: %w", err)
	}
	errc := make(chan error, 2)
	tlsOn := srv.TLSConfig != nil
	go func() {
		if tlsOn {
			errc <- srv.ServeTLS(ln, "", "")
		} else {
			errc <- srv.Serve(ln)
		}
	}()
	go func() { errc <- admin.Serve(adminLn) }()
	ready.Store(true)
	log.Info("serving", zap.String("version", versionString()), zap.String("config", cfg.Path),
		zap.String("listen", ln.Addr().String()), zap.String("adminListen", adminLn.Addr().String()),
		zap.Bool("tls", tlsOn), zap.Int("upstreams", len(cfg.Upstreams)))

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("server stopped: %w", err)
	}
	// Drain: /readyz says 503 at once, and the listeners keep serving for
	// shutdownDelay, so that load balancers and Kubernetes endpoints stop
	// sending pulls here before the listeners close.
	ready.Store(false)
	srv.SetKeepAlivesEnabled(false) // each answer now says "Connection: close": clients reconnect, through the balancer, elsewhere
	if cfg.ShutdownDelay > 0 {
		log.Info("shutting down: not ready; serving for shutdownDelay while load balancers drain", zap.Duration("shutdownDelay", cfg.ShutdownDelay))
		select {
		case <-time.After(cfg.ShutdownDelay):
		case err := <-errc:
			return fmt.Errorf("server stopped: %w", err)
		}
	}
	log.Info("shutting down: finishing in-flight requests", zap.Duration("deadline", cfg.ShutdownTimeout))
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	_ = admin.Shutdown(sctx)
	if errors.Is(err, context.DeadlineExceeded) {
		log.Warn("shutdown deadline passed: cutting the requests still running")
		_ = srv.Close()
		return nil
	}
	log.Info("stopped")
	return err
}

// policyPollInterval is how often the policy file and the files it
// references are checked for changes; tufRefreshInterval how often TUF
// repositories are asked for a new trusted root.
const (
	policyPollInterval = 2 * time.Second
	tufRefreshInterval = time.Hour
)

// unverifiedStatus is what /readyz says of a proxy configured with
// "unverified: true".
const unverifiedStatus = `unverified: every image is served without a signature check ("unverified: true" in the config, no policyFile)`

// wiring is what serve, verify and demo run: the upstream client, the
// verification gate reading through it (nil for "unverified: true") and
// the proxy serving from it.
type wiring struct {
	up    *upstream.Client
	store *store.Store // nil without "cache"
	gate  *gate.Gate
	// decisions is the gate's decision log (nil without a gate).
	decisions *gate.DecisionLog
	// cached is the content store's client (nil without "cache"), and
	// reader what the gate reads signatures through (it, or up).
	cached *store.Client
	reader verify.Reader
	proxy  *proxy.Proxy
	// fleet is the state shared with the other replicas (nil without
	// "redis").
	fleet *fleet.Store
}

// fleetDegraded is why the replica is alone ("" when it is not, or has no
// fleet).
func (w *wiring) fleetDegraded() string {
	if w.fleet == nil {
		return ""
	}
	return w.fleet.Degraded()
}

// close releases what wire opened (the content store's directory, the
// connections to Redis).
func (w *wiring) close() {
	if w.store != nil {
		_ = w.store.Close()
	}
	if w.fleet != nil {
		_ = w.fleet.Close()
	}
}

// wire builds the upstream client, the verification gate and the proxy:
// up := upstream.New, g := gate.New(up, ...), p := proxy.New(up,
// gate). Only a config that says "unverified: true" (config.Load refuses
// one with neither) gets a plain (digest-checking) mirror, and that is
// logged as a warning on every start. extra options go to the gate after
// the config's (tests give it a clock).
func wire(cfg *config.Config, builder *gate.Loader, log *zap.Logger, reg *prometheus.Registry, extra ...gate.Option) (*wiring, error) {
	w := &wiring{}
	var upOpts []upstream.Option
	var err error
	if rc := cfg.Redis; rc != nil {
		if w.fleet, err = newFleet(cfg, log, reg); err != nil {
			return nil, usageError(err)
		}
		upOpts = append(upOpts, upstream.WithSharedTags(w.fleet))
		log.Info("sharing verdicts and tag resolutions with the other replicas through redis",
			zap.String("address", rc.Address), zap.String("keyPrefix", rc.KeyPrefix))
	}
	up, err := newUpstream(cfg, log, reg, upOpts...)
	if err != nil {
		w.close()
		return nil, usageError(err)
	}
	w.up = up
	builder.Configured = up.Has // a policy naming another registry's signatures is refused
	opts := []proxy.Option{
		proxy.WithDefaultRegistry(cfg.DefaultRegistry),
		proxy.WithClientIdleTimeout(cfg.ClientIdleTimeout),
		proxy.WithLogger(log),
		proxy.WithRegisterer(reg),
	}
	var served proxy.Upstream = up // what the proxy serves from
	var reader verify.Reader = up  // what the gate reads signatures through
	if k := cfg.Cache; k != nil {
		if w.store, err = store.Open(k.Dir, store.WithMaxSize(k.MaxSize),
			store.WithLogger(log.Named("store")), store.WithRegisterer(reg)); err != nil {
			return nil, fmt.Errorf("cache.dir: %w", err)
		}
		sc := store.NewClient(up, w.store, cfg.TagTTL, k.MaxStale, log.Named("store"))
		served, reader, w.cached = sc, sc.Reader(), sc
		log.Info("content store open", zap.String("dir", w.store.Dir()), zap.Int64("maxSize", k.MaxSize),
			zap.Duration("maxStale", k.MaxStale))
	}
	var g *gate.Gate
	switch {
	case cfg.PolicyFile != "": // first: a policy is enforced whatever else the Config says
		snap, err := builder.Load(cfg.PolicyFile)
		if err != nil {
			w.close()
			return nil, usageError(fmt.Errorf("policyFile: %w", err))
		}
		w.decisions = gate.NewDecisionLog(int(cfg.DecisionLog.Entries))
		gopts := []gate.Option{
			gate.WithDecisionLog(w.decisions),
			gate.WithVerdictTTL(cfg.VerdictTTL), gate.WithDenyTTL(cfg.DenyTTL),
			gate.WithStaleIfError(cfg.VerdictStaleIfError), gate.WithDecisionTimeout(cfg.DecisionTimeout),
			gate.WithLimits(verify.Limits{MaxSignatures: cfg.MaxSignatures}),
			gate.WithVerdictCacheEntries(cfg.VerdictCacheEntries),
			gate.WithLogger(log.Named("gate")), gate.WithRegisterer(reg),
		}
		if w.fleet != nil {
			gopts = append(gopts, gate.WithVerdictStore(w.fleet))
			w.decisions.ShareWith(w.fleet.Decisions())
		}
		g, err = gate.New(reader, snap, append(gopts, extra...)...)
		if err != nil {
			w.close()
			return nil, usageError(err)
		}
		opts = append(opts, proxy.WithGate(g))
		gate.LogSnapshot(log, "policy loaded", cfg.PolicyFile, snap)
	case cfg.Unverified:
		log.Warn("unverified: true in the config: serving as a plain mirror, no signature is verified",
			zap.String("config", cfg.Path))
		opts = append(opts, proxy.WithGate(proxy.AllowAllUnsafe{}))
	default: // config.Load refuses this; a Config built another way must choose too
		w.close()
		return nil, usageError(fmt.Errorf("%s: no policyFile, and no \"unverified: true\" to serve images unverified", cfg.Path))
	}
	w.gate, w.reader = g, reader
	if w.proxy, err = proxy.New(served, opts...); err != nil {
		w.close()
		return nil, usageError(fmt.Errorf("%s: %w", cfg.Path, err))
	}
	return w, nil
}

// newFleet is the state shared with the other replicas through Redis,
// with this process's verdict cache in front.
func newFleet(cfg *config.Config, log *zap.Logger, reg prometheus.Registerer) (*fleet.Store, error) {
	rc := cfg.Redis
	opt := &redis.Options{Addr: rc.Address, Username: rc.Username, Password: rc.Password()}
	if t := rc.TLS; t != nil {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if t.CAFile != "" {
			pool, err := certPool(t.CAFile)
			if err != nil {
				return nil, fmt.Errorf("redis.tls.caFile: %w", err)
			}
			tc.RootCAs = pool
		}
		if t.CertFile != "" {
			cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
			if err != nil {
				return nil, fmt.Errorf("redis.tls certFile/keyFile: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		opt.TLSConfig = tc
	}
	f, err := fleet.New(fleet.Options{
		Client: fleet.NewClient(opt), L1: gate.NewMemoryStore(int(cfg.VerdictCacheEntries)),
		Key: rc.HMACKey(), Prefix: rc.KeyPrefix, Timeout: rc.Timeout, DecisionEntries: cfg.DecisionLog.Entries,
		Logger: log.Named("fleet"), Registerer: reg,
	})
	if err != nil {
		return nil, fmt.Errorf("redis.hmacKeyFile: %w", err)
	}
	return f, nil
}

// newUpstream is the upstream client of the config's upstreams, with
// extra options after the config's.
func newUpstream(cfg *config.Config, log *zap.Logger, reg prometheus.Registerer, extra ...upstream.Option) (*upstream.Client, error) {
	ups, err := upstreamConfigs(cfg)
	if err != nil {
		return nil, err
	}
	up, err := upstream.New(ups, append([]upstream.Option{
		upstream.WithTagTTL(cfg.TagTTL),
		upstream.WithStaleIfError(cfg.TagStaleIfError),
		upstream.WithManifestCacheBytes(cfg.ManifestCacheBytes),
		upstream.WithTimeout(cfg.UpstreamTimeout),
		upstream.WithLogger(log.Named("upstream")),
		upstream.WithRegisterer(reg)}, extra...)...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Path, err)
	}
	return up, nil
}

// upstreamConfigs turns the config's upstreams into the client's.
func upstreamConfigs(cfg *config.Config) ([]upstream.Config, error) {
	var ups []upstream.Config
	for _, u := range cfg.Upstreams {
		tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: u.Insecure} //nolint:gosec // admin opt-in, documented
		if u.CAFile != "" {
			pool, err := certPool(u.CAFile)
			if err != nil {
				return nil, fmt.Errorf("upstream %s caFile: %w", u.Registry, err)
			}
			tc.RootCAs = pool
		}
		uc := upstream.Config{Registry: u.Registry, Endpoint: u.Endpoint, TLSConfig: tc, FollowHosts: u.FollowHosts}
		if u.Auth != nil {
			uc.Auth = &authn.Basic{Username: u.Auth.Username, Password: u.Password()}
		}
		ups = append(ups, uc)
	}
	return ups, nil
}

// serverTLS is the listener's TLS config, or nil for plain HTTP.
func serverTLS(t *config.TLS) (*tls.Config, error) {
	if t == nil {
		return nil, nil
	}
	cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls certFile/keyFile: %w", err)
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}
	if t.ClientCAFile != "" {
		pool, err := certPool(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls clientCAFile: %w", err)
		}
		tc.ClientCAs = pool
		tc.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return tc, nil
}

// certPool is the system roots plus the PEM certificates in file.
func certPool(file string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificates found", file)
	}
	return pool, nil
}

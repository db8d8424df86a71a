package main

import (
	"fmt"

	"github.com/google/go-containerregistry/pkg/logs"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the process logger: JSON lines (the default) or a
// console format for people, at info level.
func newLogger(format string) (*zap.Logger, error) {
	var cfg zap.Config
	switch format {
	case "json":
		cfg = zap.NewProductionConfig()
		cfg.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	case "console":
		cfg = zap.NewDevelopmentConfig()
		cfg.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
		cfg.DisableStacktrace = true
	default:
		return nil, usageError(fmt.Errorf("--log-format %q: want json or console", format))
	}
	cfg.Sampling = nil // every request line counts: no sampling
	l, err := cfg.Build()
	if err != nil {
		return nil, err
	}
	// go-containerregistry logs warnings through the standard logger.
	logs.Warn.SetOutput(zap.NewStdLog(l.Named("ggcr")).Writer())
	return l, nil
}

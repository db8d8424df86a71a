package main

import (
	"fmt"
	"os"
	"time"

	"github.com/google/go-containerregistry/pkg/logs"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// newLogger builds the process logger: JSON lines (the default) or a
// console format for people, at info level, to stderr. Writes are buffered
// and flushed every second (and by Sync at exit): one log line per request
// unbuffered cost a write(2) each, a fifth of a warm pull's CPU.
func newLogger(format string) (*zap.Logger, error) {
	var enc zapcore.Encoder
	switch format {
	case "json":
		cfg := zap.NewProductionEncoderConfig()
		cfg.EncodeTime = zapcore.ISO8601TimeEncoder
		enc = zapcore.NewJSONEncoder(cfg)
	case "console":
		cfg := zap.NewDevelopmentEncoderConfig()
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, usageError(fmt.Errorf("--log-format %q: want json or console", format))
	}
	sink := &zapcore.BufferedWriteSyncer{WS: zapcore.Lock(os.Stderr), Size: 256 << 10, FlushInterval: time.Second}
	// No sampling: every request line counts.
	l := zap.New(zapcore.NewCore(enc, sink, zap.InfoLevel), zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr)))
	// go-containerregistry logs warnings through the standard logger.
	logs.Warn.SetOutput(zap.NewStdLog(l.Named("ggcr")).Writer())
	return l, nil
}

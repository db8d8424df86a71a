package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/logs"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/portcullis-dev/portcullis/cmd/portcullis/config"
)

// logLevel is the level of the loggers newLogger builds. It is shared and
// atomic so that it can change once the logger exists: serve builds its
// logger before it loads the config that may name a level.
var logLevel = zap.NewAtomicLevel()

// logLevelFlag is the value of --log-level, "" when not given. It
// overrides the config's logLevel.
var logLevelFlag string

// addLogLevelFlag gives cmd (serve, demo) the --log-level flag.
func addLogLevelFlag(cmd *cobra.Command) {
	cmd.Flags().Var(levelValue{&logLevelFlag}, "log-level",
		"least severe level logged: "+strings.Join(config.LogLevels, ", ")+" (default: the config's logLevel, else info)")
}

// levelValue is the flag.Value of --log-level: a bad level is a usage error
// as the flag is parsed.
type levelValue struct{ p *string }

func (v levelValue) String() string { return *v.p }
func (levelValue) Type() string     { return "level" }

func (v levelValue) Set(s string) error {
	if !slices.Contains(config.LogLevels, s) {
		return fmt.Errorf("want one of %s", strings.Join(config.LogLevels, ", "))
	}
	*v.p = s
	return nil
}

// setLogLevel sets the level of the loggers newLogger built to the
// config's logLevel ("" for none), unless --log-level was given, which
// wins. serve calls it once it has loaded the config.
func setLogLevel(configured string) {
	logLevel.SetLevel(effectiveLevel(logLevelFlag, configured))
}

// effectiveLevel is the level of flag, else of configured, else info; both
// are "" or one of config.LogLevels.
func effectiveLevel(flag, configured string) zapcore.Level {
	for _, s := range []string{flag, configured} {
		if l, err := zapcore.ParseLevel(s); s != "" && err == nil {
			return l
		}
	}
	return zapcore.InfoLevel
}

// newLogger builds the process logger: JSON lines (the default) or a
// console format for people (durations in seconds in both), at the level of --log-level (info if not
// given; see setLogLevel for the config's), to stderr. Writes are buffered
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
		cfg.EncodeDuration = zapcore.SecondsDurationEncoder // as in JSON: one unit whatever the format
		enc = zapcore.NewConsoleEncoder(cfg)
	default:
		return nil, usageError(fmt.Errorf("--log-format %q: want json or console", format))
	}
	setLogLevel("")
	sink := &zapcore.BufferedWriteSyncer{WS: zapcore.Lock(os.Stderr), Size: 256 << 10, FlushInterval: time.Second}
	// No sampling: every request line counts.
	l := zap.New(zapcore.NewCore(enc, sink, logLevel), zap.AddCaller(), zap.ErrorOutput(zapcore.Lock(os.Stderr)))
	// go-containerregistry logs warnings through the standard logger.
	logs.Warn.SetOutput(zap.NewStdLog(l.Named("ggcr")).Writer())
	return l, nil
}

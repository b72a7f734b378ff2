package rotation

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/cofferhq/coffer/fsm"
)

// Registered rotators (coffer rotator create): a type and its settings,
// Raft state (fsm.Rotator), named by a Lambda-style ARN that secrets'
// RotationLambdaARN points at. Settings never hold a credential: a
// database rotator logs in with the secret it rotates (or its masterarn
// secret), a webhook signs with a key kept in a secret it names.

// Rotator types.
const (
	TypePostgres = "postgres"
	TypeMySQL    = "mysql"
	TypeWebhook  = "webhook"
	TypeExec     = "exec"
)

// Types lists the rotator types.
var Types = []string{TypePostgres, TypeMySQL, TypeWebhook, TypeExec}

// settings lists each type's settings; every one is optional unless
// checked in Validate.
var settings = map[string][]string{
	TypePostgres: {"strategy"},
	TypeMySQL:    {"strategy"},
	TypeWebhook:  {"url", "signing_secret", "timeout", "ca_pem", "allow_http"},
	TypeExec:     {"command", "args", "timeout"},
}

// Validate checks a registration's type and settings before it is
// stored; the message says what to fix.
func Validate(typ string, config map[string]string) error {
	known, ok := settings[typ]
	if !ok {
		return fmt.Errorf("unknown rotator type %q: use one of %s", typ, strings.Join(Types, ", "))
	}
	for k := range config {
		if !slices.Contains(known, k) {
			return fmt.Errorf("a %s rotator has no setting %q (settings: %s)", typ, k, strings.Join(known, ", "))
		}
	}
	if v, ok := config["timeout"]; ok {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 || d > time.Hour {
			return fmt.Errorf("timeout %q: give a duration between 1s and 1h, e.g. 30s", v)
		}
	}
	switch typ {
	case TypePostgres, TypeMySQL:
		if s := config["strategy"]; s != "" && s != StrategySingleUser && s != StrategyAlternatingUsers {
			return fmt.Errorf("strategy %q: use %s or %s", s, StrategySingleUser, StrategyAlternatingUsers)
		}
	case TypeWebhook:
		u := config["url"]
		if !strings.HasPrefix(u, "https://") && !(config["allow_http"] == "true" && strings.HasPrefix(u, "http://")) {
			return fmt.Errorf("url %q: a webhook rotator needs an https:// URL (http:// only with allow_http=true, for development)", u)
		}
		if config["signing_secret"] == "" {
			return fmt.Errorf("signing_secret: name the secret whose SecretString is the webhook's HMAC key")
		}
		if v, ok := config["allow_http"]; ok && v != "true" && v != "false" {
			return fmt.Errorf("allow_http %q: use true or false", v)
		}
		if pem := config["ca_pem"]; pem != "" && !x509.NewCertPool().AppendCertsFromPEM([]byte(pem)) {
			return fmt.Errorf("ca_pem: no PEM certificate in it")
		}
	case TypeExec:
		c := config["command"]
		if c == "" || strings.ContainsRune(c, '/') || c == "." || c == ".." {
			return fmt.Errorf("command %q: give the file name of an executable in the servers' rotator directory (--rotator-exec-dir), not a path", c)
		}
		if a, ok := config["args"]; ok {
			var args []string
			if err := json.Unmarshal([]byte(a), &args); err != nil {
				return fmt.Errorf("args: a JSON array of strings, e.g. [\"--verbose\"]: %v", err)
			}
		}
	}
	return nil
}

// Builder makes rotators from their registrations, with this server's
// settings.
type Builder struct {
	// ExecDir is the directory exec rotators' commands must be in
	// (--rotator-exec-dir); "" disables exec rotators on this server, so
	// an API caller cannot run a command the operator did not install.
	ExecDir string
}

// Build makes the rotator a registration describes.
func (b Builder) Build(reg *fsm.Rotator) (Rotator, error) {
	cfg := reg.Config
	if err := Validate(reg.Type, cfg); err != nil {
		return nil, err
	}
	timeout := time.Duration(0)
	if v := cfg["timeout"]; v != "" {
		timeout, _ = time.ParseDuration(v)
	}
	switch reg.Type {
	case TypePostgres:
		return NewPostgres(strategy(cfg))
	case TypeMySQL:
		return NewMySQL(strategy(cfg))
	case TypeWebhook:
		w := &Webhook{URL: cfg["url"], SigningSecretID: cfg["signing_secret"], Timeout: timeout, AllowHTTP: cfg["allow_http"] == "true"}
		if pem := cfg["ca_pem"]; pem != "" {
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM([]byte(pem))
			w.TLS = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
		return w, nil
	case TypeExec:
		if b.ExecDir == "" {
			return nil, fmt.Errorf("exec rotators are disabled on this server: start the servers with --rotator-exec-dir naming the directory of the commands they may run")
		}
		path := filepath.Join(b.ExecDir, cfg["command"])
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("command %s is not installed in the rotator directory %s on this server: %v", cfg["command"], b.ExecDir, err)
		}
		cmd := []string{path}
		if a := cfg["args"]; a != "" {
			var args []string
			_ = json.Unmarshal([]byte(a), &args)
			cmd = append(cmd, args...)
		}
		return &Exec{Command: cmd, Timeout: timeout}, nil
	}
	return nil, fmt.Errorf("unknown rotator type %q", reg.Type)
}

func strategy(cfg map[string]string) string {
	if s := cfg["strategy"]; s != "" {
		return s
	}
	return StrategySingleUser
}

// ARN is the Lambda-style ARN of a rotator named name.
func ARN(region, account, name string) string {
	return "arn:aws:lambda:" + region + ":" + account + ":function:" + name
}

// ValidName checks a rotator's name as Lambda checks a function's.
func ValidName(name string) error {
	if len(name) < 1 || len(name) > 64 {
		return fmt.Errorf("a rotator name has 1 to 64 characters, got %d", len(name))
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return fmt.Errorf("a rotator name has letters, digits, - and _ only; %q has %q", name, c)
		}
	}
	return nil
}

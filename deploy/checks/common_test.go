package checks

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// repo is a path in the repository, from this package's directory.
func repo(parts ...string) string {
	return filepath.Join(append([]string{"..", ".."}, parts...)...)
}

func readFile(t *testing.T, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(repo(parts...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

var flagDef = regexp.MustCompile(`\.(?:String|StringSlice|Int|Bool|Duration|Uint64)Var\(&[^,]+,\s*"([a-z0-9-]+)"`)

// serverEnv is every COFFER_* variable `coffer server` reads (one per
// flag of cmd/coffer/server.go) and those of the operator commands
// (cmd/coffer/client.go), plus COFFER_ROOT_KEY.
func serverEnv(t *testing.T) map[string]bool {
	t.Helper()
	env := map[string]bool{"COFFER_ROOT_KEY": true}
	for _, f := range []string{"server.go", "client.go"} {
		src := readFile(t, "cmd", "coffer", f)
		for _, m := range flagDef.FindAllStringSubmatch(src, -1) {
			env["COFFER_"+strings.ToUpper(strings.ReplaceAll(m[1], "-", "_"))] = true
		}
	}
	for _, must := range []string{"COFFER_NODE_ID", "COFFER_REGION", "COFFER_TLS_CA_FILE", "COFFER_ENDPOINT", "COFFER_CA_FILE"} {
		if !env[must] {
			t.Fatalf("flag scan of cmd/coffer found no %s: the pattern no longer matches the source", must)
		}
	}
	return env
}

// checkEnvKeys fails for every key that no coffer flag reads.
func checkEnvKeys(t *testing.T, where string, keys []string, allowed ...string) {
	t.Helper()
	known := serverEnv(t)
	for _, a := range allowed {
		known[a] = true
	}
	for _, k := range keys {
		if !known[k] {
			t.Errorf("%s: %s is not the variable of any coffer server or operator flag", where, k)
		}
	}
}

var envLine = regexp.MustCompile(`^([A-Z_][A-Z0-9_]*)=([^\s"']*)$`)

// envFile reads a KEY=value file that Compose, systemd's EnvironmentFile=
// and run-as-processes.sh all read the same way: no quotes, no spaces, no
// interpolation, no key twice.
func envFile(t *testing.T, parts ...string) (map[string]string, []string) {
	t.Helper()
	vals, keys := map[string]string{}, []string(nil)
	for i, line := range strings.Split(readFile(t, parts...), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m := envLine.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("%s:%d: not a plain KEY=value line: %q", filepath.Join(parts...), i+1, line)
			continue
		}
		if strings.Contains(m[2], "$") {
			t.Errorf("%s:%d: %s: no interpolation: Compose would expand it, the others would not", filepath.Join(parts...), i+1, m[1])
		}
		if _, dup := vals[m[1]]; dup {
			t.Errorf("%s:%d: %s set twice", filepath.Join(parts...), i+1, m[1])
		}
		vals[m[1]] = m[2]
		keys = append(keys, m[1])
	}
	return vals, keys
}

func sorted(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

package checks

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unitDirectives is the unit's KEY=value lines, by key, in order.
func unitDirectives(t *testing.T) map[string][]string {
	t.Helper()
	d := map[string][]string{}
	for _, line := range strings.Split(readFile(t, "deploy", "systemd", "coffer.service"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Errorf("coffer.service: not KEY=value: %q", line)
			continue
		}
		d[k] = append(d[k], v)
	}
	return d
}

// TestSystemdVerify runs `systemd-analyze verify` and the offline
// `systemd-analyze security` on the unit. ExecStart's binary is not
// installed here: a copy of the unit names an executable that exists.
func TestSystemdVerify(t *testing.T) {
	tool, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed (.ci/run installs Debian's systemd)")
	}
	unit := readFile(t, "deploy", "systemd", "coffer.service")
	if !strings.Contains(unit, "ExecStart=/usr/local/bin/coffer server") {
		t.Fatal("ExecStart is not /usr/local/bin/coffer server")
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "coffer.service")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(unit, "/usr/local/bin/coffer", self)), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(tool, "verify", path)
	cmd.Dir = dir
	// No pager, no colours; --user-less checks as a system unit.
	cmd.Env = append(os.Environ(), "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "SYSTEMD_LOG_LEVEL=notice")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
	// The exposure systemd itself gives the unit (0 best, 10 worst); 2.0
	// or less is what it calls OK.
	cmd = exec.Command(tool, "security", "--offline=true", "--threshold=20", "--no-pager", path)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SYSTEMD_COLORS=0")
	out, err = cmd.CombinedOutput()
	m := regexp.MustCompile(`Overall exposure level for \S+: ([0-9.]+) (\S+)`).FindStringSubmatch(string(out))
	if err != nil || m == nil {
		t.Errorf("systemd-analyze security: %v\n%s", err, out)
	} else {
		t.Logf("systemd-analyze security: exposure %s %s", m[1], m[2])
	}
}

// TestSystemdUnit: the hardening options are there, the flags come from
// the credentials and the state directory, and the example env file sets
// only what the unit leaves to it.
func TestSystemdUnit(t *testing.T) {
	d := unitDirectives(t)
	for k, want := range map[string]string{
		"DynamicUser": "yes", "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
		"PrivateDevices": "yes", "NoNewPrivileges": "yes", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
		"StateDirectory": "coffer", "RestrictSUIDSGID": "yes", "ProtectKernelTunables": "yes",
		"ProtectKernelModules": "yes", "ProtectControlGroups": "yes", "LockPersonality": "yes",
		"MemoryDenyWriteExecute": "yes", "RestrictNamespaces": "yes", "SystemCallArchitectures": "native",
		"UMask": "0077", "KillSignal": "SIGTERM", "EnvironmentFile": "/etc/coffer/coffer.env",
	} {
		if v := d[k]; len(v) != 1 || v[0] != want {
			t.Errorf("%s=%v, want %s=%s", k, v, k, want)
		}
	}
	creds := map[string]bool{}
	for _, lc := range d["LoadCredential"] {
		id, src, _ := strings.Cut(lc, ":")
		creds[id] = true
		if !strings.HasPrefix(src, "/etc/coffer/") {
			t.Errorf("LoadCredential=%s: want a file under /etc/coffer", lc)
		}
	}
	unitEnv := map[string]string{}
	var keys []string
	for _, e := range d["Environment"] {
		k, v, _ := strings.Cut(e, "=")
		unitEnv[k] = v
		keys = append(keys, k)
		if id, ok := strings.CutPrefix(v, "%d/"); ok && !creds[id] {
			t.Errorf("Environment=%s: no LoadCredential=%s", e, id)
		}
	}
	checkEnvKeys(t, "coffer.service Environment=", keys)
	if unitEnv["COFFER_DATA_DIR"] != "%S/"+d["StateDirectory"][0] {
		t.Errorf("COFFER_DATA_DIR=%s is not the StateDirectory (%%S/%s)", unitEnv["COFFER_DATA_DIR"], d["StateDirectory"][0])
	}
	for _, k := range []string{"COFFER_TLS_CA_FILE", "COFFER_TLS_CERT_FILE", "COFFER_TLS_KEY_FILE", "COFFER_GOSSIP_KEY_FILE"} {
		if !strings.HasPrefix(unitEnv[k], "%d/") {
			t.Errorf("%s must come from a credential (%%d/...), got %q", k, unitEnv[k])
		}
	}

	env, envKeys := envFile(t, "deploy", "systemd", "coffer.env.example")
	checkEnvKeys(t, "coffer.env.example", envKeys)
	for _, k := range envKeys {
		if _, ok := unitEnv[k]; ok {
			t.Errorf("coffer.env.example sets %s, which the unit sets: EnvironmentFile= overrides Environment=, so it would replace the unit's value", k)
		}
	}
	for _, k := range []string{"COFFER_NODE_ID", "COFFER_REGION", "COFFER_API_ADDR", "COFFER_CLUSTER_ADDR", "COFFER_GOSSIP_ADDR", "COFFER_JOIN", "COFFER_BOOTSTRAP_EXPECT"} {
		if env[k] == "" {
			t.Errorf("coffer.env.example sets no %s", k)
		}
	}
}

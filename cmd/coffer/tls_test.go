package main

import (
	"bytes"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cofferhq/coffer/tlsutil"
	"github.com/spf13/cobra"
)

// runTLS runs `operator tls <args>` in process and returns its output.
func runTLS(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := &cobra.Command{Use: "operator"}
	cmd.AddCommand(tlsCmd())
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"tls"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

func wantMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("%s: mode %v, want %v", path, got, want)
	}
}

// wantPublicMode checks a certificate's mode: 0644 less whatever the umask
// takes away, so never writable by others and always readable by the owner.
func wantPublicMode(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := fi.Mode().Perm(); got&^0o644 != 0 || got&0o600 != 0o600 {
		t.Errorf("%s: mode %v, want 0644 (less the umask)", path, got)
	}
}

func TestTLS_CACreate_WritesCAFiles(t *testing.T) {
	dir := t.TempDir()
	out, err := runTLS(t, "ca", "create", "--out-dir", dir, "--days", "30")
	if err != nil {
		t.Fatalf("ca create: %v\n%s", err, out)
	}
	certPath, keyPath := filepath.Join(dir, "coffer-ca.pem"), filepath.Join(dir, "coffer-ca-key.pem")
	wantPublicMode(t, certPath)
	wantMode(t, keyPath, 0o600)
	for _, want := range []string{"==> Saved " + certPath, "==> Saved " + keyPath, `CA "Coffer CA `} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	c := readCert(t, certPath)
	if !c.IsCA {
		t.Error("coffer-ca.pem is not a CA")
	}
	if want := time.Now().AddDate(0, 0, 30); c.NotAfter.Sub(want).Abs() > time.Minute {
		t.Errorf("--days 30: NotAfter %v, want about %v", c.NotAfter, want)
	}
	if _, err := runTLS(t, "ca", "create", "--out-dir", dir, "--days", "0"); err == nil || !strings.Contains(err.Error(), "--days") {
		t.Errorf("--days 0: %v", err)
	}
}

func TestTLS_CACreate_RefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	if out, err := runTLS(t, "ca", "create", "--out-dir", dir); err != nil {
		t.Fatalf("ca create: %v\n%s", err, out)
	}
	before, _ := os.ReadFile(filepath.Join(dir, "coffer-ca-key.pem"))
	_, err := runTLS(t, "ca", "create", "--out-dir", dir)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second ca create: %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(filepath.Join(dir, "coffer-ca-key.pem")); !bytes.Equal(before, after) {
		t.Error("the CA key was overwritten")
	}

	// Only the key is in the way: the certificate written first is
	// removed again, so no half pair is left.
	dir2 := t.TempDir()
	keyPath := filepath.Join(dir2, "coffer-ca-key.pem")
	if err := os.WriteFile(keyPath, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runTLS(t, "ca", "create", "--out-dir", dir2); err == nil || !strings.Contains(err.Error(), keyPath) {
		t.Fatalf("ca create over an existing key: %v, want a refusal naming it", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "coffer-ca.pem")); !os.IsNotExist(err) {
		t.Errorf("coffer-ca.pem left behind after the key was refused: %v", err)
	}
	if b, _ := os.ReadFile(keyPath); string(b) != "precious" {
		t.Errorf("the existing key file was changed: %q", b)
	}
}

func TestTLS_CertCreate_LoadsWithReloader(t *testing.T) {
	dir := t.TempDir()
	if out, err := runTLS(t, "ca", "create", "--out-dir", dir); err != nil {
		t.Fatalf("ca create: %v\n%s", err, out)
	}
	caPath, caKeyPath := filepath.Join(dir, "coffer-ca.pem"), filepath.Join(dir, "coffer-ca-key.pem")
	outDir := t.TempDir()
	out, err := runTLS(t, "cert", "create", "--node", "n1", "--region", "us-east-1",
		"--ca", caPath, "--ca-key", caKeyPath, "--out-dir", outDir, "--days", "90",
		"--additional-dnsname", "coffer.example.com", "--additional-dnsname", "n1.example.com",
		"--additional-ipaddress", "10.0.0.1,fd00::1")
	if err != nil {
		t.Fatalf("cert create: %v\n%s", err, out)
	}
	certPath, keyPath := filepath.Join(outDir, "us-east-1-server-n1.pem"), filepath.Join(outDir, "us-east-1-server-n1-key.pem")
	wantPublicMode(t, certPath)
	wantMode(t, keyPath, 0o600)
	for _, want := range []string{
		"==> Using " + caPath + " and " + caKeyPath,
		"==> Saved " + certPath, "==> Saved " + keyPath,
		"Node n1 of region us-east-1, valid until ",
		"DNS names:    n1.server.us-east-1.coffer, server.us-east-1.coffer, localhost, coffer.example.com, n1.example.com",
		"IP addresses: 127.0.0.1, ::1, 10.0.0.1, fd00::1",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	rl, err := tlsutil.NewReloader(tlsutil.Files{CAFile: caPath, CertFile: certPath, KeyFile: keyPath})
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	node, region, err := tlsutil.PeerIdentity(rl.Leaf())
	if err != nil || node != "n1" || region != "us-east-1" {
		t.Errorf("PeerIdentity = %q, %q, %v; want n1, us-east-1", node, region, err)
	}
	if want := time.Now().AddDate(0, 0, 90); rl.Leaf().NotAfter.Sub(want).Abs() > time.Minute {
		t.Errorf("--days 90: NotAfter %v, want about %v", rl.Leaf().NotAfter, want)
	}
	if !strings.Contains(out, rl.Leaf().NotAfter.UTC().Format(time.RFC3339)) {
		t.Errorf("output does not give the expiry %v:\n%s", rl.Leaf().NotAfter, out)
	}

	// The same node again: refused, and the files are untouched.
	before, _ := os.ReadFile(keyPath)
	_, err = runTLS(t, "cert", "create", "--node", "n1", "--region", "us-east-1",
		"--ca", caPath, "--ca-key", caKeyPath, "--out-dir", outDir)
	if err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second cert create: %v, want a refusal", err)
	}
	if after, _ := os.ReadFile(keyPath); !bytes.Equal(before, after) {
		t.Error("the node key was overwritten")
	}
}

func TestTLS_CertCreate_DefaultsToCAInWorkingDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if out, err := runTLS(t, "ca", "create"); err != nil {
		t.Fatalf("ca create: %v\n%s", err, out)
	}
	if out, err := runTLS(t, "cert", "create", "--node", "n2", "--region", "eu-west-1"); err != nil {
		t.Fatalf("cert create: %v\n%s", err, out)
	}
	rl, err := tlsutil.NewReloader(tlsutil.Files{CAFile: "coffer-ca.pem", CertFile: "eu-west-1-server-n2.pem", KeyFile: "eu-west-1-server-n2-key.pem"})
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	if node, region, _ := tlsutil.PeerIdentity(rl.Leaf()); node != "n2" || region != "eu-west-1" {
		t.Errorf("PeerIdentity = %q, %q; want n2, eu-west-1", node, region)
	}
}

func TestTLS_CertCreate_RejectsBadInput(t *testing.T) {
	dir := t.TempDir()
	if out, err := runTLS(t, "ca", "create", "--out-dir", dir); err != nil {
		t.Fatalf("ca create: %v\n%s", err, out)
	}
	ca, caKey := filepath.Join(dir, "coffer-ca.pem"), filepath.Join(dir, "coffer-ca-key.pem")
	base := []string{"cert", "create", "--ca", ca, "--ca-key", caKey, "--out-dir", dir}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--region", "us-east-1"}, "--node is required"},
		{[]string{"--node", "n1"}, "--region is required"},
		{[]string{"--node", "N1", "--region", "us-east-1"}, `node "N1"`},
		{[]string{"--node", "../n1", "--region", "us-east-1"}, `node "../n1"`},
		{[]string{"--node", "n1", "--region", "us_east_1"}, `region "us_east_1"`},
		{[]string{"--node", "n1", "--region", "us-east-1", "--additional-ipaddress", "10.0.0.300"}, `"10.0.0.300" is not an IP address`},
		{[]string{"--node", "n1", "--region", "us-east-1", "--additional-dnsname", "server.eu-west-1.coffer"}, `"server.eu-west-1.coffer"`},
		{[]string{"--node", "n1", "--region", "us-east-1", "--days", "0"}, "--days must be at least 1"},
		{[]string{"--node", "n1", "--region", "us-east-1", "--days", "3650"}, "before the certificate would"},
		{[]string{"--node", "n1", "--region", "us-east-1", "--ca", filepath.Join(dir, "missing.pem")}, "--ca:"},
		{[]string{"--node", "n1", "--region", "us-east-1", "--ca-key", ca}, "CA key"},
	} {
		_, err := runTLS(t, append(append([]string{}, base...), tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("files after failed runs: %q; want only the CA's", names)
	}
}

func TestTLS_CertCreate_FlagsFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	if out, err := runTLS(t, "ca", "create", "--out-dir", dir); err != nil {
		t.Fatalf("ca create: %v\n%s", err, out)
	}
	t.Setenv("COFFER_NODE", "n3")
	t.Setenv("COFFER_REGION", "us-west-2")
	out, err := runTLS(t, "cert", "create", "--ca", filepath.Join(dir, "coffer-ca.pem"),
		"--ca-key", filepath.Join(dir, "coffer-ca-key.pem"), "--out-dir", dir)
	if err != nil {
		t.Fatalf("cert create from COFFER_NODE and COFFER_REGION: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "us-west-2-server-n3.pem")); err != nil {
		t.Error(err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	c, err := parseCertPEM(b)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

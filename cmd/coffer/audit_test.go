package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cofferhq/coffer/audit"
)

// runAudit runs `coffer audit ARGS...` in-process.
func runAudit(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"audit"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

func TestAudit_VerifyAndTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "audit")
	l, err := audit.Open(dir, audit.Options{SegmentBytes: 4096})
	if err != nil {
		t.Fatal(err)
	}
	for i, op := range []string{"CreateSecret", "GetSecretValue", "PutSecretValue", "GetSecretValue", "DeleteSecret"} {
		rec := audit.Record{EventVersion: audit.EventVersion, EventName: op, EventSource: audit.SourceSecretsManager,
			UserIdentity: audit.Identity{Type: "Root", AccessKeyID: "AKIAROOT"}, SourceIPAddress: "10.0.0.9",
			Resources: []audit.Resource{{ARN: "arn:aws:secretsmanager:us-east-1:000000000000:secret:app/db-AbCdEf", Type: audit.ResourceSecret}}}
		if i == 3 {
			rec.ErrorCode, rec.UserIdentity.AccessKeyID = "AccessDeniedException", "AKIAOTHER"
		}
		if err := l.Write(rec); err != nil {
			t.Fatal(err)
		}
	}
	l.Close()

	out, err := runAudit(t, "verify", dir)
	if err != nil || !strings.Contains(out, "OK: 5 records in 1 segments") {
		t.Fatalf("verify a good log: %v\n%s", err, out)
	}
	// --data-dir: <data-dir>/audit.
	if out, err := runAudit(t, "verify", "--data-dir", filepath.Dir(dir)); err != nil || !strings.Contains(out, "OK: 5 records") {
		t.Fatalf("verify --data-dir: %v\n%s", err, out)
	}

	out, err = runAudit(t, "tail", dir, "--operation", "GetSecretValue", "-n", "0")
	if err != nil || strings.Count(out, "GetSecretValue") != 2 || strings.Contains(out, "PutSecretValue") {
		t.Fatalf("tail --operation: %v\n%s", err, out)
	}
	out, err = runAudit(t, "tail", dir, "--identity", "AKIAOTHER", "--format", "json")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.Contains(out, `"errorCode":"AccessDeniedException"`) {
		t.Fatalf("tail --identity --format json: %v\n%s", err, out)
	}
	out, err = runAudit(t, "tail", dir, "-n", "2", "--secret", "app/db")
	if err != nil || !strings.Contains(out, "DeleteSecret") || strings.Contains(out, "PutSecretValue") {
		t.Fatalf("tail -n 2 --secret: %v\n%s", err, out)
	}

	// Tamper with the third record: the fourth no longer chains to it.
	seg := filepath.Join(dir, "audit-00000001.log")
	b, _ := os.ReadFile(seg)
	os.WriteFile(seg, bytes.Replace(b, []byte("PutSecretValue"), []byte("PutSecretValuf"), 1), 0o600)
	out, err = runAudit(t, "verify", dir)
	if err == nil || !strings.Contains(err.Error(), "audit-00000001.log line 4 (sequence 4): hash mismatch") || !strings.Contains(out, "BROKEN after 3 records") {
		t.Fatalf("verify a tampered log: %v\n%s", err, out)
	}
}

func TestAudit_Help(t *testing.T) {
	for _, sub := range []string{"verify", "tail"} {
		out, err := runAudit(t, sub, "--help")
		if err != nil || !strings.Contains(out, "Examples:") || !strings.Contains(out, "coffer audit "+sub) {
			t.Fatalf("coffer audit %s --help: %v\n%s", sub, err, out)
		}
	}
}

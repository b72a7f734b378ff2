package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/cofferhq/coffer/acl"
	"github.com/cofferhq/coffer/server"
)

// runRotator runs `coffer rotator ARGS...` in-process.
func runRotator(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := rootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(append([]string{"rotator"}, args...))
	err := cmd.Execute()
	return out.String(), err
}

// The rotator commands and exec rotators against a real `coffer dev`
// started with --rotator-exec-dir: a command from that directory gets
// each step's event on stdin, a failing one's stderr ends up in
// DescribeSecret's CofferRotationStatus, a path outside the directory is
// refused at registration, and a rotator in use cannot be deleted.
func TestBinary_RotatorCommandsAndExecRotation(t *testing.T) {
	dir := t.TempDir()
	events := filepath.Join(dir, "events.jsonl")
	scripts := map[string]string{
		"record": "#!/bin/sh\ncat >> '" + events + "'\necho >> '" + events + "'\nexit 0\n",
		"fail":   "#!/bin/sh\necho \"cannot reach the database at db.internal:5432\" >&2\nexit 3\n",
	}
	for name, body := range scripts {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	d := startDev(t, []string{"--rotator-exec-dir", dir})
	t.Setenv("AWS_ACCESS_KEY_ID", d.creds.AccessKeyID)
	t.Setenv("AWS_SECRET_ACCESS_KEY", d.creds.SecretAccessKey)
	t.Setenv("AWS_REGION", "us-east-1")
	run := func(args ...string) string {
		t.Helper()
		out, err := runRotator(t, append(args, "--endpoint", d.endpoint)...)
		if err != nil {
			t.Fatalf("coffer rotator %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	out := run("create", "record", "--type", "exec", "--config", "command=record", "--description", "records events")
	if !strings.Contains(out, "arn:aws:lambda:us-east-1:000000000000:function:record") || !strings.Contains(out, "command=record") {
		t.Fatalf("create printed:\n%s", out)
	}
	run("create", "fail", "--type", "exec", "--config", "command=fail", "--config", "timeout=10s")
	if out, err := runRotator(t, "create", "shell", "--type", "exec", "--config", "command=/bin/sh", "--endpoint", d.endpoint); err == nil ||
		!strings.Contains(err.Error()+out, "not a path") {
		t.Fatalf("a path was accepted: %v\n%s", err, out)
	}
	var list []server.RotatorInfo
	if err := json.Unmarshal([]byte(run("list", "--format", "json")), &list); err != nil || len(list) != 2 || list[0].Name != "fail" || list[1].Type != "exec" {
		t.Fatalf("list: %v %+v", err, list)
	}

	cl := d.client("us-east-1")
	ctx := bctx(t)
	rec := createNamed(t, cl, "rot/record", "v1")
	fail := createNamed(t, cl, "rot/fail", "v1")
	tokens := map[string]string{rec: "11111111-aaaa-4bbb-8ccc-000000000001", fail: "11111111-aaaa-4bbb-8ccc-000000000002"}
	for arn, rotator := range map[string]string{rec: "record", fail: "fail"} {
		if _, err := cl.RotateSecret(ctx, &secretsmanager.RotateSecretInput{SecretId: aws.String(arn), ClientRequestToken: aws.String(tokens[arn]),
			RotationLambdaARN: aws.String(rotator)}); err != nil {
			t.Fatal(err)
		}
	}
	// The recording command saw createSecret's event, as a Lambda would.
	waitUntil(t, 20*time.Second, "the createSecret event", func() error {
		raw, _ := os.ReadFile(events)
		var ev struct{ Step, SecretId, ClientRequestToken string }
		if err := json.Unmarshal(bytes.SplitN(raw, []byte("\n"), 2)[0], &ev); err != nil {
			return err
		}
		if ev.Step != "createSecret" || ev.SecretId != rec || ev.ClientRequestToken != tokens[rec] {
			return errors.New("event " + string(raw))
		}
		return nil
	})
	// The failing command's stderr is the recorded error.
	waitUntil(t, 20*time.Second, "the failure recorded", func() error {
		body, _ := json.Marshal(map[string]string{"SecretId": fail})
		req, _ := http.NewRequest(http.MethodPost, d.endpoint+"/", bytes.NewReader(body))
		req.Header.Set("X-Amz-Target", "secretsmanager.DescribeSecret")
		req.Header.Set("Content-Type", "application/x-amz-json-1.1")
		acl.Sign(req, body, d.creds.AccessKeyID, d.creds.SecretAccessKey, "us-east-1", "secretsmanager", time.Now())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(raw), "createSecret failed") || !strings.Contains(string(raw), "cannot reach the database at db.internal:5432") {
			return errors.New(string(raw))
		}
		return nil
	})
	if v, err := cl.GetSecretValue(ctx, &secretsmanager.GetSecretValueInput{SecretId: aws.String(fail)}); err != nil || aws.ToString(v.SecretString) != "v1" {
		t.Fatalf("AWSCURRENT after the failure: %v %v", err, v)
	}
	// In use: refused; after the rotation is cancelled: deleted.
	if out, err := runRotator(t, "delete", "fail", "--endpoint", d.endpoint); err == nil || !strings.Contains(err.Error()+out, "CancelRotateSecret") {
		t.Fatalf("delete of a rotator in use: %v\n%s", err, out)
	}
	if _, err := cl.CancelRotateSecret(ctx, &secretsmanager.CancelRotateSecretInput{SecretId: aws.String(fail)}); err != nil {
		t.Fatal(err)
	}
	run("delete", "fail")
	if out, err := runRotator(t, "describe", "fail", "--endpoint", d.endpoint); err == nil || !strings.Contains(err.Error()+out, "can't find the rotator") {
		t.Fatalf("describe of a deleted rotator: %v\n%s", err, out)
	}
}

//go:build faults

package main

// Tests of the faults build (go test -tags faults ./cmd/coffer/): the
// --faults-clock-file reader, and a faults binary whose node clock the
// test skews through the file.

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	"github.com/aws/smithy-go"
	"github.com/cofferhq/coffer/apierr"
	"github.com/cofferhq/coffer/server/servertest"
	"github.com/hashicorp/go-hclog"
)

// writeOffset replaces the offset file as the harness does: a temporary
// file renamed over it.
func writeOffset(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func TestFaultClock_ReadsOffsetFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock-offset")
	var logs logBuffer
	c := &fileClock{path: path, logger: hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})}
	steps := []struct {
		name    string
		write   *string // nil removes the file
		want    time.Duration
		changed bool // logs "clock offset changed"
		warned  bool // logs a warning
	}{
		{"missing file", nil, 0, false, false},
		{"negative minutes", ptr("-20m"), -20 * time.Minute, true, false},
		{"same again", ptr("-20m0s\n"), -20 * time.Minute, false, false},
		{"whitespace around", ptr("  1.5s \n"), 1500 * time.Millisecond, true, false},
		{"garbage keeps the offset", ptr("twenty minutes"), 1500 * time.Millisecond, false, true},
		{"same garbage warns once", ptr("twenty minutes"), 1500 * time.Millisecond, false, false},
		{"other garbage warns again", ptr("20"), 1500 * time.Millisecond, false, true},
		{"empty file", ptr(""), 0, true, false},
		{"garbage after a good read warns", ptr("20"), 0, false, true},
		{"zero", ptr("0s"), 0, false, false},
		{"hours", ptr("2h"), 2 * time.Hour, true, false},
		{"removed file", nil, 0, true, false},
	}
	for _, s := range steps {
		before := logs.String()
		if s.write == nil {
			if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
				t.Fatal(err)
			}
		} else {
			writeOffset(t, path, *s.write)
		}
		c.reload()
		if got := time.Duration(c.offset.Load()); got != s.want {
			t.Fatalf("%s: offset %s, want %s", s.name, got, s.want)
		}
		if d := c.now().Sub(time.Now()); d < s.want-time.Second || d > s.want+time.Second {
			t.Fatalf("%s: now() is %s off real time, want %s", s.name, d, s.want)
		}
		added := strings.TrimPrefix(logs.String(), before)
		if got := strings.Contains(added, "[INFO]  clock offset changed: offset="+s.want.String()); got != s.changed {
			t.Fatalf("%s: logged a change %v, want %v; log:\n%s", s.name, got, s.changed, added)
		}
		if got := strings.Contains(added, "[WARN]"); got != s.warned {
			t.Fatalf("%s: warned %v, want %v; log:\n%s", s.name, got, s.warned, added)
		}
	}
}

func ptr(s string) *string { return &s }

// faultClock follows the file while it runs, and stop ends its goroutine.
func TestFaultClock_FollowsFileUntilStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock-offset")
	writeOffset(t, path, "-20m")
	old := *clockFile
	*clockFile = path
	defer func() { *clockFile = old }()
	now, stop := faultClock(hclog.NewNullLogger())
	offset := func() time.Duration { return now().Sub(time.Now()).Round(time.Minute) }
	if got := offset(); got != -20*time.Minute {
		t.Fatalf("offset at start %s, want -20m (read before the first tick)", got)
	}
	writeOffset(t, path, "3m")
	waitFor(t, 5*time.Second, "offset 3m", func() bool { return offset() == 3*time.Minute })

	stopped := make(chan struct{})
	go func() { stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("stop did not return")
	}
	writeOffset(t, path, "1h")
	time.Sleep(3 * clockReload)
	if got := offset(); got != 3*time.Minute {
		t.Fatalf("offset %s after stop, want 3m: the reader still runs", got)
	}

	*clockFile = ""
	now, stop = faultClock(hclog.NewNullLogger())
	defer stop()
	if d := now().Sub(time.Now()); d < -time.Second || d > time.Second {
		t.Fatalf("without --faults-clock-file the clock is %s off", d)
	}
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// faultsBinary builds ./cmd/coffer with -tags faults into dir.
func faultsBinary(t *testing.T, dir string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the coffer binary; skipped with -short")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "coffer-faults")
	cmd := exec.Command("go", "build", "-tags", "faults", "-o", bin, "./cmd/coffer")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags faults ./cmd/coffer: %v\n%s", err, out)
	}
	return bin
}

// A faults binary with --faults-clock-file: the offset written to the file
// reaches the SigV4 check and the timestamps of a running node.
func TestFaultsBinary_ClockFileSkewsNode(t *testing.T) {
	base := t.TempDir()
	bin := faultsBinary(t, base)

	help, err := exec.Command(bin, "server", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(help), "--faults-clock-file PATH") {
		t.Fatalf("server --help of a faults build does not list --faults-clock-file PATH (%v):\n%s", err, help)
	}

	rootKey := filepath.Join(base, "root.key")
	if out, err := exec.Command(bin, "operator", "root-key", "generate", "--out", rootKey).CombinedOutput(); err != nil {
		t.Fatalf("root-key generate: %v\n%s", err, out)
	}
	credsFile := filepath.Join(base, "creds.json")
	if err := os.WriteFile(credsFile, []byte(`{"AccessKeyId": "`+binCreds.AccessKeyID+`", "SecretAccessKey": "`+binCreds.SecretAccessKey+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := filepath.Join(base, "clock-offset")
	api := freeAddr(t)
	logs := &logBuffer{}
	p := &proc{bin: bin, name: "n1", env: childEnv(), stdout: logs, stderr: logs, args: []string{"server",
		"--node-id", "n1", "--region", binRegion, "--data-dir", filepath.Join(base, "n1"),
		"--api-addr", api, "--cluster-addr", freeAddr(t), "--gossip-addr", freeAddr(t),
		"--bootstrap-expect", "1", "--root-key-file", rootKey, "--bootstrap-credentials-file", credsFile,
		"--faults-clock-file", clock}}
	p.args = append(p.args, securityFlags(t, bin, base, "n1")...)
	dumpOnFailure(t, []*proc{p})
	p.start(t)
	t.Cleanup(func() { p.kill(t) })
	waitUntil(t, 30*time.Second, "n1 serving", func() error {
		_, code, err := getHealth(api)
		if err == nil && code != 200 {
			err = errors.New("not serving yet")
		}
		return err
	})
	client := servertest.NewClient("https://"+api, binRegion, binCreds, 0)
	noCorrection := func(o *secretsmanager.Options) { o.DisableClockSkewCorrection = true }

	writeOffset(t, clock, "20m\n")
	waitUntil(t, 10*time.Second, "the node to log the new offset", func() error {
		if !strings.Contains(logs.String(), "clock offset changed: offset=20m0s") {
			return errors.New("not logged yet")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err = client.ListSecrets(ctx, &secretsmanager.ListSecretsInput{}, noCorrection)
	var ae smithy.APIError
	if !errors.As(err, &ae) || ae.ErrorCode() != apierr.InvalidSignature || !strings.HasPrefix(ae.ErrorMessage(), "Signature expired") {
		t.Fatalf("a request signed at real time to a node 20 minutes ahead: got %v, want %s Signature expired", err, apierr.InvalidSignature)
	}

	writeOffset(t, clock, "2m")
	waitUntil(t, 10*time.Second, "the node to log the new offset", func() error {
		if !strings.Contains(logs.String(), "clock offset changed: offset=2m0s") {
			return errors.New("not logged yet")
		}
		return nil
	})
	before := time.Now()
	var arn string
	call(t, 30*time.Second, "CreateSecret on a node 2 minutes ahead", func(ctx context.Context) error {
		out, err := client.CreateSecret(ctx, &secretsmanager.CreateSecretInput{Name: aws.String("ahead"),
			SecretString: aws.String("v"), ClientRequestToken: aws.String(newToken())}, noCorrection)
		if err == nil {
			arn = aws.ToString(out.ARN)
		}
		return err
	})
	d, err := client.DescribeSecret(ctx, &secretsmanager.DescribeSecretInput{SecretId: aws.String(arn)}, noCorrection)
	if err != nil {
		t.Fatal(err)
	}
	if skew := aws.ToTime(d.CreatedDate).Sub(before); skew < 2*time.Minute-5*time.Second || skew > 2*time.Minute+10*time.Second {
		t.Fatalf("CreatedDate is %s after the request, want about 2m", skew)
	}
	p.stop(t, syscall.SIGTERM, 20*time.Second) // and the clock reader stops with it
}

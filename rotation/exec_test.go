//go:build unix

package rotation_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/rotation"
)

// The commands are real processes run through /bin/sh, which every unix
// system has; the shell here is the hook's own, Exec itself never uses one.

func TestExec_Success(t *testing.T) {
	e := &rotation.Exec{Command: []string{"sh", "-c", "echo to stdout; echo to stderr >&2; exit 0"}}
	if err := e.Step(context.Background(), nil, testEvent); err != nil {
		t.Fatalf("Step: %v", err)
	}
}

// A command that exits 0 but leaves a child holding its stderr succeeded:
// Step must not wait for the child.
func TestExec_SuccessWithLingeringChild(t *testing.T) {
	e := &rotation.Exec{Command: []string{"sh", "-c", "sleep 5 >&2 & exit 0"}}
	start := time.Now()
	if err := e.Step(context.Background(), nil, testEvent); err != nil {
		t.Fatalf("Step: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("Step took %v: it waited for the child", d)
	}
}

func TestExec_StdinCarriesEvent(t *testing.T) {
	out := filepath.Join(t.TempDir(), "stdin")
	e := &rotation.Exec{Command: []string{"sh", "-c", `cat > "$1"`, "sh", out}}
	if err := e.Step(context.Background(), nil, testEvent); err != nil {
		t.Fatalf("Step: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("stdin %q is not JSON: %v", raw, err)
	}
	want := map[string]string{"Step": testEvent.Step, "SecretId": testEvent.SecretID, "ClientRequestToken": testEvent.ClientRequestToken}
	if len(got) != len(want) {
		t.Fatalf("stdin = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("stdin %s = %q, want %q", k, got[k], v)
		}
	}
}

func TestExec_Environment(t *testing.T) {
	t.Setenv("COFFER_TEST_SERVER_ONLY", "must-not-leak")
	out := filepath.Join(t.TempDir(), "env")
	e := &rotation.Exec{
		Command: []string{"sh", "-c", `env > "$1"`, "sh", out},
		Env:     []string{"HOOK_DB=postgres://db", "COFFER_ROTATION_STEP=overridden"},
	}
	ev := testEvent
	ev.Step = rotation.StepFinish
	if err := e.Step(context.Background(), nil, ev); err != nil {
		t.Fatalf("Step: %v", err)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		k, v, _ := strings.Cut(line, "=")
		env[k] = v
	}
	want := map[string]string{
		"PATH":                        os.Getenv("PATH"),
		"HOOK_DB":                     "postgres://db",
		"COFFER_ROTATION_STEP":        rotation.StepFinish, // the event wins over Env
		"COFFER_SECRET_ID":            ev.SecretID,
		"COFFER_CLIENT_REQUEST_TOKEN": ev.ClientRequestToken,
	}
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	if _, ok := env["COFFER_TEST_SERVER_ONLY"]; ok {
		t.Errorf("the server's environment reached the command: %v", env)
	}
	if _, ok := env["HOME"]; ok {
		t.Errorf("HOME reached the command: the environment is not minimal: %v", env)
	}
}

func TestExec_NonZeroExit(t *testing.T) {
	// 5000 bytes of 'a', then the reason: the error keeps the end.
	script := `head -c 5000 /dev/zero | tr '\0' a >&2; echo >&2; echo "password rejected by db" >&2; exit 3`
	e := &rotation.Exec{Command: []string{"sh", "-c", script}}
	err := e.Step(context.Background(), nil, testEvent)
	if err == nil {
		t.Fatal("Step succeeded, want an error")
	}
	msg := err.Error()
	for _, want := range []string{rotation.StepCreate, "exit status 3", "password rejected by db"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not contain %q", msg, want)
		}
	}
	if strings.HasSuffix(msg, "\n") {
		t.Errorf("error %q is not trimmed", msg)
	}
	if n := strings.Count(msg, "a"); n > 1100 || len(msg) > 1300 {
		t.Errorf("error is %d bytes (%d 'a'), want only the last KiB of stderr", len(msg), n)
	}
}

func TestExec_TimeoutKillsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The shell starts a sleep and waits for it: killing the shell alone
	// would leave the sleep running, holding stderr open.
	e := &rotation.Exec{
		Command: []string{"sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "sh", pidFile},
		Timeout: 500 * time.Millisecond,
	}
	start := time.Now()
	err := e.Step(context.Background(), nil, testEvent)
	elapsed := time.Since(start)
	if err == nil {
		t.Fatal("Step succeeded, want a timeout")
	}
	if !strings.Contains(err.Error(), "timed out after 500ms") || !strings.Contains(err.Error(), rotation.StepCreate) {
		t.Errorf("error %q does not say the step timed out", err)
	}
	if elapsed > 10*time.Second {
		t.Errorf("Step took %v: it waited for the child", elapsed)
	}
	raw, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatalf("the command did not record its child: %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

func TestExec_ContextCancelKillsChildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	e := &rotation.Exec{Command: []string{"sh", "-c", `sleep 60 & echo $! > "$1"; wait`, "sh", pidFile}}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Cancel once the child is there.
		for {
			if raw, _ := os.ReadFile(pidFile); strings.HasSuffix(string(raw), "\n") {
				cancel()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	err := e.Step(ctx, nil, testEvent)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Step = %v, want context.Canceled", err)
	}
	raw, _ := os.ReadFile(pidFile)
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	waitGone(t, pid)
}

// waitGone fails the test unless process pid is dead within a few seconds:
// gone, or a zombie its new parent has not reaped (in a container, pid 1
// may never reap it).
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
			// pid (comm) state ...: the state follows the last ')'.
			s := string(stat)
			if i := strings.LastIndexByte(s, ')'); i >= 0 && strings.HasPrefix(s[i+1:], " Z") {
				return
			}
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child process %d still running after the step ended", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestExec_MissingBinary(t *testing.T) {
	for _, cmd := range []string{"/nonexistent/coffer-rotation-hook", "coffer-no-such-rotation-hook"} {
		e := &rotation.Exec{Command: []string{cmd, "arg"}}
		err := e.Step(context.Background(), nil, testEvent)
		if err == nil {
			t.Fatalf("%s: Step succeeded", cmd)
		}
		if !strings.Contains(err.Error(), rotation.StepCreate) || !strings.Contains(err.Error(), cmd) {
			t.Errorf("%s: error %q names neither the step nor the command", cmd, err)
		}
	}
}

func TestExec_NoCommand(t *testing.T) {
	if err := (&rotation.Exec{}).Step(context.Background(), nil, testEvent); err == nil {
		t.Fatal("Step with no command succeeded")
	}
}

package rotation

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// DefaultHookTimeout bounds one step of an Exec or a Webhook whose Timeout
// is zero: a Lambda's default is 3s, but a hook that changes a password in
// a database may need longer, and a step that never returns would hold up
// every rotation after it.
const DefaultHookTimeout = 30 * time.Second

// errHookTimeout tells a hook's own timeout from the caller's deadline.
var errHookTimeout = errors.New("rotation hook timed out")

// stderrTail is how much of a failed command's stderr an error carries: the
// end is where the reason usually is, and an error is logged and recorded,
// so it must stay small whatever the command printed.
const stderrTail = 1024

// Exec runs a local command once per step, the event JSON on its stdin.
//
// Command is the program and its arguments, run directly (no shell). The
// command gets a minimal environment, PATH and Env, so that nothing of the
// server's own environment (COFFER_ROOT_KEY was one) reaches it, and the
// event again as COFFER_ROTATION_STEP, COFFER_SECRET_ID and
// COFFER_CLIENT_REQUEST_TOKEN. It calls back into Coffer with credentials
// of its own, as a rotation Lambda does: Exec does not use API.
//
// Exit status 0 is success. The command runs in a process group of its
// own, killed whole on timeout or cancellation so that what it started
// (a sleep, a psql) dies with it.
type Exec struct {
	Command []string
	Timeout time.Duration // DefaultHookTimeout if zero
	Env     []string      // "NAME=value" entries, added to PATH
}

// Step runs the command for ev.
func (e *Exec) Step(ctx context.Context, _ API, ev Event) error {
	if len(e.Command) == 0 || e.Command[0] == "" {
		return fmt.Errorf("rotation: exec %s: no command configured", ev.Step)
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("rotation: exec %s: %w", ev.Step, err)
	}
	timeout := e.Timeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errHookTimeout)
	defer cancel()

	cmd := exec.CommandContext(ctx, e.Command[0], e.Command[1:]...)
	cmd.Stdin = bytes.NewReader(body)
	var stderr tailBuffer
	cmd.Stderr = &stderr // stdout goes to /dev/null: nothing reads it
	// PATH first so that Env may replace it; the event last so that Env
	// cannot contradict it (the last of duplicate entries wins).
	env := []string{}
	if path, ok := os.LookupEnv("PATH"); ok {
		env = append(env, "PATH="+path)
	}
	env = append(env, e.Env...)
	cmd.Env = append(env,
		"COFFER_ROTATION_STEP="+ev.Step,
		"COFFER_SECRET_ID="+ev.SecretID,
		"COFFER_CLIENT_REQUEST_TOKEN="+ev.ClientRequestToken,
	)
	killProcessGroup(cmd)
	// A process that escaped the group (setsid) and kept stderr open would
	// otherwise hold Wait until it exits.
	cmd.WaitDelay = time.Second

	err = cmd.Run()
	if err == nil {
		return nil
	}
	var exitErr *exec.ExitError
	switch {
	case cmd.Process == nil:
		// Not found, not executable, or the context was already done.
		return fmt.Errorf("rotation: exec %s: starting the command: %w", ev.Step, err)
	case errors.Is(err, exec.ErrWaitDelay) && cmd.ProcessState != nil && cmd.ProcessState.Success():
		// The command exited 0; only something it left behind still held
		// stderr. The step is done.
		return nil
	case context.Cause(ctx) == errHookTimeout:
		return fmt.Errorf("rotation: exec %s: %s: timed out after %v, process group killed (%v)%s",
			ev.Step, e.Command[0], timeout, exitStatus(cmd, err), stderr.suffix())
	case ctx.Err() != nil:
		return fmt.Errorf("rotation: exec %s: %s: %w, process group killed (%v)%s",
			ev.Step, e.Command[0], ctx.Err(), exitStatus(cmd, err), stderr.suffix())
	case errors.As(err, &exitErr):
		return fmt.Errorf("rotation: exec %s: %s: %v%s", ev.Step, e.Command[0], exitErr.ProcessState, stderr.suffix())
	}
	return fmt.Errorf("rotation: exec %s: %s: %w%s", ev.Step, e.Command[0], err, stderr.suffix())
}

// exitStatus is how the command ended, as "exit status 3" or
// "signal: killed".
func exitStatus(cmd *exec.Cmd, err error) string {
	if cmd.ProcessState != nil {
		return cmd.ProcessState.String()
	}
	return err.Error()
}

// tailBuffer keeps the last stderrTail bytes written to it.
type tailBuffer struct {
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	n := len(p)
	if len(p) >= stderrTail {
		t.buf = append(t.buf[:0], p[len(p)-stderrTail:]...)
		return n, nil
	}
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - stderrTail; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
	}
	return n, nil
}

// suffix is the tail for an error message: "; stderr: ..." or nothing.
func (t *tailBuffer) suffix() string {
	// The cut may split a UTF-8 sequence; drop the broken bytes rather
	// than put them in a log line.
	s := strings.TrimSpace(strings.ToValidUTF8(string(t.buf), ""))
	if s == "" {
		return ""
	}
	return "; stderr: " + s
}

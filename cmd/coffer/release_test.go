package main

import (
	"os/exec"
	"strings"
	"testing"
)

// A release build (no -tags faults) has no fault-injection flags: its
// clock is always the real one.
func TestBinary_ReleaseHasNoFaultFlags(t *testing.T) {
	bin := cofferBinary(t)
	help, err := exec.Command(bin, "server", "--help").CombinedOutput()
	if err != nil {
		t.Fatalf("server --help: %v\n%s", err, help)
	}
	for _, flag := range []string{"--faults-clock-file", "--unsafe-local-reads"} {
		if strings.Contains(string(help), flag) {
			t.Errorf("a release build lists %s:\n%s", flag, help)
		}
	}
	cmd := exec.Command(bin, "server", "--faults-clock-file", "/nonexistent")
	cmd.Env = childEnv()
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "unknown flag: --faults-clock-file") {
		t.Fatalf("a release build accepted --faults-clock-file (%v):\n%s", err, out)
	}
}

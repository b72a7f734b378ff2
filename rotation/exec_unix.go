//go:build unix

package rotation

import (
	"os/exec"
	"syscall"
)

// killProcessGroup puts the command in a process group of its own and
// makes cancellation kill the whole group: killing only the command would
// leave its children running, holding stderr open and the step's Wait with
// it.
func killProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

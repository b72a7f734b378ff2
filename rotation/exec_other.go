//go:build !unix

package rotation

import "os/exec"

// killProcessGroup: without process groups, cancellation kills the command
// only (exec.CommandContext's default); WaitDelay still bounds the wait
// for what it started.
func killProcessGroup(cmd *exec.Cmd) {}

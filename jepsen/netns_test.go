package main

import (
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// inNetns runs f on an OS thread moved into namespace name. The thread is
// never returned to the runtime (the goroutine exits locked), so no other
// goroutine runs in that namespace by accident; sockets f creates stay in
// it.
func inNetns(t *testing.T, name string, f func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		fd, err := unix.Open("/var/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			done <- err
			return
		}
		f()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("enter %s: %v", name, err)
	}
}

// The namespace network: node 1 reaches node 2 through the bridge; a cut
// stops it in both directions while the harness still reaches both; a
// heal restores it; close removes every namespace and the bridge.
func TestNetnsCutAndHeal(t *testing.T) {
	if err := netnsAvailable(); err != nil {
		t.Skip(err)
	}
	m, err := startNetns("cjt-", "10.213.250.", 3)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(m.close)

	listen := func(i int) string {
		var ln net.Listener
		inNetns(t, m.nsName(i), func() { ln, err = net.Listen("tcp", net.JoinHostPort(m.nsIP(i), "0")) })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				c.Write([]byte("ok"))
				c.Close()
			}
		}()
		return ln.Addr().String()
	}
	reach := func(from int, addr string) bool {
		var ok bool
		dial := func() {
			c, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
			if err != nil {
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
			b := make([]byte, 2)
			_, err = c.Read(b)
			ok = err == nil && string(b) == "ok"
		}
		if from < 0 {
			dial() // the harness, in its own namespace
		} else {
			inNetns(t, m.nsName(from), dial)
		}
		return ok
	}
	a0, a1 := listen(0), listen(1)
	if !reach(0, a1) || !reach(1, a0) || !reach(-1, a0) {
		t.Fatal("nodes do not reach each other before any cut")
	}
	m.grudge([][2]int{{0, 1}})
	if reach(0, a1) || reach(1, a0) {
		t.Fatal("the cut link still carries traffic")
	}
	if !reach(-1, a0) || !reach(-1, a1) || !reach(2, a0) {
		t.Fatal("a cut between 0 and 1 stopped other traffic")
	}
	m.healAll()
	if !reach(0, a1) || !reach(1, a0) {
		t.Fatal("the healed link does not carry traffic")
	}
	m.isolate(1, 3)
	if reach(0, a1) || !reach(2, a0) {
		t.Fatal("isolate(1) did not cut exactly node 1's links")
	}
	m.close()
	out, _ := exec.Command("ip", "netns", "list").Output()
	if strings.Contains(string(out), "cjt-") {
		t.Fatalf("namespaces left after close: %s", out)
	}
	if _, err := os.Stat("/sys/class/net/cjt-br0"); err == nil {
		t.Fatal("bridge left after close")
	}
}

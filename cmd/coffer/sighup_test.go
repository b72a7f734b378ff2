package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cofferhq/coffer/tlsutil/tlstest"
)

// A running server serves its metrics, raft's included, and reloads its
// certificate files on SIGHUP: a new
// certificate for the same node is served to the next connection; one
// for another node is refused with the reason, and the one in use stays.
func TestBinary_SIGHUPReloadsCertificates(t *testing.T) {
	bin := cofferBinary(t)
	base := t.TempDir()
	rootKey := genRootKey(t, bin, filepath.Join(base, "root.key"))
	apiAddr := freeAddr(t)
	out := &logBuffer{}
	p := &proc{bin: bin, name: "n1", args: append([]string{"server", "--node-id", "n1", "--region", binRegion,
		"--data-dir", filepath.Join(base, "n1"), "--api-addr", apiAddr, "--cluster-addr", freeAddr(t),
		"--gossip-addr", freeAddr(t), "--bootstrap-expect", "1", "--root-key-file", rootKey},
		securityFlags(t, bin, base, "n1")...), env: childEnv(), stdout: out, stderr: out}
	dumpOnFailure(t, []*proc{p})
	t.Cleanup(func() { p.kill(t) })
	p.start(t)
	waitUntil(t, 60*time.Second, "the node serving", func() error {
		_, code, err := getHealth(apiAddr)
		if err == nil && code != 200 {
			err = errors.New("not serving yet")
		}
		return err
	})
	// The metrics endpoint serves raft's own figures, bridged from
	// go-metrics, beside Coffer's and the process's.
	waitUntil(t, 20*time.Second, "raft's metrics", func() error {
		resp, err := healthClient.Get("https://" + apiAddr + "/v1/metrics")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		for _, want := range []string{"coffer_raft_commitTime", "coffer_raft_leader{", "process_resident_memory_bytes", "go_goroutines"} {
			if !strings.Contains(string(body), want) {
				return fmt.Errorf("no %s in /v1/metrics", want)
			}
		}
		return nil
	})
	certFile := filepath.Join(base, binRegion+"-server-n1.pem")
	served := func() *x509.Certificate {
		conn, err := tls.Dial("tcp", apiAddr, tlstest.Shared().ClientConfig())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0]
	}
	onDisk := func() *x509.Certificate {
		raw, err := os.ReadFile(certFile)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(raw)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := onDisk()
	if !served().Equal(first) {
		t.Fatal("the API does not serve the node's certificate")
	}

	// A new certificate for the same node (cert create does not
	// overwrite: move the old files away first): served after SIGHUP.
	keyFile := filepath.Join(base, binRegion+"-server-n1-key.pem")
	for _, f := range []string{certFile, keyFile} {
		if err := os.Rename(f, f+".old"); err != nil {
			t.Fatal(err)
		}
	}
	securityFlags(t, bin, base, "n1")
	second := onDisk()
	if second.Equal(first) {
		t.Fatal("tls cert create wrote the same certificate")
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the reload", func() error {
		if !strings.Contains(out.String(), "SIGHUP: TLS certificates reloaded") {
			return errors.New("not logged yet")
		}
		return nil
	})
	if !served().Equal(second) {
		t.Fatal("after SIGHUP the API still serves the old certificate")
	}

	// Another node's certificate in this node's files: refused, and the
	// certificate in use stays.
	flags := securityFlags(t, bin, base, "n2")
	for i, dst := range []string{certFile, keyFile} {
		raw, err := os.ReadFile(flags[3+2*i])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dst, raw, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 20*time.Second, "the refused reload", func() error {
		if !strings.Contains(out.String(), "but this node is n1 of region "+binRegion) {
			return errors.New("not logged yet")
		}
		return nil
	})
	if !served().Equal(second) {
		t.Fatal("a refused reload changed the certificate served")
	}
	if !p.running() {
		t.Fatal("the server exited")
	}
	p.stop(t, syscall.SIGTERM, 30*time.Second)
}

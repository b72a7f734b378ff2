// Package tlstest makes TLS material for tests: one CA per test binary and
// node certificates from it, written to a test's temporary directory, so
// in-process clusters run their cluster port with mutual TLS and their API
// with HTTPS, as servers do.
package tlstest

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/cofferhq/coffer/tlsutil"
)

// CA is a certificate authority for tests.
type CA struct {
	CertPEM, KeyPEM []byte
	// Pool trusts the CA: give it to API clients.
	Pool *x509.CertPool
}

// NewCA makes a fresh CA.
func NewCA() (*CA, error) {
	cert, key, err := tlsutil.CreateCA(tlsutil.CAOptions{})
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(cert)
	return &CA{CertPEM: cert, KeyPEM: key, Pool: pool}, nil
}

var (
	sharedOnce sync.Once
	shared     *CA
)

// Shared is one CA for the whole test binary: every cluster a test starts
// and every client it makes trust it.
func Shared() *CA {
	sharedOnce.Do(func() {
		ca, err := NewCA()
		if err != nil {
			panic("tlstest: " + err.Error())
		}
		shared = ca
	})
	return shared
}

// Files writes the CA and a certificate for node of region (valid for
// localhost and 127.0.0.1) into a new temporary directory of t.
func (ca *CA) Files(t testing.TB, node, region string) tlsutil.Files {
	t.Helper()
	cert, key, err := tlsutil.CreateNodeCert(ca.CertPEM, ca.KeyPEM, tlsutil.NodeCertOptions{Node: node, Region: region})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	f := tlsutil.Files{CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "cert.pem"), KeyFile: filepath.Join(dir, "key.pem")}
	for path, data := range map[string][]byte{f.CAFile: ca.CertPEM, f.CertFile: cert, f.KeyFile: key} {
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// Node loads a node's material as a server does.
func (ca *CA) Node(t testing.TB, node, region string) *tlsutil.Reloader {
	t.Helper()
	rl, err := tlsutil.NewReloader(ca.Files(t, node, region))
	if err != nil {
		t.Fatal(err)
	}
	return rl
}

// ClientConfig trusts the CA, for HTTPS clients of a test cluster's API.
func (ca *CA) ClientConfig() *tls.Config {
	return &tls.Config{RootCAs: ca.Pool, MinVersion: tls.VersionTLS12}
}

package tlsutil

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const region = "us-east-1"

// writeFiles writes a CA, certificate and key into dir and names them.
func writeFiles(t *testing.T, dir string, caPEM, certPEM, keyPEM []byte) Files {
	t.Helper()
	f := Files{
		CAFile:   filepath.Join(dir, "coffer-ca.pem"),
		CertFile: filepath.Join(dir, "node.pem"),
		KeyFile:  filepath.Join(dir, "node-key.pem"),
	}
	for name, b := range map[string][]byte{f.CAFile: caPEM, f.CertFile: certPEM, f.KeyFile: keyPEM} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// nodeReloader issues a certificate for node and loads it.
func (ca testCA) nodeReloader(t *testing.T, node, region string) *Reloader {
	t.Helper()
	c, k := ca.issue(t, node, region)
	r, err := NewReloader(writeFiles(t, t.TempDir(), ca.cert, c, k))
	if err != nil {
		t.Fatalf("NewReloader: %v", err)
	}
	return r
}

func keyPair(t *testing.T, certPEM, keyPEM []byte) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// result is the outcome of one handshake, seen from both ends.
type result struct {
	serverErr, clientErr error
	peer                 []*x509.Certificate // the client's chain, as the server verified it
}

func (r result) ok() bool { return r.serverErr == nil && r.clientErr == nil }

// handshake runs a TLS handshake over net.Pipe and then one byte from
// server to client, so that a failure the server finds after the client's
// last flight (TLS 1.3 client certificates) still reaches the client.
func handshake(t *testing.T, server, client *tls.Config) result {
	t.Helper()
	sc, cc := net.Pipe()
	deadline := time.Now().Add(10 * time.Second)
	sc.SetDeadline(deadline)
	cc.SetDeadline(deadline)
	var res result
	done := make(chan struct{})
	go func() {
		defer close(done)
		s := tls.Server(sc, server)
		err := s.Handshake()
		if err == nil {
			res.peer = s.ConnectionState().PeerCertificates
			_, err = s.Write([]byte{1})
		}
		res.serverErr = err
		sc.Close()
	}()
	c := tls.Client(cc, client)
	err := c.Handshake()
	if err == nil {
		var b [1]byte
		_, err = io.ReadFull(c, b[:])
	}
	res.clientErr = err
	cc.Close()
	<-done
	return res
}

// wantRefused fails unless the handshake failed, at the server if byServer
// (else at the client), with an error containing want.
func wantRefused(t *testing.T, what string, r result, byServer bool, want string) {
	t.Helper()
	err, side := r.clientErr, "client"
	if byServer {
		err, side = r.serverErr, "server"
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("%s: %s error %v (other side: server %v, client %v); want one containing %q",
			what, side, err, r.serverErr, r.clientErr, want)
	}
}

func TestReloader_MutualTLSSameCA(t *testing.T) {
	ca := newCA(t)
	n1, n2 := ca.nodeReloader(t, "n1", region), ca.nodeReloader(t, "n2", region)
	r := handshake(t, n1.ServerConfig(), n2.ClientConfig(ServerName(region)))
	if !r.ok() {
		t.Fatalf("handshake: server %v, client %v", r.serverErr, r.clientErr)
	}
	node, reg, err := PeerIdentity(r.peer[0])
	if err != nil || node != "n2" || reg != region {
		t.Errorf("server sees %q, %q, %v; want n2, %s", node, reg, err, region)
	}
	// And the other way round: the same certificate serves both ends.
	if r := handshake(t, n2.ServerConfig(), n1.ClientConfig(ServerName(region))); !r.ok() {
		t.Fatalf("reverse handshake: server %v, client %v", r.serverErr, r.clientErr)
	}
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := n2.ClientConfig(ServerName(region))
		cfg.MaxVersion = v
		if r := handshake(t, n1.ServerConfig(), cfg); !r.ok() {
			t.Errorf("TLS %x: server %v, client %v", v, r.serverErr, r.clientErr)
		}
	}
	cfg := n2.ClientConfig(ServerName(region))
	cfg.MaxVersion = tls.VersionTLS11
	if r := handshake(t, n1.ServerConfig(), cfg); r.ok() {
		t.Error("TLS 1.1 accepted")
	}
}

func TestReloader_DialerRefusesServerOfOtherRegion(t *testing.T) {
	// One CA serves both regions; the dialer's server name tells them apart.
	ca := newCA(t)
	east, west := ca.nodeReloader(t, "n1", "us-east-1"), ca.nodeReloader(t, "n1", "eu-west-1")
	r := handshake(t, west.ServerConfig(), east.ClientConfig(ServerName("us-east-1")))
	wantRefused(t, "eu-west-1 server dialed as us-east-1", r, false, "server.us-east-1.coffer")

	// The accepting side lets a node of the other region (same CA) finish
	// the handshake; PeerIdentity is how it tells, and the cluster mux
	// refuses it.
	r = handshake(t, east.ServerConfig(), west.ClientConfig(ServerName("us-east-1")))
	if !r.ok() {
		t.Fatalf("cross-region handshake: server %v, client %v", r.serverErr, r.clientErr)
	}
	if _, reg, _ := PeerIdentity(r.peer[0]); reg != "eu-west-1" {
		t.Errorf("peer region %q, want eu-west-1", reg)
	}
}

func TestServerConfig_RefusesClientWithoutCertificate(t *testing.T) {
	ca := newCA(t)
	n1 := ca.nodeReloader(t, "n1", region)
	r := handshake(t, n1.ServerConfig(), &tls.Config{RootCAs: ca.pool(t), ServerName: ServerName(region)})
	wantRefused(t, "no client certificate", r, true, "client didn't provide a certificate")
}

func TestServerConfig_RefusesCertificateOfAnotherCA(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	n1, stranger := ca.nodeReloader(t, "n1", region), other.nodeReloader(t, "n2", region)
	r := handshake(t, n1.ServerConfig(), &tls.Config{
		RootCAs: ca.pool(t), ServerName: ServerName(region),
		GetClientCertificate: stranger.ClientConfig("").GetClientCertificate,
	})
	wantRefused(t, "client of another CA", r, true, "unknown authority")
	// And as a dialer, it refuses the server of the other CA.
	r = handshake(t, n1.ServerConfig(), stranger.ClientConfig(ServerName(region)))
	wantRefused(t, "server of another CA", r, false, "unknown authority")
}

func TestServerConfig_RefusesCertificateWithoutClientAuth(t *testing.T) {
	ca := newCA(t)
	n1 := ca.nodeReloader(t, "n1", region)
	c, k := ca.issue(t, "n2", region, func(o *NodeCertOptions) { o.extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth} })
	kp := keyPair(t, c, k)
	r := handshake(t, n1.ServerConfig(), &tls.Config{
		RootCAs: ca.pool(t), ServerName: ServerName(region),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil },
	})
	wantRefused(t, "client certificate without ClientAuth", r, true, "incompatible key usage")

	// NewReloader refuses it too: a node must be able to dial.
	if _, err := NewReloader(writeFiles(t, t.TempDir(), ca.cert, c, k)); err == nil || !strings.Contains(err.Error(), "incompatible key usage") {
		t.Errorf("NewReloader with a server-only certificate: %v", err)
	}
}

func TestClientConfig_RefusesServerWithoutServerAuth(t *testing.T) {
	ca := newCA(t)
	n1 := ca.nodeReloader(t, "n1", region)
	c, k := ca.issue(t, "n2", region, func(o *NodeCertOptions) { o.extKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth} })
	r := handshake(t, &tls.Config{Certificates: []tls.Certificate{keyPair(t, c, k)}}, n1.ClientConfig(ServerName(region)))
	wantRefused(t, "server certificate without ServerAuth", r, false, "incompatible key usage")
}

func TestExpiredCertificate_RefusedEverywhere(t *testing.T) {
	ca := newCA(t)
	n1 := ca.nodeReloader(t, "n1", region)
	expiredAt := time.Now().Add(-time.Hour).Truncate(time.Second)
	c, k := ca.issue(t, "n2", region, func(o *NodeCertOptions) {
		o.notBefore, o.notAfter = expiredAt.Add(-24*time.Hour), expiredAt
	})
	kp := keyPair(t, c, k)

	_, err := NewReloader(writeFiles(t, t.TempDir(), ca.cert, c, k))
	if err == nil || !strings.Contains(err.Error(), "expired at "+expiredAt.UTC().Format(time.RFC3339)) {
		t.Errorf("NewReloader with an expired certificate: %v; want it to name NotAfter", err)
	}
	r := handshake(t, n1.ServerConfig(), &tls.Config{
		RootCAs: ca.pool(t), ServerName: ServerName(region),
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &kp, nil },
	})
	wantRefused(t, "expired client certificate", r, true, "expired")
	r = handshake(t, &tls.Config{Certificates: []tls.Certificate{kp}}, n1.ClientConfig(ServerName(region)))
	wantRefused(t, "expired server certificate", r, false, "expired")

	// Not yet valid: named by NotBefore.
	from := time.Now().Add(time.Hour).Truncate(time.Second)
	c, k = ca.issue(t, "n3", region, func(o *NodeCertOptions) { o.notBefore, o.notAfter = from, from.Add(time.Hour) })
	if _, err := NewReloader(writeFiles(t, t.TempDir(), ca.cert, c, k)); err == nil ||
		!strings.Contains(err.Error(), "not valid until "+from.UTC().Format(time.RFC3339)) {
		t.Errorf("NewReloader with a future certificate: %v; want it to name NotBefore", err)
	}
}

func TestNewReloader_RefusesBadMaterial(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	c, k := ca.issue(t, "n1", region)
	_, k2 := ca.issue(t, "n2", region)
	oc, ok := other.issue(t, "n1", region)
	for _, tc := range []struct {
		name          string
		ca, cert, key []byte
		want          string
	}{
		{"key of another certificate", ca.cert, c, k2, "private key does not match"},
		{"certificate of another CA", ca.cert, oc, ok, "unknown authority"},
		{"node certificate as CA", c, c, k, "not a CA"},
		{"key in the CA file", append(append([]byte{}, ca.cert...), ca.key...), c, k, `"PRIVATE KEY" PEM block`},
		{"empty CA file", nil, c, k, "no PEM certificate"},
		{"empty certificate file", ca.cert, nil, k, "failed to find any PEM data"},
		{"CA bundle with the issuer second", append(append([]byte{}, other.cert...), ca.cert...), c, k, ""},
	} {
		_, err := NewReloader(writeFiles(t, t.TempDir(), tc.ca, tc.cert, tc.key))
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := NewReloader(Files{CAFile: filepath.Join(t.TempDir(), "missing.pem")}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing CA file: %v", err)
	}
}

func TestNewReloader_RefusesCertificateNamingNoServer(t *testing.T) {
	ca := newCA(t)
	c, k := ca.issue(t, "n1", region)
	cert := parseCert(t, c)
	// Re-sign the same key pair's leaf without the node name, as another
	// tool might: keep only the generic names.
	cert.DNSNames = []string{"localhost"}
	caCert := parseCert(t, ca.cert)
	caKey, err := parsePrivateKey(ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leafKey, err := parsePrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, cert, caCert, leafKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if _, err := NewReloader(writeFiles(t, t.TempDir(), ca.cert, certPEM, k)); err == nil || !strings.Contains(err.Error(), "names no Coffer server") {
		t.Errorf("certificate without a node name: %v", err)
	}
}

func TestReloader_ReloadSwapsMaterialForNewConnections(t *testing.T) {
	ca1, ca2 := newCA(t), newCA(t)
	dir := t.TempDir()
	c, k := ca1.issue(t, "n1", region)
	files := writeFiles(t, dir, ca1.cert, c, k)
	n1, err := NewReloader(files)
	if err != nil {
		t.Fatal(err)
	}
	old := n1.Leaf()
	peer1, peer2 := ca1.nodeReloader(t, "n2", region), ca2.nodeReloader(t, "n2", region)

	// A listener built once, before the reload, as the cluster port's is.
	ln, err := tls.Listen("tcp", "127.0.0.1:0", n1.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				if conn.(*tls.Conn).Handshake() == nil {
					conn.Write([]byte{1})
				}
			}()
		}
	}()
	dial := func(cfg *tls.Config) error {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, err = io.ReadFull(conn, make([]byte, 1))
		return err
	}
	if err := dial(peer1.ClientConfig(ServerName(region))); err != nil {
		t.Fatalf("before reload, a peer of CA 1: %v", err)
	}
	if err := dial(peer2.ClientConfig(ServerName(region))); err == nil {
		t.Fatal("before reload, a peer of CA 2 was accepted")
	}

	// Move n1 to CA 2.
	c, k = ca2.issue(t, "n1", region)
	writeFiles(t, dir, ca2.cert, c, k)
	if err := n1.Reload(); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	if n1.Leaf().Equal(old) || n1.Leaf().Issuer.CommonName != parseCert(t, ca2.cert).Subject.CommonName {
		t.Errorf("Leaf after reload is issued by %q", n1.Leaf().Issuer.CommonName)
	}
	if err := dial(peer2.ClientConfig(ServerName(region))); err != nil {
		t.Errorf("after reload, a peer of CA 2: %v", err)
	}
	if err := dial(peer1.ClientConfig(ServerName(region))); err == nil {
		t.Error("after reload, a peer of CA 1 was still accepted")
	}
	// As a dialer too: n1 now trusts only CA 2 and presents its new certificate.
	if r := handshake(t, peer2.ServerConfig(), n1.ClientConfig(ServerName(region))); !r.ok() {
		t.Errorf("after reload, dialing a peer of CA 2: server %v, client %v", r.serverErr, r.clientErr)
	}
	r := handshake(t, peer1.ServerConfig(), n1.ClientConfig(ServerName(region)))
	wantRefused(t, "after reload, dialing a peer of CA 1", r, false, "unknown authority")
}

func TestReloader_FailedReloadKeepsMaterial(t *testing.T) {
	ca1, ca2 := newCA(t), newCA(t)
	dir := t.TempDir()
	c, k := ca1.issue(t, "n1", region)
	files := writeFiles(t, dir, ca1.cert, c, k)
	n1, err := NewReloader(files)
	if err != nil {
		t.Fatal(err)
	}
	leaf := n1.Leaf()
	peer := ca1.nodeReloader(t, "n2", region)
	stillWorks := func(what string) {
		t.Helper()
		if !n1.Leaf().Equal(leaf) {
			t.Errorf("%s: Leaf changed", what)
		}
		if r := handshake(t, n1.ServerConfig(), peer.ClientConfig(ServerName(region))); !r.ok() {
			t.Errorf("%s: accepting: server %v, client %v", what, r.serverErr, r.clientErr)
		}
		if r := handshake(t, peer.ServerConfig(), n1.ClientConfig(ServerName(region))); !r.ok() {
			t.Errorf("%s: dialing: server %v, client %v", what, r.serverErr, r.clientErr)
		}
	}

	// Half a rotation: a new certificate, but the old key.
	c2, k2 := ca1.issue(t, "n1", region)
	if err := os.WriteFile(files.CertFile, c2, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n1.Reload(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("Reload with a mismatched key: %v", err)
	}
	stillWorks("mismatched key")

	// The certificate and key of CA 2, but the CA file still CA 1.
	c3, k3 := ca2.issue(t, "n1", region)
	writeFiles(t, dir, ca1.cert, c3, k3)
	if err := n1.Reload(); err == nil || !strings.Contains(err.Error(), "unknown authority") {
		t.Errorf("Reload with a certificate of another CA: %v", err)
	}
	stillWorks("certificate of another CA")

	// A valid certificate, but for another node, or another region.
	for _, who := range [][2]string{{"n2", region}, {"n1", "eu-west-1"}} {
		c4, k4 := ca1.issue(t, who[0], who[1])
		writeFiles(t, dir, ca1.cert, c4, k4)
		if err := n1.Reload(); err == nil || !strings.Contains(err.Error(), "but this node is n1 of region "+region) {
			t.Errorf("Reload with a certificate of %s/%s: %v", who[0], who[1], err)
		}
		stillWorks("certificate of " + who[0] + "/" + who[1])
	}

	// A missing key file.
	os.Remove(files.KeyFile)
	if err := n1.Reload(); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Reload without a key file: %v", err)
	}
	stillWorks("missing key")

	// Fixed: the reload succeeds.
	writeFiles(t, dir, ca1.cert, c2, k2)
	if err := n1.Reload(); err != nil {
		t.Fatalf("Reload after the fix: %v", err)
	}
	if !n1.Leaf().Equal(parseCert(t, c2)) {
		t.Error("Leaf is not the new certificate after a good reload")
	}
}

func TestReloader_ConcurrentReloadAndHandshakes(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	c, k := ca.issue(t, "n1", region)
	files := writeFiles(t, dir, ca.cert, c, k)
	n1, err := NewReloader(files)
	if err != nil {
		t.Fatal(err)
	}
	peer := ca.nodeReloader(t, "n2", region)
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Go(func() {
			for j := 0; j < 5; j++ {
				if r := handshake(t, n1.ServerConfig(), peer.ClientConfig(ServerName(region))); !r.ok() {
					t.Errorf("accepting during reloads: server %v, client %v", r.serverErr, r.clientErr)
				}
				if r := handshake(t, peer.ServerConfig(), n1.ClientConfig(ServerName(region))); !r.ok() {
					t.Errorf("dialing during reloads: server %v, client %v", r.serverErr, r.clientErr)
				}
				_ = n1.Leaf().NotAfter
			}
		})
	}
	wg.Go(func() {
		for j := 0; j < 10; j++ {
			if err := n1.Reload(); err != nil {
				t.Errorf("Reload: %v", err)
			}
		}
	})
	wg.Wait()
}

func TestReloader_APIConfigServesNodeCertificate(t *testing.T) {
	ca := newCA(t)
	dir := t.TempDir()
	c, k := ca.issue(t, "n1", region)
	n1, err := NewReloader(writeFiles(t, dir, ca.cert, c, k))
	if err != nil {
		t.Fatal(err)
	}
	api := n1.APIConfig() // kept across the reload, as the API listener keeps it
	client := &tls.Config{RootCAs: ca.pool(t), ServerName: "localhost"}
	r := handshake(t, api, client)
	if !r.ok() || len(r.peer) != 0 {
		t.Fatalf("API handshake without a client certificate: server %v, client %v, client certificates %d", r.serverErr, r.clientErr, len(r.peer))
	}
	old := &tls.Config{RootCAs: ca.pool(t), ServerName: "localhost", MaxVersion: tls.VersionTLS11}
	if r := handshake(t, api, old); r.ok() {
		t.Error("TLS 1.1 accepted on the API port")
	}
	c2, k2 := ca.issue(t, "n1", region, func(o *NodeCertOptions) { o.DNSNames = []string{"coffer.example.com"} })
	writeFiles(t, dir, ca.cert, c2, k2)
	if err := n1.Reload(); err != nil {
		t.Fatal(err)
	}
	if r := handshake(t, api, &tls.Config{RootCAs: ca.pool(t), ServerName: "coffer.example.com"}); !r.ok() {
		t.Errorf("API handshake after reload: server %v, client %v", r.serverErr, r.clientErr)
	}
}

package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/pem"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// testCA is a CA made for one test.
type testCA struct{ cert, key []byte }

func newCA(t *testing.T) testCA {
	t.Helper()
	c, k, err := CreateCA(CAOptions{})
	if err != nil {
		t.Fatalf("CreateCA: %v", err)
	}
	return testCA{c, k}
}

// issue signs a node certificate; edit, if given, adjusts the options.
func (ca testCA) issue(t *testing.T, node, region string, edit ...func(*NodeCertOptions)) (certPEM, keyPEM []byte) {
	t.Helper()
	opts := NodeCertOptions{Node: node, Region: region}
	for _, e := range edit {
		e(&opts)
	}
	c, k, err := CreateNodeCert(ca.cert, ca.key, opts)
	if err != nil {
		t.Fatalf("CreateNodeCert(%s, %s): %v", node, region, err)
	}
	return c, k
}

func (ca testCA) pool(t *testing.T) *x509.CertPool {
	t.Helper()
	p := x509.NewCertPool()
	if !p.AppendCertsFromPEM(ca.cert) {
		t.Fatal("CA certificate does not parse")
	}
	return p
}

func parseCert(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	b, _ := pem.Decode(certPEM)
	if b == nil || b.Type != "CERTIFICATE" {
		t.Fatalf("not a PEM certificate: %q", certPEM)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateCA_IsAConstrainedCA(t *testing.T) {
	certPEM, keyPEM, err := CreateCA(CAOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := parseCert(t, certPEM)
	if !c.IsCA || !c.BasicConstraintsValid || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("IsCA=%v BasicConstraintsValid=%v MaxPathLen=%d MaxPathLenZero=%v; want a CA with path length 0",
			c.IsCA, c.BasicConstraintsValid, c.MaxPathLen, c.MaxPathLenZero)
	}
	if want := x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature; c.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", c.KeyUsage, want)
	}
	if pub, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || pub.Curve != elliptic.P256() {
		t.Errorf("public key %T, want ECDSA P-256", c.PublicKey)
	}
	if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 || c.SerialNumber.BitLen() < 64 {
		t.Errorf("serial %v: want a positive random 128-bit number", c.SerialNumber)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Errorf("not self-signed: %v", err)
	}
	now := time.Now()
	if c.NotBefore.After(now) || now.Sub(c.NotBefore) > 2*time.Minute {
		t.Errorf("NotBefore %v: want about a minute ago", c.NotBefore)
	}
	if want := now.AddDate(0, 0, DefaultCADays); c.NotAfter.Sub(want).Abs() > time.Minute {
		t.Errorf("NotAfter %v, want about %v", c.NotAfter, want)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key is not a PKCS#8 PEM block: %q", keyPEM)
	}

	other, _, err := CreateCA(CAOptions{Days: 10})
	if err != nil {
		t.Fatal(err)
	}
	o := parseCert(t, other)
	if !strings.HasPrefix(c.Subject.CommonName, "Coffer CA ") || o.Subject.CommonName == c.Subject.CommonName {
		t.Errorf("common names %q and %q: want two distinguishable Coffer CAs", c.Subject.CommonName, o.Subject.CommonName)
	}
	if want := now.AddDate(0, 0, 10); o.NotAfter.Sub(want).Abs() > time.Minute {
		t.Errorf("Days 10: NotAfter %v, want about %v", o.NotAfter, want)
	}
}

func TestCreateNodeCert_VerifiesAndNamesPeer(t *testing.T) {
	ca := newCA(t)
	certPEM, keyPEM := ca.issue(t, "n1", "us-east-1", func(o *NodeCertOptions) {
		o.DNSNames = []string{"coffer-1.internal.example.com", "localhost"}
		o.IPs = []net.IP{net.ParseIP("10.0.0.1"), net.ParseIP("127.0.0.1")}
	})
	c := parseCert(t, certPEM)
	if c.Subject.CommonName != "n1.server.us-east-1.coffer" {
		t.Errorf("CN = %q", c.Subject.CommonName)
	}
	wantDNS := []string{"n1.server.us-east-1.coffer", "server.us-east-1.coffer", "localhost", "coffer-1.internal.example.com"}
	if !slices.Equal(c.DNSNames, wantDNS) {
		t.Errorf("DNS names %q, want %q", c.DNSNames, wantDNS)
	}
	var ips []string
	for _, ip := range c.IPAddresses {
		ips = append(ips, ip.String())
	}
	if want := []string{"127.0.0.1", "::1", "10.0.0.1"}; !slices.Equal(ips, want) {
		t.Errorf("IP addresses %q, want %q", ips, want)
	}
	if c.IsCA || c.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("IsCA=%v KeyUsage=%v; want a leaf for digital signatures", c.IsCA, c.KeyUsage)
	}
	if want := []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}; !slices.Equal(c.ExtKeyUsage, want) {
		t.Errorf("ExtKeyUsage %v, want %v", c.ExtKeyUsage, want)
	}
	if want := time.Now().AddDate(0, 0, DefaultCertDays); c.NotAfter.Sub(want).Abs() > time.Minute {
		t.Errorf("NotAfter %v, want about %v", c.NotAfter, want)
	}
	for _, use := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := c.Verify(x509.VerifyOptions{Roots: ca.pool(t), DNSName: ServerName("us-east-1"), KeyUsages: []x509.ExtKeyUsage{use}}); err != nil {
			t.Errorf("verify for %v: %v", use, err)
		}
	}
	if _, err := c.Verify(x509.VerifyOptions{Roots: ca.pool(t), DNSName: ServerName("eu-west-1")}); err == nil {
		t.Error("a us-east-1 certificate verified as a server of eu-west-1")
	}
	node, region, err := PeerIdentity(c)
	if err != nil || node != "n1" || region != "us-east-1" {
		t.Errorf("PeerIdentity = %q, %q, %v; want n1, us-east-1", node, region, err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key is not a PKCS#8 PEM block: %q", keyPEM)
	}
}

func TestCreateNodeCert_RejectsInvalidNames(t *testing.T) {
	ca := newCA(t)
	for _, tc := range []struct{ node, region, bad string }{
		{"", "us-east-1", `node ""`},
		{"N1", "us-east-1", `node "N1"`},
		{"n_1", "us-east-1", `node "n_1"`},
		{"n.1", "us-east-1", `node "n.1"`},
		{"-n1", "us-east-1", `node "-n1"`},
		{"n1-", "us-east-1", `node "n1-"`},
		{strings.Repeat("a", 64), "us-east-1", `node "` + strings.Repeat("a", 64) + `"`},
		{"n1", "", `region ""`},
		{"n1", "US-EAST-1", `region "US-EAST-1"`},
		{"n1", "us.east.1", `region "us.east.1"`},
		{"n1", "us east 1", `region "us east 1"`},
	} {
		_, _, err := CreateNodeCert(ca.cert, ca.key, NodeCertOptions{Node: tc.node, Region: tc.region})
		if err == nil || !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("node %q region %q: error %v, want one naming %s", tc.node, tc.region, err, tc.bad)
		}
	}
	// The longest label allowed, and digits first, are fine.
	ca.issue(t, strings.Repeat("a", 63), "1-region")
}

func TestCreateNodeCert_RejectsReservedOrBadExtraNames(t *testing.T) {
	ca := newCA(t)
	for _, name := range []string{"server.eu-west-1.coffer", "n9.server.us-east-1.coffer", "COFFER", "x.Coffer", "", "bad name", "a..b", "-a.example.com"} {
		_, _, err := CreateNodeCert(ca.cert, ca.key, NodeCertOptions{Node: "n1", Region: "us-east-1", DNSNames: []string{name}})
		if err == nil || !strings.Contains(err.Error(), `"`+name+`"`) {
			t.Errorf("additional name %q: error %v, want one naming it", name, err)
		}
	}
	ca.issue(t, "n1", "us-east-1", func(o *NodeCertOptions) { o.DNSNames = []string{"*.nodes.example.com", "Coffer-1.example.com"} })
}

func TestCreateNodeCert_RejectsBadCA(t *testing.T) {
	ca, other := newCA(t), newCA(t)
	leaf, leafKey := ca.issue(t, "n1", "us-east-1")
	opts := NodeCertOptions{Node: "n2", Region: "us-east-1"}

	if _, _, err := CreateNodeCert(leaf, leafKey, opts); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Errorf("a node certificate as CA: error %v, want not a CA", err)
	}
	if _, _, err := CreateNodeCert(ca.cert, other.key, opts); err == nil || !strings.Contains(err.Error(), "does not belong") {
		t.Errorf("another CA's key: error %v, want a key mismatch", err)
	}
	if _, _, err := CreateNodeCert(ca.cert, ca.cert, opts); err == nil || !strings.Contains(err.Error(), "no PEM private key") {
		t.Errorf("certificate as key: error %v", err)
	}
	if _, _, err := CreateNodeCert(ca.key, ca.key, opts); err == nil || !strings.Contains(err.Error(), `"PRIVATE KEY" PEM block`) {
		t.Errorf("key as CA certificate: error %v", err)
	}
	if _, _, err := CreateNodeCert(append(ca.cert, other.cert...), ca.key, opts); err == nil || !strings.Contains(err.Error(), "2 certificates") {
		t.Errorf("two CA certificates: error %v", err)
	}

	// An expired CA, and a CA that ends before the certificate would.
	expiredCert, expiredKey, err := CreateCA(CAOptions{notBefore: time.Now().Add(-48 * time.Hour), notAfter: time.Now().Add(-time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateNodeCert(expiredCert, expiredKey, opts); err == nil || !strings.Contains(err.Error(), "expired at") {
		t.Errorf("expired CA: error %v", err)
	}
	shortCert, shortKey, err := CreateCA(CAOptions{Days: 30})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := CreateNodeCert(shortCert, shortKey, opts); err == nil || !strings.Contains(err.Error(), "before the certificate would") {
		t.Errorf("CA shorter than the certificate: error %v", err)
	}
	if _, _, err := CreateNodeCert(shortCert, shortKey, NodeCertOptions{Node: "n2", Region: "us-east-1", Days: 29}); err != nil {
		t.Errorf("a certificate inside the CA's life: %v", err)
	}
	if _, _, err := CreateNodeCert(ca.cert, ca.key, NodeCertOptions{Node: "n2", Region: "us-east-1", Days: -1}); err == nil {
		t.Error("negative days accepted")
	}
}

func TestPeerIdentity(t *testing.T) {
	for _, tc := range []struct {
		names        []string
		node, region string // empty: an error
	}{
		{[]string{"localhost", "server.us-east-1.coffer", "n1.server.us-east-1.coffer"}, "n1", "us-east-1"},
		{[]string{"n1.server.us-east-1.coffer", "n1.server.us-east-1.coffer"}, "n1", "us-east-1"},
		{[]string{"server.server.server.coffer"}, "server", "server"},
		{nil, "", ""},
		{[]string{"server.us-east-1.coffer", "localhost"}, "", ""},
		{[]string{"a.n1.server.us-east-1.coffer"}, "", ""},
		{[]string{"n1.client.us-east-1.coffer"}, "", ""},
		{[]string{"n1.server.us-east-1.consul"}, "", ""},
		{[]string{"N1.server.us-east-1.coffer"}, "", ""},
		{[]string{"n1.server.us-east-1.coffer", "n2.server.us-east-1.coffer"}, "", ""},
		{[]string{"n1.server.us-east-1.coffer", "n1.server.eu-west-1.coffer"}, "", ""},
	} {
		node, region, err := PeerIdentity(&x509.Certificate{DNSNames: tc.names})
		if node != tc.node || region != tc.region || (err != nil) != (tc.node == "") {
			t.Errorf("%q: got %q, %q, %v; want %q, %q", tc.names, node, region, err, tc.node, tc.region)
		}
	}
	if _, _, err := PeerIdentity(nil); err == nil {
		t.Error("nil certificate: no error")
	}
}

func TestServerName(t *testing.T) {
	if got := ServerName("us-east-1"); got != "server.us-east-1.coffer" {
		t.Errorf("ServerName = %q", got)
	}
}

package tlsutil

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"slices"
	"strings"
	"time"
)

// Default lifetimes, as Consul's: five years for the CA, one for a node.
const (
	DefaultCADays   = 5 * 365
	DefaultCertDays = 365
)

// backdate is how far before now a new certificate becomes valid, so a
// peer whose clock runs a little behind accepts it at once.
const backdate = time.Minute

// CAOptions configures CreateCA.
type CAOptions struct {
	// Days is how long the CA is valid; 0 means DefaultCADays.
	Days int

	// notBefore and notAfter, when set, replace the validity computed
	// from Days, so tests can make an expired or future CA.
	notBefore, notAfter time.Time
}

// NodeCertOptions configures CreateNodeCert.
type NodeCertOptions struct {
	// Node and Region name the node; each must be a DNS label in lowercase.
	Node, Region string
	// Days is how long the certificate is valid; 0 means DefaultCertDays.
	Days int
	// DNSNames and IPs are added to the names every node certificate
	// carries (its node name, server.<region>.coffer, localhost, 127.0.0.1
	// and ::1). A name under .coffer is refused: those are derived from
	// Node and Region only, and an extra server.<other>.coffer would let
	// the node pass as a server of another region.
	DNSNames []string
	IPs      []net.IP

	// notBefore, notAfter and extKeyUsage, when set, replace the computed
	// validity and the usual ServerAuth+ClientAuth, so tests can make
	// expired certificates and ones fit for one direction only.
	notBefore, notAfter time.Time
	extKeyUsage         []x509.ExtKeyUsage
}

// CreateCA returns a new self-signed CA certificate and its private key,
// both PEM: an ECDSA P-256 key in PKCS#8 ("PRIVATE KEY"). The CA may sign
// node certificates only, not intermediate CAs (MaxPathLen 0). Its common
// name carries a random id, so two CAs can be told apart in logs and in
// `openssl x509 -text`.
func CreateCA(opts CAOptions) (certPEM, keyPEM []byte, err error) {
	notBefore, notAfter, err := validity(opts.Days, DefaultCADays, opts.notBefore, opts.notAfter)
	if err != nil {
		return nil, nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	id := make([]byte, 4)
	rand.Read(id) // never fails (Go 1.24+)
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "Coffer CA " + hex.EncodeToString(id)},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		IsCA:                  true,
		BasicConstraintsValid: true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: create CA certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// CreateNodeCert returns a certificate for one node, signed by the CA, and
// its new private key, both PEM (ECDSA P-256, PKCS#8). The certificate is
// for both ends of a connection (ServerAuth and ClientAuth); its common
// name and first DNS name are <node>.server.<region>.coffer. caKeyPEM may
// be PKCS#8, SEC 1 ("EC PRIVATE KEY") or PKCS#1 ("RSA PRIVATE KEY"), so an
// existing CA can sign. The CA must be a CA, hold the key, and outlive the
// new certificate.
func CreateNodeCert(caCertPEM, caKeyPEM []byte, opts NodeCertOptions) (certPEM, keyPEM []byte, err error) {
	if err := checkLabel("node", opts.Node); err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	if err := checkLabel("region", opts.Region); err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	name := nodeName(opts.Node, opts.Region)
	dnsNames := []string{name, ServerName(opts.Region), "localhost"}
	for _, n := range opts.DNSNames {
		if err := checkExtraDNSName(n); err != nil {
			return nil, nil, err
		}
		if !slices.Contains(dnsNames, n) {
			dnsNames = append(dnsNames, n)
		}
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	for _, ip := range opts.IPs {
		if ip == nil {
			return nil, nil, errors.New("tlsutil: empty IP address")
		}
		if !slices.ContainsFunc(ips, ip.Equal) {
			ips = append(ips, ip)
		}
	}

	ca, err := parseCA(caCertPEM)
	if err != nil {
		return nil, nil, err
	}
	caKey, err := parsePrivateKey(caKeyPEM)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: CA key: %w", err)
	}
	if pub, ok := caKey.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(ca.PublicKey) {
		return nil, nil, fmt.Errorf("tlsutil: the CA key does not belong to the CA certificate %q", ca.Subject.CommonName)
	}
	notBefore, notAfter, err := validity(opts.Days, DefaultCertDays, opts.notBefore, opts.notAfter)
	if err != nil {
		return nil, nil, err
	}
	if err := checkValidity(fmt.Sprintf("CA certificate %q", ca.Subject.CommonName), ca, time.Now()); err != nil {
		return nil, nil, fmt.Errorf("tlsutil: %w", err)
	}
	if notAfter.After(ca.NotAfter) {
		// Peers would refuse the certificate once the CA expires anyway;
		// better to say so now than to hand out a lifetime it cannot have.
		return nil, nil, fmt.Errorf("tlsutil: the CA %q expires at %s, before the certificate would (%s): use fewer days or a new CA",
			ca.Subject.CommonName, ca.NotAfter.UTC().Format(time.RFC3339), notAfter.UTC().Format(time.RFC3339))
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, err
	}
	usage := opts.extKeyUsage
	if usage == nil {
		usage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           usage,
		DNSNames:              dnsNames,
		IPAddresses:           ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsutil: sign node certificate: %w", err)
	}
	keyPEM, err = encodeKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM, nil
}

// validity returns a new certificate's validity window: from a minute ago
// until days from now (def when days is 0), or the overrides if set.
func validity(days, def int, notBefore, notAfter time.Time) (time.Time, time.Time, error) {
	if !notBefore.IsZero() || !notAfter.IsZero() {
		return notBefore, notAfter, nil
	}
	if days < 0 {
		return time.Time{}, time.Time{}, fmt.Errorf("tlsutil: days must be positive, got %d", days)
	}
	if days == 0 {
		days = def
	}
	now := time.Now()
	return now.Add(-backdate), now.AddDate(0, 0, days), nil
}

// randomSerial returns a random positive 128-bit serial number: unique
// without a counter to keep, as RFC 5280 (at most 20 octets) and the CA/B
// rules (at least 64 random bits) ask.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, err
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

func encodeKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// checkExtraDNSName checks an operator-supplied DNS name: RFC 1123 labels,
// optionally a leading "*." wildcard, and nothing under .coffer.
func checkExtraDNSName(n string) error {
	if strings.HasSuffix(strings.ToLower(n), "."+domain) || strings.EqualFold(n, domain) {
		return fmt.Errorf("tlsutil: additional DNS name %q: names under .%s are derived from the node and region only", n, domain)
	}
	labels := strings.Split(strings.TrimPrefix(n, "*."), ".")
	bad := n == "" || len(n) > 253
	for _, l := range labels {
		if bad {
			break
		}
		bad = len(l) == 0 || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-'
		for i := 0; i < len(l) && !bad; i++ {
			c := l[i]
			bad = !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-')
		}
	}
	if bad {
		return fmt.Errorf("tlsutil: additional DNS name %q is not a valid DNS name", n)
	}
	return nil
}

// parseCertificates returns every certificate of a PEM bundle. Any other
// block is an error: a private key in a CA or certificate file is a
// mistake worth stopping for.
func parseCertificates(data []byte) ([]*x509.Certificate, error) {
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("found a %q PEM block where only certificates belong", block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, err
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return certs, nil
}

// parseCA parses the one CA certificate that is to sign.
func parseCA(data []byte) (*x509.Certificate, error) {
	certs, err := parseCertificates(data)
	if err != nil {
		return nil, fmt.Errorf("tlsutil: CA certificate: %w", err)
	}
	if len(certs) != 1 {
		return nil, fmt.Errorf("tlsutil: CA certificate: found %d certificates; give the one CA whose key signs", len(certs))
	}
	if err := checkCA(certs[0]); err != nil {
		return nil, fmt.Errorf("tlsutil: %w", err)
	}
	return certs[0], nil
}

// checkCA refuses a certificate that may not sign others.
func checkCA(c *x509.Certificate) error {
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("certificate %q is not a CA (its basic constraints do not say CA:TRUE)", c.Subject.CommonName)
	}
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageCertSign == 0 {
		return fmt.Errorf("CA certificate %q may not sign certificates (no certSign key usage)", c.Subject.CommonName)
	}
	return nil
}

// parsePrivateKey reads the first private key of a PEM file.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			return nil, errors.New(`no PEM private key found (want a "PRIVATE KEY" block)`)
		}
		var k any
		var err error
		switch block.Type {
		case "PRIVATE KEY":
			k, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			k, err = x509.ParseECPrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			k, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted; Coffer reads unencrypted keys only (protect the file instead)")
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		s, ok := k.(crypto.Signer)
		if !ok {
			return nil, fmt.Errorf("a %T cannot sign", k)
		}
		return s, nil
	}
}

// checkValidity says, naming the bound, why c is not valid at now.
func checkValidity(what string, c *x509.Certificate, now time.Time) error {
	switch {
	case now.Before(c.NotBefore):
		return fmt.Errorf("%s is not valid until %s (NotBefore)", what, c.NotBefore.UTC().Format(time.RFC3339))
	case now.After(c.NotAfter):
		return fmt.Errorf("%s expired at %s (NotAfter)", what, c.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

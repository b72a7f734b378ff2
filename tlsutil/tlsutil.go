// Package tlsutil holds the TLS material for Coffer's ports: it creates the
// CA and the node certificates (`coffer operator tls`), reads the identity
// of a verified peer, and loads certificates for the cluster port (mutual
// TLS) and the HTTPS API, reloading them on SIGHUP.
//
// The naming is Consul's. One CA may serve every region, as Consul's one CA
// serves all its datacenters. A node's certificate names the node and its
// region:
//
//	n1.server.us-east-1.coffer   the node: PeerIdentity reads it
//	server.us-east-1.coffer      any server of the region: ServerName
//
// A node dialing a peer of its region verifies server.<region>.coffer, so a
// server of another region, though signed by the same CA, fails the
// handshake. The accepting node cannot choose a name to verify (the dialer
// picks its certificate), so it verifies the chain and then reads the
// dialer's region with PeerIdentity. Every node certificate carries both
// ServerAuth and ClientAuth, because a node dials and accepts with the same
// certificate.
//
// Generation is pure (PEM bytes in and out, no files); the loaders read
// files and do no network I/O. Nothing here reads flags or the environment.
package tlsutil

import (
	"crypto/x509"
	"errors"
	"fmt"
	"strings"
)

// domain is the pseudo top-level domain of every name Coffer derives. It
// never resolves; it exists only inside certificates.
const domain = "coffer"

// ServerName is the name a node verifies when it dials a server of region:
// server.<region>.coffer. Every node certificate of the region carries it.
func ServerName(region string) string {
	return "server." + region + "." + domain
}

// nodeName is the DNS name that identifies one node: <node>.server.<region>.coffer.
func nodeName(node, region string) string {
	return node + "." + ServerName(region)
}

// PeerIdentity returns the node and region named by a certificate's DNS
// name of the form <node>.server.<region>.coffer. Call it on a certificate
// the TLS handshake has verified: it checks names, not signatures. It fails
// when the certificate names no Coffer server, or more than one (a
// certificate must not speak for two nodes).
func PeerIdentity(cert *x509.Certificate) (node, region string, err error) {
	node, region, err = peerIdentity(cert)
	if err != nil {
		return "", "", fmt.Errorf("tlsutil: %w", err)
	}
	return node, region, nil
}

func peerIdentity(cert *x509.Certificate) (node, region string, err error) {
	if cert == nil {
		return "", "", errors.New("no certificate")
	}
	for _, name := range cert.DNSNames {
		// Exactly four labels: node, "server", region, "coffer". Region
		// names such as us-east-1 contain no dots, so the split is
		// unambiguous.
		parts := strings.Split(name, ".")
		if len(parts) != 4 || parts[1] != "server" || parts[3] != domain ||
			checkLabel("node", parts[0]) != nil || checkLabel("region", parts[2]) != nil {
			continue
		}
		if node != "" && (node != parts[0] || region != parts[2]) {
			return "", "", fmt.Errorf("certificate %q names two Coffer servers: %s and %s",
				cert.Subject.CommonName, nodeName(node, region), name)
		}
		node, region = parts[0], parts[2]
	}
	if node == "" {
		return "", "", fmt.Errorf("certificate %q names no Coffer server (no DNS name <node>.server.<region>.%s)",
			cert.Subject.CommonName, domain)
	}
	return node, region, nil
}

// checkLabel checks that a node or region name can stand as one DNS label:
// 1 to 63 lowercase letters, digits and '-', not starting or ending with
// '-'. Lowercase only, because DNS names compare case-insensitively and a
// node id that differed from its certificate only in case would confuse
// whoever matches them.
func checkLabel(what, s string) error {
	bad := len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-'
	for i := 0; i < len(s) && !bad; i++ {
		c := s[i]
		bad = !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-')
	}
	if bad {
		return fmt.Errorf("invalid %s %q: use 1 to 63 lowercase letters, digits and '-', not starting or ending with '-' (it becomes a DNS label)", what, s)
	}
	return nil
}
